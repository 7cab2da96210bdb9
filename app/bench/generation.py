"""Generation benchmarks: one ~1M-event production batch generated, written, fsynced and hashed."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from statistics import median
from typing import Any

from app.bench.registry import benchmark, peak_rss_mb
from app.core import bronze
from app.core.config import Config
from app.core.filesink import FileSink
from app.core.generation.batch import HELD_EVENTS, generate_batch
from app.core.generation.companies import generate_companies
from app.core.generation.encoding import issue_chunks, render_records
from app.core.generation.events import DriverPool, Roster
from app.core.generation.seeding import batch_rng
from app.core.timeline import Window
from app.service.pipeline import make_batch


def _production_config(data_dir: Path, error_rate: float, companies: int, drivers: int, rate: float,
                       late: float = 0.0):
    return Config.model_validate({
        "seed": 42, "number_of_companies": companies, "drivers_per_company": drivers,
        "event_rate_per_driver": rate, "output": {"data_dir": str(data_dir)},
        "quality_injection": {"enabled": error_rate > 0, "error_rate": error_rate},
        "late_arrival": {"probability": late, "max_delay": LATE_MAX_DELAY},
    })


LATE_MAX_DELAY = "PT30M"  # the generation_late benchmark: a window looks back on two 15-minute windows


def _publish_once(config, stream: str, window, roster=None, cpu: list[float] | None = None) -> tuple[int, float, int]:
    """One batch made and published as a run does (``make_batch``: part by part, sidecars alongside);
    the process's CPU seconds (every thread) go to ``cpu``."""
    started, cpu_started = time.perf_counter(), time.process_time()
    layout = bronze.Layout(config.output.local_dir)
    made = make_batch(config, layout, stream, window, DriverPool.of(roster) if roster is not None else None, None)
    published = bronze.finish_batch(layout, made.staged, {"bench": True}, time.time())
    elapsed = time.perf_counter() - started
    if cpu is not None:
        cpu.append(time.process_time() - cpu_started)
    return made.record_count, elapsed, sum(f.bytes for f in published.files.values())


def _generation(error_rate: float, quick: bool, late: float = 0.0) -> dict[str, Any]:
    companies, drivers, rate = (10_000, 25, 4.0) if not quick else (1_000, 25, 4.0)
    with tempfile.TemporaryDirectory(prefix="fleetgen-bench-") as tmp:
        config = _production_config(Path(tmp), error_rate, companies, drivers, rate, late)
        company_window = Window(datetime(2026, 11, 25, 9, tzinfo=UTC), datetime(2026, 11, 25, 10, tzinfo=UTC))
        made = generate_companies(config, company_window, batch_rng(42, "companies", company_window))
        active = made.active.astype(bool)  # what a real run's roster holds: inactive companies emit nothing
        roster = Roster(made.company_uuid[active], made.geography[active], made.drivers_count[active])
        windows = [Window(datetime(2026, 11, 25, 10, 15 * i, tzinfo=UTC),
                          datetime(2026, 11, 25, 10, 15 * (i + 1), tzinfo=UTC)) for i in range(3)]
        run_cpu: list[float] = []
        runs = [_publish_once(config, "events", window, roster, run_cpu) for window in windows]
        comp_runs = [_publish_once(config, "companies", Window(company_window.start.replace(hour=h),
                                                               company_window.end.replace(hour=h + 1)))
                     for h in range(3)]
        peak_rss = peak_rss_mb()  # end to end, before the stage runs below hold a whole batch's text
        disk = disk_share(runs[0][2], median(t for _, t, _ in runs))
        stages = [_stages(config, roster, window, Path(tmp)) for window in windows]
    events_per_s = [n / t for n, t, _ in runs]
    in_memory_s = [s["generate_s"] + s["render_s"] for s in stages]
    dd_s = runs[0][2] / (disk["dd_oflag_direct_mb_per_s"] * 2**20) if "dd_oflag_direct_mb_per_s" in disk else None
    headline = [max(m, dd_s or 0.0) / t for m, (_, t, _) in zip(in_memory_s, runs, strict=True)]
    # The work end to end adds to in memory (hash, copy and write) needs CPU on the same cores: with every core
    # busy, a batch takes at least its CPU seconds over the cores, which caps the headline below 1.
    cores = os.cpu_count() or 1
    cpu_floor_s = [sum(s[f"{name}_cpu_s"] for name in ("generate", "render", "hash", "write")) / cores for s in stages]
    ceiling = [max(m, dd_s or 0.0) / max(floor, m, dd_s or 0.0) for m, floor in zip(in_memory_s, cpu_floor_s,
                                                                                      strict=True)]
    return {
        "batch": f"{companies} companies x {drivers} drivers x {rate} events, error_rate {error_rate}"
                 + (f", late_arrival {late} up to {LATE_MAX_DELAY}" if late else ""),
        "roster": f"{int(active.sum())} active companies of {companies} onboarded (inactive ones emit no events, "
                  "as in a real run)",
        "events_per_batch": runs[0][0],
        "bytes_per_batch": runs[0][2],
        "seconds": [round(t, 3) for _, t, _ in runs],
        "events_per_s_median": round(median(events_per_s)),
        "events_per_s_best": round(max(events_per_s)),
        "companies_per_s_median": round(median(n / t for n, t, _ in comp_runs)),
        "stages_s": {name: [round(s[name], 3) for s in stages] for name in stages[0]},
        "in_memory_events_per_s": round(median(runs[0][0] / m for m in in_memory_s)),
        "disk_write_fsync_mb_per_s": round(_disk_speed()),
        **disk,
        "headline_end_to_end_over_min_in_memory_disk": [round(h, 2) for h in headline],
        "end_to_end_cpu_s": [round(c, 3) for c in run_cpu],
        "cores": cores,
        "cpu_floor_s": [round(f, 3) for f in cpu_floor_s],
        "headline_ceiling_cpu_bound": [round(c, 2) for c in ceiling],
        "peak_rss_mb": round(peak_rss, 1),
    }


