"""The benchmark's outside watcher notices batch folders as they appear (inotify, or listing)."""

from __future__ import annotations

import threading

from app.bench import watcher
from app.core import bronze


def _publish_later(data_dir, names, ready: threading.Event) -> None:
    ready.wait(5)
    layout = bronze.Layout(data_dir)
    for stream, name in names:
        staging = data_dir / f"tmp-{name}"
        staging.mkdir()
        (staging / "_SUCCESS").touch()
        staging.rename(layout.batch_dir(stream, name))


def test_each_stream_folder_that_appears_is_seen_once(tmp_path, monkeypatch):
    ready = threading.Event()
    real_select = watcher.select.select

    def select_then_publish(*args):
        ready.set()  # the watch is armed: publish now
        return real_select(*args)

    monkeypatch.setattr(watcher.select, "select", select_then_publish)
    names = [("events", "20261126T100000Z"), ("companies", "20261126T100000Z"), ("events", "20261126T100001Z")]
    thread = threading.Thread(target=_publish_later, args=(tmp_path, names, ready))
    thread.start()
    seen = watcher.watch(tmp_path, 2.0)
    thread.join()
    assert sorted(seen["events"]) == ["20261126T100000Z", "20261126T100001Z"]
    assert list(seen["companies"]) == ["20261126T100000Z"]


def test_without_inotify_the_folders_are_listed(tmp_path, monkeypatch):
    layout = bronze.Layout(tmp_path)
    layout.batch_dir("events", "20261126T100000Z").mkdir(parents=True)
    (layout.stream_dir("events") / "not-a-batch").mkdir()

    def no_inotify(*_args):
        raise OSError("inotify unavailable")

    monkeypatch.setattr(watcher, "_watch_inotify", no_inotify)
    seen = watcher.watch(tmp_path, 0.05)
    assert list(seen["events"]) == ["20261126T100000Z"] and seen["companies"] == {}
