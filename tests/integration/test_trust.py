"""One writer, a ledger no fault can wedge (issue #10): each numbered defect reproduced, then held off."""

from __future__ import annotations

import errno
import json
import threading
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from app.api.health import health_document
from app.api.metrics import Metrics
from app.core import bronze
from app.core.dirlock import DataDirLock
from app.core.errors import DataDirBusy
from app.core.generation.events import DriverPool, Roster, generate_events
from app.core.generation.seeding import batch_rng
from app.core.timeline import Window
from app.service.pipeline import Pipeline
from app.service.service import Service, unwell_reasons
from app.store import Store
from app.store.roster import RosterRows
from app.store.store import CLAIMED_ELSEWHERE, CommitStats
from tests.conftest import utc
from tests.integration.test_faults import Clock, assert_ledger_matches_disk, emulated

START = int(utc(2026, 11, 25, 20).timestamp())


@pytest.fixture
def clocked(make_config):
    """An emulated (10 s) service on a fake clock at 20:00:05, woken by hand; its store closed after."""
    clock = Clock(utc(2026, 11, 25, 20, 0, 5))
    service = Service(emulated(make_config), clock=clock, monotonic=clock.monotonic)
    yield service, clock
    service.store.close()


def window(i: int, length: int = 10) -> Window:
    return Window.from_epoch(START + i * length, START + (i + 1) * length)


def stats(records: int = 1) -> CommitStats:
    return CommitStats("emulated", records, records, 0, {}, None, time.time(), time.time(), None)


# ---- 1. one writer per data directory ------------------------------------------------------------


def test_1_a_second_writer_on_the_same_directory_is_refused_naming_the_holder(tmp_path):
    with DataDirLock(tmp_path / "data", "run"):
        with pytest.raises(DataDirBusy, match=r"in use by fleetgen run \(pid \d+, since 20\d\d-"):
            DataDirLock(tmp_path / "data", "backfill").acquire()
        DataDirLock(tmp_path / "other", "backfill").acquire().release()  # another directory is free
    with DataDirLock(tmp_path / "data", "generate") as lock:  # released with the first holder
        assert lock.held


# ---- 2. claims are a compare-and-set ---------------------------------------------------------------


def test_2_racing_claims_have_one_winner_and_no_exception(make_config):
    config = make_config()
    stores = [Store(config.database_url), Store(config.database_url)]  # two writers, two engines
    try:
        for i in range(60):
            results: list = []
            barrier = threading.Barrier(2)

            def claim(store: Store, index: int = i, barrier: threading.Barrier = barrier,
                      results: list = results) -> None:
                barrier.wait()
                results.append(store.claim_window("events", window(index)))

            threads = [threading.Thread(target=claim, args=(s,)) for s in stores]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            winners = [r for r in results if r.row is not None]
            assert len(winners) == 1, results
            assert [r.reason for r in results if r.row is None] == [CLAIMED_ELSEWHERE]
    finally:
        for store in stores:
            store.close()


def test_2_a_pending_claim_belongs_to_its_writer_until_released(make_config):
    config = make_config()
    mine, theirs = Store(config.database_url), Store(config.database_url)
    try:
        row = mine.claim("events", window(0))
        assert theirs.claim_window("events", window(0)).reason == CLAIMED_ELSEWHERE
        assert theirs.fail(row, "not mine") is False  # fail touches only the writer's own pending row
        assert mine.fail(row, "disk full") is True
        retry = theirs.claim("events", window(0))  # a failed window is anyone's to retry, once
        assert retry is not None and retry.attempts == 2
        assert mine.claim("events", window(0)) is None
        assert mine.release_claims() == 1 and mine.claim("events", window(0)) is not None
    finally:
        mine.close()
        theirs.close()


# ---- 3. the ledger commit is the point of no return --------------------------------------------------


