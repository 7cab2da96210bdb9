"""Generation benchmarks: one ~1M-event production batch generated, written, fsynced and hashed."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

from app.bench.registry import benchmark, peak_rss_mb
from app.core import bronze
from app.core.config import Config
from app.core.generation.batch import generate_batch
from app.core.generation.companies import generate_companies
from app.core.generation.encoding import render_issues, render_records
from app.core.generation.events import Roster
from app.core.generation.seeding import batch_rng
from app.core.timeline import Window


def _production_config(data_dir: Path, error_rate: float, companies: int, drivers: int, rate: float,
                       late: float = 0.0):
    return Config.model_validate({
        "seed": 42, "number_of_companies": companies, "drivers_per_company": drivers,
        "event_rate_per_driver": rate, "output": {"data_dir": str(data_dir)},
        "quality_injection": {"enabled": error_rate > 0, "error_rate": error_rate},
        "late_arrival": {"probability": late, "max_delay": LATE_MAX_DELAY},
    })


LATE_MAX_DELAY = "PT30M"  # the generation_late benchmark: a window looks back on two 15-minute windows


def _publish_once(config, stream: str, window, roster=None) -> tuple[int, float, int]:
    started = time.perf_counter()
    batch, plan = generate_batch(config, stream, window, roster)
    issues = render_issues(batch, plan)
    published = bronze.publish_batch(bronze.Layout(config.output.local_dir), stream, window.batch_id,
                                     render_records(batch, plan), batch.size, issues,
                                     plan.corrupted_count, {"bench": True}, time.time())
    elapsed = time.perf_counter() - started
    return batch.size, elapsed, sum(f.bytes for f in published.files.values())


def _generation(error_rate: float, quick: bool, late: float = 0.0) -> dict[str, Any]:
    companies, drivers, rate = (10_000, 25, 4.0) if not quick else (1_000, 25, 4.0)
    with tempfile.TemporaryDirectory(prefix="fleetgen-bench-") as tmp:
        config = _production_config(Path(tmp), error_rate, companies, drivers, rate, late)
        company_window = Window(datetime(2026, 11, 25, 9, tzinfo=UTC), datetime(2026, 11, 25, 10, tzinfo=UTC))
        made = generate_companies(config, company_window, batch_rng(42, "companies", company_window))
        roster = Roster(made.company_uuid, made.geography, made.drivers_count)
        runs = []
        for i in range(3):
            window = Window(datetime(2026, 11, 25, 10, 15 * i, tzinfo=UTC),
                            datetime(2026, 11, 25, 10, 15 * (i + 1), tzinfo=UTC))
            runs.append(_publish_once(config, "events", window, roster))
        comp_runs = [_publish_once(config, "companies", Window(company_window.start.replace(hour=h),
                                                               company_window.end.replace(hour=h + 1)))
                     for h in range(3)]
    events_per_s = [n / t for n, t, _ in runs]
    in_memory = _render_in_memory(config, roster, company_window)
    return {
        "batch": f"{companies} companies x {drivers} drivers x {rate} events, error_rate {error_rate}"
                 + (f", late_arrival {late} up to {LATE_MAX_DELAY}" if late else ""),
        "events_per_batch": runs[0][0],
        "bytes_per_batch": runs[0][2],
        "seconds": [round(t, 3) for _, t, _ in runs],
        "events_per_s_median": round(median(events_per_s)),
        "events_per_s_best": round(max(events_per_s)),
        "companies_per_s_median": round(median(n / t for n, t, _ in comp_runs)),
        "in_memory_events_per_s": round(in_memory),
        "disk_write_fsync_mb_per_s": round(_disk_speed()),
        **_disk_share(runs[0][2], median(t for _, t, _ in runs)),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def _render_in_memory(config, roster, company_window) -> float:
    """Generation and JSON rendering alone (no disk): the CPU side of the pipeline."""
    window = Window(company_window.end, company_window.end.replace(minute=15))
    started = time.perf_counter()
    batch, plan = generate_batch(config, "events", window, roster)
    total = sum(len(chunk) for chunk in render_records(batch, plan)) + len(render_issues(batch, plan))
    assert total > 0
    return batch.size / (time.perf_counter() - started)


def _disk_share(batch_bytes: int, batch_seconds: float) -> dict[str, Any]:
    """The disk's own figure for a batch of the same size (`dd oflag=direct`), right after the batches,
    so end to end reads as a share of what the disk allowed at that moment."""
    block = 8 << 20
    count = max(1, -(-batch_bytes // block))
    with tempfile.TemporaryDirectory(prefix="fleetgen-dd-") as tmp:
        started = time.perf_counter()
        result = subprocess.run(["dd", "if=/dev/zero", f"of={tmp}/dd.bin", f"bs={block}", f"count={count}",
                                 "oflag=direct", "conv=fsync"], capture_output=True, text=True)
        dd_seconds = time.perf_counter() - started
    if result.returncode != 0:
        return {"dd_oflag_direct": f"unavailable: {result.stderr.strip()[-200:]}"}
    dd_mb_per_s = count * block / 2**20 / dd_seconds
    ours = batch_bytes / 2**20 / batch_seconds
    return {"dd_oflag_direct_mb_per_s": round(dd_mb_per_s), "end_to_end_mb_per_s": round(ours),
            "share_of_disk": round(ours / dd_mb_per_s, 2)}


def _disk_speed() -> float:
    """Sequential write + fsync of 256 MiB on the same disk, for context (disks here are noisy)."""
    block = os.urandom(1 << 20) * 16
    with tempfile.NamedTemporaryFile(prefix="fleetgen-disk-") as handle:
        started = time.perf_counter()
        for _ in range(16):
            handle.write(block)
        handle.flush()
        os.fsync(handle.fileno())
        return 256 / (time.perf_counter() - started)


@benchmark("generation_clean")
def bench_generation_clean(quick: bool) -> dict[str, Any]:
    """Generate + write + fsync + checksum one ~1M-event production driver batch, no defects."""
    return _generation(0.0, quick)


@benchmark("generation_defects")
def bench_generation_defects(quick: bool) -> dict[str, Any]:
    """The same with 15 % defective records and their issue log."""
    return _generation(0.15, quick)


@benchmark("generation_late")
def bench_generation_late(quick: bool) -> dict[str, Any]:
    """The clean batch with 5 % late arrivals up to 30 minutes (each window looks back on two windows)."""
    return _generation(0.0, quick, late=0.05)
