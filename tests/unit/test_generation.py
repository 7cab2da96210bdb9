"""Companies and events: content rules, volumes, defects — straight from the column batches."""

import json
from datetime import timedelta

import numpy as np
import pytest

from app.core.config import DEFECT_TYPES, EVENT_TYPES
from app.core.generation import geography as geo
from app.core.generation.batch import generate_batch
from app.core.generation.companies import generate_companies
from app.core.generation.defects import plan_defects
from app.core.generation.encoding import render_issues, render_records
from app.core.generation.events import Roster
from app.core.generation.seeding import batch_rng
from app.core.timeline import Window
from tests.conftest import utc

COMPANY_WINDOW = Window(utc(2026, 11, 25, 9), utc(2026, 11, 25, 10))
EVENT_WINDOW = Window(utc(2026, 11, 25, 10), utc(2026, 11, 25, 10, 15))


def roster_for(config, window=COMPANY_WINDOW):
    companies = generate_companies(config, window, batch_rng(config.seed, "companies", window))
    keep = companies.active
    return companies, Roster(companies.company_uuid[keep], companies.geography[keep],
                             companies.drivers_count[keep])


def records_of(batch, plan):
    return [json.loads(line) for line in b"".join(render_records(batch, plan)).decode().splitlines()]


def produce(config, stream, window, roster=None):
    return generate_batch(config, stream, window, roster)


def test_company_records(make_config):
    config = make_config(number_of_companies=300)
    batch, plan = produce(config, "companies", COMPANY_WINDOW)
    records = records_of(batch, plan)
    assert len(records) == 300
    assert len({r["company_id"] for r in records}) == 300
    start, end = "2026-11-25T09:00:00.000Z", "2026-11-25T10:00:00.000Z"
    for record in records:
        assert set(record) == {"company_id", "company_name", "geography", "active", "drivers_count",
                               "onboarded_at", "updated_at"}
        assert record["geography"] in geo.CODES
        assert start <= record["onboarded_at"] == record["updated_at"] < end  # an onboarding record
        assert record["drivers_count"] == 10 and isinstance(record["active"], bool)
        assert record["company_name"]
    shares = {g: sum(r["geography"] == g for r in records) / 300 for g in geo.CODES}
    assert shares["US"] > shares["SA"]


def test_event_records_stay_in_window_region_and_roster(make_config):
    config = make_config(number_of_companies=50, drivers_per_company=4)
    companies, roster = roster_for(config)
    batch, plan = produce(config, "events", EVENT_WINDOW, roster)
    records = records_of(batch, plan)
    assert len(records) > 0
    region_of = {str(c["company_id"]): c["geography"] for c in records_of(companies, plan_defects(
        companies, config.quality_injection, batch_rng(0, "companies", COMPANY_WINDOW)))}
    active_ids = {cid for cid, active in zip(region_of, companies.active, strict=True) if active}
    lo, hi = "2026-11-25T10:00:00.000Z", "2026-11-25T10:15:00.000Z"
    for record in records:
        assert lo <= record["event_timestamp"] < hi
        assert record["event_type"] in EVENT_TYPES
        assert record["company_id"] in active_ids
        region = geo.REGIONS[geo.CODES.index(region_of[record["company_id"]])]
        assert region.lat_range[0] <= record["location"]["lat"] <= region.lat_range[1]
        assert region.lon_range[0] <= record["location"]["lon"] <= region.lon_range[1]
        tag = record["company_id"][-12:]
        assert record["driver_id"].startswith(f"DRV-{tag}-") and record["truck_id"].startswith(f"TRK-{tag}-")
        assert 1 <= int(record["driver_id"][-4:]) <= 4
    stamps = [r["event_timestamp"] for r in records]
    assert stamps == sorted(stamps)


def test_no_roster_means_an_empty_batch(make_config):
    config = make_config()
    batch, plan = produce(config, "events", EVENT_WINDOW, Roster.empty())
    assert batch.size == 0 and b"".join(render_records(batch, plan)) == b""


def test_emulated_sizes_stay_within_bounds_over_1000_batches(make_config):
    config = make_config(emulated_mode={"enabled": True, "events_per_batch_min": 5, "events_per_batch_max": 20},
                         quality_injection={"enabled": True, "error_rate": 0.3, "duplicate_probability": 0.5})
    _, roster = roster_for(config, Window(utc(2026, 1, 1), utc(2026, 1, 1, 0, 0, 10)))
    sizes = []
    start = utc(2026, 1, 1, 0, 0, 10)
    for i in range(1000):
        window = Window(start + timedelta(seconds=10 * i), start + timedelta(seconds=10 * (i + 1)))
        batch, plan = produce(config, "events", window, roster)
        lines = b"".join(render_records(batch, plan)).count(b"\n")
        sizes.append(lines)
    assert min(sizes) >= 5 and max(sizes) <= 20
    assert len(set(sizes)) == 16  # every size in [5, 20] occurs


