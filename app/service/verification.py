"""`fleetgen verify`: a user's silver / gold tables against `fleetgen expect`'s, by key.

A user table may be Parquet (a file or a folder of files, e.g. Spark's output), a Delta table (read
with ``deltalake``) or CSV. Its columns are matched by name and cast to the expected types; a
timestamp without a time zone is taken as UTC. Rows are compared by the table's key: missing (expected,
not found), extra (found, not expected; a key found twice counts as extra too) and changed (same key,
a different value in a compared column; doubles within 1e-9).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as fs

from app.core.errors import FleetgenError
from app.service import duck
from app.service.expectations import TABLES

OPTIONAL_COLUMNS = {"batch_id", "window_start"}  # silver bookkeeping: compared only when the user has them
EXAMPLES = 5
FLOAT_TOLERANCE = 1e-9


class VerifyInputError(FleetgenError):
    """A table cannot be found or read, or lacks a column the comparison needs (exit 2)."""


@dataclass
class TableDiff:
    expected_rows: int
    actual_rows: int
    missing: int = 0
    extra: int = 0
    changed: int = 0
    compared_columns: list[str] = field(default_factory=list)
    examples: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def equal(self) -> bool:
        return not (self.missing or self.extra or self.changed)

    def as_dict(self) -> dict[str, Any]:
        return {"equal": self.equal, "expected_rows": self.expected_rows, "actual_rows": self.actual_rows,
                "missing": self.missing, "extra": self.extra, "changed": self.changed,
                "compared_columns": self.compared_columns, "examples": self.examples}


def locate(root: Path, name: str) -> Path | None:
    """Where table ``name`` (e.g. ``events``) lives under ``root``: a folder, ``name.parquet`` or ``name.csv``."""
    for candidate in (root / name, root / f"{name}.parquet", root / f"{name}.csv"):
        if candidate.exists():
            return candidate
    return None


def open_table(path: Path) -> ds.Dataset:
    """A table to scan batch by batch: a Delta table, a CSV file, or a Parquet file or folder of part files
    (files named ``_…`` or ``.…``, such as Spark's ``_SUCCESS`` and checksums, are not part of it)."""
    try:
        if path.is_dir() and (path / "_delta_log").is_dir():
            try:
                from deltalake import DeltaTable
            except ImportError:
                raise VerifyInputError(f"{path} is a Delta table: install the `deltalake` package to read it") from None
            return DeltaTable(str(path)).to_pyarrow_dataset()
        if path.suffix == ".csv":
            return ds.dataset(path, format="csv")
        return ds.dataset(path, format="parquet", partitioning="hive")
    except VerifyInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is bad input, said plainly
        raise VerifyInputError(f"cannot read {path} as a Parquet, Delta or CSV table: {exc}") from None


Source: TypeAlias = "pa.Table | ds.Dataset"  # anything DuckDB scans as Arrow


def compare(name: str, expected: Source, actual: Source, key: list[str],
            only_batches: list[str] | None = None) -> TableDiff:
    """Rows of ``actual`` (only those of ``only_batches`` by their ``batch_id`` when given) against
    ``expected`` by ``key``, in DuckDB (out of core: tables of any size). A Parquet dataset is read by
    DuckDB itself (its own reader streams in parallel); other sources as Arrow."""
    ours, theirs = _flat_columns(expected.schema), _flat_columns(actual.schema)
    required = [c for c in ours if c not in OPTIONAL_COLUMNS or c in key]
    absent = [c for c in required if c not in theirs]
    if absent:
        raise VerifyInputError(f"{name}: the table has no column {', '.join(absent)} (it has {', '.join(theirs)})")
    columns = [c for c in ours if c in theirs]
    with tempfile.TemporaryDirectory(prefix="fleetgen-verify-") as spill, duck.connect(Path(spill)) as connection:
        expected_source = _scan(connection, "expected_source", expected)
        actual_source = _scan(connection, "actual_source", actual)
        types = {c: _duck_type(name, c, ours[c][1]) for c in columns}
        _check_casts(connection, name, actual_source, {c: theirs[c] for c in columns}, types)
        connection.execute("CREATE VIEW e AS SELECT " + ", ".join(
            f"CAST({ours[c][0]} AS {types[c]}) AS {duck.quoted(c)}" for c in columns) + f" FROM {expected_source}")
        kept = ""
        if only_batches is not None:
            if "batch_id" not in theirs:
                raise VerifyInputError(f"{name}: the table has no column batch_id to keep the batches compared by")
            connection.register("kept_batches", pa.table({"batch_id": pa.array(only_batches, pa.string())}))
            kept = f" WHERE {theirs['batch_id'][0]} IN (SELECT batch_id FROM kept_batches)"
        connection.execute("CREATE VIEW a AS SELECT " + ", ".join(
            f"CAST({theirs[c][0]} AS {types[c]}) AS {duck.quoted(c)}" for c in columns)
            + f" FROM {actual_source}{kept}")
        return _differences(connection, types, key)


def _scan(connection: Any, name: str, source: Source) -> str:
    """What a query reads ``source`` from: DuckDB's Parquet reader over a Parquet dataset's files (hive
    partitions as columns), else ``source`` registered as an Arrow object under ``name``."""
    if isinstance(source, ds.FileSystemDataset) and isinstance(source.format, ds.ParquetFileFormat) \
            and source.files and isinstance(source.filesystem, fs.LocalFileSystem):
        files = ", ".join(duck.literal(f) for f in source.files)
        partitioned = source.partitioning is not None and len(source.partitioning.schema) > 0
        return f"read_parquet([{files}], hive_partitioning = {str(partitioned).lower()})"
    connection.register(name, source)
    return name


def _differences(connection: Any, types: dict[str, str], key: list[str]) -> TableDiff:
    """Missing, extra and changed rows in one full outer join of the two sides narrowed to their key, a hash
    of the values compared exactly and the doubles (compared within ``FLOAT_TOLERANCE``); examples are looked
    up only for what differs."""
    columns = list(types)
    keys = ", ".join(duck.quoted(k) for k in key)
    values = [c for c in columns if c not in key]
    exact = [duck.quoted(c) for c in values if types[c] != "DOUBLE"]
    doubles = [c for c in values if types[c] == "DOUBLE"]
    row_hash = f"hash({', '.join(exact)})" if exact else "0"
    narrow = (f"SELECT {keys}, {row_hash} AS row_hash, "
              + "".join(f"{duck.quoted(c)} AS d{i}, " for i, c in enumerate(doubles)) + "true AS present FROM {side}")
    on = " AND ".join(f"e.{duck.quoted(k)} = a.{duck.quoted(k)}" for k in key)
    differs = " OR ".join(["e.row_hash <> a.row_hash",
                           *(_differs(f"e.d{i}", f"a.d{i}", "DOUBLE") for i in range(len(doubles)))])
    counts = connection.sql(f"""
        SELECT count(*) FILTER (WHERE a.present IS NULL), count(*) FILTER (WHERE e.present IS NULL),
               count(*) FILTER (WHERE e.present AND a.present AND ({differs}))
        FROM ({narrow.format(side='e')}) e FULL OUTER JOIN ({narrow.format(side='a')}) a ON {on}""").fetchall()[0]
    missing, extra, changed = (int(v) for v in counts)
    repeats = int(connection.sql(f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM a GROUP BY {keys}) "
                                 "WHERE n > 1").fetchall()[0][0])
    expected_rows, actual_rows = (int(connection.sql(f"SELECT count(*) FROM {side}").fetchall()[0][0])
                                  for side in ("e", "a"))
    diff = TableDiff(expected_rows, actual_rows, missing, extra + repeats, changed, compared_columns=columns)

    def rows(query: str) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = connection.sql(query).to_arrow_table().to_pylist()
        return listed

    diff.examples["missing"] = rows(f"SELECT {keys} FROM e ANTI JOIN a USING ({keys}) ORDER BY ALL "
                                    f"LIMIT {EXAMPLES}") if missing else []
    diff.examples["extra"] = (rows(f"SELECT DISTINCT {keys} FROM a ANTI JOIN e USING ({keys}) ORDER BY ALL "
                                   f"LIMIT {EXAMPLES}") if extra else []) + (
        rows(f"SELECT {keys} FROM a GROUP BY ALL HAVING count(*) > 1 ORDER BY ALL LIMIT {EXAMPLES}") if repeats else [])
    changes: list[dict[str, Any]] = []
    for column in values if changed else []:
        if len(changes) == EXAMPLES:
            break
        condition = _differs(f"e.{duck.quoted(column)}", f"a.{duck.quoted(column)}", types[column])
        found = rows(f"SELECT {', '.join(f'e.{duck.quoted(k)}' for k in key)}, e.{duck.quoted(column)} AS "
                     f"expected_value, a.{duck.quoted(column)} AS actual_value FROM e JOIN a ON {on} "
                     f"WHERE {condition} ORDER BY ALL LIMIT {EXAMPLES - len(changes)}")
        changes += [{"key": {k: row[k] for k in key}, "column": column, "expected": row["expected_value"],
                     "actual": row["actual_value"]} for row in found]
    diff.examples["changed"] = changes
    return diff


