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
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

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
        _copy(state, tables.silver_file(stream, batch_id), stream, batch_id)
        _replace(tables.quarantine_file(stream, batch_id), state.quarantine_of_batch(stream, batch_id))
    silver_ms = int(time.time() * 1000)
    for table, day in gold:
        _replace(tables.gold_file(table, day), state.gold_of_day(table, day))
    gold_ms = int(time.time() * 1000)
    if silver or gold:
        state.mark_published(silver, gold, silver_ms, gold_ms)
    return silver, gold


def _copy(state: State, path: Path, stream: str, batch_id: str) -> None:
    """A batch's silver rows as ``path`` (atomically), written by DuckDB's own Parquet writer (in
    parallel, without passing the rows through Python), or no file when it added none."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not state.copy_silver(stream, batch_id, tmp):
        tmp.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        return
    _fsync(tmp)
    os.replace(tmp, path)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace(path: Path, table: pa.Table) -> None:
    """``table`` as ``path`` (atomically), or no file at all when it has no rows."""
    if table.num_rows == 0:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    pq.write_table(table, tmp)
    _fsync(tmp)
    os.replace(tmp, path)
