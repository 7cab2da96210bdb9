"""`fleetgen pipeline --engine spark`: Structured Streaming into silver and gold equal to `fleetgen expect`."""

from __future__ import annotations

import threading
import time

import duckdb
import pytest

from app.medallion import runner
from app.medallion.spark_engine import run_spark
from app.service.expectations import config_of_dataset
from tests.conftest import wait_until
from tests.pipeline_equality import assert_equal_to_expect

pytestmark = pytest.mark.slow


def test_spark_engine_on_a_production_backfill_with_defects(spark, bronze, tmp_path):
    data, out = bronze["production"], tmp_path / "out"
    sink = runner.Sink(config_of_dataset(data), runner.Options(engine="spark", out=out)).open()
    try:
        totals = run_spark(sink, once=True, stop=threading.Event())
    finally:
        sink.close()
    assert totals.batches == 3 + 8 and sink.last_check["state"] == "equal"
    report = assert_equal_to_expect(config_of_dataset(data), out, tmp_path / "expected")
    assert report["tables"]["silver/events"]["expected_rows"] > 10_000
    # the same quarantine as the DuckDB engine: the defective lines, with line numbers and reasons
    duck = tmp_path / "duck"
    duck_sink = runner.Sink(config_of_dataset(data), runner.Options(out=duck, check_every_s=None)).open()
    try:
        runner.run_duckdb(duck_sink, once=True, stop=threading.Event())
    finally:
        duck_sink.close()
    query = "SELECT stream, batch_id, line, record_id, reason, record FROM read_parquet('{}/silver/quarantine/*') " \
            "ORDER BY ALL"
    spark_rows = duckdb.sql(query.format(out)).fetchall()
    assert spark_rows == duckdb.sql(query.format(duck)).fetchall() and len(spark_rows) > 1000
    # what the pipeline published reads as it is in Spark and Polars too (the README's lines)
    import polars as pl

    silver = report["tables"]["silver/events"]["expected_rows"]
    assert spark.read.parquet(str(out / "silver" / "events")).count() == silver
    assert dict(spark.read.parquet(str(out / "silver" / "events")).dtypes)["event_timestamp"] == "timestamp"
    assert pl.scan_parquet(f"{out}/silver/events/*.parquet").select(pl.len()).collect().item() == silver
    gold = report["tables"]["gold/driver_day"]["expected_rows"]
    assert pl.scan_parquet(f"{out}/gold/driver_day/*.parquet").select(pl.len()).collect().item() == gold > 0


def test_spark_engine_streams_from_a_live_service(spark, tmp_path):
    import subprocess
    import sys

    import yaml

    from tests.conftest import ROOT
    from tests.e2e.conftest import free_port

    config_path = tmp_path / "service.yaml"
    data = tmp_path / "data"
    config_path.write_text(yaml.safe_dump({
        "seed": 3, "output": {"data_dir": str(data)}, "quality_injection": {"enabled": True, "error_rate": 0.1},
        "late_arrival": {"probability": 0.05, "max_delay": "PT3S"},
        "emulated_mode": {"enabled": True, "company_batch_interval": "PT2S", "driver_batch_interval": "PT1S"}}))
    service = subprocess.Popen([sys.executable, "-m", "app", "run", "--config", str(config_path), "--port",
                                str(free_port())], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop = threading.Event()
    try:
        wait_until(lambda: (data / "manifests" / "dataset.md").exists(), 20, "the service's first batch")
        sink = runner.Sink(config_of_dataset(data), runner.Options(engine="spark", trigger_s=1.0)).open()
        worker = threading.Thread(target=run_spark, args=(sink, False, stop))
        worker.start()
        time.sleep(20)
        service.terminate()
        assert service.wait(timeout=30) == 0

        def caught_up() -> bool:
            on_disk = {(s, b.name) for s in ("companies", "events") for b in (data / "raw" / s).iterdir()
                       if (b / "_SUCCESS").exists()}
            return on_disk <= set(sink.processed)
        wait_until(caught_up, 60, "the stream to take every committed batch", poll=0.5)
        stop.set()
        worker.join(timeout=60)
        assert not worker.is_alive()
        assert sink.totals.micro_batches >= 5  # it streamed: many small micro-batches, not one at the end
        assert sink.totals.batches >= 25
        sink.run_check()
        assert sink.last_check["state"] == "equal"
        sink.close()
    finally:
        stop.set()
        if service.poll() is None:
            service.kill()
    assert_equal_to_expect(config_of_dataset(data), data, tmp_path / "expected")


def test_spark_engine_classifies_hand_edited_lines_like_duckdb(spark, make_config, tmp_path):
    import json

    from tests.conftest import backfill, utc

    config = make_config(number_of_companies=5, quality_injection={"enabled": True, "error_rate": 0.3})
    data = backfill(config, utc(2026, 11, 25, 6), utc(2026, 11, 25, 6, 15))
    records = sorted((data / "raw" / "events").iterdir())[0] / "events.jsonl"
    lines = records.read_text().splitlines()
    clean = next(json.loads(line) for line in lines if len(json.loads(line)) == 7)
    strange = ["[]", json.dumps({**clean, "event_id": "x-1", "location": {"lat": "45.0", "lon": 1.0}}),
               json.dumps({**clean, "event_id": "x-2", "driver_id": 17}),
               json.dumps({**clean, "event_id": "x-3", "location": "here"}),
               json.dumps({**clean, "event_id": 'x-"4"'})]
    records.write_text("\n".join(lines + strange) + "\n")
    outs = {}
    for engine in ("spark", "duckdb"):
        out = outs[engine] = tmp_path / engine
        sink = runner.Sink(config, runner.Options(engine=engine, out=out, check_every_s=None)).open()
        try:
            (run_spark if engine == "spark" else runner.run_duckdb)(sink, once=True, stop=threading.Event())
        finally:
            sink.close()
    query = "SELECT stream, batch_id, line, record_id, reason FROM read_parquet('{}/silver/quarantine/*') ORDER BY ALL"
    spark_rows = duckdb.sql(query.format(outs["spark"])).fetchall()
    assert spark_rows == duckdb.sql(query.format(outs["duckdb"])).fetchall()
    assert [r[3:] for r in spark_rows if r[2] > len(lines)] == [
        (None, "FIELD_REMOVED"), ("x-1", "TYPE_MISMATCH"), ("x-2", "TYPE_MISMATCH"), ("x-3", "TYPE_MISMATCH")]
    kept = "SELECT event_id FROM read_parquet('{}/silver/events/*') WHERE event_id LIKE 'x-%'"
    assert duckdb.sql(kept.format(outs["spark"])).fetchall() == [('x-"4"',)]
