"""Record files as Parquet (``output.format: parquet``): the JSON Lines records, typed, one file per batch.

The columns are the shipped schema's, in its order, with one exception: timestamps stay the text the
writer produced (``2026-11-25T20:00:00.000Z``), because a malformed-timestamp defect writes values no
timestamp type can hold (``25-11-2026 20:00:00``, ``2026-13-32T…``). A removed field and a JSON null
are both a Parquet null; ``_issues.ndjson`` still says which was injected (``line`` = the row, from 1).
Everything else keeps its type: an out-of-range latitude or a negative drivers_count is a valid double
or integer, an out-of-domain enum a string.

The bytes are a pure function of the records and of pyarrow's writer version (which Parquet records as
``created_by``): row groups of ``ROW_GROUP_ROWS`` rows, zstd, statistics on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from app.core.schema import arrow_schema

if TYPE_CHECKING:  # imported where used: a JSON Lines run never loads pyarrow (~40 MB)
    import pyarrow as pa

ROW_GROUP_ROWS = 131_072
COMPRESSION = "zstd"


def bronze_schema(stream: str) -> pa.Schema:
    """The Parquet record file's schema: the shipped one, timestamps as text (see the module's note)."""
    import pyarrow as pa

    return arrow_schema(stream, pa.string())


class _Collected:
    """A write-only file the Parquet writer fills; what it wrote is taken out piece by piece."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def parquet_chunks(stream: str, lines: Iterable[bytes | memoryview]) -> Iterator[bytes]:
    """The Parquet file of the JSON Lines ``lines`` (each chunk whole lines), as consecutive byte chunks:
    one row group at a time, so a large batch is never held whole."""
    import pyarrow as pa
    import pyarrow.json as pa_json
    import pyarrow.parquet as pq

    schema = bronze_schema(stream)
    parse = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
    read = pa_json.ReadOptions(use_threads=True)  # the parse dominates; its result does not depend on threads
    out = _Collected()
    writer = pq.ParquetWriter(pa.PythonFile(out, mode="w"), schema, compression=COMPRESSION)
    pending: list[pa.Table] = []
    held = 0
    try:
        for chunk in lines:
            if not len(chunk):
                continue
            table = pa_json.read_json(pa.BufferReader(chunk), read_options=read, parse_options=parse)
            pending.append(table.select(schema.names).cast(schema))
            held += table.num_rows
            while held >= ROW_GROUP_ROWS:
                merged = pa.concat_tables(pending).combine_chunks()
                writer.write_table(merged.slice(0, ROW_GROUP_ROWS), row_group_size=ROW_GROUP_ROWS)
                rest = merged.slice(ROW_GROUP_ROWS)
                pending, held = ([rest] if rest.num_rows else []), rest.num_rows
                yield out.take()
        if pending:
            writer.write_table(pa.concat_tables(pending).combine_chunks(), row_group_size=ROW_GROUP_ROWS)
    finally:
        writer.close()
    yield out.take()


def record_chunks(record_format: str, stream: str, lines: Iterable[bytes | memoryview]) -> Iterable[bytes | memoryview]:
    """A batch's record file in ``record_format`` (``output.format``), from its JSON Lines rendering."""
    return parquet_chunks(stream, lines) if record_format == "parquet" else lines