def test_3_a_failure_after_the_commit_leaves_the_batch_committed_and_the_streams_moving(clocked, monkeypatch,
                                                                                        caplog):
    service, clock = clocked
    service.startup_catch_up()
    real = bronze.write_json_atomically
    failing = {"on": True}

    def full_disk(path, data):
        if failing["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(bronze, "write_json_atomically", full_disk)
    clock.advance(10)
    outcomes = service.wake("companies")
    assert [o.status for o in outcomes] == ["committed"]
    assert "manifest not written" in caplog.text
    row = service.store.all_batches("companies")[-1]
    assert row.status == "committed"
    assert service.store.fail(row, "late failure") is False  # a committed row never turns failed
    assert service.store.all_batches("companies")[-1].status == "committed"
    failing["on"] = False
    for _ in range(3):  # both streams keep going; no UNIQUE failure from re-inserted companies
        clock.advance(10)
        assert [o.status for o in service.wake("companies")] == ["committed"]
        assert {o.status for o in service.wake("events")} == {"committed"}
    manifest = json.loads((service.pipeline.layout.manifests / "batch_manifest.json").read_text())
    assert manifest["streams"]["companies"]["committed_batches"] == len(service.store.all_batches("companies"))
    assert_ledger_matches_disk(service)


def test_3_a_commit_the_ledger_refuses_is_a_failed_attempt_not_a_lost_batch(clocked, monkeypatch):
    service, clock = clocked
    service.startup_catch_up()
    from app.core.errors import StoreError

    real_commit = service.store.commit
    monkeypatch.setattr(service.store, "commit", lambda *a, **k: (_ for _ in ()).throw(StoreError("locked")))
    clock.advance(10)
    assert [o.status for o in service.wake("events")] == ["failed"]
    monkeypatch.setattr(service.store, "commit", real_commit)
    clock.advance(10)
    assert [o.status for o in service.wake("events")] == ["committed", "committed"]
    assert_ledger_matches_disk(service)  # the published files were adopted, not duplicated


# ---- 4. manifests and staging never share a temp name ------------------------------------------------


def test_4_two_threads_writing_the_manifest_never_clash(tmp_path):
    target = tmp_path / "manifests" / "batch_manifest.json"
    errors: list[BaseException] = []

    def hammer(tag: int) -> None:
        try:
            for i in range(500):
                bronze.write_json_atomically(target, {"writer": tag, "i": i})
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert json.loads(target.read_text())["i"] == 499
    assert [p.name for p in target.parent.iterdir()] == ["batch_manifest.json"]


def test_4_each_attempt_stages_in_a_folder_of_its_own(tmp_path, monkeypatch):
    layout = bronze.Layout(tmp_path)
    staged: list[Path] = []
    real_move = bronze.move_into_place

    def spy(staging: Path, final: Path) -> None:
        staged.append(staging)
        real_move(staging, final)

    monkeypatch.setattr(bronze, "move_into_place", spy)
    for body in (b'{"a":1}\n', b'{"a":2}\n'):  # different content: the second replaces the first
        bronze.publish_batch(layout, "events", "20261125T200000Z", [body], 1, b"", 0, {}, time.time())
    assert len(set(staged)) == 2 and all(p.parent == layout.staging for p in staged)


# ---- 5. the roster follows other writers ------------------------------------------------------------


def test_5_the_cached_roster_catches_up_with_companies_another_process_committed(make_config):
    config = emulated(make_config)
    service_store, other_store = Store(config.database_url), Store(config.database_url)
    service, other = Pipeline(config, service_store), Pipeline(config, other_store)
    try:
        at = utc(2026, 11, 25, 20, 0, 5)
        service.catch_up("events", at)  # baseline + first driver window; the roster is now cached
        cached = service.roster_before(START + 10**6).total_drivers
        other.catch_up("companies", at + timedelta(seconds=30))  # "another process" onboards more
        assert service.roster_before(START + 10**6).total_drivers > cached
        service.catch_up("events", at + timedelta(seconds=30))
        # byte identity: the same windows backfilled into a fresh directory
        fresh = config.with_data_dir(config.output.local_dir.parent / "fresh")
        backfill = Pipeline(fresh, Store(fresh.database_url))
        backfill.backfill(utc(2026, 11, 25, 19, 59, 50), utc(2026, 11, 25, 20, 0, 30))
        produced = sorted(p.name for p in service.layout.stream_dir("events").iterdir())
        assert len(produced) == 4
        for batch_id in produced:
            mine = (service.layout.batch_dir("events", batch_id) / "events.jsonl").read_bytes()
            theirs = (backfill.layout.batch_dir("events", batch_id) / "events.jsonl").read_bytes()
            assert mine == theirs, batch_id
        backfill.store.close()
    finally:
        service_store.close()
        other_store.close()


def _roster_columns(pool) -> tuple:
    return (pool.company_uuid.tobytes(), pool.geography.tobytes(), pool.drivers_count.tobytes(),
            pool.active.tobytes())


def test_5_companies_this_writer_commits_join_the_cached_roster_without_a_reload(make_config, monkeypatch):
    config = emulated(make_config)
    store, other_store = Store(config.database_url), Store(config.database_url)
    pipeline, other = Pipeline(config, store), Pipeline(config, other_store)
    try:
        at = utc(2026, 11, 25, 20, 0, 5)
        pipeline.catch_up("events", at)  # baseline; the roster is now cached
        reloads: list[int | None] = []
        real_load = store.load_roster
        monkeypatch.setattr(store, "load_roster", lambda after_end=None: reloads.append(after_end)
                            or real_load(after_end))
        pipeline.catch_up("companies", at + timedelta(seconds=20))  # this writer onboards two windows
        mine = pipeline.roster_before(START + 10**6)
        assert reloads == []  # taken in from the commits, no query
        assert _roster_columns(mine) == _roster_columns(real_load().before(START + 10**6))
        # Another writer commits a window in between: the next commit of this writer no longer sits on
        # the cached mark, so the cache catches up from the store (only what it lacks) and stays exact.
        other.catch_up("companies", at + timedelta(seconds=30))
        pipeline.catch_up("companies", at + timedelta(seconds=40))
        caught_up = pipeline.roster_before(START + 10**6)
        assert len(reloads) == 1 and reloads[0] is not None
        assert _roster_columns(caught_up) == _roster_columns(real_load().before(START + 10**6))
    finally:
        store.close()
        other_store.close()


# ---- 6. re-initialisation decided by the ledger ------------------------------------------------------


def test_6_pause_clean_boundary_resume_reinitialises_and_the_next_batch_is_full(make_config):
    clock = Clock(utc(2026, 11, 25, 20, 0, 5))
    config = make_config(emulated_mode={"enabled": True, "company_batch_interval": "PT10S",
                                        "driver_batch_interval": "PT10S", "events_per_batch_min": 5,
                                        "events_per_batch_max": 20})
    service = Service(config, clock=clock, monotonic=clock.monotonic)
    try:
        service.startup_catch_up()
        schemas = config.output.local_dir / "manifests" / "schemas"
        assert (schemas / "events.spark.json").exists()
        service.pause()
        service.clean()
        assert not schemas.exists()  # clean takes every generated file, the schemas included
        for _ in range(3):  # boundaries pass while paused after the clean
            clock.advance(10)
            service.wake("companies")
            service.wake("events")
        result = service.resume()
        assert result["auto_reinit"] is True
        service.lifecycle._reinit_thread.join(timeout=10)
        clock.advance(10)
        service.wake("companies")
        outcomes = [o for o in service.wake("events") if o.status == "committed"]
        rows = [r for r in service.store.all_batches("events") if r.status == "committed"]
        assert rows and all(5 <= r.record_count <= 20 for r in rows), [r.record_count for r in rows]
        assert all(5 <= o.record_count <= 20 for o in outcomes)
        assert (schemas / "events.spark.json").exists()  # written again with the new batches' manifest
    finally:
        service.store.close()


# ---- 7. emulated cost O(batch), counts in int64 -------------------------------------------------------


def _reference_pick(pool: DriverPool, drivers: np.ndarray) -> tuple[list[bytes], list[int]]:
    """The old way: expand every active driver, then index (O(roster))."""
    roster = pool.compact()
    company_of_driver = np.repeat(np.arange(roster.size), roster.drivers_count)
    first = np.concatenate([[0], np.cumsum(roster.drivers_count)[:-1]])
    company = company_of_driver[drivers]
    return [bytes(roster.company_uuid[c]) for c in company], list(drivers - first[company] + 1)


def test_7_sampled_drivers_are_exactly_the_old_mapping(make_config):
    rng = np.random.default_rng(3)
    count = 500
    rows = RosterRows.of(np.repeat(np.arange(50, dtype=np.int64), 10), rng.integers(0, 256, (count, 16), np.uint8),
                         rng.integers(0, 4, count).astype(np.uint8), rng.random(count) < 0.8,
                         rng.integers(1, 30, count).astype(np.int32))
    pool = rows.before(40)
    drivers = rng.integers(0, pool.total_drivers, 2000)
    roster, company, number = pool.locate(drivers)
    uuids, numbers = _reference_pick(pool, drivers)
    assert [bytes(roster.company_uuid[c]) for c in company] == uuids
    assert number.tolist() == numbers
    assert roster.size == len(np.unique(company)) <= 2000  # only the companies the batch uses


def test_7_a_huge_roster_costs_no_more_than_its_batch_and_counts_past_int32(make_config):
    config = emulated(make_config)
    companies = 1_000_000
    rows = RosterRows.of(np.zeros(companies, np.int64), np.zeros((companies, 16), np.uint8),
                         np.zeros(companies, np.uint8), np.ones(companies, bool),
                         np.full(companies, 9999, np.int32))
    pool = rows.before(START)
    assert pool.total_drivers == 9_999_000_000 > 2**31
    win = window(0)
    batch = generate_events(config, win, pool, batch_rng(42, "events", win))
    assert 5 <= batch.size <= 20
    assert batch.roster.size <= batch.size  # the batch carries its own companies, not the roster
    assert (batch.driver >= 1).all() and (batch.driver <= 9999).all()


def test_7_roster_growth_is_amortised(make_config):
    rows = RosterRows()
    buffers = set()
    for i in range(2000):
        rows.extend(np.full(10, i, np.int64), np.zeros((10, 16), np.uint8), np.zeros(10, np.uint8),
                    np.ones(10, bool), np.full(10, 3, np.int32))
        buffers.add(id(rows._batch_end))
    assert rows.size == 20_000 and len(buffers) <= 6  # doubling: a handful of copies, not one per window
    assert rows.before(1999).total_drivers == 60_000


def test_7_production_driver_pool_matches_a_plain_roster(make_config):
    config = make_config(number_of_companies=20, drivers_per_company=7, event_rate_per_driver=2.0)
    rng = np.random.default_rng(5)
    uuids = rng.integers(0, 256, (20, 16), np.uint8)
    active = np.arange(20) % 3 != 0
    rows = RosterRows.of(np.zeros(20, np.int64), uuids, np.zeros(20, np.uint8), active, np.full(20, 7, np.int32))
    win = window(0, 900)
    via_pool = generate_events(config, win, rows.before(START), batch_rng(42, "events", win))
    plain = Roster(uuids[active], np.zeros(int(active.sum()), np.uint8), np.full(int(active.sum()), 7, np.int32))
    via_roster = generate_events(config, win, plain, batch_rng(42, "events", win))
    assert via_pool.size == via_roster.size > 0
    for name in via_pool.fields:
        assert (via_pool.render(name, slice(None)) == via_roster.render(name, slice(None))).all(), name


# ---- 9. honest lateness ----------------------------------------------------------------------------


def test_9_each_window_records_its_publish_lateness_and_catch_up_flag(clocked):
    service, clock = clocked
    service.startup_catch_up()  # start-up: catch-up windows
    clock.advance(6.3)  # the job for the 20:00:10 boundary fires 1.3 s late
    service.wake("companies")
    service.wake("events")
    rows = service.store.all_batches("events")
    assert [r.catch_up for r in rows] == [True, False]
    late = rows[-1]
    assert late.firing_delay_s == pytest.approx(1.3)  # measured against its own window, not the next
    assert late.lateness_ms == pytest.approx((late.published_at - late.window.end_s) * 1000, abs=0.01)
    meta = json.loads((service.pipeline.layout.batch_dir("events", late.batch_id) / "_batch_meta.json")
                      .read_text())
    assert meta["lateness_ms"] == pytest.approx(late.lateness_ms, abs=0.01) and meta["catch_up"] is False
    assert meta["published_at"].endswith("Z")
    health = health_document(service.snapshot())["driver_generator"]
    assert health["catch_up_windows"] == 1 and health["lateness_ms"]["samples"] == 1
    text = Metrics(service).render().decode()
    assert "fleetgen_publish_lateness_seconds_bucket" in text and 'kind="catch_up"' in text


def test_9_a_wake_up_after_the_next_boundary_produces_one_catch_up_window_and_one_on_cadence(clocked):
    service, clock = clocked
    service.startup_catch_up()
    clock.advance(16.3)  # 20:00:21.3: the wake-up for 20:00:10 came after the 20:00:20 boundary
    service.wake("companies")
    outcomes = [o for o in service.wake("events") if o.status == "committed"]
    assert [o.catch_up for o in outcomes] == [True, False]
    missed, latest = outcomes
    assert missed.lateness_ms > 11_300 and missed.firing_delay_s is None  # counted, not hidden
    assert latest.firing_delay_s == pytest.approx(1.3)
    health = health_document(service.snapshot())["driver_generator"]
    assert health["catch_up_windows"] == 2  # the start-up window and the missed one


def test_9_a_driver_window_does_not_wait_for_the_company_job_of_its_boundary(clocked):
    service, clock = clocked
    service.startup_catch_up()
    clock.advance(10)
    service.wake("companies")  # the companies the next driver window needs are committed
    holding, release = threading.Event(), threading.Event()

    def company_job_in_flight() -> None:
        with service.pipeline.holding("companies"):  # producing the window of the next boundary
            holding.set()
            release.wait(10)

    job = threading.Thread(target=company_job_in_flight)
    job.start()
    holding.wait(5)
    try:
        done: list = []
        driver = threading.Thread(target=lambda: done.extend(service.wake("events")))
        driver.start()
        driver.join(timeout=5)
        assert not driver.is_alive(), "the driver window waited for the company job"
        assert [o.status for o in done] == ["committed"]
    finally:
        release.set()
        job.join()


# ---- 10. say when it is unwell ----------------------------------------------------------------------


def test_10_failing_windows_turn_health_degraded_with_a_reason(clocked, monkeypatch):
    service, clock = clocked
    service.startup_catch_up()
    assert health_document(service.snapshot())["status"] == "running"

    def broken(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(bronze.StreamWriter, "write", broken)
    clock.advance(10)
    service.wake("companies")
    health = health_document(service.snapshot())
    assert health["status"] == "degraded"
    assert any("companies: window" in r and "Input/output error" in r for r in health["reasons"])
    assert "fleetgen_degraded 1.0" in Metrics(service).render().decode()
    service.pause()
    assert health_document(service.snapshot())["status"] == "paused"


def test_10_a_stream_more_than_one_interval_behind_is_degraded():
    now = utc(2026, 11, 25, 20, 0, 35)
    interval = {"events": timedelta(seconds=10)}
    up_to_date = {"events": {"last_interval_end_s": int(utc(2026, 11, 25, 20, 0, 20).timestamp())}}
    assert unwell_reasons(now, up_to_date, interval, False) == []  # the 20:00:30 window is in flight
    stuck = {"events": {"last_interval_end_s": int(utc(2026, 11, 25, 20, 0, 10).timestamp())}}
    assert unwell_reasons(now, stuck, interval, False) == [
        "events: 2 windows behind (nothing produced for windows after 2026-11-25T20:00:10.000Z)"]
    assert unwell_reasons(now, stuck, interval, True) == []  # start-up catch-up is still running


# ---- 9. lateness: at a shared boundary the events batch goes first ------------------------------------


def test_9_the_company_job_of_a_shared_boundary_starts_after_the_events_job(clocked, monkeypatch):
    service, clock = clocked
    service.startup_catch_up()
    monkeypatch.setattr("app.service.service.EVENTS_FIRST_WAIT_S", 30)  # only the events job releases it
    clock.advance(10)
    companies = threading.Thread(target=service.scheduled_wake, args=("companies",))
    companies.start()
    service.scheduled_wake("events")
    companies.join(timeout=30)
    assert not companies.is_alive()
    events_row = service.store.all_batches("events")[-1]
    company_row = service.store.all_batches("companies")[-1]
    assert events_row.window.end == company_row.window.end  # the same boundary
    assert events_row.published_at is not None and company_row.started_at is not None
    assert events_row.published_at <= company_row.started_at


def test_9_only_a_boundary_of_both_streams_is_shared(make_config):
    config = make_config(emulated_mode={"enabled": True, "company_batch_interval": "PT20S",
                                        "driver_batch_interval": "PT10S"})
    service = Service(config)
    try:
        assert service.shared_boundary(utc(2026, 11, 25, 20, 0, 40, 5000)) == utc(2026, 11, 25, 20, 0, 40)
        assert service.shared_boundary(utc(2026, 11, 25, 20, 0, 50, 5000)) is None  # events only
    finally:
        service.store.close()
