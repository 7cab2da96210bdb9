"""The dictionary's silver rules as DuckDB SQL over a set of committed bronze batches.

Built from the shipped record schema (``app.core.schema``), so a field added there is checked here.
Each record line is read as JSON text and classified: ``reason`` is NULL for a valid record, else the
first rule it breaks (presence, type, timestamp shape, enum, window, range), in the dictionary's
order. Timestamps are compared as epoch milliseconds read from text: no engine's lenient parsing
decides what is valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.core.schema import STREAM_FIELDS, TIMESTAMP_PATTERN, Field

ID = {"events": "event_id", "companies": "company_id"}
WINDOW_FIELD = {"events": "event_timestamp", "companies": "updated_at"}  # the one checked against the window
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%gZ"
# A JSON value's type from its first character (json_extract gives each value as minified JSON text):
# cheaper than asking the JSON parser again for every value of every record.
_FIRST_CHARACTERS = {"string": ('"',), "boolean": ("t", "f"), "object": ("{",),
                     "number": ("-", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9")}
_JSON_KIND = {"uuid": "string", "string": "string", "enum": "string", "timestamp": "string", "boolean": "boolean",
              "integer": "number", "location": "object"}


@dataclass(frozen=True)
class BronzeBatch:
    """A committed bronze batch as the pipeline sees it: its record file and its window."""
    stream: str
    batch_id: str
    record_file: Path
    window_start_ms: int
    window_end_ms: int
    accepts_from_ms: int  # earliest valid instant (the window start less max_delay for events)
    published_ms: int  # when the generator made it visible (its meta's published_at)
    sha256: str
    record_count: int


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _paths(stream: str) -> list[tuple[Field, str | None]]:
    """Every value a record is checked on: each field, and each part of a location."""
    paths: list[tuple[Field, str | None]] = []
    for f in STREAM_FIELDS[stream]:
        paths.append((f, None))
        paths.extend((f, part) for part, _, _ in f.parts)
    return paths


def _column(f: Field, part: str | None) -> str:
    return f"{f.name}__{part}" if part else f.name


def reason_sql(stream: str, absent: str = "exact") -> str:
    """CASE expression over the extracted columns (``t_<field>``: the first character of the value's JSON
    text, NULL when the key is absent; ``s_<field>`` its text; ``ms_<field>`` the instant of a
    well-formed timestamp) and the batch's window: the first broken rule."""
    paths = _paths(stream)
    checks: list[str] = []
    # every field present and not null, of its JSON type (a value of the wrong type can be neither cast nor
    # trusted); then the same for the parts of a location, which only an object has
    for level in ([p for p in paths if p[1] is None], [p for p in paths if p[1] is not None]):
        for f, part in level:
            name = _column(f, part)
            checks.append(f"WHEN t_{name} IS NULL THEN {_absent(absent)} "
                          f"WHEN t_{name} = 'n' THEN 'NULL_INJECTED'")
        for f, part in level:
            name = _column(f, part)
            accepted = ", ".join(_quote(t) for t in _FIRST_CHARACTERS["number" if part else _JSON_KIND[f.kind]])
            code = "TIMESTAMP_MALFORMED" if f.kind == "timestamp" else "TYPE_MISMATCH"
            checks.append(f"WHEN t_{name} NOT IN ({accepted}) THEN '{code}'")
    for f in _of_kind(STREAM_FIELDS[stream], "timestamp"):
        checks.append(f"WHEN ms_{f.name} IS NULL THEN 'TIMESTAMP_MALFORMED'")
    for f in _of_kind(STREAM_FIELDS[stream], "enum"):
        domain = ", ".join(_quote(v) for v in f.values)
        checks.append(f"WHEN s_{f.name} NOT IN ({domain}) THEN 'ENUM_OUT_OF_DOMAIN'")
    instant = f"ms_{WINDOW_FIELD[stream]}"
    checks.append(f"WHEN {instant} < accepts_from_ms OR {instant} >= window_end_ms THEN 'TIMESTAMP_OUTSIDE_WINDOW'")
    for f, part in paths:
        if part:
            low, high = next((lo, hi) for p, lo, hi in f.parts if p == part)
            code = "LATITUDE_OUT_OF_RANGE" if part == "lat" else "LONGITUDE_OUT_OF_RANGE"
            checks.append(f"WHEN s_{_column(f, part)}::DOUBLE NOT BETWEEN {low} AND {high} THEN '{code}'")
        elif f.kind == "integer" and f.minimum is not None:
            checks.append(f"WHEN s_{f.name}::HUGEINT NOT BETWEEN {f.minimum} AND {f.maximum} THEN 'NEGATIVE_COUNT'")
    return "CASE " + "\n    ".join(checks) + " END"


