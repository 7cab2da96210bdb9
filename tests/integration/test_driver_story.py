"""Production events tell a true story (issue #13): per driver, OFF → DRIVING → STOPPED with deliveries
only while stopped, no teleporting, still while stopped, inside the region, one truck per shift and
never two drivers in one truck; the day's volume follows the configured rate; and every path (window
by window with a restart, catch-up, backfill) writes the same bytes."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
import uuid
from collections import defaultdict
from datetime import timedelta

import numpy as np
import pyarrow.parquet as pq
import pytest

from app.cli import main
from app.core.generation import geography as geo
from app.core.generation import itinerary as it
from app.core.generation.emulated_fleet import depot_fixed
from app.core.timeline import Window
from app.core.workday import mean_deliveries, slot_seconds
from app.service.pipeline import Pipeline
from app.store import Store
from tests.conftest import backfill, utc

DAY_BEFORE, DAY, DAY_AFTER = utc(2026, 11, 24), utc(2026, 11, 25), utc(2026, 11, 26)
SHIFT_GAP_S = 4 * 3600  # longer without an event: the shift ended (OFF)
REGION = {code: index for index, code in enumerate(geo.CODES)}


def small_fleet(make_config, **extra):
    return make_config(number_of_companies=5, drivers_per_company=4, event_rate_per_driver=3.5,
                       company_onboarding_interval="PT6H",
                       companies={"active_probability": 1.0,
                                  "churn": {"monthly_rate": 0.999, "driver_changes_per_month": 10.0}},
                       quality_injection={"enabled": True, "error_rate": 0.1},
                       late_arrival={"probability": 0.05, "max_delay": "PT45M"}, **extra)


def clean_records(data_dir, stream):
    """Records without an injected defect (duplicates too: they repeat a clean line), in file order."""
    for batch in sorted((data_dir / "raw" / stream).iterdir()):
        log = batch / "_issues.ndjson"
        touched = {json.loads(line)["line"] for line in log.read_text().splitlines()} if log.exists() else set()
        for number, line in enumerate((batch / f"{stream}.jsonl").read_text().splitlines(), start=1):
            if number not in touched:
                yield batch.name, json.loads(line)


def km(a, b) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (a["lat"], a["lon"], b["lat"], b["lon"]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def seconds(text: str) -> float:
    return (np.datetime64(text.rstrip("Z"), "ms").astype(np.int64)) / 1000


@pytest.fixture(scope="module")
def two_days(tmp_path_factory):
    """Two days of a small production fleet: the truth (no defects), the same with 10 % defects, and
    with 5 % late arrivals (up to 45 minutes)."""
    from app.core.config import Config

    made = {}
    for name, rate, late in (("truth", 0.0, 0.0), ("defects", 0.1, 0.0), ("late", 0.0, 0.05)):
        config = Config.model_validate({
            "seed": 42, "output": {"data_dir": str(tmp_path_factory.mktemp(name) / "data")},
            "number_of_companies": 5, "drivers_per_company": 4, "event_rate_per_driver": 3.5,
            "company_onboarding_interval": "P1D", "companies": {"active_probability": 1.0},
            "quality_injection": {"enabled": rate > 0, "error_rate": rate},
            "late_arrival": {"probability": late, "max_delay": "PT45M"}})
        backfill(config, DAY_BEFORE, DAY_AFTER)
        made[name] = config.output.local_dir
    return made


def test_defects_sit_on_top_of_the_story_a_clean_record_is_a_true_one(two_days):
    assert_clean_lines_are_true(two_days["truth"], two_days["defects"])


def assert_clean_lines_are_true(truth, defects):
    """Every line of ``defects`` the issue log does not name is the same line of ``truth``."""
    batches = sorted(p.name for p in (defects / "raw/events").iterdir())
    touched_total = 0
    for batch in batches:
        true_lines = (truth / "raw/events" / batch / "events.jsonl").read_text().splitlines()
        lines = (defects / "raw/events" / batch / "events.jsonl").read_text().splitlines()
        log = defects / "raw/events" / batch / "_issues.ndjson"
        touched = {json.loads(x)["line"] for x in log.read_text().splitlines()} if log.exists() else set()
        touched_total += len(touched)
        assert len(lines) == len(true_lines)
        assert all(lines[n - 1] == true_lines[n - 1] for n in range(1, len(lines) + 1) if n not in touched), batch
    assert touched_total > 20


def at_depot(event: dict, region: str) -> bool:
    """Whether an event is at its company's depot (emulated shifts start and end there)."""
    company = np.frombuffer(uuid.UUID(event["company_id"]).bytes, np.uint8).reshape(1, 16)
    lat, lon = depot_fixed(company, np.array([REGION[region]], np.uint8))
    return (round(event["location"]["lat"] * 1e5), round(event["location"]["lon"] * 1e5)) == (lat[0], lon[0])