def test_production_mean_within_10_percent(make_config):
    config = make_config(number_of_companies=200, drivers_per_company=10, event_rate_per_driver=3.5,
                         companies={"active_probability": 1.0})
    _, roster = roster_for(config)
    expected = 200 * 10 * 3.5
    sizes = []
    for i in range(10):
        window = Window(EVENT_WINDOW.start + i * timedelta(minutes=15), EVENT_WINDOW.end + i * timedelta(minutes=15))
        batch, _ = produce(config, "events", window, roster)
        sizes.append(batch.size)
    assert abs(np.mean(sizes) - expected) / expected < 0.10


def test_production_and_emulated_clean_records_share_fields_and_types(make_config):
    def shape(record):
        return {k: (type(v).__name__, shape(v) if isinstance(v, dict) else None) for k, v in record.items()}

    shapes = {}
    for mode in ("production", "emulated"):
        config = make_config(emulated_mode={"enabled": mode == "emulated"})
        companies, roster = roster_for(config)
        events, plan = produce(config, "events", EVENT_WINDOW, roster)
        shapes[mode] = ({json.dumps(shape(r), sort_keys=True) for r in records_of(companies, plan_defects(
            companies, config.quality_injection, batch_rng(1, "companies", COMPANY_WINDOW)))},
            {json.dumps(shape(r), sort_keys=True) for r in records_of(events, plan)})
    assert shapes["production"] == shapes["emulated"]
    assert all(len(kind) == 1 for kind in shapes["production"])


def defect_run(make_config, stream, **quality):
    config = make_config(number_of_companies=100, drivers_per_company=20, event_rate_per_driver=3.0,
                         quality_injection={"enabled": True, **quality})
    _, roster = roster_for(config)
    batch, plan = produce(config, stream, EVENT_WINDOW if stream == "events" else COMPANY_WINDOW, roster)
    return config, batch, plan


def test_error_rate_15_percent_over_10000_records(make_config):
    config, batch, plan = defect_run(make_config, "events", error_rate=0.15)
    assert batch.size >= 4000  # 10:00 UTC: the volume follows each region's working day
    total = corrupted = 0
    for i in range(3):
        window = Window(EVENT_WINDOW.start + i * timedelta(minutes=15), EVENT_WINDOW.end + i * timedelta(minutes=15))
        _, roster = roster_for(config)
        batch, plan = produce(config, "events", window, roster)
        total += batch.size
        corrupted += plan.corrupted_count
    assert total >= 10_000
    assert abs(corrupted / total - 0.15) <= 0.02


def test_issues_agree_with_counts_and_records(make_config):
    config, batch, plan = defect_run(make_config, "events", error_rate=0.25)
    records = b"".join(render_records(batch, plan)).decode().splitlines()
    issues = [json.loads(line) for line in render_issues(batch, plan).decode().splitlines()]
    assert len(issues) == plan.corrupted_count
    counts = {t: sum(i["defect_type"] == t for i in issues) for t in DEFECT_TYPES}
    assert counts == plan.counts()
    assert all(counts[t] > 0 for t in DEFECT_TYPES)
    for issue in issues:
        record = json.loads(records[issue["line"] - 1])  # every line stays valid JSON
        assert record["event_id"] == issue["record_id"]
        kind, field = issue["defect_type"], issue["field"]
        if kind == "missing_field":
            assert field not in record
        elif kind == "null_value":
            assert record[field] is None
        elif kind == "duplicate":
            assert json.loads(records[issue["duplicate_of_line"] - 1]) == record
        else:
            assert record[field] == issue["injected_value"] != issue["original_value"]
        if kind == "malformed_timestamp":
            assert not record[field].endswith("Z") or "-13-32" in record[field]
        if kind == "invalid_enum":
            assert record[field] not in EVENT_TYPES


def test_company_defects_too(make_config):
    config, batch, plan = defect_run(make_config, "companies", error_rate=0.5)
    issues = [json.loads(line) for line in render_issues(batch, plan).decode().splitlines()]
    assert len(issues) == plan.corrupted_count > 20
    for line in b"".join(render_records(batch, plan)).decode().splitlines():
        json.loads(line)