def _absent(absent: str) -> str:
    """The reason for a value that is not there. ``exact``: the extraction tells a missing key (NULL) from
    a JSON null ('n'). ``unsure``: the typed read does not, so the line is only marked for a closer look."""
    return "'FIELD_REMOVED'" if absent == "exact" else "'ABSENT_OR_NULL'"


def _of_kind(fields: tuple[Field, ...], kind: str) -> list[Field]:
    return [f for f in fields if f.kind == kind]


def _window_columns(b: BronzeBatch) -> str:
    return (f"{_quote(b.batch_id)} AS batch_id, {b.window_start_ms}::BIGINT AS window_start_ms, "
            f"{b.window_end_ms}::BIGINT AS window_end_ms, {b.accepts_from_ms}::BIGINT AS accepts_from_ms")


def classified_sql(stream: str, batches: list[BronzeBatch], only: str | None = None) -> str:
    """SQL, exact: every line of ``batches`` (one stream) with batch_id, line, record_id, record (the
    line's JSON), reason, the window columns and the extracted ``s_`` / ``ms_`` columns ``typed_columns``
    uses. Each file is scanned on its own so ``line`` is its 1-based line; each record is parsed once.
    ``only``: a relation of (batch_id, line) to keep, applied before anything is extracted."""
    scans = " UNION ALL ".join(
        f"SELECT *, {_window_columns(b)} FROM (SELECT row_number() OVER () AS line, json AS record "
        f"FROM read_ndjson_objects({_quote(str(b.record_file))}))"
        for b in batches)
    if only is not None:
        scans = f"SELECT * FROM ({scans}) WHERE (batch_id, line) IN (SELECT (batch_id, line) FROM {only})"
    paths = _paths(stream)
    listed = ", ".join(_quote(f"$.{f.name}.{part}" if part else f"$.{f.name}") for f, part in paths)
    extracted = ", ".join(f"(v[{i}]::VARCHAR)[1] AS t_{_column(f, part)}, {_text(f'v[{i}]')} AS s_{_column(f, part)}"
                          for i, (f, part) in enumerate(paths, start=1))
    pattern = TIMESTAMP_PATTERN.strip("^$")
    instants = ", ".join(
        f"CASE WHEN regexp_full_match(s_{f.name}, '{pattern}') "
        f"THEN epoch_ms(try_strptime(s_{f.name}, '{TIMESTAMP_FORMAT}')) END AS ms_{f.name}"
        for f in _of_kind(STREAM_FIELDS[stream], "timestamp"))
    return f"""
        SELECT *, s_{ID[stream]} AS record_id, {reason_sql(stream)} AS reason FROM (
            SELECT *, {instants} FROM (
                SELECT * EXCLUDE (v), {extracted} FROM (
                    SELECT *, json_extract(record, [{listed}]) AS v FROM ({scans}))))"""