def rule_violations(data_dir, shift_gap_s: float | None, data_end_s: float, complete_before_s: float | None = None,
                    regions: dict[str, str] | None = None) -> tuple[list[str], dict, float]:
    """Every clean record checked against the rules, per driver across all windows: (violations, drivers'
    event counts, the fastest implied speed). A shift ends after ``shift_gap_s`` without an event
    (production) or, with None (emulated), when a driver leaves the depot in another truck. With late
    arrivals, events from ``complete_before_s`` on are left out: some of their time have not arrived.
    ``regions`` (company_id → geography) when company records may carry defects."""
    region = regions or {c["company_id"]: c["geography"] for _, c in clean_records(data_dir, "companies")}
    by_driver: dict[str, list[dict]] = defaultdict(list)
    for _, event in clean_records(data_dir, "events"):
        if complete_before_s is None or seconds(event["event_timestamp"]) < complete_before_s:
            by_driver[event["driver_id"]].append(event)
    violations: list[str] = []
    runs: dict[tuple[str, str], list[tuple[float, float, str]]] = defaultdict(list)  # (company, truck) -> uses
    fastest = 0.0
    for driver, events in by_driver.items():
        events.sort(key=lambda e: seconds(e["event_timestamp"]))  # stable: same-millisecond order kept
        state, previous, run = "OFF", None, None
        for event in events:
            at = seconds(event["event_timestamp"])
            if (shift_gap_s is not None and previous is not None
                    and at - seconds(previous["event_timestamp"]) > shift_gap_s):
                if state != "STOPPED":
                    violations.append(f"{driver}: shift ended while {state} at {previous['event_timestamp']}")
                state, previous = "OFF", None
            kind = event["event_type"]
            allowed = {"start_driving": ("OFF", "STOPPED"), "stopped_driving": ("DRIVING",),
                       "delivered": ("STOPPED",)}[kind]
            if state not in allowed:
                violations.append(f"{driver}: {kind} while {state} at {event['event_timestamp']}")
            if previous is not None:
                distance = km(previous["location"], event["location"])
                elapsed_h = (at - seconds(previous["event_timestamp"])) / 3600
                if state == "STOPPED" and distance > 0.05:
                    violations.append(f"{driver}: moved {distance * 1000:.0f} m while stopped")
                if distance > 0:
                    speed = distance / max(elapsed_h, 1e-9)
                    fastest = max(fastest, speed)
                    if speed > 130:
                        violations.append(f"{driver}: {speed:.0f} km/h before {event['event_timestamp']}")
            code = REGION[region[event["company_id"]]]
            lat, lon = event["location"]["lat"], event["location"]["lon"]
            if not (geo.LAT_MIN[code] <= lat <= geo.LAT_MAX[code] and geo.LON_MIN[code] <= lon <= geo.LON_MAX[code]):
                violations.append(f"{driver}: {lat}, {lon} outside {region[event['company_id']]}")
            truck = event["truck_id"]
            new_shift = previous is None or (shift_gap_s is None and kind == "start_driving" and state == "STOPPED"
                                             and at_depot(event, region[event["company_id"]]))
            if run is not None and not new_shift and truck != run[2]:
                violations.append(f"{driver}: changed truck within a shift ({run[2]} -> {truck})")
            if run is None or new_shift or truck != run[2]:  # a shift's use of its truck, from first to last event
                run = [at, at, truck]
                runs[(event["company_id"], truck)].append(run)
            run[1] = at
            state = {"start_driving": "DRIVING", "stopped_driving": "STOPPED", "delivered": "STOPPED"}[kind]
            previous = event
        still_working = seconds(previous["event_timestamp"]) > data_end_s - 10 * 3600
        if shift_gap_s is not None and state != "STOPPED" and not still_working:  # the data's end cuts a shift
            violations.append(f"{driver}: the last shift ended while {state}")
    for (_, truck), uses in runs.items():  # a truck is never driven by two drivers at once
        uses.sort()
        violations += [f"{truck} driven by two drivers at {b[0]}" for a, b in itertools.pairwise(uses) if b[0] <= a[1]]
    return violations, {d: len(e) for d, e in by_driver.items()}, fastest


