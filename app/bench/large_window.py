"""One large production window made and published in a process of its own, importing only what a
`fleetgen backfill` does, so its peak RSS is the window's (`python -m app.bench.large_window COMPANIES
ERROR_RATE FOLDER` prints one JSON line; run by the `generation_large_window` benchmark)."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from app.bench.registry import peak_rss_mb
from app.core.memory import tune_malloc

DRIVERS, RATE = 25, 4.0


def main(companies: int, error_rate: float, folder: Path) -> dict[str, float | int | str]:
    tune_malloc()  # as `fleetgen` does, first
    from app.core import bronze
    from app.core.config import Config
    from app.core.generation.batch import HELD_EVENTS
    from app.core.generation.companies import generate_companies
    from app.core.generation.events import DriverPool, Roster
    from app.core.generation.seeding import batch_rng
    from app.core.timeline import Window
    from app.service.pipeline import make_batch

    config = Config.model_validate({
        "seed": 42, "number_of_companies": companies, "drivers_per_company": DRIVERS, "event_rate_per_driver": RATE,
        "output": {"data_dir": str(folder)},
        "quality_injection": {"enabled": error_rate > 0, "error_rate": error_rate}})
    onboarding = Window(datetime(2026, 11, 25, 9, tzinfo=UTC), datetime(2026, 11, 25, 10, tzinfo=UTC))
    made = generate_companies(config, onboarding, batch_rng(42, "companies", onboarding))
    active = made.active.astype(bool)
    roster = Roster(made.company_uuid[active], made.geography[active], made.drivers_count[active])
    del made
    window = Window(datetime(2026, 11, 25, 10, tzinfo=UTC), datetime(2026, 11, 25, 10, 15, tzinfo=UTC))
    before = peak_rss_mb()
    started = time.perf_counter()
    layout = bronze.Layout(config.output.local_dir)
    staged = make_batch(config, layout, "events", window, DriverPool.of(roster), None)
    published = bronze.finish_batch(layout, staged.staged, {"bench": True}, time.time())
    seconds = time.perf_counter() - started
    return {"active_companies": int(active.sum()), "events": staged.record_count,
            "made": "in one piece" if error_rate > 0 and staged.record_count <= HELD_EVENTS else "in parts",
            "bytes": sum(f.bytes for f in published.files.values()), "seconds": round(seconds, 2),
            "events_per_s": round(staged.record_count / seconds), "peak_rss_mb_before_the_window": round(before, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1)}


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3]))))
