"""Storage faults: a full disk while publishing, a locked metadata store. Nothing lost, nothing duplicated."""

import errno
import sqlite3
import subprocess
import threading
from datetime import timedelta

import numpy as np
import pytest

from app.api.health import health_document
from app.core import bronze
from app.service.service import Service
from tests.conftest import utc


class Clock:
    def __init__(self, start):
        self.now = start

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def monotonic(self) -> float:
        return self.now.timestamp()  # a fake clock that never jumps


def emulated(make_config, **extra):
    return make_config(emulated_mode={"enabled": True, "company_batch_interval": "PT10S",
                                      "driver_batch_interval": "PT10S"}, **extra)


def assert_ledger_matches_disk(service):
    layout = service.pipeline.layout
    for stream in bronze.STREAMS:
        rows = service.store.all_batches(stream)
        assert all(a.window.end == b.window.start for a, b in zip(rows, rows[1:], strict=False)), stream
        committed = {r.batch_id for r in rows if r.status == "committed"}
        assert {p.name for p in layout.stream_dir(stream).iterdir()} == committed
        assert len(committed) == len([r for r in rows if r.status == "committed"])
        for batch_id in committed:
            assert bronze.verify_batch(layout.batch_dir(stream, batch_id)) == []
    assert list(layout.staging.iterdir()) == []


def test_disk_full_while_publishing_then_recovery(make_config, monkeypatch):
    clock = Clock(utc(2026, 11, 25, 20, 0, 5))
    service = Service(emulated(make_config), clock=clock, monotonic=clock.monotonic)
    service.startup_catch_up()
    real_write = bronze.StreamWriter.write
    failures = {"left": 3}

    def full_disk(writer, chunk):
        if failures["left"] > 0 and writer.path.name == "events.jsonl":
            failures["left"] -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(writer, chunk)

    monkeypatch.setattr(bronze.StreamWriter, "write", full_disk)
    for _ in range(3):  # three wake-ups while the disk is full
        clock.advance(10)
        service.wake("companies")
        outcomes = service.wake("events")
        assert outcomes and outcomes[-1].status == "failed" and "No space left" in outcomes[-1].reason
    health = health_document(service.snapshot())
    assert health["driver_generator"]["failed_batches"] == 3
    assert "No space left" in health["driver_generator"]["last_error"]
    assert_ledger_matches_disk(service)  # the failed window is not visible anywhere

    clock.advance(10)  # the fault has cleared: the failed window first, then the new ones, in order
    service.wake("companies")
    outcomes = service.wake("events")
    assert [o.status for o in outcomes] == ["committed"] * 4
    rows = service.store.all_batches("events")
    assert [r.status for r in rows] == ["committed"] * 5 and rows[1].attempts == 4
    assert_ledger_matches_disk(service)
    service.store.close()


def test_metadata_store_locked_then_released(make_config):
    clock = Clock(utc(2026, 11, 25, 20, 0, 5))
    config = emulated(make_config, database={"busy_timeout_ms": 200})
    service = Service(config, clock=clock, monotonic=clock.monotonic)
    service.startup_catch_up()
    locker = sqlite3.connect(config.database_url.removeprefix("sqlite:///"), timeout=5)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        for _ in range(2):
            clock.advance(10)
            for stream in ("companies", "events"):
                outcomes = service.wake(stream)
                assert all(o.status == "failed" for o in outcomes)
        assert "locked" in health_document(service.snapshot())["company_generator"]["last_error"]
    finally:
        locker.rollback()
        locker.close()
    clock.advance(10)
    service.wake("companies")
    service.wake("events")
    for stream in ("companies", "events"):
        rows = service.store.all_batches(stream)
        assert rows[-1].window.end == utc(2026, 11, 25, 20, 0, 30)
        assert all(r.status == "committed" for r in rows)
    assert_ledger_matches_disk(service)
    service.store.close()


def test_real_full_filesystem(make_config, tmp_path):
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        clock = Clock(utc(2026, 11, 25, 20, 0, 5))
        config = make_config(number_of_companies=50, drivers_per_company=5, event_rate_per_driver=2.0,
                             company_onboarding_interval="PT10S", driver_event_interval="PT10S",
                             output={"data_dir": str(mount_point / "data")},
                             database={"url": f"sqlite:///{tmp_path / 'meta.db'}"})
        service = Service(config, clock=clock, monotonic=clock.monotonic)
        service.startup_catch_up()
        statuses = []
        for _ in range(12):  # ~150 kB per window: the disk fills within a few windows
            clock.advance(10)
            service.wake("companies")
            statuses += [o.status for o in service.wake("events")]
        assert "failed" in statuses
        assert_ledger_matches_disk(service)
        failed_rows = [r for r in service.store.all_batches("events") if r.status == "failed"]
        assert failed_rows and "No space left" in failed_rows[0].error
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_concurrent_wakeups_never_duplicate(make_config):
    clock = Clock(utc(2026, 11, 25, 20, 0, 5))
    service = Service(emulated(make_config), clock=clock, monotonic=clock.monotonic)
    clock.advance(600)
    threads = [threading.Thread(target=service.wake, args=(stream,)) for stream in ("events", "companies") * 5]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert_ledger_matches_disk(service)
    service.store.close()


