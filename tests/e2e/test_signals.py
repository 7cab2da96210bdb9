"""SIGTERM while a batch is being generated: exit 0 quickly, no partial batch visible."""

import time

import pytest

from app.core import bronze
from app.core.config import load_config
from app.core.timeline import next_boundary
from app.store import Store

pytestmark = pytest.mark.slow


def test_sigterm_during_generation_exits_0_without_partial_batch(service_process):
    # production-sized batches on a 2 s cadence so that a batch is in flight right after a boundary
    # (0.9 per 2 s: about the most a driver's shift holds at that cadence)
    process = service_process({"emulated_mode": {"enabled": False}, "number_of_companies": 1000,
                               "drivers_per_company": 25, "event_rate_per_driver": 0.9,
                               "company_onboarding_interval": "PT2S", "driver_event_interval": "PT2S"})
    process.start()
    process.wait_http()
    from datetime import UTC, datetime, timedelta

    time.sleep(3)
    boundary = next_boundary(datetime.now(UTC), timedelta(seconds=2))
    time.sleep(max(0.0, (boundary - datetime.now(UTC)).total_seconds()) + 0.05)
    began = time.monotonic()
    assert process.terminate(timeout=10) == 0
    assert time.monotonic() - began < 2.0

    config = load_config(process.config_path)
    store = Store(config.database_url)
    layout = bronze.Layout(config.output.local_dir)
    for stream in bronze.STREAMS:
        committed = {r.batch_id for r in store.all_batches(stream) if r.status == "committed"}
        visible = {p.name for p in layout.stream_dir(stream).iterdir()}
        assert committed and visible == committed
        for batch_id in visible:
            assert bronze.verify_batch(layout.batch_dir(stream, batch_id)) == []
    store.close()
