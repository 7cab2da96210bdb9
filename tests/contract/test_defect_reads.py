"""What DuckDB, Polars and Spark make of each defect with the shipped schemas, checked against the table
in docs/data-dictionary.md (parsed here, so the dictionary cannot drift from the engines), and the
dictionary's silver rules, written as an independent DuckDB query, against the issue log."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import duckdb
import polars as pl
import pytest
from pyspark.sql.types import StringType, StructField, StructType

from app.core.schema import render
from tests.conftest import ROOT
from tests.silver_reference import quarantine, silver_ids

DICTIONARY = ROOT / "docs" / "data-dictionary.md"
ID = {"events": "event_id", "companies": "company_id"}
SHAPES = {"slash_date": r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}$", "day_first": r"^\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2}$",
          "epoch_ms_text": r"^\d+$", "no_zone": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}$",
          "impossible_date": r"^\d{4}-13-32T"}
WORDS = {"as written": "value", "parsed": "value", "null": "null", "error": "error",
         "null + _corrupt_record": "corrupt", "row dropped": "dropped"}


def documented() -> dict[str, dict[str, str]]:
    """The dictionary's engine table: {defect class: {engine column: word}}."""
    lines = DICTIONARY.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| Defect | DuckDB |"))
    header = [cell.strip() for cell in lines[start].strip().strip("|").split("|")]
    table = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        table[cells[0].strip("`")] = dict(zip(header[1:], cells[1:], strict=True))
    return table


def defect_class(issue: dict) -> str:
    if issue["defect_type"] != "malformed_timestamp":
        return issue["defect_type"]
    return "malformed_timestamp:" + next(name for name, shape in SHAPES.items()
                                         if re.match(shape, issue["injected_value"]))


@pytest.fixture(scope="module")
def samples(bronze, tmp_path_factory):
    """One file per (stream, defect class) of real defective lines, with the field each line breaks."""
    folder = tmp_path_factory.mktemp("defects")
    lines: dict[tuple[str, str], list[str]] = defaultdict(list)
    fields: dict[tuple[str, str], dict[str, str | None]] = defaultdict(dict)
    for dataset in ("defects", "production"):
        for stream in ("events", "companies"):
            for batch in sorted((bronze[dataset] / "raw" / stream).iterdir()):
                log = batch / "_issues.ndjson"
                if not log.exists():
                    continue
                records = (batch / f"{stream}.jsonl").read_text().splitlines()
                for issue in map(json.loads, log.read_text().splitlines()):
                    key = (stream, defect_class(issue))
                    if len(lines[key]) < 40:
                        lines[key].append(records[issue["line"] - 1])
                        fields[key][issue["record_id"]] = issue["field"]
    made = {}
    for (stream, name), content in lines.items():
        path = folder / f"{stream}-{name.replace(':', '-')}.jsonl"
        path.write_text("\n".join(content) + "\n")
        made[(stream, name)] = (path, len(content), fields[(stream, name)])
    return made


def outcome(rows: list[dict], expected_rows: int, stream: str, fields: dict[str, str | None]) -> str:
    """One word for what an engine returned for a file of one defect class."""
    if len(rows) < expected_rows:
        assert rows == [], "a mode drops either every defective row of a class or none"
        return "dropped"
    seen = set()
    for row in rows:
        if row.get("_corrupt_record") is not None:
            seen.add("corrupt")
            continue
        field = fields[row[ID[stream]]]
        seen.add("null" if field is not None and row[field] is None else "value")
    assert len(seen) == 1, seen
    return seen.pop()


def read_duckdb(path: Path, stream: str, lenient: bool) -> list[dict] | None:
    options = ", ignore_errors=true" if lenient else ""
    try:
        relation = duckdb.sql(f"SELECT * FROM read_json('{path}', columns={render(stream, 'duckdb')}, "
                              f"format='newline_delimited'{options})")
        return [dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()]
    except duckdb.Error:
        return None


def read_polars(path: Path, stream: str, lenient: bool) -> list[dict] | None:
    try:
        return pl.read_ndjson(path, schema=eval(render(stream, "polars"), {"pl": pl}),
                              ignore_errors=lenient).to_dicts()
    except pl.exceptions.PolarsError:
        return None


def read_spark(spark, path: Path, stream: str, mode: str) -> list[dict] | None:
    schema = StructType.fromJson(json.loads(render(stream, "spark-json")))
    if mode == "PERMISSIVE":
        schema = StructType([*schema.fields, StructField("_corrupt_record", StringType(), True)])
    try:  # collect, not count: a count may skip parsing the columns it does not need
        return [row.asDict() for row in spark.read.schema(schema).option("mode", mode).json(str(path)).collect()]
    except Exception as exc:  # noqa: BLE001 - FAILFAST raises through py4j
        assert "FAILFAST" in str(exc) or "Malformed" in str(exc), exc
        return None


def test_every_engine_reads_each_defect_as_the_dictionary_says(samples, spark):
    table = documented()
    readers = {
        "DuckDB": lambda p, s: read_duckdb(p, s, False),
        "DuckDB ignore_errors": lambda p, s: read_duckdb(p, s, True),
        "Polars": lambda p, s: read_polars(p, s, False),
        "Polars ignore_errors": lambda p, s: read_polars(p, s, True),
        "Spark PERMISSIVE": lambda p, s: read_spark(spark, p, s, "PERMISSIVE"),
        "Spark DROPMALFORMED": lambda p, s: read_spark(spark, p, s, "DROPMALFORMED"),
        "Spark FAILFAST": lambda p, s: read_spark(spark, p, s, "FAILFAST"),
    }
    assert {name for _, name in samples} == set(table), "every documented class is seen in bronze, and only those"
    mismatches = []
    for (stream, name), (path, count, fields) in sorted(samples.items()):
        for engine, read in readers.items():
            rows = read(path, stream)
            measured = "error" if rows is None else outcome(rows, count, stream, fields)
            word = table[name][engine]
            if WORDS[word] != measured:
                mismatches.append(f"{stream} {name} {engine}: dictionary says {word!r}, engine gives {measured}")
            if measured == "value":  # "parsed" only for a malformed timestamp, "as written" otherwise
                assert (word == "parsed") == name.startswith("malformed_timestamp"), (name, engine, word)
    assert not mismatches, "\n".join(mismatches)


@pytest.mark.parametrize("dataset", ["defects", "production", "clean"])
@pytest.mark.parametrize("stream", ["events", "companies"])
def test_the_silver_rules_quarantine_exactly_the_logged_defects(bronze, dataset, stream):
    data = bronze[dataset]
    logged, valid = [], 0
    for batch in (data / "raw" / stream).iterdir():
        valid += json.loads((batch / "_batch_meta.json").read_text())["valid_count"]
        log = batch / "_issues.ndjson"
        if log.exists():
            logged += [(batch.name, issue["record_id"], issue["reason_code"])
                       for issue in map(json.loads, log.read_text().splitlines())
                       if issue["defect_type"] != "duplicate"]
    assert quarantine(data, stream) == sorted(logged)
    assert len(silver_ids(data, stream)) == valid
    if dataset != "clean":
        assert logged, "the dataset has defects to find"
