"""`fleetgen schema`: one definition per stream, rendered for the engines that read bronze.

A clean record is valid against the JSON Schema and a defect that breaks a record's shape makes it
invalid; DuckDB and Polars read bronze with the rendered schemas into typed columns (UTC instants,
a struct of two doubles) and exactly ``record_count`` rows.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import duckdb
import jsonschema
import polars as pl
import pytest

from app.cli import main
from app.core.schema import FORMATS, json_schema, render
from tests.contract.conftest import expected_rows

SHAPE_BREAKING = {"missing_field", "null_value", "malformed_timestamp", "invalid_enum"}


def records(data_dir, stream):
    """Every record line with its batch and the defects the issue log says it carries."""
    for batch in sorted((data_dir / "raw" / stream).iterdir()):
        defects: dict[int, set[str]] = {}
        issues = batch / "_issues.ndjson"
        if issues.exists():
            for line in issues.read_text().splitlines():
                issue = json.loads(line)
                defects.setdefault(issue["line"], set()).add(issue["defect_type"])
        for number, line in enumerate((batch / f"{stream}.jsonl").read_text().splitlines(), start=1):
            yield json.loads(line), defects.get(number, set())


@pytest.mark.parametrize("stream", ["events", "companies"])
def test_clean_records_are_valid_and_shape_breaking_defects_are_not(bronze, stream):
    validator = jsonschema.Draft202012Validator(json_schema(stream),
                                                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    seen: dict[str, int] = {}
    for record, defects in records(bronze["defects"], stream):
        valid = validator.is_valid(record)
        for defect in defects or {"clean"}:
            seen[defect] = seen.get(defect, 0) + 1
        if not defects or defects <= {"duplicate"}:
            assert valid, (record, list(validator.iter_errors(record))[:1])
        elif defects & SHAPE_BREAKING:
            assert not valid, (record, defects)
    assert seen["clean"] > 50 and SHAPE_BREAKING <= set(seen), seen


def test_every_format_renders_for_both_streams_and_the_cli_prints_it(capsys):
    for stream in ("events", "companies"):
        for fmt in FORMATS:
            assert render(stream, fmt)
    assert main(["schema", "--stream", "events", "--format", "spark-ddl"]) == 0
    assert capsys.readouterr().out.strip() == (
        "event_id STRING, company_id STRING, driver_id STRING, truck_id STRING, event_type STRING, "
        "event_timestamp TIMESTAMP, location STRUCT<lat: DOUBLE, lon: DOUBLE>")
    assert main(["schema", "--stream", "events", "--format", "spark-json"]) == 0
    spark = json.loads(capsys.readouterr().out)
    assert [f["name"] for f in spark["fields"]][-1] == "location"
    assert spark["fields"][-1]["type"]["fields"][0] == {"name": "lat", "type": "double", "nullable": True,
                                                        "metadata": {}}


@pytest.mark.parametrize("stream, time_column", [("events", "event_timestamp"), ("companies", "onboarded_at")])
def test_duckdb_reads_clean_bronze_typed_with_the_shipped_schema(bronze, stream, time_column):
    data = bronze["clean"]
    columns = render(stream, "duckdb")
    relation = duckdb.sql(f"SELECT * FROM read_json('{data}/raw/{stream}/*/{stream}.jsonl', "
                          f"columns={columns}, format='newline_delimited')")
    types = dict(zip(relation.columns, map(str, relation.types), strict=True))
    assert types[time_column] == "TIMESTAMP WITH TIME ZONE"
    if stream == "events":
        assert types["location"] == "STRUCT(lat DOUBLE, lon DOUBLE)"
    count, first, nulls = duckdb.sql(f"SELECT count(*), min({time_column}), count(*) - count({time_column}) "
                                     "FROM relation").fetchall()[0]
    assert count == expected_rows(data, stream) and nulls == 0
    assert first.tzinfo is not None and first.astimezone(UTC) >= datetime(2026, 11, 25, 19, tzinfo=UTC)


@pytest.mark.parametrize("stream, time_column", [("events", "event_timestamp"), ("companies", "onboarded_at")])
def test_polars_reads_clean_bronze_typed_with_the_shipped_schema(bronze, stream, time_column):
    data = bronze["clean"]
    schema = eval(render(stream, "polars"), {"pl": pl})  # the printed text is what a user pastes
    frame = pl.concat([pl.read_ndjson(path, schema=schema)
                       for path in sorted((data / "raw" / stream).glob(f"*/{stream}.jsonl"))])
    assert frame.schema[time_column] == pl.Datetime("ms", "UTC")
    assert frame.height == expected_rows(data, stream)
    assert frame[time_column].null_count() == 0
    if stream == "events":
        assert frame.schema["location"] == pl.Struct({"lat": pl.Float64, "lon": pl.Float64})


def test_duckdb_refuses_a_malformed_timestamp_unless_told_to_null_it(bronze):
    data = bronze["defects"]
    source = (f"read_json('{data}/raw/events/*/events.jsonl', format='newline_delimited', "
              f"columns={render('events', 'duckdb')}")
    with pytest.raises(duckdb.Error, match="timestamp"):
        duckdb.sql(f"SELECT min(event_timestamp) FROM {source})").fetchall()
    count, missing = duckdb.sql(f"SELECT count(*), count(*) - count(event_timestamp) FROM {source}, "
                                "ignore_errors=true)").fetchall()[0]
    assert count == expected_rows(data, "events") and missing > 0  # malformed and removed values are NULL


@pytest.mark.parametrize("dataset", ["defects", "production"])
@pytest.mark.parametrize("glob", ["*/*.jsonl", "**/*.jsonl"])
@pytest.mark.parametrize("stream", ["events", "companies"])
def test_folder_wide_reads_take_the_record_rows_and_nothing_else(bronze, dataset, glob, stream):
    data = bronze[dataset]  # sidecars present: meta, issue log, _SUCCESS
    path = f"{data}/raw/{stream}/{glob}"
    rows = duckdb.sql(f"SELECT count(*) FROM read_ndjson_objects('{path}')").fetchall()[0][0]
    assert rows == expected_rows(data, stream)
    typed = duckdb.sql(f"SELECT count(*) FROM read_json('{path}', columns={render(stream, 'duckdb')}, "
                       "format='newline_delimited', ignore_errors=true)").fetchall()[0][0]
    assert typed == rows
    frame = pl.scan_ndjson(path, schema=eval(render(stream, "polars"), {"pl": pl}), ignore_errors=True)
    assert frame.select(pl.len()).collect().item() == rows


def test_sidecars_of_an_older_layout_are_renamed_at_writer_start(bronze, tmp_path):
    import shutil

    from app.core import bronze as layout_module

    data = tmp_path / "data"
    shutil.copytree(bronze["defects"], data)
    batch = next(p for p in (data / "raw" / "events").iterdir()
                 if (p / "_issues.ndjson").exists() and not (p / "_late_arrivals.ndjson").exists())
    meta = json.loads((batch / "_batch_meta.json").read_text())
    meta["files"]["issues.jsonl"] = meta["files"].pop("_issues.ndjson")  # as the older layout wrote it
    (batch / "batch_meta.json").write_text(json.dumps(meta))
    (batch / "_batch_meta.json").unlink()
    (batch / "_issues.ndjson").rename(batch / "issues.jsonl")
    assert layout_module.migrate_legacy_names(layout_module.Layout(data)) == 2
    assert sorted(p.name for p in batch.iterdir()) == ["_SUCCESS", "_batch_meta.json", "_issues.ndjson",
                                                       "events.jsonl"]
    assert layout_module.verify_batch(batch) == []
    assert layout_module.migrate_legacy_names(layout_module.Layout(data)) == 0  # idempotent


def test_every_writer_leaves_the_schemas_under_the_data_directory(bronze):
    from app.core.schema import FILE_NAMES, schema_files

    folder = bronze["production"] / "manifests" / "schemas"
    written = {p.name: p.read_text() for p in folder.iterdir()}
    assert written == schema_files()
    assert len(written) == 2 * len(FILE_NAMES)
    assert json.loads(written["companies.schema.json"])["properties"]["geography"]["enum"] == ["US", "EU", "SA", "AUS"]
