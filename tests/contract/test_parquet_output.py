"""`output.format: parquet`: one Parquet record file per batch, read by DuckDB, Polars and Spark with the
shipped schema's columns, row counts equal to the ledger, the same truth as JSON Lines, reproducible."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import duckdb
import orjson
import polars as pl
import pyarrow.parquet as pq
import pytest

from app.core import bronze as bronze_files
from app.core.config import LateArrivalConfig, QualityInjectionConfig, load_config
from app.core.generation.parquet import bronze_schema
from app.core.schema import STREAM_FIELDS, read_snippets
from app.service.expectations import derive
from app.store import Store
from tests.conftest import ROOT, backfill

START, END = datetime(2026, 11, 25, 6, tzinfo=UTC), datetime(2026, 11, 25, 8, tzinfo=UTC)


def _config(folder, record_format: str, layout: str = "batch"):
    preset = load_config(ROOT / "conf" / "production.yaml")
    output = preset.output.model_copy(update={"data_dir": str(folder), "format": record_format, "layout": layout})
    return preset.model_copy(update={
        "output": output, "quality_injection": QualityInjectionConfig(enabled=True, error_rate=0.15),
        "late_arrival": LateArrivalConfig(probability=0.05, max_delay=timedelta(minutes=30))})


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("parquet")
    configs = {name: _config(root / name, fmt) for name, fmt in
               (("parquet", "parquet"), ("again", "parquet"), ("jsonl", "jsonl"))}
    configs["hive"] = _config(root / "hive", "parquet", "hive")
    for config in configs.values():
        backfill(config, START, END)
    return configs


def _ledger(config) -> dict[str, dict[str, int]]:
    store = Store(config.database_url)
    try:
        return {stream: {row.batch_id: row.record_count for row in store.all_batches(stream)
                         if row.status == "committed"} for stream in ("companies", "events")}
    finally:
        store.close()


@pytest.mark.parametrize("stream", ["events", "companies"])
def test_one_parquet_file_per_batch_with_the_shipped_columns_and_the_ledger_counts(made, stream):
    config = made["parquet"]
    layout = bronze_files.layout_of(config)
    ledger = _ledger(config)[stream]
    assert ledger and sum(ledger.values()) > 0
    for batch_id, count in ledger.items():
        folder = layout.batch_dir(stream, batch_id)
        assert sorted(p.name for p in folder.iterdir() if not p.name.startswith("_")) == [f"{stream}.parquet"]
        assert bronze_files.verify_batch(folder) == []
        meta = orjson.loads((folder / "_batch_meta.json").read_bytes())
        assert meta["files"][f"{stream}.parquet"]["rows"] == count == pq.read_metadata(folder / f"{stream}.parquet"
                                                                                         ).num_rows
        assert pq.read_schema(folder / f"{stream}.parquet").remove_metadata() == bronze_schema(stream)
    # the same records as the JSON Lines writer made from the same config: every value, in order
    jsonl = made["jsonl"].output.local_dir
    batch_id = max(ledger, key=ledger.get)
    table = pq.read_table(layout.batch_dir(stream, batch_id) / f"{stream}.parquet")
    lines = [orjson.loads(line) for line in (jsonl / "raw" / stream / batch_id / f"{stream}.jsonl").read_bytes()
             .splitlines()]
    assert table.to_pylist() == [{f.name: line.get(f.name) for f in STREAM_FIELDS[stream]} for line in lines]


def test_parquet_bytes_are_reproducible_and_expect_gives_the_jsonl_truth(made):
    first, again = (made[name].output.local_dir for name in ("parquet", "again"))
    files = sorted((first / "raw").rglob("*.parquet"))
    assert files
    for path in files:
        assert (again / path.relative_to(first)).read_bytes() == path.read_bytes(), path
    tables = {}
    for name in ("parquet", "jsonl"):
        store = Store(made[name].database_url)
        try:  # expect regenerates each batch and checks it against the sha256 of its Parquet file
            tables[name] = derive(made[name], store).tables
        finally:
            store.close()
    assert tables["parquet"].keys() == tables["jsonl"].keys()
    for name, table in tables["parquet"].items():
        assert table.equals(tables["jsonl"][name]), name


@pytest.mark.parametrize("layout", ["parquet", "hive"])
def test_duckdb_and_polars_read_it_with_the_dashboards_snippets(made, layout):
    config = made[layout]
    data = str(config.output.local_dir)
    ledger = _ledger(config)
    snippets = read_snippets(data, config.output.layout, "parquet")
    for engine in ("duckdb", "polars"):
        scope: dict = {}
        exec(snippets[engine], scope)  # noqa: S102 - the snippet the dashboard shows, run as a user would
        for stream in ("events", "companies"):
            frame = scope[stream]
            frame = frame.pl() if engine == "duckdb" else frame
            assert frame.height == sum(ledger[stream].values()), (engine, stream)
            stamp = "event_timestamp" if stream == "events" else "onboarded_at"
            dtype = frame.schema[stamp]
            assert isinstance(dtype, pl.Datetime) and dtype.time_zone in ("UTC", "Etc/UTC"), (engine, dtype)
            # malformed timestamps are null once cast; every well-formed one is kept
            raw = duckdb.sql(f"SELECT count({stamp}) FROM read_parquet('{data}/raw/{stream}/**/*.parquet')").fetchall()
            assert 0 < frame[stamp].count() < raw[0][0] <= frame.height


@pytest.mark.slow
def test_spark_reads_it_with_the_shipped_columns(made, spark):
    config = made["parquet"]
    data = config.output.local_dir
    ledger = _ledger(config)
    for stream in ("events", "companies"):
        frame = spark.read.parquet(f"{data}/raw/{stream}/*")
        assert frame.count() == sum(ledger[stream].values())
        assert frame.columns == [f.name for f in STREAM_FIELDS[stream]]
        if stream == "events":
            types = dict(frame.dtypes)
            assert types["location"] == "struct<lat:double,lon:double>" and types["event_timestamp"] == "string"
            typed = frame.selectExpr("count(try_to_timestamp(event_timestamp))").collect()[0][0]
            assert 0 < typed < frame.count()
    hive = made["hive"].output.local_dir
    partitioned = spark.read.parquet(f"{hive}/raw/events")
    assert {"date", "hour", "batch_id"} <= set(partitioned.columns)
    assert partitioned.count() == sum(_ledger(made["hive"])["events"].values())
    assert json.loads((data / "manifests" / "batch_manifest.json").read_text())["streams"]["events"]["records"] == \
        sum(ledger["events"].values())
