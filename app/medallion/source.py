"""Which committed bronze batches exist: the pipeline's input, read like any consumer reads bronze.

A batch is committed when its folder (renamed into ``raw/`` whole) holds ``_SUCCESS``; its window and
checksums come from its ``_batch_meta.json``. Both layouts (``batch`` and ``hive``) are found.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from app.core import bronze
from app.core.timeline import parse_timestamp
from app.medallion.rules import BronzeBatch


def _ms(text: str) -> int:
    return round(parse_timestamp(text).timestamp() * 1000)


def read_batch(layout: bronze.Layout, stream: str, batch_id: str, folder: Path) -> BronzeBatch | None:
    """The batch in ``folder`` if it is committed (``_SUCCESS`` present), else None."""
    if not (folder / bronze.SUCCESS_FILE).exists():
        return None
    meta = orjson.loads((folder / bronze.META_FILE).read_bytes())
    record_file = layout.record_file(stream)
    start, end = _ms(meta["interval_start"]), _ms(meta["interval_end"])
    return BronzeBatch(stream=stream, batch_id=batch_id, record_file=folder / record_file, window_start_ms=start,
                       window_end_ms=end, accepts_from_ms=_ms(meta.get("accepts_from") or meta["interval_start"]),
                       published_ms=_ms(meta["published_at"]), sha256=meta["files"][record_file]["sha256"],
                       record_count=int(meta["record_count"]))


def pending(layout: bronze.Layout, processed: dict[tuple[str, str], str]) -> list[BronzeBatch]:
    """Committed batches of both streams not in ``processed``, companies first, each in batch_id order."""
    found: list[BronzeBatch] = []
    for stream in bronze.STREAMS:
        for batch_id, folder in layout.batch_dirs(stream):
            if (stream, batch_id) in processed:
                continue
            batch = read_batch(layout, stream, batch_id, folder)
            if batch is not None:
                found.append(batch)
    return found
