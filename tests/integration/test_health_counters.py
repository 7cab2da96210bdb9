"""Health's totals are the store's: kept in memory for speed, aligned with the store at each wake-up."""

from app.api.health import health_document
from app.service.pipeline import Pipeline
from app.service.service import Service
from app.store import Store
from tests.conftest import utc
from tests.integration.test_faults import Clock, emulated


def committed(service, stream):
    return [r for r in service.store.all_batches(stream) if r.status == "committed"]


def test_health_totals_follow_the_store_when_another_process_commits(make_config):
    config = emulated(make_config)
    clock = Clock(utc(2026, 11, 25, 10, 0, 5))
    service = Service(config, clock=clock, monotonic=clock.monotonic)
    service.startup_catch_up()
    before = health_document(service.snapshot())["driver_generator"]
    assert before["total_batches"] == len(committed(service, "events")) >= 1

    # `fleetgen generate` on the same data directory, in another process: three windows ahead.
    clock.advance(30)
    other = Pipeline(config, Store.for_config(config))
    assert [o.status for o in other.catch_up("events", clock.now)] == ["committed"] * 3
    service.wake("events")  # finds them already committed: nothing produced, nothing recorded

    after = health_document(service.snapshot())
    store_counter = service.store.counters()["events"]
    events_total = after["driver_generator"]["total_batches"]
    assert events_total == before["total_batches"] + 3 == len(committed(service, "events"))
    assert after["driver_generator"]["total_records"] == store_counter["records"]
    assert after["driver_generator"]["corrupted_records"] == store_counter["corrupted"]
    assert after["driver_generator"]["last_interval_end"] == "2026-11-25T10:00:30.000Z"
    # The other process onboarded the companies those windows needed; the companies wake-up sees them.
    service.wake("companies")
    companies = health_document(service.snapshot())["company_generator"]
    assert companies["total_batches"] == len(committed(service, "companies"))
    assert companies["total_records"] == service.store.counters()["companies"]["records"]
    quality = health_document(service.snapshot())["quality"]
    assert quality["records"] == store_counter["records"] + companies["total_records"]