def test_every_driver_follows_the_rules_across_all_windows(two_days):
    violations, drivers, fastest = rule_violations(two_days["truth"], SHIFT_GAP_S, DAY_AFTER.timestamp())
    assert len(drivers) == 40
    assert not violations, "\n".join(violations[:20])
    assert 20 < fastest <= 130  # drivers do drive
    late = two_days["late"]  # the same fleet with 5 % late arrivals: the same story, told out of order
    violations, drivers, _ = rule_violations(late, SHIFT_GAP_S, DAY_AFTER.timestamp(),
                                             complete_before_s=DAY_AFTER.timestamp() - 45 * 60)
    assert len(drivers) == 40
    assert not violations, "\n".join(violations[:20])
    assert 20 < fastest <= 130  # drivers do drive


def late_arrival_facts(data_dir) -> tuple[int, int, list[str]]:
    """(records, late arrivals, problems) over every events batch: each record inside the batch's
    accepted range, the late ones exactly those before its window, each listed in the ground truth with
    the window it belongs to, no event twice."""
    records = late = 0
    problems: list[str] = []
    seen: set[str] = set()
    for batch in sorted((data_dir / "raw/events").iterdir()):
        meta = json.loads((batch / "_batch_meta.json").read_text())
        lines = [json.loads(x) for x in (batch / "events.jsonl").read_text().splitlines()]
        truth = batch / "_late_arrivals.ndjson"
        listed = [json.loads(x) for x in truth.read_text().splitlines()] if truth.exists() else []
        before = [n for n, e in enumerate(lines, start=1) if e["event_timestamp"] < meta["interval_start"]]
        records, late = records + len(lines), late + len(before)
        if [x["line"] for x in listed] != before or meta["late_count"] != len(before):
            problems.append(f"{batch.name}: late lines {before} but ground truth {listed} / {meta['late_count']}")
        interval_s = int(seconds(meta["interval_end"]) - seconds(meta["interval_start"]))
        for entry in listed:
            event = lines[entry["line"] - 1]
            own = int(seconds(event["event_timestamp"])) // interval_s * interval_s
            if (entry["event_id"], entry["event_timestamp"]) != (event["event_id"], event["event_timestamp"]) or \
                    entry["true_batch_id"] != time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(own)):
                problems.append(f"{batch.name}: ground truth {entry} does not match {event}")
        for event in lines:
            if not meta["accepts_from"] <= event["event_timestamp"] < meta["interval_end"]:
                problems.append(f"{batch.name}: {event['event_timestamp']} outside its batch's accepted range")
            if event["event_id"] in seen:
                problems.append(f"{event['event_id']} twice")
            seen.add(event["event_id"])
    return records, late, problems


def story(data_dir, start_s: float, end_s: float) -> list[tuple]:
    """Every event that happened in [start_s, end_s), without its id or batch: what drivers did."""
    return sorted((e["driver_id"], e["truck_id"], e["event_type"], e["event_timestamp"], e["location"]["lat"],
                   e["location"]["lon"]) for _, e in _all_records(data_dir)
                  if start_s <= seconds(e["event_timestamp"]) < end_s)


def test_late_arrivals_are_five_percent_each_once_within_max_delay_and_in_their_true_window(two_days, tmp_path):
    late_data, truth = two_days["late"], two_days["truth"]
    records, late, problems = late_arrival_facts(late_data)
    assert not problems, "\n".join(problems[:10])
    assert 0.04 <= late / records <= 0.06, late / records
    # the same events as without late arrival, only in later batches: nothing lost, nothing twice
    complete = DAY_AFTER.timestamp() - 45 * 60
    assert story(late_data, DAY_BEFORE.timestamp(), complete) == story(truth, DAY_BEFORE.timestamp(), complete)
    # `fleetgen expect` keeps each late event, in the window it happened in
    assert main(["expect", "--data-dir", str(late_data), "--out", str(tmp_path / "e")]) == 0
    silver = pq.read_table(tmp_path / "e/silver/events.parquet").to_pydict()
    moved = 0
    for stamp, own, batch_id in zip(silver["event_timestamp"], silver["window_start"], silver["batch_id"],
                                    strict=True):
        assert own.timestamp() == stamp.timestamp() // 900 * 900
        moved += own.strftime("%Y%m%dT%H%M%SZ") < batch_id
    assert moved == late


