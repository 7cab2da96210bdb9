"""PySpark (local[2], Java 17) reads bronze with the shipped schema: exactly the record rows of one
stream, typed, by a folder glob, a recursive lookup and a file stream that takes every batch once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pyspark.sql.types import StructType

from app.core.schema import STREAM_FIELDS, render
from tests.contract.conftest import expected_rows

TIME_COLUMN = {"events": "event_timestamp", "companies": "onboarded_at"}


def spark_schema(stream: str, data_dir=None) -> StructType:
    """The schema as `fleetgen schema` prints it, or as the writer left it under the data directory."""
    text = (data_dir / "manifests" / "schemas" / f"{stream}.spark.json").read_text() if data_dir else render(
        stream, "spark-json")
    return StructType.fromJson(json.loads(text))


def batch_windows(data_dir, stream) -> tuple[datetime, datetime]:
    metas = [json.loads((b / "_batch_meta.json").read_text()) for b in (data_dir / "raw" / stream).iterdir()]
    parse = lambda text: datetime.fromisoformat(text.replace("Z", "+00:00"))  # noqa: E731
    return min(parse(m["interval_start"]) for m in metas), max(parse(m["interval_end"]) for m in metas)


@pytest.mark.parametrize("dataset", ["production", "defects", "clean"])
@pytest.mark.parametrize("stream", ["events", "companies"])
def test_spark_reads_the_record_rows_of_one_stream_typed(spark, bronze, dataset, stream):
    data = bronze[dataset]
    expected = expected_rows(data, stream)
    column = TIME_COLUMN[stream]
    by_glob = spark.read.schema(spark_schema(stream, data)).json(f"{data}/raw/{stream}/*")
    recursive = spark.read.schema(spark_schema(stream)).option("recursiveFileLookup", "true").json(
        f"{data}/raw/{stream}")
    first, last = batch_windows(data, stream)
    for frame in (by_glob, recursive):
        assert dict(frame.dtypes)[column] == "timestamp"
        if stream == "events":
            assert dict(frame.dtypes)["location"] == "struct<lat:double,lon:double>"
        total, typed, earliest, latest = frame.selectExpr(
            "count(*)", f"count({column})", f"min({column})", f"max({column})").collect()[0]
        assert total == expected
        # boundary violations sit up to a day outside their window; everything else inside
        assert first - timedelta(days=1) <= earliest.replace(tzinfo=UTC) and latest.replace(tzinfo=UTC) < last + \
            timedelta(days=1)
        if dataset == "clean":
            assert typed == total
    inferred = spark.read.json(f"{data}/raw/{stream}/*")  # without a schema, too: no sidecar is read
    assert inferred.count() == expected
    assert set(inferred.columns) == {f.name for f in STREAM_FIELDS[stream]}


@pytest.mark.parametrize("source", ["glob", "recursive"])
def test_a_spark_file_stream_takes_every_batch_exactly_once(spark, make_config, tmp_path, source):
    from app.service.pipeline import Pipeline
    from app.store import Store

    config = make_config(quality_injection={"enabled": True, "error_rate": 0.15},
                         emulated_mode={"enabled": True, "company_batch_interval": "PT10S",
                                        "driver_batch_interval": "PT10S"})
    data = config.output.local_dir
    store = Store.for_config(config)
    pipeline = Pipeline(config, store)
    pipeline.prepare()  # a writer's start creates raw/<stream>/: a stream can be defined before any batch
    start = datetime(2026, 11, 25, 20, tzinfo=UTC)
    reader = spark.readStream.schema(spark_schema("events"))
    stream = (reader.json(f"{data}/raw/events/*") if source == "glob"
              else reader.option("recursiveFileLookup", "true").json(f"{data}/raw/events"))
    sink, checkpoint = tmp_path / "sink", tmp_path / "checkpoint"

    def run_stream() -> None:
        query = (stream.writeStream.format("parquet").option("path", str(sink))
                 .option("checkpointLocation", str(checkpoint)).trigger(availableNow=True).start())
        query.awaitTermination(120)
        assert query.exception() is None

    try:
        pipeline.backfill(start, start + timedelta(seconds=60))
        run_stream()
        assert spark.read.parquet(str(sink)).count() == expected_rows(data, "events")
        pipeline.backfill(start + timedelta(seconds=60), start + timedelta(seconds=120))  # new batches land
        run_stream()  # the same checkpoint: only what is new
    finally:
        store.close()
    read = spark.read.parquet(str(sink))
    assert read.count() == expected_rows(data, "events") > 0
    lines = sum(len((b / "events.jsonl").read_bytes().splitlines()) for b in (data / "raw/events").iterdir())
    assert read.count() == lines
    # every record line once: a duplicate defect repeats a line, so compare multisets of ids
    on_disk = sorted(json.loads(line).get("event_id") or "" for b in (data / "raw/events").iterdir()
                     for line in (b / "events.jsonl").read_text().splitlines())
    assert sorted(row[0] or "" for row in read.select("event_id").collect()) == on_disk


def test_the_dashboard_spark_snippet_runs(spark, bronze):
    from app.core.schema import read_snippets

    data = bronze["production"]
    scope = {"spark": spark}
    exec(read_snippets(str(data), "batch")["spark"], scope)  # noqa: S102 - run as a user pastes it
    for stream in ("events", "companies"):
        assert scope[stream].count() == expected_rows(data, stream)
        assert dict(scope[stream].dtypes)[TIME_COLUMN[stream]] == "timestamp"
