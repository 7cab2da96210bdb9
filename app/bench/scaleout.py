"""Beyond one disk: whole-process `fleetgen backfill` of 8 production windows of ~1 M events each, run as a
user runs it (a fresh process, start-up included), on the local engine and on Spark ``local[2]``, to a local
folder and to S3 (moto's server on loopback), as JSON Lines and as Parquet."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from app.bench.registry import benchmark

FROM, TO, TO_QUICK = "2026-11-25T10:00:00Z", "2026-11-25T12:00:00Z", "2026-11-25T10:30:00Z"


def _config(folder: Path, data_dir: str, record_format: str, quick: bool) -> Path:
    path = folder / f"{record_format}-{abs(hash(data_dir))}.yaml"
    path.write_text(yaml.safe_dump({
        "seed": 42, "number_of_companies": 1_000 if quick else 10_000, "drivers_per_company": 25,
        "event_rate_per_driver": 4.0, "output": {"data_dir": data_dir, "format": record_format}}))
    return path


def _backfill(config: Path, quick: bool, env: dict[str, str], *extra: str) -> dict[str, Any]:
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "app", "backfill", "--config", str(config), "--from", FROM,
                           "--to", TO_QUICK if quick else TO, *extra], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=3600)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"backfill {' '.join(extra)} failed: {done.stderr[-1500:]}")
    events = json.loads(done.stdout)["written"]["events"]
    return {"windows": events["batches"], "events": events["records"], "seconds": round(seconds, 2),
            "events_per_s": round(events["records"] / seconds)}


def _task_rate(root: Path) -> int:
    """Events per second of one Spark task (one core) while it made its window: from the ledger's
    started/finished times of each events window, i.e. without the JVM start and the driver's work."""
    with sqlite3.connect(root / "manifests" / "generator.db") as con:
        events, seconds = con.execute("SELECT sum(record_count), sum(finished_at - started_at) FROM batches "
                                      "WHERE stream = 'events' AND status = 'committed'").fetchone()
    return round(events / seconds)


def _folder_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "raw" / "events").rglob("events.*") if p.is_file())


class _Moto:
    """moto's S3 server in a process of its own, on a free loopback port."""

    def __enter__(self) -> dict[str, str]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
        self.process = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        endpoint = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        self.env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                    "AWS_DEFAULT_REGION": "us-east-1"}
        import s3fs

        s3fs.S3FileSystem(endpoint_url=endpoint, key="bench", secret="bench", skip_instance_cache=True).mkdir("bench")
        return self.env

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _moto_put_speed(env: dict[str, str], folder: Path) -> int:
    """One 256 MiB object PUT through s3fs, as the writer uploads a record file: what the server takes."""
    import s3fs

    blob = folder / "blob.bin"
    blob.write_bytes(os.urandom(1 << 20) * 256)
    fs = s3fs.S3FileSystem(endpoint_url=env["AWS_ENDPOINT_URL"], key="bench", secret="bench",
                           skip_instance_cache=True)
    began = time.perf_counter()
    fs.put_file(str(blob), "bench/speed/blob.bin")
    return round(256 / (time.perf_counter() - began))


@benchmark("backfill_whole_process")
def backfill_whole_process(quick: bool) -> dict[str, Any]:
    """`fleetgen backfill` of 8 production windows of ~1 M events (10,000 companies × 25 drivers × 4.0,
    10:00-12:00 UTC) as a user runs it, start-up included: clean and with 15 % defects, with the disk's
    own `dd oflag=direct` figure for the same bytes measured right after each."""
    from app.bench.generation import disk_share

    results: dict[str, Any] = {}
    for name, rate in (("clean", 0.0), ("defects_15pct", 0.15)):
        with tempfile.TemporaryDirectory(prefix="fleetgen-bench-backfill-") as tmp:
            folder = Path(tmp)
            config = _config(folder, str(folder / "data"), "jsonl", quick)
            settings = yaml.safe_load(config.read_text())
            settings["quality_injection"] = {"enabled": rate > 0, "error_rate": rate}
            config.write_text(yaml.safe_dump(settings))
            run = _backfill(config, quick, {})
            written = sum(p.stat().st_size for p in (folder / "data" / "raw").rglob("*") if p.is_file())
            run["bytes_written"] = written
            run.update(disk_share(written, run["seconds"]))
            results[name] = run
    results["note"] = ("whole process (interpreter start, imports, ledger, companies, manifests included); "
                       "active companies only")
    return results


@benchmark("backfill_scaleout")
def backfill_scaleout(quick: bool) -> dict[str, Any]:
    """8 windows of ~1 M events (10,000 companies × 25 drivers × 4.0, 10:00-12:00 UTC), whole process:
    local engine vs Spark local[2]; local disk vs S3 (moto); JSON Lines vs Parquet."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="fleetgen-bench-scaleout-") as tmp:
        folder = Path(tmp)
        state = {"XDG_STATE_HOME": str(folder / "state")}
        runs = [("local_jsonl", str(folder / "local"), "jsonl", ()),
                ("spark_local2_jsonl", str(folder / "spark"), "jsonl", ("--engine", "spark", "--master", "local[2,4]")),
                ("local_parquet", str(folder / "parquet"), "parquet", ())]
        for name, data_dir, record_format, extra in runs:
            results[name] = _backfill(_config(folder, data_dir, record_format, quick), quick, state, *extra)
            results[name]["record_bytes"] = _folder_bytes(Path(data_dir))
            if name.startswith("spark"):
                results[name]["per_task_events_per_s"] = _task_rate(Path(data_dir))
            if name != "local_jsonl":
                shutil.rmtree(data_dir)
        with _Moto() as env:
            results["s3_moto_jsonl"] = _backfill(_config(folder, "s3://bench/bronze", "jsonl", quick), quick,
                                                 {**env, **state})
            results["s3_moto_jsonl"]["mb_per_s"] = round(results["local_jsonl"]["record_bytes"] / 2**20
                                                         / results["s3_moto_jsonl"]["seconds"])
            results["moto_put_mb_per_s"] = _moto_put_speed(env, folder)  # the server's own figure, same run
    local = results["local_jsonl"]
    results["spark_overhead"] = round(local["events_per_s"] / results["spark_local2_jsonl"]["events_per_s"], 2)
    results["s3_vs_local"] = round(results["s3_moto_jsonl"]["events_per_s"] / local["events_per_s"], 2)
    results["parquet_vs_jsonl_bytes"] = round(results["local_parquet"]["record_bytes"] / local["record_bytes"], 3)
    parquet = results["local_parquet"]
    results["parquet_vs_jsonl_events_per_s"] = round(parquet["events_per_s"] / local["events_per_s"], 2)
    results["note"] = ("whole process, start-up included (Spark: the JVM's ~15 s); events of active companies only, "
                       "as a real run; S3 is moto's in-memory server on loopback (a Python process on the same 2 "
                       "cores), so the S3 figure is bound by moto_put_mb_per_s, not by a network")
    return results