def test_a_write_failing_on_the_writer_thread_lets_every_file_of_the_batch_go(make_config, monkeypatch):
    """The last chunk's write fails on the writer thread, so the error surfaces when the record file is
    closed: it is reported as itself, the sidecars are closed too (no descriptor left open) and nothing is
    left in staging."""
    import os

    from app.core.errors import PublishError
    from app.core.filesink import FileSink
    from app.core.generation.events import DriverPool, Roster
    from app.core.timeline import Window
    from app.service.pipeline import make_batch

    config = make_config(number_of_companies=40, drivers_per_company=10,
                         quality_injection={"enabled": True, "error_rate": 0.2},
                         late_arrival={"probability": 0.2, "max_delay": "PT30M"})
    rng = np.random.default_rng(3)
    roster = Roster(rng.integers(0, 256, (40, 16), dtype=np.uint8), rng.integers(0, 3, 40).astype(np.uint8),
                    np.full(40, 10, np.int32))
    monkeypatch.setattr(bronze, "HASH_INLINE_BYTES", 0)  # every chunk goes to the threads
    real_write = FileSink.write

    def full_disk(sink, data):
        if sink.path.name == "events.jsonl":
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(sink, data)

    monkeypatch.setattr(FileSink, "write", full_disk)
    layout = bronze.Layout(config.output.local_dir)
    window = Window(utc(2026, 11, 25, 10), utc(2026, 11, 25, 10, 15))
    open_before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(PublishError, match="No space left"):
        make_batch(config, layout, "events", window, DriverPool.of(roster), None)
    assert len(os.listdir("/proc/self/fd")) == open_before
    assert not layout.staging.exists() or list(layout.staging.iterdir()) == []


@pytest.mark.parametrize("failing", ["spilling the plan", "reading it back"])
def test_a_spilled_defect_plan_that_fails_fails_its_batch_and_leaves_nothing(make_config, monkeypatch, failing):
    """A window made in parts keeps its defect plan in a file in staging: a full disk while it is written, or
    a read that fails, fails the batch like any write (reported as itself), with no descriptor left open and
    nothing left in staging; the same window then makes the bytes it always does."""
    import os

    from app.core.errors import PublishError
    from app.core.generation import batch, events, spill
    from app.core.generation.events import DriverPool, Roster
    from app.core.timeline import Window
    from app.service.pipeline import make_batch

    config = make_config(number_of_companies=40, drivers_per_company=10,
                         quality_injection={"enabled": True, "error_rate": 0.2})
    rng = np.random.default_rng(3)
    roster = Roster(rng.integers(0, 256, (40, 16), dtype=np.uint8), rng.integers(0, 3, 40).astype(np.uint8),
                    np.full(40, 10, np.int32))
    monkeypatch.setattr(events, "PART_EVENTS", 50)
    monkeypatch.setattr(batch, "HELD_EVENTS", 0)  # made in parts, the plan spilled
    layout = bronze.Layout(config.output.local_dir)
    window = Window(utc(2026, 11, 25, 10), utc(2026, 11, 25, 10, 15))
    healthy = make_batch(config, layout, "events", window, DriverPool.of(roster), None)
    digest = healthy.staged.files["events.jsonl"].sha256
    bronze.discard(healthy.staged)

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if failing == "spilling the plan":
        monkeypatch.setattr(spill.SpilledPlan, "_put", full_disk)
    else:
        reads = {"count": 0}
        real_read = spill.SpilledPlan._read

        def fails_later(self, *args):
            reads["count"] += 1
            if reads["count"] > 40:
                raise OSError(errno.EIO, "Input/output error")
            return real_read(self, *args)

        monkeypatch.setattr(spill.SpilledPlan, "_read", fails_later)
    open_before = len(os.listdir("/proc/self/fd"))
    staged_before = set(layout.staging.iterdir())
    with pytest.raises(PublishError, match="No space left|Input/output error"):
        make_batch(config, layout, "events", window, DriverPool.of(roster), None)
    assert len(os.listdir("/proc/self/fd")) == open_before
    assert set(layout.staging.iterdir()) == staged_before
    monkeypatch.undo()
    monkeypatch.setattr(events, "PART_EVENTS", 50)
    monkeypatch.setattr(batch, "HELD_EVENTS", 0)
    again = make_batch(config, layout, "events", window, DriverPool.of(roster), None)
    assert again.staged.files["events.jsonl"].sha256 == digest