def _stages(config, roster, window, folder: Path) -> dict[str, float]:
    """One batch, each stage alone (seconds, and CPU seconds of every thread as ``<stage>_cpu_s``): generate,
    render (records and issue log, streamed as the writer takes them, each chunk dropped), hash (sha256 of the
    text), write (O_DIRECT, no fsync) and fsync. In memory = generate + render. Hash and write run over the
    text rendered again and held (untimed)."""
    timings: dict[str, float] = {}

    @contextmanager
    def stage(name: str) -> Iterator[None]:
        started, cpu_started = time.perf_counter(), time.process_time()
        yield
        timings[f"{name}_s"] = time.perf_counter() - started
        timings[f"{name}_cpu_s"] = time.process_time() - cpu_started

    with stage("generate"):
        batch, plan = generate_batch(config, "events", window, roster)
    with stage("render"):
        size = sum(len(chunk) for chunk in chain(render_records(batch, plan), issue_chunks(batch, plan)))
    chunks: list[bytes | memoryview] = [*render_records(batch, plan), *issue_chunks(batch, plan)]
    assert sum(len(chunk) for chunk in chunks) == size
    with stage("hash"):
        digest = hashlib.sha256()
        for chunk in chunks:
            digest.update(chunk)
    path = folder / "stages.bin"
    with stage("write"):
        sink = FileSink(path, large=True)
        for chunk in chunks:
            sink.write(chunk)
        sink.close(sync=False)
    with stage("fsync"):
        bronze.fsync(path)
    path.unlink()
    return timings


def disk_share(batch_bytes: int, batch_seconds: float) -> dict[str, Any]:
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


LARGE_WINDOW_COMPANIES = 120_000  # x 25 drivers x 4.0: ~10 M events in the 10:00 window (a roster grown for months)
LARGEST_HELD_COMPANIES = 22_800  # x 25 x 4.0: 1,991,579 events at 10:00, just under HELD_EVENTS (made in one piece)


@benchmark("generation_large_window")
def bench_generation_large_window(quick: bool) -> dict[str, Any]:
    """One ~10 M-event production window made and published as a run does (in parts), clean and with 15 %
    defects, and the largest window with defects still made in one piece (just under ``HELD_EVENTS``), each
    in a fresh process importing what `fleetgen backfill` does: events/s and peak RSS, which must not grow
    with the window."""
    scale = 10 if quick else 1
    companies = LARGE_WINDOW_COMPANIES // scale
    results: dict[str, Any] = {"batch": f"{companies} companies x 25 drivers x 4.0 (active ones only), "
                                        "10:00-10:15 UTC",
                               "held_events": HELD_EVENTS}  # a window with defects up to this size: one piece
    cases = (("clean", companies, 0.0), ("defects_15pct", companies, 0.15),
             ("largest_held_defects_15pct", LARGEST_HELD_COMPANIES // scale, 0.15))
    for label, count, error_rate in cases:
        with tempfile.TemporaryDirectory(prefix="fleetgen-bench-") as tmp:
            done = subprocess.run([sys.executable, "-m", "app.bench.large_window", str(count), str(error_rate),
                                   tmp], capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            raise RuntimeError(f"the large window ({label}) failed: {done.stderr[-2000:]}")
        results[label] = json.loads(done.stdout.strip().splitlines()[-1])
    return results