def typed_read_sql(stream: str, batches: list[BronzeBatch]) -> str:
    """SQL, fast: every line of ``batches`` read by DuckDB's JSON reader into one JSON-text column per
    field (a vectorised parse, several times cheaper than extracting from each line's JSON), with
    batch_id, ``reason`` and the ``s_`` / ``ms_`` columns ``typed_columns`` uses, in file order (no line
    number: numbering rows here would serialise the scan; the caller numbers the flagged rows from
    the order they were stored in). A value that is
    not there is missing or null, which this read cannot tell apart: such a line (like any line breaking a
    rule) gets a reason and is classified again exactly from its raw text (``classified_sql`` with
    ``only``). A file this reader refuses raises, and the caller classifies exactly."""
    fields = STREAM_FIELDS[stream]
    columns = "{" + ", ".join(f"{_quote(f.name)}: 'JSON'" for f in fields) + "}"
    scans = " UNION ALL ".join(
        f"SELECT *, {_window_columns(b)} FROM read_json("
        f"{_quote(str(b.record_file))}, format = 'newline_delimited', columns = {columns})"
        for b in batches)
    extracted = []
    for f in fields:
        extracted.append(f"({f.name}::VARCHAR)[1] AS t_{f.name}, {_text(f.name)} AS s_{f.name}")
        for part, _, _ in f.parts:
            value = f"CASE WHEN ({f.name}::VARCHAR)[1] = '{{' THEN json_extract({f.name}, '$.{part}') END"
            extracted.append(f"({value}::VARCHAR)[1] AS t_{f.name}__{part}, {_text(value)} AS s_{f.name}__{part}")
    pattern = TIMESTAMP_PATTERN.strip("^$")
    instants = ", ".join(
        f"CASE WHEN regexp_full_match(s_{f.name}, '{pattern}') "
        f"THEN epoch_ms(try_strptime(s_{f.name}, '{TIMESTAMP_FORMAT}')) END AS ms_{f.name}"
        for f in _of_kind(fields, "timestamp"))
    return f"""
        SELECT *, {reason_sql(stream, absent="unsure")} AS reason FROM (
            SELECT *, {instants} FROM (
                SELECT batch_id, window_start_ms, window_end_ms, accepts_from_ms, {", ".join(extracted)}
                FROM ({scans})))"""


def _text(value: str) -> str:
    """SQL: the text of a JSON value: a string unquoted (unescaped by the parser only when it has an
    escape), null as NULL, anything else as written."""
    raw = f"({value}::VARCHAR)"
    return (f"CASE WHEN {raw}[1] = '\"' THEN CASE WHEN contains({raw}, '\\') THEN {value} ->> '$' "
            f"ELSE {raw}[2:-2] END WHEN {raw} = 'null' THEN NULL ELSE {raw} END")


def typed_columns(stream: str) -> str:
    """SQL select list over ``classified_sql``'s rows: a valid record's silver columns (the shipped
    schema's types), then batch_id and, for events, the start of the window the event happened in.
    Casts are TRY_CASTs: a rejected row's values may not cast, and only valid rows reach silver."""
    parts = []
    for f in STREAM_FIELDS[stream]:
        if f.kind == "timestamp":
            parts.append(f"make_timestamptz(ms_{f.name} * 1000) AS {f.name}")
        elif f.kind == "location":
            inner = ", ".join(f"{p}: TRY_CAST(s_{_column(f, p)} AS DOUBLE)" for p, _, _ in f.parts)
            parts.append(f"{{{inner}}} AS {f.name}")
        elif f.kind == "boolean":
            parts.append(f"TRY_CAST(s_{f.name} AS BOOLEAN) AS {f.name}")
        elif f.kind == "integer":
            parts.append(f"TRY_CAST(s_{f.name} AS INTEGER) AS {f.name}")
        else:
            parts.append(f"s_{f.name} AS {f.name}")
    parts.append("batch_id")
    if stream == "events":  # the window the event happened in: earlier than its batch's for a late arrival
        instant, width = f"ms_{WINDOW_FIELD[stream]}", "(window_end_ms - window_start_ms)"
        parts.append(f"make_timestamptz({instant} // {width} * {width} * 1000) AS window_start")
    return ", ".join(parts)
