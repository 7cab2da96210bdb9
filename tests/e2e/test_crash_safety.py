"""kill -9 at random moments, restart each time: every window exactly once, nothing partial visible."""

import json
import random
import time

import pytest

from app.core import bronze
from app.core.config import load_config
from app.store import Store

pytestmark = pytest.mark.slow


def test_kill_9_repeatedly_loses_and_duplicates_nothing(service_process, tmp_path):
    process = service_process({"quality_injection": {"enabled": True, "error_rate": 0.1}})
    rng = random.Random(1234)
    began = time.monotonic()
    kills = 0
    while kills < 5 or time.monotonic() - began < 30:
        process.start()
        time.sleep(rng.uniform(1.2, 5.0))  # sometimes mid-startup, sometimes mid-batch
        process.kill9()
        kills += 1
        time.sleep(rng.uniform(0.0, 1.5))  # downtime: windows to catch up on restart
    process.start()
    process.wait_http()
    time.sleep(3)
    assert process.terminate() == 0
    assert kills >= 5 and time.monotonic() - began >= 30

    config = load_config(process.config_path)
    store = Store(config.database_url)
    layout = bronze.Layout(config.output.local_dir)
    for stream in bronze.STREAMS:
        rows = store.all_batches(stream)
        if rows and rows[-1].status == "failed" and (rows[-1].error or "").startswith("Abandoned"):
            # the final SIGTERM landed while this window was in flight: dropped by design, made on the next
            # start; only the very last window may be, and nothing of it is visible
            abandoned = rows.pop()
            assert not layout.batch_dir(stream, abandoned.batch_id).exists()
        assert len(rows) >= 25, stream
        assert [r.status for r in rows] == ["committed"] * len(rows), [(r.batch_id, r.status) for r in rows
                                                                       if r.status != "committed"]
        assert all(a.window.end == b.window.start for a, b in zip(rows, rows[1:], strict=False))
        on_disk = sorted(p.name for p in layout.stream_dir(stream).iterdir())
        assert on_disk == [r.batch_id for r in rows]  # every window once, nothing else visible
        for row in rows:
            batch_dir = layout.batch_dir(stream, row.batch_id)
            assert bronze.verify_batch(batch_dir) == []
            meta = json.loads((batch_dir / "_batch_meta.json").read_text())
            assert meta["record_count"] == row.record_count
    assert list(layout.staging.iterdir()) == []
    store.close()
