"""`fleetgen expect` and `verify` figures: rows/s over a 2-hour production backfill, verify on 1 M rows, and
`fleetgen expect` in a process of its own over a 4-hour backfill of ~6.5 M events (`python -m app.bench.expect
DATA_DIR OUT` does what the command does and prints its summary with the process's peak RSS)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.bench.registry import benchmark, peak_rss_mb
from app.core.config import Config, QualityInjectionConfig
from app.service.pipeline import Pipeline
from app.store import Store


@benchmark("expect_verify")
def bench_expect_verify(quick: bool) -> dict[str, Any]:
    """Expectations of a 2-hour backfill of the production preset with 15 % defects (regenerating every
    batch, checking it against its sha256, keeping the valid records, building gold), then `verify` of a
    silver events table of 1 M rows against an equal one."""
    # imported here: every benchmark's process imports this module, and pyarrow alone is ~40 MB of its RSS
    import pyarrow as pa
    import pyarrow.compute as pc

    from app.service.expectations import TABLES, derive
    from app.service.verification import compare

    start, end = datetime(2026, 11, 25, 6, tzinfo=UTC), datetime(2026, 11, 25, 7 if quick else 8, tzinfo=UTC)
    with tempfile.TemporaryDirectory(prefix="fleetgen-bench-") as tmp:
        config = Config.model_validate({
            "seed": 42, "output": {"data_dir": str(Path(tmp) / "data")},
            "company_onboarding_interval": "PT1H", "driver_event_interval": "PT15M"}).model_copy(
            update={"quality_injection": QualityInjectionConfig(enabled=True, error_rate=0.15)})
        store = Store.for_config(config)
        try:
            Pipeline(config, store).backfill(start, end)
            expectations = derive(config, store)
        finally:
            store.close()
    events = expectations.tables["silver/events"]
    large = _large_range(quick)
    target = 100_000 if quick else 1_000_000
    copies = -(-target // events.num_rows)
    big = pa.concat_tables([events.set_column(0, "event_id", pc.binary_join_element_wise(
        events["event_id"], pa.array([f"-{i}"] * events.num_rows), "")) for i in range(copies)]).slice(0, target)
    began = time.perf_counter()
    diff = compare("silver/events", big, big, TABLES["silver/events"]["key"])
    verify_s = time.perf_counter() - began
    return {"backfill": "production preset, 2 hours, 15 % defects" if not quick else "1 hour",
            "windows": expectations.windows, "records_regenerated": expectations.records_regenerated,
            "expect_seconds": round(expectations.seconds, 3),
            "expect_records_per_s": round(expectations.records_regenerated / expectations.seconds),
            "silver_rows": {name: t.num_rows for name, t in expectations.tables.items()},
            "verify_rows": big.num_rows, "verify_seconds": round(verify_s, 3),
            "verify_rows_per_s": round(big.num_rows / verify_s), "verify_equal": diff.equal,
            "peak_rss_mb": round(peak_rss_mb()), "expect_large_range": large}


def _large_range(quick: bool) -> dict[str, Any]:
    """`fleetgen expect` as a user runs it, over a 4-hour backfill of 1000 companies x 20 drivers x 5.0 with
    15 % defects (~6.5 M events): seconds and the process's peak RSS, which must not grow with the range."""
    companies = 1000 if not quick else 100
    start, end = datetime(2026, 11, 25, 12, tzinfo=UTC), datetime(2026, 11, 25, 16, tzinfo=UTC)
    with tempfile.TemporaryDirectory(prefix="fleetgen-bench-") as tmp:
        data = Path(tmp) / "data"
        config = Config.model_validate({
            "seed": 42, "number_of_companies": companies, "drivers_per_company": 20, "event_rate_per_driver": 5.0,
            "output": {"data_dir": str(data)}, "quality_injection": {"enabled": True, "error_rate": 0.15}})
        store = Store.for_config(config)
        try:
            Pipeline(config, store).backfill(start, end)
        finally:
            store.close()
        began = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "app.bench.expect", str(data), str(Path(tmp) / "expected")],
                              capture_output=True, text=True, timeout=3600)
        seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"fleetgen expect failed: {done.stderr[-2000:]}")
    summary = json.loads(done.stdout)
    return {"backfill": f"{companies} companies x 20 drivers x 5.0, 15 % defects, 12:00-16:00 UTC",
            "records_regenerated": summary["records_regenerated"],
            "rows": {name: table["rows"] for name, table in summary["tables"].items()},
            "seconds_whole_process": round(seconds, 2),
            "records_per_s": round(summary["records_regenerated"] / seconds),
            "peak_rss_mb": summary["peak_rss_mb"]}


def _expect_alone(data: Path, out: Path) -> dict[str, Any]:
    """What `fleetgen expect --data-dir DATA --out OUT` does, in this process."""
    from app.service.expectations import config_of_dataset, derive_into, write_summary

    config = config_of_dataset(data)
    store = Store(config.database_url, auto_migrate=False)
    try:
        derived = derive_into(config, store, out)
    finally:
        store.close()
    summary = write_summary(derived, out, {"records_regenerated": derived.records_regenerated})
    return {**summary, "peak_rss_mb": round(peak_rss_mb(), 1)}


if __name__ == "__main__":
    print(json.dumps(_expect_alone(Path(sys.argv[1]), Path(sys.argv[2]))))
