"""Emulated batch cost against the roster's size: 10 k companies vs 3 M, through the real pipeline."""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

from app.bench.registry import benchmark, current_rss_mb, peak_rss_mb
from app.core.config import Config
from app.core.timeline import Window
from app.service.pipeline import Pipeline
from app.store import Store
from app.store.roster import RosterRows

BATCHES = 60
START = datetime(2026, 11, 25, 12, tzinfo=UTC)


def _synthetic_roster(companies: int, before_s: int) -> RosterRows:
    """Companies onboarded (one per second of window) before ``before_s``: ~30 days of emulated onboarding
    at 1 s and 1 company per batch is 2.6 M; every one with 1-20 drivers, 95 % active."""
    rng = np.random.default_rng(7)
    ends = np.sort(rng.integers(before_s - 40 * 86_400, before_s, companies)).astype(np.int64)
    return RosterRows.of(ends, rng.integers(0, 256, (companies, 16), np.uint8),
                         rng.integers(0, 4, companies).astype(np.uint8), rng.random(companies) < 0.95,
                         rng.integers(1, 21, companies).astype(np.int32))


def _run(companies: int, batches: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fleetgen-bench-") as tmp:
        config = Config.model_validate({
            "seed": 42, "output": {"data_dir": str(Path(tmp) / "data")},
            "quality_injection": {"enabled": True, "error_rate": 0.05},
            "emulated_mode": {"enabled": True, "company_batch_interval": "PT1S", "driver_batch_interval": "PT1S"}})
        store = Store(config.database_url)
        pipeline = Pipeline(config, store)
        end = START + timedelta(seconds=batches + 1)
        pipeline.catch_up("companies", end, start_if_empty=START, limit=10**6)  # the company ledger is ahead
        rss_before = current_rss_mb()
        roster = _synthetic_roster(companies, int(START.timestamp()))
        roster.merge(store.load_roster())
        # Hand the pipeline the big roster as if it had been loaded from the store at start-up (loading
        # 3 M rows from SQLite is a one-off start-up cost, not a per-batch one, and not measured here).
        pipeline._roster, pipeline._roster_mark = roster, store.roster_mark()
        rss_roster = current_rss_mb() - rss_before
        seconds, records = [], []
        for i in range(batches):
            window = Window(START + timedelta(seconds=i), START + timedelta(seconds=i + 1))
            began = time.perf_counter()
            outcome = pipeline.produce("events", window)
            seconds.append(time.perf_counter() - began)
            assert outcome.status == "committed", outcome
            records.append(outcome.record_count)
        store.close()
    ms = sorted(s * 1000 for s in seconds)
    return {"companies": companies, "batches": batches, "records_per_batch": [min(records), max(records)],
            "batch_ms_median": round(median(ms), 2), "batch_ms_p90": round(ms[int(0.9 * len(ms))], 2),
            "roster_memory_mb": round(rss_roster, 1)}


@benchmark("emulated_roster_scaling")
def bench_emulated_roster_scaling(quick: bool) -> dict[str, Any]:
    """One emulated driver batch (claim, roster check, generate, publish with fsync, commit) with a
    10 k-company roster and with a 3 M-company one: the cost must follow the batch, not the roster."""
    batches = 20 if quick else BATCHES
    small = _run(10_000, batches)
    large = _run(3_000_000, batches)
    return {"roster_10k": small, "roster_3m": large,
            "ratio_median_3m_over_10k": round(large["batch_ms_median"] / small["batch_ms_median"], 2),
            "peak_rss_mb_with_3m": round(peak_rss_mb(), 1)}
