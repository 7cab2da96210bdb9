"""The record schema of each stream, written once and rendered for the engines that read bronze.

One definition (field, type, domain) per stream; each renderer turns it into what an engine takes
as a read schema, so DuckDB, Polars, Arrow and Spark read typed columns (timestamps as UTC instants
in milliseconds, ``location`` as a struct of two doubles) without inferring anything.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.core.config import EVENT_TYPES, GEOGRAPHIES

if TYPE_CHECKING:  # pyarrow loads when a Parquet or Arrow form is asked for: ~40 MB a JSON Lines run does without
    import pyarrow as pa

FORMATS = ("json-schema", "spark-ddl", "spark-json", "duckdb", "polars", "arrow")
UUID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # uuid | string | enum | timestamp | boolean | integer | location
    description: str
    values: tuple[str, ...] = ()  # enum domain
    pattern: str | None = None
    minimum: int | None = None
    maximum: int | None = None
    parts: tuple[tuple[str, float, float], ...] = field(default=())  # location: (name, min, max)


LOCATION = (("lat", -90.0, 90.0), ("lon", -180.0, 180.0))
STREAM_FIELDS: dict[str, tuple[Field, ...]] = {
    "companies": (
        Field("company_id", "uuid", "company identifier (UUID derived from the seed)", pattern=UUID_PATTERN),
        Field("company_name", "string", "company name"),
        Field("geography", "enum", "region the company operates in", values=tuple(GEOGRAPHIES)),
        Field("active", "boolean", "whether the company's drivers produce events"),
        Field("drivers_count", "integer", "drivers of the company", minimum=1, maximum=9999),
        Field("onboarded_at", "timestamp", "onboarding instant (UTC, ms)", pattern=TIMESTAMP_PATTERN),
        Field("updated_at", "timestamp",
              "when this record's values took effect, inside the company window: the onboarding, or a change "
              "with companies.churn (UTC, ms)", pattern=TIMESTAMP_PATTERN),
    ),
    "events": (
        Field("event_id", "uuid", "event identifier (UUID derived from the seed)", pattern=UUID_PATTERN),
        Field("company_id", "uuid", "the driver's company (onboarded in a window closed before this one)",
              pattern=UUID_PATTERN),
        Field("driver_id", "string", "DRV-<company tag>-NNNN", pattern=r"^DRV-[0-9a-f]{12}-\d{4}$"),
        Field("truck_id", "string", "TRK-<company tag>-NNNN", pattern=r"^TRK-[0-9a-f]{12}-\d{4}$"),
        Field("event_type", "enum", "what happened", values=tuple(EVENT_TYPES)),
        Field("event_timestamp", "timestamp",
              "when it happened: inside the window, or up to max_delay before it for a late arrival (UTC, ms)",
              pattern=TIMESTAMP_PATTERN),
        Field("location", "location", "where it happened (WGS 84 degrees)", parts=LOCATION),
    ),
}

# Per engine: the type of each scalar kind, and how a struct of doubles (location) is written.
_ENGINE_TYPES: dict[str, tuple[dict[str, str], Callable[[list[str]], str]]] = {
    "spark-ddl": ({"uuid": "STRING", "string": "STRING", "enum": "STRING", "timestamp": "TIMESTAMP",
                   "boolean": "BOOLEAN", "integer": "INT"},
                  lambda names: "STRUCT<" + ", ".join(f"{n}: DOUBLE" for n in names) + ">"),
    "duckdb": ({"uuid": "VARCHAR", "string": "VARCHAR", "enum": "VARCHAR", "timestamp": "TIMESTAMPTZ",
                "boolean": "BOOLEAN", "integer": "INTEGER"},
               lambda names: "STRUCT(" + ", ".join(f"{n} DOUBLE" for n in names) + ")"),
    "polars": ({"uuid": "pl.String", "string": "pl.String", "enum": "pl.String",
                "timestamp": 'pl.Datetime("ms", "UTC")', "boolean": "pl.Boolean", "integer": "pl.Int32"},
               lambda names: "pl.Struct({" + ", ".join(f'"{n}": pl.Float64' for n in names) + "})"),
    "arrow": ({"uuid": "pa.string()", "string": "pa.string()", "enum": "pa.string()",
               "timestamp": 'pa.timestamp("ms", tz="UTC")', "boolean": "pa.bool_()", "integer": "pa.int32()"},
              lambda names: "pa.struct([" + ", ".join(f'("{n}", pa.float64())' for n in names) + "])"),
}
_SPARK_JSON = {"uuid": "string", "string": "string", "enum": "string", "timestamp": "timestamp",
               "boolean": "boolean", "integer": "integer"}


# The files the service writes under <data_dir>/manifests/schemas/, one per stream and format.
FILE_NAMES = {"json-schema": "{stream}.schema.json", "spark-json": "{stream}.spark.json",
              "spark-ddl": "{stream}.spark.ddl", "duckdb": "{stream}.duckdb.txt",
              "polars": "{stream}.polars.txt", "arrow": "{stream}.arrow.txt"}


def schema_files() -> dict[str, str]:
    """Every stream's schema in every format: {file name: text}."""
    return {FILE_NAMES[fmt].format(stream=stream): render(stream, fmt) + "\n"
            for stream in STREAM_FIELDS for fmt in FORMATS}