def test_a_delay_that_is_not_a_whole_number_of_windows_loses_no_late_event(tmp_path):
    """With max_delay PT20M on 15-minute windows an event at 09:44 may arrive in the 10:00 window, two
    windows on; the window must look back far enough to find it (it looked back one window and lost it)."""
    from app.core.config import Config

    made = {}
    for name, late in (("truth", 0.0), ("late", 0.3)):
        config = Config.model_validate({
            "seed": 8, "output": {"data_dir": str(tmp_path / name)}, "number_of_companies": 12,
            "drivers_per_company": 5, "event_rate_per_driver": 3.5, "company_onboarding_interval": "P1D",
            "companies": {"active_probability": 1.0}, "late_arrival": {"probability": late, "max_delay": "PT20M"}})
        backfill(config, DAY_BEFORE, DAY)
        made[name] = config.output.local_dir
    records, late, problems = late_arrival_facts(made["late"])
    assert not problems, "\n".join(problems[:10])
    assert late > 100
    complete = DAY.timestamp() - 20 * 60
    assert story(made["late"], DAY_BEFORE.timestamp(), complete) == story(made["truth"], DAY_BEFORE.timestamp(),
                                                                         complete)


def test_the_day_holds_the_configured_rate_and_follows_the_working_day(two_days):
    """Drivers onboarded the day before work every shift of the day: their mean events per driver per
    window is the configured rate (±10 %), and the volume rises and falls with the local working day."""
    data = two_days["truth"]
    baseline = {c["company_id"] for batch, c in clean_records(data, "companies") if batch < "20261124"}
    per_window: dict[str, int] = defaultdict(int)
    for batch, event in _all_records(data):
        if batch.startswith("20261125") and event.get("company_id") in baseline:
            per_window[batch] += 1
    drivers = len(baseline) * 4
    mean = sum(per_window.values()) / (96 * drivers)
    assert abs(mean - 3.5) / 3.5 < 0.10, mean
    assert max(per_window.values()) > 2 * (sum(per_window.values()) / 96)  # a working day, not flat


def _all_records(data_dir):
    for batch in sorted((data_dir / "raw" / "events").iterdir()):
        for line in (batch / "events.jsonl").read_text().splitlines():
            yield batch.name, json.loads(line)


def test_the_mean_rate_over_a_day_for_a_large_fleet():
    rng = np.random.default_rng(3)
    m = 400
    fleet = it.Fleet(rng.integers(0, 256, (m, 16), dtype=np.uint8), rng.integers(0, 4, m).astype(np.uint8),
                     np.full(m, 10, np.int32), np.zeros(m, np.int64))
    deliveries = mean_deliveries([0.40, 0.35, 0.25])
    boxes = (geo.LAT_MIN, geo.LAT_MAX, geo.LON_MIN, geo.LON_MAX)
    for rate, minutes in ((4.0, 15), (0.5, 60)):
        slot = slot_seconds(rate, minutes * 60, deliveries)
        total, windows = 0, 24 * 60 // minutes
        for index in range(windows):
            start = DAY + timedelta(minutes=minutes * index)
            window = Window(start, start + timedelta(minutes=minutes))
            total += len(it.window_events(7, fleet, window, slot, deliveries, 1.1, boxes).timestamp_ms)
        assert abs(total / (windows * m * 10) - rate) / rate < 0.03, (rate, total)


