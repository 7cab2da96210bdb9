"""`fleetgen run` publishing to object storage for ~20 s (a real S3 API: moto's server on loopback)."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from app.cli import main
from app.core.config import load_config
from app.store import Store
from tests.integration.test_object_storage import _assert_complete, _objects

pytestmark = pytest.mark.slow


def test_run_to_s3_publishes_every_batch_with_success_last(service_process, s3_bucket, tmp_path, capsys):
    process = service_process({"output": {"data_dir": f"s3://{s3_bucket}/bronze"},
                               "quality_injection": {"enabled": True, "error_rate": 0.1}})
    process.start()
    process.wait_http(timeout=30)
    began = time.monotonic()
    health = {}
    while time.monotonic() - began < 20:
        time.sleep(1)
        health = json.loads(urllib.request.urlopen(process.url("/api/health"), timeout=5).read())
    assert process.terminate(timeout=15) == 0
    assert health, "no health answer during the run"

    config = load_config(process.config_path)
    store = Store(config.database_url)
    try:
        ledger = {stream: [row.batch_id for row in store.all_batches(stream) if row.status == "committed"]
                  for stream in ("companies", "events")}
    finally:
        store.close()
    assert len(ledger["events"]) >= 15 and ledger["companies"], ledger
    objects = {key.removeprefix("bronze/"): data for key, data in _objects(s3_bucket).items()}
    _assert_complete(objects, ledger)  # every committed batch listed with _SUCCESS, nothing else visible
    records = sum(objects[f"raw/events/{batch_id}/events.jsonl"].count(b"\n") for batch_id in ledger["events"])
    assert records > 0

    # `fleetgen expect` regenerates every committed batch and checks it against the sha256 in its meta on S3;
    # its silver holds every valid record of the run
    out = tmp_path / "expected"
    assert main(["expect", "--config", str(process.config_path), "--out", str(out),
                 "--data-dir", f"s3://{s3_bucket}/bronze"]) == 0
    report = json.loads(capsys.readouterr().out)
    valid = sum(json.loads(objects[f"raw/events/{b}/_batch_meta.json"])["valid_count"] for b in ledger["events"])
    assert report["records_regenerated"] >= records
    assert report["tables"]["silver/events"]["rows"] == valid > 0