def render(stream: str, fmt: str) -> str:
    """The stream's record schema in ``fmt`` (one of ``FORMATS``), as text ready to paste."""
    fields = STREAM_FIELDS[stream]
    if fmt == "json-schema":
        return json.dumps(json_schema(stream), indent=2)
    if fmt == "spark-ddl":
        return ", ".join(f"{f.name} {_engine_type(fmt, f)}" for f in fields)
    if fmt == "spark-json":
        return json.dumps({"type": "struct", "fields": [
            {"name": f.name, "type": _spark_json(f), "nullable": True, "metadata": {}} for f in fields]}, indent=2)
    if fmt == "duckdb":
        columns = ", ".join(f"'{f.name}': '{_engine_type(fmt, f)}'" for f in fields)
        return "{" + columns + "}"
    if fmt == "polars":
        return "{" + ", ".join(f'"{f.name}": {_engine_type(fmt, f)}' for f in fields) + "}"
    if fmt == "arrow":
        return "pa.schema([" + ", ".join(f'("{f.name}", {_engine_type(fmt, f)})' for f in fields) + "])"
    raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")


def json_schema(stream: str) -> dict[str, Any]:
    """JSON Schema (2020-12) of a *valid* record: a defective one fails it (see the data dictionary)."""
    properties: dict[str, Any] = {}
    for f in STREAM_FIELDS[stream]:
        if f.kind == "location":
            properties[f.name] = {"type": "object", "description": f.description, "additionalProperties": False,
                                  "required": [name for name, _, _ in f.parts],
                                  "properties": {name: {"type": "number", "minimum": low, "maximum": high}
                                                 for name, low, high in f.parts}}
            continue
        spec: dict[str, Any] = {"description": f.description}
        if f.kind == "enum":
            spec["enum"] = list(f.values)
        elif f.kind == "boolean":
            spec["type"] = "boolean"
        elif f.kind == "integer":
            spec.update(type="integer", minimum=f.minimum, maximum=f.maximum)
        else:
            spec["type"] = "string"
            if f.kind == "timestamp":
                spec["format"] = "date-time"
            if f.pattern:
                spec["pattern"] = f.pattern
        properties[f.name] = spec
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://fleetgen.dev/schemas/{stream}.json", "title": f"fleetgen {stream} record",
            "type": "object", "additionalProperties": False,
            "required": [f.name for f in STREAM_FIELDS[stream]], "properties": properties}


def _engine_type(fmt: str, f: Field) -> str:
    scalars, struct_of_doubles = _ENGINE_TYPES[fmt]
    return struct_of_doubles([name for name, _, _ in f.parts]) if f.kind == "location" else scalars[f.kind]


def _spark_json(f: Field) -> Any:
    if f.kind == "location":
        return {"type": "struct", "fields": [{"name": name, "type": "double", "nullable": True, "metadata": {}}
                                             for name, _, _ in f.parts]}
    return _SPARK_JSON[f.kind]


