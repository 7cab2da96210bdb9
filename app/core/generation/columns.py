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
    reads_record: bool = True  # whether ``inject`` reads the record's values (False: only the batch's window)


@dataclass(frozen=True)
class Patches:
    """A chunk's defects as its line writer takes them, sorted by (row, field): each either leaves the
    field out (key and value) or replaces its value with a NUL-padded row of ``values``."""

    row: np.ndarray  # int64, from the chunk's first row
    field: np.ndarray  # int64, index into the batch's fields
    absent: np.ndarray  # bool
    values: np.ndarray  # (len, width) uint8; rows of absent patches unused


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

    def compiled_lines(self, start: int, stop: int, patches: Patches) -> memoryview | None:
        """Rows [start, stop) as JSON Lines by a compiled writer, or None where this batch has none (the
        numpy renderers then write them): the same bytes either way."""
        return None

    @abstractmethod
    def copy_rows(self, dst: np.ndarray, src: np.ndarray) -> None:
        """Make rows ``dst`` exact copies of rows ``src`` (duplicate injection)."""

    @classmethod
    @abstractmethod
    def defect_targets(cls) -> dict[str, list[DefectTarget]]:
        """For each defect type, the fields it may hit."""
