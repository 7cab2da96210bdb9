"""`fleetgen verify`: a user's silver / gold tables against `fleetgen expect`'s, by key.

A user table may be Parquet (a file or a folder of files, e.g. Spark's output), a Delta table (read
with ``deltalake``) or CSV. Its columns are matched by name and cast to the expected types; a
timestamp without a time zone is taken as UTC. Rows are compared by the table's key: missing (expected,
not found), extra (found, not expected; a key found twice counts as extra too) and changed (same key,
a different value in a compared column; doubles within 1e-9).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from app.core.errors import FleetgenError
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


def read_table(path: Path) -> pa.Table:
    try:
        if path.is_dir() and (path / "_delta_log").is_dir():
            try:
                from deltalake import DeltaTable
            except ImportError:
                raise VerifyInputError(f"{path} is a Delta table: install the `deltalake` package to read it") from None
            return DeltaTable(str(path)).to_pyarrow_table()
        if path.suffix == ".csv":
            return pa_csv.read_csv(path)
        return pq.read_table(path)
    except VerifyInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is bad input, said plainly
        raise VerifyInputError(f"cannot read {path} as a Parquet, Delta or CSV table: {exc}") from None


def compare(name: str, expected: pa.Table, actual: pa.Table, key: list[str]) -> TableDiff:
    expected, actual = expected.flatten(), actual.flatten()  # location -> location.lat, location.lon
    required = [c for c in expected.column_names if c not in OPTIONAL_COLUMNS or c in key]
    absent = [c for c in required if c not in actual.column_names]
    if absent:
        raise VerifyInputError(f"{name}: the table has no column {', '.join(absent)} "
                               f"(it has {', '.join(actual.column_names)})")
    columns = [c for c in expected.column_names if c in actual.column_names]
    actual = _cast_like(name, actual.select(columns), expected.select(columns).schema)
    expected = expected.select(columns)
    diff = TableDiff(expected.num_rows, actual.num_rows, compared_columns=columns)
    counts = actual.group_by(key).aggregate([(key[0], "count")])
    repeated = counts.filter(pc.greater(counts[f"{key[0]}_count"], 1))
    diff.extra += int(pc.sum(pc.subtract(repeated[f"{key[0]}_count"], 1)).as_py() or 0)
    missing = expected.select(key).join(actual.select(key), key, join_type="left anti")
    extra = actual.select(key).join(expected.select(key), key, join_type="left anti")
    diff.missing, diff.extra = missing.num_rows, diff.extra + extra.num_rows
    diff.examples["missing"] = missing.slice(0, EXAMPLES).to_pylist()
    diff.examples["extra"] = extra.slice(0, EXAMPLES).to_pylist() + repeated.select(key).slice(0, EXAMPLES).to_pylist()
    values = [c for c in columns if c not in key]
    if not diff.missing and not diff.extra:
        # Same keys on both sides: sorted by key the rows line up, so compare columns directly (no join).
        order = [(k, "ascending") for k in key]
        left, right = expected.sort_by(order), actual.sort_by(order)
        pairs = {column: (left[column], right[column]) for column in values}
    else:
        joined = expected.join(actual.rename_columns([c if c in key else f"{c}\0actual" for c in columns]), key,
                               join_type="inner")
        left = joined
        pairs = {column: (joined[column], joined[f"{column}\0actual"]) for column in values}
    changed_any = pa.array([False] * left.num_rows, pa.bool_())
    changes: list[dict[str, Any]] = []
    for column, (ours, theirs) in pairs.items():
        differs = _differs(ours, theirs)
        changed_any = pc.or_(changed_any, differs)
        if len(changes) < EXAMPLES and pc.any(differs).as_py():
            keys = left.select(key).filter(differs).slice(0, EXAMPLES - len(changes)).to_pylist()
            changes += [{"key": k, "column": column, "expected": e, "actual": a} for k, e, a in zip(
                keys, ours.filter(differs).slice(0, len(keys)).to_pylist(),
                theirs.filter(differs).slice(0, len(keys)).to_pylist(), strict=True)]
    diff.changed = int(pc.sum(pc.cast(changed_any, pa.int64())).as_py() or 0)
    diff.examples["changed"] = changes
    return diff


def _cast_like(name: str, table: pa.Table, schema: pa.Schema) -> pa.Table:
    columns = []
    for target in schema:
        column = table[target.name]
        try:
            if pa.types.is_timestamp(target.type) and pa.types.is_timestamp(column.type) and column.type.tz is None:
                column = pc.cast(column, pa.timestamp(column.type.unit, tz="UTC"))  # naive means UTC
            columns.append(pc.cast(column, target.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise VerifyInputError(f"{name}: column {target.name} ({column.type}) cannot be read as "
                                   f"{target.type}: {exc}") from None
    return pa.table(columns, schema=schema)


def _differs(expected: pa.ChunkedArray, actual: pa.ChunkedArray) -> pa.ChunkedArray:
    both_null = pc.and_(pc.is_null(expected), pc.is_null(actual))
    one_null = pc.xor(pc.is_null(expected), pc.is_null(actual))
    if pa.types.is_floating(expected.type):
        unequal = pc.greater(pc.abs(pc.subtract(expected, actual)), FLOAT_TOLERANCE)
    else:
        unequal = pc.not_equal(expected, actual)
    return pc.and_not(pc.or_(one_null, pc.fill_null(unequal, False)), both_null)


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
            expected = pq.read_table(expected_dir / f"{name}.parquet")
            report["tables"][name] = {"path": str(path),
                                      **compare(name, expected, read_table(path), spec["key"]).as_dict()}
    if not report["tables"]:
        raise VerifyInputError("nothing to compare: give --silver and/or --gold")
    report["equal"] = all(t["equal"] for t in report["tables"].values())
    return report


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, default=str)