@pytest.mark.parametrize("disabled", ["duplicate_probability", "missing_field_probability",
                                      "malformed_timestamp_probability"])
def test_disabled_types_never_appear(make_config, disabled):
    _, batch, plan = defect_run(make_config, "events", error_rate=0.5, **{disabled: 0.0})
    assert plan.counts()[disabled.removesuffix("_probability")] == 0
    assert plan.corrupted_count > 1000


def test_error_rate_zero_or_switched_off_means_no_defect(make_config):
    for quality in ({"error_rate": 0.0}, {"error_rate": 0.5, "inject_in_driver_events": False}):
        _, batch, plan = defect_run(make_config, "events", **quality)
        assert plan.corrupted_count == 0 and render_issues(batch, plan) == b""


def test_same_seed_same_bytes_different_seed_different_bytes(make_config):
    outputs = []
    for seed in (42, 42, 43):
        config = make_config(seed=seed, quality_injection={"enabled": True, "error_rate": 0.2})
        _, roster = roster_for(config)
        batch, plan = produce(config, "events", EVENT_WINDOW, roster)
        outputs.append(b"".join(render_records(batch, plan)) + render_issues(batch, plan))
    assert outputs[0] == outputs[1] != outputs[2]


def test_chunking_does_not_change_the_bytes(make_config):
    config = make_config(quality_injection={"enabled": True, "error_rate": 0.2})
    _, roster = roster_for(config)
    batch, plan = produce(config, "events", EVENT_WINDOW, roster)
    assert b"".join(render_records(batch, plan, chunk_rows=97)) == b"".join(render_records(batch, plan))


def test_emulated_legs_pair_starts_with_stops_and_the_weights_set_deliveries_per_stop(make_config):
    for weights, per_stop in (((0.4, 0.4, 0.2), 0.5), ((0.7, 0.0, 0.3), 0.857), ((0.5, 0.5, 0.0), 0.0)):
        config = make_config(number_of_companies=100, drivers_per_company=20, companies={"active_probability": 1.0},
                             emulated_mode={"enabled": True, "events_per_batch_min": 5000,
                                            "events_per_batch_max": 5000},
                             events={"event_type_weights": dict(zip(EVENT_TYPES, weights, strict=True))})
        _, roster = roster_for(config)
        counts = np.bincount(produce(config, "events", EVENT_WINDOW, roster)[0].event_type, minlength=3)
        assert counts.sum() == 5000
        assert abs(counts[0] - counts[1]) <= 64  # each driver on shift (64 at most) is one leg apart at worst
        assert abs(counts[2] / counts[1] - per_stop) < 0.06, (weights, counts)


def test_production_legs_pair_starts_with_stops_and_the_weights_set_deliveries_per_stop(make_config):
    config = make_config(number_of_companies=100, drivers_per_company=20, event_rate_per_driver=5.0,
                         companies={"active_probability": 1.0},
                         events={"event_type_weights": {"start_driving": 0.4, "stopped_driving": 0.4,
                                                        "delivered": 0.2}})
    _, roster = roster_for(config)
    counts = np.zeros(3)
    for hour in range(24):  # a whole day: every driver's shifts are complete
        window = Window(utc(2026, 11, 26, hour), utc(2026, 11, 26, hour, 15))
        counts += np.bincount(produce(config, "events", window, roster)[0].event_type, minlength=3)
    assert abs(counts[0] - counts[1]) / counts[0] < 0.02  # every leg starts and stops (window edges aside)
    assert abs(counts[2] / counts[1] - 0.5) < 0.03  # delivered / mean(start, stop) = 0.2 / 0.4


def test_a_smaller_emulated_fleet_is_reached_as_shifts_end(make_config):
    """Lowering events_per_batch_max shrinks the fleet on shift without cutting a shift short."""
    from app.core.generation.emulated_fleet import slot_count

    big = make_config(number_of_companies=50, drivers_per_company=10, companies={"active_probability": 1.0},
                      emulated_mode={"enabled": True, "events_per_batch_min": 40, "events_per_batch_max": 40})
    small = make_config(number_of_companies=50, drivers_per_company=10, companies={"active_probability": 1.0},
                        emulated_mode={"enabled": True, "events_per_batch_min": 6, "events_per_batch_max": 6})
    _, roster = roster_for(big)
    fleet, sizes = None, []
    for i in range(80):
        config = big if i < 5 else small
        start = utc(2026, 11, 26, 12) + timedelta(seconds=10 * i)
        batch, _ = generate_batch(config, "events", Window(start, start + timedelta(seconds=10)), roster, fleet)
        assert batch.size == (40 if i < 5 else 6)
        fleet = batch.carried
        sizes.append(fleet.slots)
    assert sizes[:5] == [slot_count(40)] * 5
    assert sizes[5] > slot_count(6)  # the first smaller batch keeps every driver still working
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] == slot_count(6)