def _flat_columns(schema: pa.Schema) -> dict[str, tuple[str, pa.DataType]]:
    """Each column by its flat name (``location`` -> ``location.lat``, ``location.lon``): its DuckDB
    expression and its type."""
    columns: dict[str, tuple[str, pa.DataType]] = {}
    for column in schema:
        if pa.types.is_struct(column.type):
            for child in column.type:
                columns[f"{column.name}.{child.name}"] = (f"{duck.quoted(column.name)}.{duck.quoted(child.name)}",
                                                          child.type)
        else:
            columns[column.name] = (duck.quoted(column.name), column.type)
    return columns


_DUCK_TYPES = {pa.string(): "VARCHAR", pa.large_string(): "VARCHAR", pa.bool_(): "BOOLEAN", pa.int32(): "INTEGER",
               pa.int64(): "BIGINT", pa.float64(): "DOUBLE", pa.date32(): "DATE"}


def _duck_type(name: str, column: str, arrow_type: pa.DataType) -> str:
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMPTZ"
    if arrow_type not in _DUCK_TYPES:
        raise VerifyInputError(f"{name}: expected column {column} has a type verify does not compare ({arrow_type})")
    return _DUCK_TYPES[arrow_type]


def _check_casts(connection: Any, name: str, source: str, columns: dict[str, tuple[str, pa.DataType]],
                 types: dict[str, str]) -> None:
    """Every value of the user's columns reads as the expected type (one scan of the columns that need a
    conversion); else which column does not."""
    converted = {column: (expr, arrow_type) for column, (expr, arrow_type) in columns.items()
                 if not _same_type(arrow_type, types[column])}
    if not converted:
        return
    failing = [f"count(*) FILTER (WHERE {expr} IS NOT NULL AND TRY_CAST({expr} AS {types[column]}) IS NULL)"
               for column, (expr, _) in converted.items()]
    try:
        counts = connection.sql(f"SELECT {', '.join(failing)} FROM {source}").fetchall()[0]
    except (duckdb.Error, pa.ArrowException) as exc:  # a column DuckDB cannot convert at all (a list, a map…)
        raise VerifyInputError(f"{name}: the table cannot be read as the expected types: {exc}") from None
    for (column, (_, arrow_type)), count in zip(converted.items(), counts, strict=True):
        if count:
            raise VerifyInputError(f"{name}: column {column} ({arrow_type}) cannot be read as {types[column]}: "
                                   f"{count} value(s) do not convert")


