"""`output.layout: hive`: raw/<stream>/date=…/hour=…/batch_id=…/, the same record bytes as the batch
layout, read with partition discovery by Spark, DuckDB and Polars; one layout per data directory."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import duckdb
import polars as pl
import pytest
from pyspark.sql.types import StructType

from app.cli import main
from app.core import bronze as layout_module
from app.core.config import LateArrivalConfig, QualityInjectionConfig, load_config
from app.core.schema import render
from tests.conftest import ROOT, backfill


@pytest.fixture(scope="module")
def hive(tmp_path_factory):
    """The shared production backfill (2 hours, 15 % defects) again, in the hive layout."""
    config = load_config(ROOT / "conf" / "production.yaml")
    config = config.model_copy(update={
        "output": config.output.model_copy(update={"data_dir": str(tmp_path_factory.mktemp("hive") / "data"),
                                                   "layout": "hive"}),
        "quality_injection": QualityInjectionConfig(enabled=True, error_rate=0.15),
        "late_arrival": LateArrivalConfig(probability=0.05, max_delay=timedelta(minutes=30))})  # as bronze's
    return backfill(config, datetime(2026, 11, 25, 6, tzinfo=UTC), datetime(2026, 11, 25, 8, tzinfo=UTC))


def digests(data_dir, layout: str) -> dict[tuple[str, str, str], str]:
    found = {}
    for stream in ("events", "companies"):
        for batch_id, folder in layout_module.Layout(data_dir, partitioning=layout).batch_dirs(stream):
            for name in (f"{stream}.jsonl", "_issues.ndjson", "_late_arrivals.ndjson"):
                if (folder / name).exists():
                    found[(stream, batch_id, name)] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    return found


def test_hive_folders_hold_the_same_bytes_as_the_batch_layout(hive, bronze):
    assert sorted(str(p.relative_to(hive)) for p in hive.glob("raw/events/*/*/*"))[:1] == [
        "raw/events/date=2026-11-25/hour=06/batch_id=20261125T060000Z"]
    assert sorted(p.name for p in (hive / "raw/events/date=2026-11-25/hour=07").iterdir()) == [
        "batch_id=20261125T070000Z", "batch_id=20261125T071500Z", "batch_id=20261125T073000Z",
        "batch_id=20261125T074500Z"]
    ours = digests(hive, "hive")
    assert len(ours) > 16 and ours == digests(bronze["production"], "batch")


@pytest.mark.parametrize("stream", ["events", "companies"])
def test_spark_discovers_the_partitions(spark, hive, stream):
    schema = StructType.fromJson(json.loads((hive / f"manifests/schemas/{stream}.spark.json").read_text()))
    frame = spark.read.schema(schema).json(f"{hive}/raw/{stream}")
    types = dict(frame.dtypes)
    assert (types["date"], types["hour"], types["batch_id"]) == ("date", "int", "string")
    assert frame.count() == expected_rows_hive(hive, stream)
    per_batch = {r["batch_id"]: r["count"] for r in frame.groupBy("batch_id").count().collect()}
    assert per_batch == record_counts(hive, stream)


@pytest.mark.parametrize("stream", ["events", "companies"])
def test_duckdb_reads_the_partitions(hive, stream):
    relation = duckdb.sql(f"SELECT batch_id, date, hour, count(*) AS n FROM read_json("
                          f"'{hive}/raw/{stream}/*/*/*/{stream}.jsonl', format='newline_delimited', "
                          f"columns={render(stream, 'duckdb')}, ignore_errors=true, hive_partitioning=true, "
                          "hive_types={'date': DATE, 'hour': INTEGER, 'batch_id': VARCHAR}) "
                          "GROUP BY ALL")
    rows = relation.fetchall()
    assert {batch: n for batch, _, _, n in rows} == record_counts(hive, stream)
    assert all(str(day) == "2026-11-25" and hour in (5, 6, 7) for _, day, hour, _ in rows)


@pytest.mark.parametrize("stream", ["events", "companies"])
def test_polars_reads_the_partitions_from_the_paths(hive, stream):
    # Polars 2.1 has no hive_partitioning for NDJSON: the partition values come from each row's file path.
    frame = pl.scan_ndjson(f"{hive}/raw/{stream}/*/*/*/{stream}.jsonl", ignore_errors=True,
                           schema=eval(render(stream, "polars"), {"pl": pl}), include_file_paths="path")
    frame = frame.with_columns(pl.col("path").str.extract(r"batch_id=([0-9TZ]+)/").alias("batch_id"))
    counts = frame.group_by("batch_id").len().collect()
    assert dict(zip(counts["batch_id"], counts["len"], strict=True)) == record_counts(hive, stream)


def record_counts(data_dir, stream) -> dict[str, int]:
    layout = layout_module.Layout(data_dir, partitioning="hive")
    return {batch_id: json.loads((folder / "_batch_meta.json").read_text())["record_count"]
            for batch_id, folder in layout.batch_dirs(stream)}


def expected_rows_hive(data_dir, stream) -> int:
    return sum(record_counts(data_dir, stream).values())


def test_a_data_directory_keeps_one_layout_and_clean_removes_either(hive, tmp_path, write_config, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(hive, data)
    batch_layout = write_config({"seed": 42, "number_of_companies": 100}, data_dir=data)
    assert main(["generate", "--config", str(batch_layout), "--stream", "events", "--at", "2026-11-25T08:00:01Z"]) == 2
    err = capsys.readouterr().err
    assert "output.layout: 'batch'" in err and "raw/" in err and "date=2026-11-25" in err
    assert main(["clean", "--config", str(batch_layout), "--yes"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["removed_batches"] == len(record_counts(hive, "events")) + len(record_counts(hive, "companies"))
    assert list((data / "raw/events").iterdir()) == [] and list((data / "raw/companies").iterdir()) == []


def test_expect_reads_the_layout_from_the_dataset_and_gives_the_same_tables(hive, bronze, tmp_path, capsys):
    import pyarrow.parquet as pq

    for name, data in (("hive", hive), ("batch", bronze["production"])):
        assert main(["expect", "--data-dir", str(data), "--out", str(tmp_path / name)]) == 0
    capsys.readouterr()
    for table in ("silver/events", "silver/companies", "gold/deliveries_per_company_day"):
        assert pq.read_table(tmp_path / "hive" / f"{table}.parquet").equals(
            pq.read_table(tmp_path / "batch" / f"{table}.parquet")), table
    assert "## Layout (hive)" in (hive / "manifests/dataset.md").read_text()
