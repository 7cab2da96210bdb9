"""The bytes themselves, pinned: a production backfill (defects, late arrivals, churn) and an emulated one hash
to what the code wrote before the rendering was reworked for speed (recorded at commit 660eb66 and checked again
at fda745e). Any change to a record, issue log or late-arrival log of either fails here.

The production case is also made with its windows cut into many small parts (held whole once made, and made
part by part with the defects drawn over the whole window and kept in a file): how a window is cut never shows
in its bytes. Both
are also written with the compiled events writer for every chunk (it serves only large chunks as shipped)
and with numpy alone (what a machine without a C compiler runs)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest

from app.core.config import Config
from app.core.generation import batch, compiled, encoding, events, itinerary, spill
from tests.conftest import backfill

CASES = {
    "production": ({"number_of_companies": 60, "drivers_per_company": 8, "event_rate_per_driver": 4.0,
                    "quality_injection": {"enabled": True, "error_rate": 0.2},
                    "late_arrival": {"probability": 0.05, "max_delay": "PT30M"},
                    "companies": {"churn": {"monthly_rate": 0.3, "driver_changes_per_month": 2.0}}},
                   datetime(2026, 11, 25, 9, tzinfo=UTC), 59,
                   "6f6f0f9e189797865f0d3cbbd832f30674bfe7d9cb5d34fb7c7e924bf780306c"),
    "emulated": ({"quality_injection": {"enabled": True, "error_rate": 0.3},
                  "late_arrival": {"probability": 0.1, "max_delay": "PT30S"},
                  "emulated_mode": {"enabled": True, "company_batch_interval": "PT10S",
                                    "driver_batch_interval": "PT10S"}},
                 datetime(2026, 11, 25, 6, 5, tzinfo=UTC), 196,
                 "a05848da519b3fce55f5859033f4a2fc4caf7c0441f9a997b301fa0f562bbced"),
}


CUTS = {  # part size (events), largest window held whole, driver-days per shift-table block
    "as shipped": (events.PART_EVENTS, batch.HELD_EVENTS, itinerary.SHIFT_BLOCK_DRIVERS),
    "small parts, held": (300, 10**9, 50),
    "small parts, streamed": (300, 0, 50),
}
WRITERS = {  # smallest chunk the compiled events writer takes, whether the compiled writers are there at all
    "as shipped": (encoding.COMPILED_MIN_ROWS, True),
    "compiled for every chunk": (1, True),
    "numpy only (no C compiler at install)": (1, False),
}


@pytest.mark.parametrize(("name", "cut", "writer"), [
    *((n, "as shipped", w) for n in CASES for w in WRITERS), *(("production", c, "as shipped") for c in CUTS)])
def test_the_written_bytes_are_the_pinned_ones(name, cut, writer, tmp_path, monkeypatch):
    part_events, held_events, block = CUTS[cut]
    smallest_compiled, built = WRITERS[writer]
    monkeypatch.setattr(encoding, "COMPILED_MIN_ROWS", smallest_compiled)
    if not built:
        monkeypatch.setattr(compiled, "native", None)
    monkeypatch.setattr(events, "PART_EVENTS", part_events)
    monkeypatch.setattr(batch, "HELD_EVENTS", held_events)
    monkeypatch.setattr(itinerary, "SHIFT_BLOCK_DRIVERS", block)
    monkeypatch.setattr(spill, "STRIDE", 3)  # a streamed window's spilled plan is read a few rows at a time
    spilled = []
    real_spill = spill.SpilledPlan.__init__
    monkeypatch.setattr(spill.SpilledPlan, "__init__", lambda self, *a: spilled.append(1) or real_spill(self, *a))
    made_parts = []
    real_itinerary = events.ProductionEvents.itinerary
    monkeypatch.setattr(events.ProductionEvents, "itinerary",
                        lambda self, index: made_parts.append(index) or real_itinerary(self, index))
    settings, end, file_count, digest = CASES[name]
    config = Config.model_validate({"seed": 5, "output": {"data_dir": str(tmp_path / name)}, **settings})
    root = backfill(config, datetime(2026, 11, 25, 6, tzinfo=UTC), end)
    files = sorted(p for p in (root / "raw").rglob("*") if p.is_file() and p.name != "_batch_meta.json")
    hashed = hashlib.sha256()
    for path in files:  # names and bytes of every record file, issue log, late-arrival log and marker
        hashed.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    assert (len(files), hashed.hexdigest()) == (file_count, digest)
    if cut != "as shipped":  # the windows were really cut
        assert max(made_parts) >= 10
    assert bool(spilled) == (cut == "small parts, streamed")


def test_a_window_made_in_parts_has_the_counts_of_one_made_whole(tmp_path, monkeypatch):
    """The meta files (counts, issue counts, late count, checksums) agree too, not just the files' bytes."""
    settings, end, _, _ = CASES["production"]

    def metas(cut: str) -> dict[str, dict]:
        part_events, held_events, block = CUTS[cut]
        monkeypatch.setattr(events, "PART_EVENTS", part_events)
        monkeypatch.setattr(batch, "HELD_EVENTS", held_events)
        monkeypatch.setattr(itinerary, "SHIFT_BLOCK_DRIVERS", block)
        config = Config.model_validate({"seed": 5, "output": {"data_dir": str(tmp_path / cut)}, **settings})
        root = backfill(config, datetime(2026, 11, 25, 6, tzinfo=UTC), end)
        timing = {"generated_at", "published_at", "lateness_ms", "duration_s"}
        return {str(p.parent.relative_to(root)): {k: v for k, v in json.loads(p.read_text()).items() if k not in timing}
                for p in (root / "raw").rglob("_batch_meta.json")}

    whole, parts = metas("as shipped"), metas("small parts, streamed")
    assert whole == parts
    assert sum(m["corrupted_count"] for m in whole.values()) > 0 and sum(m.get("late_count", 0) for m in whole.values())
