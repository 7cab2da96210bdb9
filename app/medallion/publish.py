"""The tables users read: Parquet files under ``<out>/silver`` and ``<out>/gold``, published from the
pipeline's state after each micro-batch.

- ``silver/events/part-<batch_id>.parquet``, ``silver/companies/part-<batch_id>.parquet``: the silver
  rows a bronze batch added (none: no file);
- ``silver/quarantine/part-<stream>-<batch_id>.parquet``: its rejected records with their reason;
- ``gold/<table>/part-<YYYY-MM-DD>.parquet``: one UTC day of a gold table, rewritten whole when a
  batch changes it.

Every file is written beside its final name, fsynced and renamed into place: a reader of a folder
sees whole files only. A file is a pure function of the state, so publishing it again (after a
crash between the state's commit and the rename) writes the same rows.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from app.core import bronze
from app.medallion.state import State

QUARANTINE = "quarantine"


class Tables:
    def __init__(self, out: Path):
        self.out = out

    @property
    def silver(self) -> Path:
        return self.out / "silver"

    @property
    def gold(self) -> Path:
        return self.out / "gold"

    def silver_file(self, stream: str, batch_id: str) -> Path:
        return self.silver / stream / f"part-{batch_id}.parquet"

    def quarantine_file(self, stream: str, batch_id: str) -> Path:
        return self.silver / QUARANTINE / f"part-{stream}-{batch_id}.parquet"

    def gold_file(self, table: str, day: Any) -> Path:
        return self.gold / table / f"part-{day.isoformat()}.parquet"


def publish_pending(state: State, tables: Tables) -> tuple[list[tuple[str, str]], list[tuple[str, Any]]]:
    """Every silver batch and gold day the state holds but has not published yet; returns them."""
    silver, gold = state.unpublished_silver(), state.unpublished_gold()
    for stream, batch_id in silver:
        _publish(tables.silver_file(stream, batch_id), partial(state.copy_silver, stream, batch_id))
        _publish(tables.quarantine_file(stream, batch_id), partial(state.copy_quarantine, stream, batch_id))
    silver_ms = int(time.time() * 1000)
    for table, day in gold:
        _publish(tables.gold_file(table, day), partial(state.copy_gold, table, day))
    gold_ms = int(time.time() * 1000)
    if silver or gold:
        state.mark_published(silver, gold, silver_ms, gold_ms)
    return silver, gold


_TMP_PREFIX, _TMP_SUFFIX = ".part-", ".tmp"  # a file being published: .part-<name>.parquet.<8 hex>.tmp


def remove_leftovers(tables: Tables) -> list[Path]:
    """Delete the half-written files a pipeline killed while publishing left beside the tables (only
    their own ``.part-*.tmp`` names); the caller holds the pipeline's lock, so none is being written.
    Returns what was removed."""
    removed = []
    for root in (tables.silver, tables.gold):
        for leftover in root.glob(f"*/{_TMP_PREFIX}*{_TMP_SUFFIX}") if root.is_dir() else ():
            leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed


def _publish(path: Path, write: Callable[[Path], bool]) -> None:
    """What ``write`` puts in a file beside ``path``, fsynced and renamed into place; no file at all
    when it wrote no row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{_TMP_SUFFIX}")  # path.name is part-…
    if not write(tmp):
        tmp.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        return
    bronze.fsync(tmp)
    os.replace(tmp, path)
