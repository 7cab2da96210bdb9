"""The reference pipeline against a live service, and `kill -9` of the pipeline at random moments."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.core.config import load_config
from tests.conftest import ROOT, backfill, utc, wait_until
from tests.pipeline_equality import assert_equal_to_expect

pytestmark = pytest.mark.slow


def committed(data: Path) -> dict[str, set[str]]:
    return {stream: {b.name for b in (data / "raw" / stream).iterdir() if (b / "_SUCCESS").exists()}
            for stream in ("companies", "events")}


def processed(data: Path) -> dict[str, set[str]]:
    """The batches the pipeline's status says it processed (runs of consecutive windows, expanded
    through the bronze folders between each run's ends)."""
    status = json.loads((data / "pipeline" / "status.json").read_text())
    done: dict[str, set[str]] = {}
    for stream, runs in status["processed"].items():
        names = sorted(committed(data)[stream])
        done[stream] = {n for first, last in runs for n in names if first <= n <= last}
    return done


def pipeline_once(config_path: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "app", "pipeline", "--config", str(config_path), "--once"],
                          cwd=ROOT, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return json.loads(done.stdout)


def test_run_with_pipeline_30_seconds_live(service_process, tmp_path):
    process = service_process({"quality_injection": {"enabled": True, "error_rate": 0.1},
                               "late_arrival": {"probability": 0.05, "max_delay": "PT5S"}})
    process.start("--with-pipeline")
    process.wait_http()
    data = tmp_path / "data"
    time.sleep(30)
    status = json.loads((data / "pipeline" / "status.json").read_text())
    assert process.terminate(timeout=30) == 0
    log = process.log_path.read_text()
    assert "pipeline started" in log and "micro-batch" in log and "Traceback" not in log
    # live, the pipeline kept up: one micro-batch per batch or so, latency measured from each window's close
    latency = status["latency_ms"]
    assert latency["samples"] >= 25
    assert latency["bronze"]["p50"] <= latency["silver"]["p50"] <= latency["gold"]["p50"]
    assert status["check"] is not None and status["check"]["state"] == "equal"
    summary = pipeline_once(process.config_path)  # whatever landed after the child's last look
    assert summary["check"]["state"] == "equal"
    assert processed(data) == committed(data)
    report = assert_equal_to_expect(load_config(process.config_path).with_data_dir(data), data, tmp_path / "expected")
    assert report["tables"]["silver/events"]["expected_rows"] >= 150


def start_pipeline(config_path: Path, log: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "app", "pipeline", "--config", str(config_path), *extra],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(log, "ab"))


def test_kill_9_of_the_pipeline_beside_a_live_service(service_process, tmp_path):
    """The generator keeps running; the pipeline is killed -9 at random moments and restarted."""
    process = service_process({"quality_injection": {"enabled": True, "error_rate": 0.1}})
    process.start()
    process.wait_http()
    data, rng, kills = tmp_path / "data", random.Random(14), 0
    wait_until(lambda: (data / "raw" / "events").is_dir() and any((data / "raw" / "events").iterdir()), 15)
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline:
        child = start_pipeline(process.config_path, tmp_path / "pipeline.log", "--no-check")
        time.sleep(rng.uniform(0.5, 3.0))
        if child.poll() is None:
            child.kill()
            kills += 1
        child.wait(timeout=10)
    pipeline_log = tmp_path / "pipeline.log"
    assert kills >= 5, pipeline_log.read_text()[-3000:]  # a pipeline that ended on its own says why here
    assert process.terminate(timeout=30) == 0, process.log_path.read_text()[-3000:]
    summary = pipeline_once(process.config_path)
    assert summary["check"]["state"] == "equal", (summary["check"], pipeline_log.read_text()[-3000:])
    assert processed(data) == committed(data)
    assert_equal_to_expect(load_config(process.config_path).with_data_dir(data), data, tmp_path / "expected")


def test_kill_9_mid_batch_on_a_production_backfill(write_config, make_config, tmp_path):
    """A 2-hour production backfill with 15 % defects; the pipeline killed -9 while it works (after it
    opened its state, within the second or two its one micro-batch takes), six times, then left to
    finish: silver and gold equal expect, nothing counted twice, nothing lost."""
    overrides = {"number_of_companies": 200, "quality_injection": {"enabled": True, "error_rate": 0.15},
                 "late_arrival": {"probability": 0.05, "max_delay": "PT30M"}}
    config, path = make_config(**overrides), write_config(overrides)
    data = backfill(config, utc(2026, 11, 25, 6), utc(2026, 11, 25, 8))
    status = data / "pipeline" / "status.json"  # written once the pipeline has opened its state
    rng, kills = random.Random(7), 0
    while kills < 6:
        started = time.time()
        child = start_pipeline(path, tmp_path / "pipeline.log", "--once", "--no-check")
        def at_work(child=child, started=started) -> bool:
            return child.poll() is not None or (status.exists() and status.stat().st_mtime >= started)

        wait_until(at_work, 30, "the pipeline to open its state")
        time.sleep(rng.uniform(0.0, 0.6))
        if child.poll() is None:
            child.kill()
            kills += 1
        child.wait(timeout=10)
        assert child.returncode in (0, -9), (tmp_path / "pipeline.log").read_text()[-3000:]
        if child.returncode == 0:
            break
    summary = pipeline_once(path)
    assert summary["check"]["state"] == "equal"
    assert kills >= 3, f"the pipeline finished before it was killed three times ({kills})"
    assert processed(data) == committed(data)
    assert_equal_to_expect(config, data, tmp_path / "expected")
