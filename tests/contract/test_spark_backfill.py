"""`fleetgen backfill --engine spark` on local[2]: byte for byte the local backfill, a killed task retried
without a duplicate, and executors publishing straight to object storage."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from app.cli import main
from app.core.config import load_config
from app.store import Store
from tests.conftest import ROOT

pytestmark = pytest.mark.slow
FROM, TO = "2026-11-25T08:00:00Z", "2026-11-25T10:00:00Z"
SETTINGS = {"seed": 11, "number_of_companies": 100, "drivers_per_company": 10, "event_rate_per_driver": 3.5,
            "quality_injection": {"enabled": True, "error_rate": 0.15},
            "late_arrival": {"probability": 0.05, "max_delay": "PT30M"}}
LEDGER_FIELDS = ("batch_id", "status", "record_count", "valid_count", "corrupted_count", "issue_counts")


def _write(tmp_path, name: str, data_dir: str, **extra):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**SETTINGS, **extra, "output": {"data_dir": data_dir}}))
    return path


def _spark_backfill(config_path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", "backfill", "--config", str(config_path), "--engine", "spark",
         "--master", "local[2,4]", "--from", FROM, "--to", TO, *extra],
        cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=600)


def _ledger(config_path) -> dict[str, list[dict]]:
    config = load_config(config_path)
    store = Store(config.database_url)
    try:
        return {stream: [{k: getattr(row, k) for k in LEDGER_FIELDS} | {"attempts": row.attempts}
                         for row in store.all_batches(stream)] for stream in ("companies", "events")}
    finally:
        store.close()


def _files(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in (root / "raw").rglob("*")
            if p.is_file() and p.name != "_batch_meta.json"}


def test_spark_backfill_equals_the_local_backfill_and_a_killed_task_is_retried_once(tmp_path, capsys):
    local = _write(tmp_path, "local", str(tmp_path / "local"))
    assert main(["backfill", "--config", str(local), "--from", FROM, "--to", TO]) == 0
    capsys.readouterr()
    spark = _write(tmp_path, "spark", str(tmp_path / "spark"))
    # two tasks die on their first attempt: one with its batch staged, one right after publishing it
    faults = "20261125T083000Z:staged,20261125T091500Z:published"
    done = _spark_backfill(spark, env={"FLEETGEN_SPARK_TASK_FAULT": faults})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["written"]["events"]["batches"] == 8 and not report["failed"]

    expected, made = _files(tmp_path / "local"), _files(tmp_path / "spark")
    assert made.keys() == expected.keys() and len([k for k in made if k.endswith("events.jsonl")]) == 8
    for name, data in expected.items():  # record files, issue logs, late-arrival logs and markers
        assert made[name] == data, name
    ledger, local_ledger = _ledger(spark), _ledger(local)
    assert [{k: r[k] for k in LEDGER_FIELDS} for r in ledger["events"]] == \
        [{k: r[k] for k in LEDGER_FIELDS} for r in local_ledger["events"]]
    assert ledger["companies"] == local_ledger["companies"]
    assert all(r["status"] == "committed" and r["attempts"] == 1 for r in ledger["events"])  # committed once
    retried = [json.loads(line) for line in done.stderr.splitlines()
               if line.startswith("{") and "retried Spark task" in line]
    assert sorted((r["batch_id"], r["attempt"], r["adopted"]) for r in retried) == [
        ("20261125T083000Z", 2, False), ("20261125T091500Z", 2, True)]  # the published one was adopted
    assert not list((tmp_path / "spark" / ".staging").iterdir())  # the killed attempt's staging is gone
    for meta in (tmp_path / "spark" / "raw" / "events").glob("*/_batch_meta.json"):
        assert json.loads(meta.read_text())["files"]["events.jsonl"]["rows"] > 0

    again = _spark_backfill(spark)  # resumable and idempotent: nothing left to do
    assert again.returncode == 0, again.stderr[-2000:]
    assert "nothing to do" in json.loads(again.stdout)["note"]


def test_spark_tasks_publish_to_object_storage(s3_bucket, tmp_path, capsys):
    import boto3

    local = _write(tmp_path, "local", str(tmp_path / "local"))
    assert main(["backfill", "--config", str(local), "--from", FROM, "--to", "2026-11-25T09:00:00Z"]) == 0
    capsys.readouterr()
    remote = _write(tmp_path, "remote", f"s3://{s3_bucket}/bronze")
    done = subprocess.run(
        [sys.executable, "-m", "app", "backfill", "--config", str(remote), "--engine", "spark", "--master",
         "local[2,4]", "--from", FROM, "--to", "2026-11-25T09:00:00Z"],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    client = boto3.client("s3")
    for name, data in _files(tmp_path / "local").items():
        body = client.get_object(Bucket=s3_bucket, Key=f"bronze/{name}")["Body"].read()
        assert body == data, name


def test_emulated_mode_is_not_distributed(tmp_path, capsys):
    path = _write(tmp_path, "emulated", str(tmp_path / "e"), emulated_mode={"enabled": True})
    assert main(["backfill", "--config", str(path), "--engine", "spark", "--from", FROM, "--to", TO]) == 2
    err = capsys.readouterr().err
    assert "chain" in err and "Traceback" not in err
    assert main(["backfill", "--config", str(path), "--master", "local[2]", "--from", FROM, "--to", TO]) == 2
    assert "--master is for --engine spark" in capsys.readouterr().err