def arrow_schema(stream: str, timestamp: pa.DataType) -> pa.Schema:
    """The record schema as Arrow types, timestamps as ``timestamp`` (typed, or text in Parquet bronze)."""
    import pyarrow as pa

    scalars = {"uuid": pa.string(), "string": pa.string(), "enum": pa.string(), "boolean": pa.bool_(),
               "integer": pa.int32(), "timestamp": timestamp}
    return pa.schema([pa.field(f.name, pa.struct([(name, pa.float64()) for name, _, _ in f.parts])
                               if f.kind == "location" else scalars[f.kind]) for f in STREAM_FIELDS[stream]])


def record_glob(data_dir: str, stream: str, layout: str, record_format: str = "jsonl") -> str:
    """The glob that takes exactly the record files of ``stream``."""
    depth = "*/*/*" if layout == "hive" else "*"
    return f"{data_dir}/raw/{stream}/{depth}/{stream}.{record_format}"


def read_snippets(data_dir: str, layout: str, record_format: str = "jsonl") -> dict[str, str]:
    """Copy-paste Python that reads both streams of a data directory, typed, per engine (the dashboard's)."""
    if record_format == "parquet":
        return _parquet_snippets(data_dir, layout)
    duck, polars, spark = [], ["import polars as pl", ""], [
        "import json", "from pyspark.sql.types import StructType", "",
        'spark.conf.set("spark.sql.session.timeZone", "UTC")']
    duck += ["import duckdb", ""]
    hive = layout == "hive"
    for stream in STREAM_FIELDS:
        glob = record_glob(data_dir, stream, layout)
        partitions = (", hive_partitioning=true, hive_types={'date': DATE, 'hour': INTEGER, 'batch_id': VARCHAR}"
                      if hive else "")
        sql = (f"SELECT * FROM read_json('{glob.replace(chr(39), chr(39) * 2)}', format='newline_delimited', "
               f"columns={render(stream, 'duckdb')}, ignore_errors=true{partitions})")
        duck.append(f"{stream} = duckdb.sql({sql!r})")
        paths = ', include_file_paths="path"' if hive else ""
        polars.append(f"{stream} = pl.scan_ndjson({glob!r}, ignore_errors=True{paths},\n"
                      f"    schema={render(stream, 'polars')}).collect()")
        source = f"{data_dir}/raw/{stream}" if hive else f"{data_dir}/raw/{stream}/*"
        spark.append(f"{stream} = spark.read.schema(StructType.fromJson(json.load(open(\n"
                     f"    {data_dir + '/manifests/schemas/' + stream + '.spark.json'!r})))).json({source!r})")
    return {"duckdb": "\n".join(duck) + "\n", "polars": "\n".join(polars) + "\n", "spark": "\n".join(spark) + "\n"}


def _parquet_snippets(data_dir: str, layout: str) -> dict[str, str]:
    """Parquet record files carry their schema; timestamps are text (malformed ones stay representable)."""
    hive = layout == "hive"
    duck, polars = ["import duckdb", ""], ["import polars as pl", ""]
    spark = ['spark.conf.set("spark.sql.session.timeZone", "UTC")']
    for stream in STREAM_FIELDS:
        glob = record_glob(data_dir, stream, layout, "parquet")
        stamps = [f.name for f in STREAM_FIELDS[stream] if f.kind == "timestamp"]
        typed = ", ".join(f"TRY_CAST({name} AS TIMESTAMPTZ) AS {name}" for name in stamps)
        partitions = ", hive_partitioning=true" if hive else ""
        sql = f"SELECT * REPLACE ({typed}) FROM read_parquet('{glob.replace(chr(39), chr(39) * 2)}'{partitions})"
        duck.append(f"{stream} = duckdb.sql({sql!r})")
        casts = ", ".join(f'pl.col("{name}").str.strptime(pl.Datetime("ms"), "%Y-%m-%dT%H:%M:%S%.3fZ", strict=False)'
                          '.dt.replace_time_zone("UTC")' for name in stamps)
        polars.append(f"{stream} = pl.scan_parquet({glob!r}).with_columns({casts}).collect()")
        source = f"{data_dir}/raw/{stream}" if hive else f"{data_dir}/raw/{stream}/*"
        spark.append(f"{stream} = spark.read.parquet({source!r})")
    return {"duckdb": "\n".join(duck) + "\n", "polars": "\n".join(polars) + "\n", "spark": "\n".join(spark) + "\n"}
