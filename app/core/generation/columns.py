"""The interface both streams' column batches share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.core.generation.render import Matrix


@dataclass(frozen=True)
class DefectTarget:
    """One way a defect type can hit a record: which field, why, and the injected value."""

    field: str
    reason: str
    # Any: each stream's injectors take its own batch type (EventBatch, CompanyBatch)
    inject: Callable[[Any, np.ndarray, np.random.Generator], Matrix] | None = None


class ColumnBatch(ABC):
    """Records of one batch held as columns; rendering takes row indices, never loops rows."""

    fields: tuple[str, ...]
    id_field: str
    stream: str

    @property
    @abstractmethod
    def size(self) -> int: ...

    @abstractmethod
    def render(self, field: str, rows: np.ndarray | slice) -> Matrix:
        """The JSON text of ``field`` for ``rows``."""

    @abstractmethod
    def copy_rows(self, dst: np.ndarray, src: np.ndarray) -> None:
        """Make rows ``dst`` exact copies of rows ``src`` (duplicate injection)."""

    @classmethod
    @abstractmethod
    def defect_targets(cls) -> dict[str, list[DefectTarget]]:
        """For each defect type, the fields it may hit."""
