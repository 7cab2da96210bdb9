"""Bronze on object storage: a real S3 HTTP API (moto's server on loopback), written by the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import orjson
import pyarrow.parquet as pq
import pytest

from app.cli import main
from app.core.config import load_config
from app.store import Store
from tests.conftest import ROOT, wait_until

FROM, TO = "2026-11-25T08:00:00Z", "2026-11-25T10:00:00Z"
SETTINGS = {"seed": 11, "number_of_companies": 40, "drivers_per_company": 5, "event_rate_per_driver": 4.0,
            "quality_injection": {"enabled": True, "error_rate": 0.15},
            "late_arrival": {"probability": 0.05, "max_delay": "PT30M"}}


def _config(write_config, data_dir: str, **extra) -> Path:
    return write_config({**SETTINGS, **extra, "output": {"data_dir": data_dir, **extra.get("output", {})}})


def _objects(bucket: str) -> dict[str, bytes]:
    client = boto3.client("s3")
    found: dict[str, bytes] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            found[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return found


def _batch_folders(objects: dict[str, bytes]) -> dict[str, set[str]]:
    folders: dict[str, set[str]] = {}
    for key in objects:
        if key.startswith("raw/"):
            folder, name = key.rsplit("/", 1)
            folders.setdefault(folder, set()).add(name)
    return folders


def _assert_complete(objects: dict[str, bytes], ledger: dict[str, list[str]]) -> None:
    """Every committed batch is there with _SUCCESS and files matching its meta; nothing else is visible."""
    folders = _batch_folders(objects)
    visible = {folder for folder, names in folders.items() if "_SUCCESS" in names}
    assert visible == {f"raw/{stream}/{batch_id}" for stream, ids in ledger.items() for batch_id in ids}
    for folder in visible:
        meta = orjson.loads(objects[f"{folder}/_batch_meta.json"])
        for name, info in meta["files"].items():
            data = objects[f"{folder}/{name}"]
            assert (len(data), hashlib.sha256(data).hexdigest()) == (info["bytes"], info["sha256"]), folder


def _ledger(config_path: Path) -> dict[str, list[str]]:
    config = load_config(config_path)
    store = Store(config.database_url)
    try:
        return {stream: [row.batch_id for row in store.all_batches(stream) if row.status == "committed"]
                for stream in ("companies", "events")}
    finally:
        store.close()


def _expect(config_path: Path, data_dir: str, out: Path) -> dict:
    assert main(["expect", "--config", str(config_path), "--data-dir", data_dir, "--out", str(out)]) == 0
    return {path.stem: pq.read_table(path) for path in out.rglob("*.parquet")}


def test_backfill_to_s3_equals_the_local_backfill_byte_for_byte(s3_bucket, write_config, tmp_path, capsys):
    remote = _config(write_config, f"s3://{s3_bucket}/bronze")
    local = _config(write_config, str(tmp_path / "local"))
    for path in (remote, local):
        assert main(["backfill", "--config", str(path), "--from", FROM, "--to", TO]) == 0
    capsys.readouterr()
    objects = {key.removeprefix("bronze/"): data for key, data in _objects(s3_bucket).items()}
    ledger = _ledger(remote)
    assert ledger == _ledger(local) and len(ledger["events"]) == 8 and ledger["companies"]
    _assert_complete(objects, ledger)
    for key, data in objects.items():  # the same files, byte for byte, as the local writer made
        if key.startswith("raw/") and not key.endswith(("_SUCCESS", "_batch_meta.json")):
            assert (tmp_path / "local" / key).read_bytes() == data, key
    assert {"manifests/dataset.md", "manifests/batch_manifest.json", "manifests/schemas/events.spark.json"} \
        <= set(objects)
    # the work dir holds the ledger, nothing of bronze
    work = load_config(remote).output.local_dir
    assert (work / "manifests" / "generator.db").is_file() and not list((work / "raw").rglob("*.jsonl"))

    remote_tables = _expect(remote, f"s3://{s3_bucket}/bronze", tmp_path / "expect-s3")
    local_tables = _expect(local, str(tmp_path / "local"), tmp_path / "expect-local")
    assert remote_tables.keys() == local_tables.keys() and "events" in remote_tables
    for name, table in remote_tables.items():
        assert table.equals(local_tables[name]), name
    # without --config: the snapshot uploaded beside the batches names the work dir and the layout
    out = tmp_path / "expect-snapshot"
    assert main(["expect", "--data-dir", f"s3://{s3_bucket}/bronze", "--out", str(out)]) == 0
    assert pq.read_table(out / "silver" / "events.parquet").equals(local_tables["events"])

    # a second backfill of the same range adds nothing; clean empties the prefix and leaves foreign objects
    boto3.client("s3").put_object(Bucket=s3_bucket, Key="bronze/raw/events/README.txt", Body=b"someone else's")
    assert main(["backfill", "--config", str(remote), "--from", FROM, "--to", TO]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main(["clean", "--config", str(remote), "--yes"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["removed_batches"] == len(ledger["events"]) + len(ledger["companies"])
    assert any("README.txt" in line for line in report["skipped"])
    assert set(_objects(s3_bucket)) == {"bronze/raw/events/README.txt"}
    assert _ledger(remote) == {"companies": [], "events": []}
    # generate, after the clean: the window due at that moment, with its baseline company window
    assert main(["generate", "--config", str(remote), "--stream", "events", "--at", "2026-11-25T12:00:01Z"]) == 0
    ledger = _ledger(remote)
    assert ledger["events"] == ["20261125T114500Z"] and ledger["companies"]
    objects = {key.removeprefix("bronze/"): data for key, data in _objects(s3_bucket).items()}
    _assert_complete(objects, ledger)


def test_an_object_storage_data_dir_that_cannot_be_written_is_exit_2(write_config, tmp_path, capsys):
    cases = {
        "hdfs://namenode/bronze": "scheme hdfs:// is not supported",
        "s3:///bronze": "no bucket",
        "ftp://host/x": "scheme ftp:// is not supported",
    }
    for url, message in cases.items():
        assert main(["backfill", "--config", str(_config(write_config, str(tmp_path / "d"))), "--data-dir", url,
                     "--from", FROM, "--to", TO]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
        assert not (ROOT / url.split(":")[0]).exists() and not Path(url.split(":")[0] + ":").exists()
    path = write_config("output: {data_dir: 'hdfs://nn/bronze'}\nseed: 1\n")
    assert main(["validate", str(path)]) == 2
    assert "output.data_dir" in capsys.readouterr().err
    # a file:// URL is a local folder
    local = _config(write_config, f"file://{tmp_path / 'via-url'}")
    assert main(["backfill", "--config", str(local), "--from", FROM, "--to", "2026-11-25T08:15:00Z"]) == 0
    assert list((tmp_path / "via-url" / "raw" / "events").iterdir())
    # the reference pipeline reads local bronze only: said plainly
    remote = _config(write_config, "s3://bucket/bronze")
    assert main(["pipeline", "--config", str(remote), "--once"]) == 2
    assert "local data directory" in capsys.readouterr().err


@pytest.mark.slow
def test_kill_9_mid_upload_leaves_nothing_visible_and_the_retry_completes_it(s3_bucket, write_config, tmp_path):
    remote = _config(write_config, f"s3://{s3_bucket}/bronze")
    marker = tmp_path / "uploading"
    # the backfill in a process of its own, held just after a record file of the 4th events batch is uploaded
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.held_upload", str(marker), "4",
         "backfill", "--config", str(remote), "--from", FROM, "--to", TO],
        cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    held = wait_until(lambda: marker.exists() and marker.read_text(), timeout=120, what="the 4th events upload")
    child.kill()
    child.wait(timeout=10)
    objects = {key.removeprefix("bronze/"): data for key, data in _objects(s3_bucket).items()}
    folders = _batch_folders(objects)
    assert "events.jsonl" in folders[held] and "_SUCCESS" not in folders[held]  # uploaded in part
    _assert_complete(objects, {stream: [f.rsplit("/", 1)[1] for f, names in folders.items()
                                        if f.startswith(f"raw/{stream}/") and "_SUCCESS" in names]
                               for stream in ("companies", "events")})
    assert held.rsplit("/", 1)[1] not in _ledger(remote)["events"]

    assert main(["backfill", "--config", str(remote), "--from", FROM, "--to", TO]) == 0
    ledger = _ledger(remote)
    assert len(ledger["events"]) == 8 and held.rsplit("/", 1)[1] in ledger["events"]
    objects = {key.removeprefix("bronze/"): data for key, data in _objects(s3_bucket).items()}
    _assert_complete(objects, ledger)
    local = _config(write_config, str(tmp_path / "local"))
    assert main(["backfill", "--config", str(local), "--from", FROM, "--to", TO]) == 0
    for key, data in objects.items():
        if key.startswith("raw/") and key.endswith(".jsonl"):
            assert (tmp_path / "local" / key).read_bytes() == data, key


def test_a_second_writer_on_the_same_bucket_prefix_is_refused_naming_it(s3_bucket, write_config, capsys):
    from app.core.dirlock import DataDirLock

    remote = _config(write_config, f"s3://{s3_bucket}/bronze")
    config = load_config(remote)
    holder = DataDirLock(config.output.local_dir, "run", url=config.output.url).acquire()  # a service writing there
    try:
        assert main(["backfill", "--config", str(remote), "--from", FROM, "--to", TO]) == 2
        err = capsys.readouterr().err
        named = f"data directory s3://{s3_bucket}/bronze (work dir {config.output.local_dir})"
        assert f"{named} is in use by fleetgen run" in err
    finally:
        holder.release()
    assert _objects(s3_bucket) == {}  # the refused backfill wrote nothing