def _same_type(arrow_type: pa.DataType, duck_type: str) -> bool:
    """Whether a column of ``arrow_type`` is already ``duck_type`` (a cast of it cannot fail)."""
    if pa.types.is_timestamp(arrow_type):
        return duck_type == "TIMESTAMPTZ"
    return _DUCK_TYPES.get(arrow_type) == duck_type


def _differs(ours: str, theirs: str, duck_type: str) -> str:
    """The SQL condition for a value that differs: one side null, or both set and unequal (doubles within
    ``FLOAT_TOLERANCE``)."""
    if duck_type == "DOUBLE":
        return (f"(({ours} IS NULL) <> ({theirs} IS NULL) "
                f"OR coalesce(abs({ours} - {theirs}) > {FLOAT_TOLERANCE}, false))")
    return f"({ours} IS DISTINCT FROM {theirs})"


def verify(expected_dir: Path, silver: Path | None, gold: Path | None) -> dict[str, Any]:
    """Compare every table of the given layers; the report says per table what differs."""
    summary_path = expected_dir / "expectations.json"
    if not summary_path.is_file():
        raise VerifyInputError(f"{summary_path} not found: --expected must be a folder written by `fleetgen expect`")
    report: dict[str, Any] = {"expected": str(expected_dir), "tables": {}}
    for layer, root in (("silver", silver), ("gold", gold)):
        if root is None:
            continue
        if not root.exists():
            raise VerifyInputError(f"--{layer} {root} does not exist")
        for name, spec in TABLES.items():
            if not name.startswith(f"{layer}/"):
                continue
            short = name.split("/", 1)[1]
            path = locate(root, short)
            if path is None:
                raise VerifyInputError(f"--{layer} {root}: no table {short!r} (looked for {short}/, "
                                       f"{short}.parquet, {short}.csv)")
            expected = ds.dataset(expected_dir / f"{name}.parquet", format="parquet")
            try:
                diff = compare(name, expected, open_table(path), spec["key"])
            except (duckdb.Error, pa.ArrowException) as exc:  # a file that turns out unreadable while it is scanned
                raise VerifyInputError(f"cannot read {path} as a Parquet, Delta or CSV table: {exc}") from None
            report["tables"][name] = {"path": str(path), **diff.as_dict()}
    if not report["tables"]:
        raise VerifyInputError("nothing to compare: give --silver and/or --gold")
    report["equal"] = all(t["equal"] for t in report["tables"].values())
    return report


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, default=str)
