"""Reference pipeline benchmarks: end-to-end latency at a 1 s cadence (window close → bronze → silver →
gold, measured per batch from the pipeline's own ledger), and rows/s through silver for one ~1 M-event
production batch, for each engine."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from app.bench.registry import benchmark, peak_rss_mb
from app.bench.service import percentiles
from app.core.config import Config

LIVE_S, LIVE_QUICK_S = 120, 20
SPARK_WARM_UP_S = 15  # the JVM starts and compiles its first plans: samples before this are reported apart
START_UP_S = 5  # the service and its pipeline child start: their first windows are reported apart


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _emulated(folder: Path) -> Path:
    path = folder / "emulated.yaml"
    path.write_text(yaml.safe_dump({
        "seed": 42, "output": {"data_dir": str(folder / "data")},
        "quality_injection": {"enabled": True, "error_rate": 0.05},
        "late_arrival": {"probability": 0.05, "max_delay": "PT5S"},
        "emulated_mode": {"enabled": True, "company_batch_interval": "PT1S", "driver_batch_interval": "PT1S"}}))
    return path


def _latencies(state_file: Path, since_ms: int) -> dict[str, Any]:
    """Per layer, ms from each window's close to the batch visible there, for the batches published to
    bronze after ``since_ms``, read from the pipeline's progress ledger."""
    # imported here, not with the module: every benchmark's process imports it (duckdb and pyarrow: ~50 MB)
    import duckdb

    with duckdb.connect(str(state_file), read_only=True) as con:
        rows = con.execute("SELECT bronze_ms - window_end_ms, silver_ms - window_end_ms, gold_ms - window_end_ms "
                           "FROM progress WHERE gold_ms IS NOT NULL AND bronze_ms >= ?", [since_ms]).fetchall()
    return {"batches": len(rows), "bronze_ms": percentiles([r[0] for r in rows]),
            "silver_ms": percentiles([r[1] for r in rows]), "gold_ms": percentiles([r[2] for r in rows])}


@benchmark("pipeline_latency_duckdb")
def pipeline_latency_duckdb(quick: bool) -> dict[str, Any]:
    """`fleetgen run --with-pipeline` at a 1 s cadence (both streams, 5 % defects, 5 % late arrivals):
    window close → gold per batch."""
    from app.medallion import runner

    seconds = LIVE_QUICK_S if quick else LIVE_S
    with tempfile.TemporaryDirectory(prefix="fleetgen-bench-") as tmp:
        folder = Path(tmp)
        config = _emulated(folder)
        process = subprocess.Popen([sys.executable, "-m", "app", "run", "--config", str(config), "--port",
                                    str(_free_port()), "--with-pipeline"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        started_ms = int(time.time() * 1000)
        time.sleep(seconds)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        state = folder / "data" / "pipeline" / runner.STATE_FILE
        steady = _latencies(state, started_ms + START_UP_S * 1000)
        everything = _latencies(state, started_ms)
    return {"seconds": seconds, "cadence": "PT1S", **steady, f"including_first_{START_UP_S}_s": everything,
            "target_gold_p99_ms": 500}


@benchmark("pipeline_latency_spark")
def pipeline_latency_spark(quick: bool) -> dict[str, Any]:
    """A live emulated service at 1 s and the Spark engine (local[2], 1 s trigger) beside it."""
    from app.medallion import runner
    from app.medallion.spark_engine import run_spark
    from app.service.expectations import config_of_dataset

    seconds = LIVE_QUICK_S + SPARK_WARM_UP_S if quick else 90 + SPARK_WARM_UP_S
    with tempfile.TemporaryDirectory(prefix="fleetgen-bench-") as tmp:
        folder = Path(tmp)
        data = folder / "data"
        config_path = _emulated(folder)
        process = subprocess.Popen([sys.executable, "-m", "app", "run", "--config", str(config_path), "--port",
                                    str(_free_port())], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while not (data / "manifests" / "dataset.md").exists():
                time.sleep(0.1)
            started_ms = int(time.time() * 1000)
            sink = runner.Sink(config_of_dataset(data), runner.Options(engine="spark", trigger_s=1.0,
                                                                       master="local[2]", check_every_s=None)).open()
            stop = threading.Event()
            worker = threading.Thread(target=run_spark, args=(sink, False, stop))
            worker.start()
            time.sleep(seconds)
            stop.set()
            worker.join(timeout=120)
            sink.close()
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        state = data / "pipeline" / runner.STATE_FILE
        steady = _latencies(state, started_ms + SPARK_WARM_UP_S * 1000)
        everything = _latencies(state, started_ms)
    return {"seconds": seconds, "cadence": "PT1S", "trigger": "1 s", "master": "local[2]", **steady,
            f"including_first_{SPARK_WARM_UP_S}_s": everything, "target_gold_p99_ms": 3000}


def _production_batch(folder: Path, quick: bool) -> tuple[Config, int]:
    """One production driver window of 10,000 companies × 25 drivers × 4.0 (1,000 companies quick),
    with 15 % defects and 5 % late arrivals, and the company windows before it."""
    from app.service.pipeline import Pipeline
    from app.store import Store

    config = Config.model_validate({
        "seed": 42, "number_of_companies": 1_000 if quick else 10_000, "drivers_per_company": 25,
        "event_rate_per_driver": 4.0, "output": {"data_dir": str(folder / "data")},
        "quality_injection": {"enabled": True, "error_rate": 0.15}})
    store = Store.for_config(config)
    try:
        Pipeline(config, store).backfill(datetime(2026, 11, 25, 14, tzinfo=UTC), datetime(2026, 11, 25, 14, 15,
                                                                                           tzinfo=UTC))
        records = sum(r.record_count or 0 for r in store.all_batches("events"))
    finally:
        store.close()
    return config, records


def _through(engine: str, quick: bool) -> dict[str, Any]:
    from app.medallion import runner

    with tempfile.TemporaryDirectory(prefix="fleetgen-bench-") as tmp:
        folder = Path(tmp)
        config, records = _production_batch(folder, quick)
        options = runner.Options(engine=engine, check_every_s=None, out=folder / "out", master="local[2]")
        if engine == "spark":  # the JVM starts before the clock does
            from app.medallion.spark_engine import run_spark, session

            session(options.master)
        sink = runner.Sink(config, options).open()
        began = time.perf_counter()
        try:
            if engine == "spark":
                run_spark(sink, once=True, stop=threading.Event())
            else:
                runner.run_duckdb(sink, once=True, stop=threading.Event())
        finally:
            seconds = time.perf_counter() - began
            sink.close()
        silver = sum(sink.totals.silver.values())
    return {"events": records, "records_in": sink.totals.records, "silver_rows": silver,
            "quarantined": sum(sink.totals.quarantined.values()), "seconds": round(seconds, 2),
            "records_per_s": round(sink.totals.records / seconds), "peak_rss_mb": round(peak_rss_mb())}


@benchmark("pipeline_throughput_duckdb")
def pipeline_throughput_duckdb(quick: bool) -> dict[str, Any]:
    """One ~1 M-event production batch with 15 % defects through silver and gold (DuckDB engine): from
    the bronze files to the published Parquet tables, in one micro-batch."""
    return _through("duckdb", quick)


@benchmark("pipeline_throughput_spark")
def pipeline_throughput_spark(quick: bool) -> dict[str, Any]:
    """The same batch through the Spark engine on local[2] (the JVM already started)."""
    return _through("spark", quick)
