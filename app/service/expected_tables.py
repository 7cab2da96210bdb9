"""The expected tables made from the true silver records, out of core: the records of every window are
spilled to a Parquet file as they are regenerated, then DuckDB sorts silver and builds gold from them
under a memory limit (spilling to disk beyond it), so `fleetgen expect` holds a bounded amount of memory
whatever the range's size. The results keep the types the tables have always had (timestamps in ms, UTC).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from app.core.schema import arrow_schema
from app.service import duck

INSTANT = pa.timestamp("ms", tz="UTC")
SPILL_ROWS = 131_072  # rows gathered before a row group goes to the spill file
READ_ROWS = 131_072  # rows per Arrow batch read back from DuckDB


def silver_schema(stream: str) -> pa.Schema:
    """A silver table's columns: the shipped record schema, ``batch_id`` and, for events, ``window_start``."""
    schema = arrow_schema(stream, INSTANT).append(pa.field("batch_id", pa.string()))
    return schema.append(pa.field("window_start", INSTANT)) if stream == "events" else schema


GOLD_SCHEMAS = {
    "gold/events_per_company_window_type": pa.schema([
        ("company_id", pa.string()), ("window_start", INSTANT), ("event_type", pa.string()), ("events", pa.int64())]),
    "gold/deliveries_per_company_day": pa.schema([
        ("company_id", pa.string()), ("day", pa.date32()), ("deliveries", pa.int64())]),
    "gold/driver_day": pa.schema([
        ("company_id", pa.string()), ("driver_id", pa.string()), ("day", pa.date32()), ("trips", pa.int64()),
        ("driving_ms", pa.int64()), ("driving_minutes", pa.float64()), ("stops", pa.int64()),
        ("deliveries", pa.int64())]),
}

# The UTC day of an event, from its instant (no time zone database needed).
_DAY = "(DATE '1970-01-01' + CAST(epoch_ms(event_timestamp) // 86400000 AS INTEGER))"
_QUERIES = {
    "silver/events": "SELECT * FROM events ORDER BY event_id",
    "silver/companies": "SELECT * FROM companies ORDER BY company_id, updated_at",
    "gold/events_per_company_window_type": """
        SELECT company_id, window_start, event_type, count(*) AS events
        FROM events GROUP BY company_id, window_start, event_type
        ORDER BY company_id, window_start, event_type""",
    "gold/deliveries_per_company_day": f"""
        SELECT company_id, {_DAY} AS day, count(*) AS deliveries
        FROM events WHERE event_type = 'delivered' GROUP BY company_id, day ORDER BY company_id, day""",
    # A trip: a stopped_driving right after a start_driving in the driver's valid events ordered by time, then
    # event_id; its duration counts on the stop's day.
    "gold/driver_day": f"""
        WITH ordered AS (
            SELECT company_id, driver_id, event_type, {_DAY} AS day, epoch_ms(event_timestamp) AS ms,
                   lag(event_type) OVER driver AS previous_type,
                   lag(epoch_ms(event_timestamp)) OVER driver AS previous_ms
            FROM events WINDOW driver AS (PARTITION BY driver_id ORDER BY event_timestamp, event_id)),
        marked AS (
            SELECT company_id, driver_id, day, event_type,
                   (event_type = 'stopped_driving' AND coalesce(previous_type = 'start_driving', false)) AS trip,
                   ms - previous_ms AS leg_ms
            FROM ordered)
        SELECT company_id, driver_id, day,
               CAST(count(*) FILTER (WHERE trip) AS BIGINT) AS trips,
               CAST(coalesce(sum(leg_ms) FILTER (WHERE trip), 0) AS BIGINT) AS driving_ms,
               CAST(coalesce(sum(leg_ms) FILTER (WHERE trip), 0) AS DOUBLE) / 60000.0 AS driving_minutes,
               CAST(count(*) FILTER (WHERE event_type = 'stopped_driving') AS BIGINT) AS stops,
               CAST(count(*) FILTER (WHERE event_type = 'delivered') AS BIGINT) AS deliveries
        FROM marked GROUP BY company_id, driver_id, day ORDER BY company_id, driver_id, day""",
}


class Spill:
    """The true silver records of one stream, appended window by window to a Parquet file in row groups
    of about ``SPILL_ROWS`` rows; ``close()`` before reading it."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.path = path
        self._writer = pq.ParquetWriter(path, schema, compression="lz4")
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def add(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._pending_rows += table.num_rows
        if self._pending_rows >= SPILL_ROWS:
            self._flush()

    def close(self) -> None:
        self._flush()
        self._writer.close()

    def _flush(self) -> None:
        if self._pending_rows:
            self._writer.write_table(pa.concat_tables(self._pending), row_group_size=self._pending_rows)
        self._pending, self._pending_rows = [], 0


def write_tables(spills: dict[str, Path], out: Path, work: Path) -> dict[str, int]:
    """Every table of ``_QUERIES`` from the spilled silver records (``spills``: stream -> file) as
    ``<out>/<name>.parquet`` (written aside, then renamed); returns the rows of each."""
    connection = duck.connect(work / "duckdb")
    rows: dict[str, int] = {}
    try:
        for stream, path in spills.items():
            connection.execute(f"CREATE VIEW {stream} AS SELECT * FROM read_parquet({duck.literal(str(path))})")
        for name, query in _QUERIES.items():
            layer, table = name.split("/", 1)
            schema = silver_schema(table) if layer == "silver" else GOLD_SCHEMAS[name]
            rows[name] = _write(connection.sql(query).to_arrow_reader(READ_ROWS), schema,
                                out / f"{name}.parquet")
    finally:
        connection.close()
    return rows


def _write(reader: pa.RecordBatchReader, schema: pa.Schema, path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    rows = 0
    with pq.ParquetWriter(tmp, schema) as writer:
        for batch in reader:
            writer.write_batch(batch.cast(schema))
            rows += batch.num_rows
    tmp.replace(path)
    return rows