def digests(data_dir) -> dict[str, str]:
    return {str(p.relative_to(data_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(data_dir.glob("raw/*/*/*.jsonl"))}


def test_window_by_window_with_a_restart_catch_up_and_backfill_write_the_same_bytes(make_config, tmp_path):
    made = {}
    for way in ("windows", "catch_up", "backfill"):
        config = small_fleet(make_config, output={"data_dir": str(tmp_path / way)})
        if way == "backfill":
            backfill(config, DAY, DAY_AFTER)
        elif way == "catch_up":
            store = Store.for_config(config)
            pipeline = Pipeline(config, store)
            pipeline.catch_up("events", DAY_AFTER, start_if_empty=DAY, limit=10**6)  # one wake-up after a day down
            pipeline.catch_up("companies", DAY_AFTER, limit=10**6)
            store.close()
        else:
            moments = [DAY + timedelta(minutes=15 * i, seconds=1) for i in range(1, 97)]
            for half in (moments[:40], moments[40:]):  # a restart: a new pipeline and store in the middle
                store = Store.for_config(config)
                pipeline = Pipeline(config, store)
                if half[0] == moments[0]:
                    pipeline.catch_up("events", DAY + timedelta(seconds=1), start_if_empty=DAY)
                for moment in half:
                    pipeline.catch_up("companies", moment)
                    pipeline.catch_up("events", moment)
                store.close()
        made[way] = digests(tmp_path / way)
    assert len(made["backfill"]) > 96
    assert made["windows"] == made["catch_up"] == made["backfill"]
    changes = [line for path in (tmp_path / "backfill" / "raw/companies").glob("*/companies.jsonl")
               for line in path.read_text().splitlines() if '"updated_at"' in line and
               json.loads(line).get("updated_at") != json.loads(line).get("onboarded_at")]
    assert changes  # company changes (churn) are in the bytes compared
    empty = hashlib.sha256(b"").hexdigest()
    assert sum(digest != empty for name, digest in made["backfill"].items() if "events" in name) > 40


def test_drivers_join_at_the_first_slot_after_onboarding_and_never_before():
    rng = np.random.default_rng(5)
    m = 50
    uuids, regions = rng.integers(0, 256, (m, 16), dtype=np.uint8), np.ones(m, np.uint8)  # EU, UTC+1
    deliveries = mean_deliveries([0.40, 0.35, 0.25])
    slot = slot_seconds(3.5, 900, deliveries)
    boxes = (geo.LAT_MIN, geo.LAT_MAX, geo.LON_MIN, geo.LON_MAX)
    window = Window(utc(2026, 11, 25, 11), utc(2026, 11, 25, 11, 15))  # 12:00 local: everyone is working
    for since, expect_events in ((utc(2026, 11, 25, 12), False), (utc(2026, 11, 25, 11, 5), True)):
        fleet = it.Fleet(uuids, regions, np.full(m, 3, np.int32), np.full(m, int(since.timestamp()), np.int64))
        day = it.window_events(1, fleet, window, slot, deliveries, 1.1, boxes)
        assert (len(day.timestamp_ms) > 0) == expect_events
        if expect_events:  # joined mid-shift: every driver's first event leaves from OFF, after onboarding
            assert day.timestamp_ms.min() >= since.timestamp() * 1000
            first = {}
            for company, driver, kind in zip(day.company, day.driver, day.event_type, strict=True):
                first.setdefault((company, driver), kind)
            assert set(first.values()) == {0}


# ---- emulated mode: a small fleet whose state carries from batch to batch ----------------------------

def emulated(make_config, data_dir, **extra):
    extra.setdefault("late_arrival", {"probability": 0.05, "max_delay": "PT30S"})
    return make_config(drivers_per_company=4, output={"data_dir": str(data_dir)},
                       emulated_mode={"enabled": True, "company_batch_interval": "PT10S",
                                      "driver_batch_interval": "PT1S", "companies_per_batch": 1,
                                      "events_per_batch_min": 5, "events_per_batch_max": 20}, **extra)


EMULATED_START = utc(2026, 11, 25, 12)


def test_ten_emulated_minutes_follow_the_rules_and_keep_the_batch_sizes(make_config, tmp_path):
    """600 one-second batches (what ten minutes of `make run-emulated`-style cadence commit; backfill
    writes the same bytes as live, tested below): every clean record per driver across all batches obeys
    the rules, and every batch made once the roster has drivers holds 5-20 events."""
    end = EMULATED_START + timedelta(minutes=10)
    config = emulated(make_config, tmp_path / "data")
    backfill(config, EMULATED_START, end)
    defective = emulated(make_config, tmp_path / "defects", quality_injection={"enabled": True, "error_rate": 0.1})
    backfill(defective, EMULATED_START, EMULATED_START + timedelta(minutes=1))
    assert_clean_lines_are_true(config.output.local_dir, defective.output.local_dir)
    violations, drivers, fastest = rule_violations(config.output.local_dir, None, 0,
                                                   complete_before_s=end.timestamp() - 30)
    assert not violations, "\n".join(violations[:20])
    assert len(drivers) > 40 and sum(drivers.values()) > 5000
    assert 20 < fastest <= 130
    sizes = []
    for batch in sorted((config.output.local_dir / "raw/events").iterdir()):
        meta = json.loads((batch / "_batch_meta.json").read_text())
        if batch.name >= "20261125T120010Z":  # the first company window closed: drivers exist
            sizes.append(meta["record_count"])
    assert len(sizes) == 590 and min(sizes) >= 5 and max(sizes) <= 20
    records, late, problems = late_arrival_facts(config.output.local_dir)
    assert not problems, "\n".join(problems[:10])
    assert 0.04 <= late / records <= 0.06, late / records
    assert len(set(sizes)) == 16  # every size of the range occurs
    local = config.output.local_dir
    spare = [e for _, e in clean_records(local, "events") if e["truck_id"][-4:] != e["driver_id"][-4:]]
    assert spare  # some shifts take a spare truck


def test_emulated_window_by_window_with_a_restart_catch_up_and_backfill_write_the_same_bytes(make_config, tmp_path):
    end = EMULATED_START + timedelta(minutes=2)
    made = {}
    for way in ("windows", "catch_up", "backfill"):
        config = emulated(make_config, tmp_path / way, quality_injection={"enabled": True, "error_rate": 0.1})
        if way == "backfill":
            backfill(config, EMULATED_START, end)
        elif way == "catch_up":
            store = Store.for_config(config)
            pipeline = Pipeline(config, store)
            pipeline.catch_up("events", end, start_if_empty=EMULATED_START, limit=10**6)
            pipeline.catch_up("companies", end, limit=10**6)
            store.close()
        else:
            moments = [EMULATED_START + timedelta(seconds=s, milliseconds=5) for s in range(1, 121)]
            for half in (moments[:50], moments[50:]):  # a restart: a new pipeline and store in the middle
                store = Store.for_config(config)
                pipeline = Pipeline(config, store)
                if half[0] == moments[0]:
                    pipeline.catch_up("events", EMULATED_START + timedelta(milliseconds=5),
                                      start_if_empty=EMULATED_START)
                for moment in half:
                    pipeline.catch_up("companies", moment)
                    pipeline.catch_up("events", moment)
                store.close()
        made[way] = digests(tmp_path / way)
    assert sum("events" in name for name in made["backfill"]) == 120
    assert made["windows"] == made["catch_up"] == made["backfill"]


def test_an_emulated_batch_whose_commit_failed_is_made_again_from_the_same_state(make_config, tmp_path, monkeypatch):
    """The fleet's state moves only with a committed batch: a retried window writes what it would have."""
    reference = emulated(make_config, tmp_path / "reference")
    backfill(reference, EMULATED_START, EMULATED_START + timedelta(seconds=30))
    config = emulated(make_config, tmp_path / "retried")
    store = Store.for_config(config)
    pipeline = Pipeline(config, store)
    real_commit, failures = store.commit, []

    def flaky_commit(row, *args, **kwargs):
        if row.stream == "events" and row.batch_id == "20261125T120020Z" and not failures:
            failures.append(row.batch_id)
            raise RuntimeError("disk full (injected)")
        return real_commit(row, *args, **kwargs)

    monkeypatch.setattr(store, "commit", flaky_commit)
    first = pipeline.catch_up("events", EMULATED_START + timedelta(seconds=30), start_if_empty=EMULATED_START,
                              limit=10**6)
    assert [o.status for o in first if o.window.batch_id == "20261125T120020Z"] == ["failed"]
    pipeline.catch_up("events", EMULATED_START + timedelta(seconds=30), limit=10**6)  # the retry, then the rest
    pipeline.catch_up("companies", EMULATED_START + timedelta(seconds=30), limit=10**6)
    store.close()
    assert failures and digests(tmp_path / "retried") == digests(tmp_path / "reference")