@pytest.mark.parametrize("seed", range(40))
def test_duplicate_sources_are_the_records_the_full_candidate_list_gave(seed):
    """The sources are found from the defect rows alone (a large batch never lists its clean rows); they
    must be the rows the candidate mask over the whole batch picked, draw for draw."""
    from app.core.generation.defects import _duplicate_sources

    draw = np.random.default_rng(seed)
    n = int(draw.integers(2, 300))
    rows = np.sort(draw.choice(n, int(draw.integers(1, n + 1)), replace=False)).astype(np.int64)
    kinds = draw.integers(0, len(DEFECT_TYPES), len(rows))
    kinds[draw.integers(0, len(rows))] = DEFECT_TYPES.index("duplicate")
    if len(rows) == n:
        kinds[0] = 0  # a batch of only duplicates drops one first (see _keep_a_source_for_duplicates)
    dup_rows = rows[kinds == DEFECT_TYPES.index("duplicate")]
    taken = np.zeros(n, bool)
    taken[rows if len(rows) < n else dup_rows] = True
    candidates = np.flatnonzero(~taken)
    expected = candidates[np.random.default_rng(seed + 1000).integers(0, len(candidates), len(dup_rows))]
    got = _duplicate_sources(n, rows, kinds, np.random.default_rng(seed + 1000))
    assert got.tolist() == expected.tolist()


@pytest.mark.parametrize(("late", "delay", "churn"), [(0.0, "PT30M", False), (0.1, "PT30M", False),
                                                       (0.1, "PT20M", True), (0.0, "PT30M", True)])
def test_a_window_cut_in_time_parts_is_the_window(make_config, late, delay, churn):
    """Parts of ~1,000 events, joined, are the window's columns exactly: at the start of the working
    day, at its peak, at its end; with late arrivals (a look-back of two windows) and with churn."""
    from app.core.generation.events import ProductionEvents

    config = make_config(number_of_companies=300, drivers_per_company=12, event_rate_per_driver=4.0,
                         companies={"active_probability": 1.0,
                                    "churn": {"monthly_rate": 0.5 if churn else 0.0,
                                              "driver_changes_per_month": 8.0 if churn else 0.0}},
                         late_arrival={"probability": late, "max_delay": delay})
    _, roster = roster_for(config)
    roster = Roster(roster.company_uuid, roster.geography, roster.drivers_count,
                    np.full(roster.size, COMPANY_WINDOW.end_s, np.int64))
    for start in (utc(2026, 11, 25, 10, 15), utc(2026, 11, 25, 14), utc(2026, 11, 25, 19, 45)):
        window = Window(start, start + timedelta(minutes=15))
        whole = ProductionEvents(config, window, roster, part_events=10**9)
        cut = ProductionEvents(config, window, roster, part_events=997)
        assert len(whole.parts) == 1 and len(cut.parts) > 8
        one = whole.whole(batch_rng(config.seed, "events", window))
        joined = cut.whole(batch_rng(config.seed, "events", window))
        assert one.size > 5000
        for a, b in zip(one._columns(), joined._columns(), strict=True):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("ahead_min", [0, 10**9], ids=["on a render thread", "inline"])
def test_an_issue_log_rendered_ahead_is_the_issue_log(make_config, monkeypatch, ahead_min):
    """A part's issue log rendered beside its records (on the render pool, or inline for a small part, or
    from a render thread itself) is the same text, chunk for chunk."""
    from app.core.generation import encoding, workers

    _, batch, plan = defect_run(make_config, "events", error_rate=0.3)
    monkeypatch.setattr(encoding, "ISSUE_CHUNK_ROWS", 500)  # several chunks
    expected = list(map(bytes, encoding.issue_chunks(batch, plan, offset=7)))
    assert len(expected) > 2
    monkeypatch.setattr(encoding, "ISSUES_AHEAD_MIN", ahead_min)
    assert list(map(bytes, encoding.issues_ahead(batch, plan, 7).result())) == expected
    from_the_pool = workers.executor("render").submit(lambda: encoding.issues_ahead(batch, plan, 7).result())
    assert list(map(bytes, from_the_pool.result(timeout=60))) == expected
