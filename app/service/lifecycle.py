"""Pause, resume and clean: the operations the API and CLI share, with their state in the store."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core import bronze
from app.core.config import Config, shared_directory_problem
from app.core.errors import LifecycleError
from app.service.pipeline import Pipeline
from app.store import Store

log = logging.getLogger(__name__)
PAUSED_KEY, REINIT_KEY = "paused", "auto_reinit"
GENERATED_MANIFESTS = ("batch_manifest.json", "dataset.md")
MANIFEST_TEMPS = (".batch_manifest.json.*.tmp", ".dataset.md.*.tmp")


@dataclass
class CleanReport:
    removed_batches: int
    removed_files: int
    skipped: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"removed_batches": self.removed_batches, "removed_files": self.removed_files,
                "skipped": self.skipped}


def check_data_dir(data_dir: Path) -> Path:
    """Refuse to treat a system or home directory as fleetgen's own."""
    problem = shared_directory_problem(data_dir)
    if problem:
        raise LifecycleError(f"refusing to clean: {problem} (set output.data_dir to a folder of its own)")
    return data_dir.resolve()


def remove_generated(layout: bronze.Layout) -> CleanReport:
    """Delete what fleetgen wrote under the data directory, nothing else; follows no symlink."""
    root = check_data_dir(layout.root)
    removed_batches = removed_files = 0
    skipped: list[str] = []
    for stream in bronze.STREAMS:
        stream_dir = layout.stream_dir(stream)
        if stream_dir.is_symlink():
            skipped.append(f"{stream_dir} is a symlink; left alone")
            continue
        if not stream_dir.is_dir():
            continue
        for entry in stream_dir.iterdir():
            if entry.is_symlink() or not entry.is_dir() or not bronze.BATCH_DIR_PATTERN.match(entry.name):
                skipped.append(f"{entry} is not a fleetgen batch; left alone")
                continue
            if not _inside(entry, root):
                skipped.append(f"{entry} resolves outside {root}; left alone")
                continue
            shutil.rmtree(entry)
            removed_batches += 1
    removed_files += bronze.remove_staging(layout.staging)
    temps = [p for pattern in MANIFEST_TEMPS for p in layout.manifests.glob(pattern)]
    for path in [layout.manifests / name for name in GENERATED_MANIFESTS] + temps:
        if path.is_file() and not path.is_symlink():
            path.unlink()
            removed_files += 1
    layout.ensure()
    return CleanReport(removed_batches, removed_files, skipped)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
        return True
    except ValueError:
        return False


class Lifecycle:
    """Paused/running state (persisted), clean, and auto re-initialisation after a clean."""
    def __init__(self, config: Config, store: Store, pipeline, broadcaster=None):
        self.config = config
        self.store = store
        self.pipeline = pipeline
        self.broadcaster = broadcaster
        self._lock = threading.Lock()
        self._reinit_thread: threading.Thread | None = None
        self.paused = bool(store.get_state(PAUSED_KEY, False))
        self._reinit = store.get_state(REINIT_KEY, None) or {}  # cached: health must not query

    def pause(self) -> dict[str, Any]:
        with self._lock:
            changed = not self.paused
            self.store.set_state(PAUSED_KEY, True)
            self.paused = True
        if changed:
            log.info("generation paused")
            self._publish("paused", {"paused": True})
        return {"status": "paused", "changed": changed}

    def resume(self, now_fn) -> dict[str, Any]:
        with self._lock:  # never while a clean runs: resuming mid-clean would generate into deleted folders
            changed = self.paused
            self.store.set_state(PAUSED_KEY, False)
            self.paused = False
            # Decided by the ledger, not by the clock: no company window committed (a cleaned or new
            # data directory) means the baseline must be produced again, however long the pause was.
            reinit = changed and not self.store.has_committed("companies")
        if changed:
            log.info("generation resumed")
            self._publish("resumed", {"paused": False})
            if reinit:
                self._start_reinit(now_fn)
        return {"status": "running", "changed": changed, "auto_reinit": reinit}

    def _start_reinit(self, now_fn) -> None:
        def work() -> None:
            started = time.time()
            outcomes = self.pipeline.catch_up("events", now_fn())
            outcomes += self.pipeline.catch_up("companies", now_fn())
            state = self.store.get_state(REINIT_KEY, {}) or {}
            state = {"count": int(state.get("count", 0)) + 1, "last_at": time.time(),
                     "reason": "baseline data was cleaned",
                     "batches": sum(o.status == "committed" for o in outcomes),
                     "duration_s": round(time.time() - started, 3)}
            self.store.set_state(REINIT_KEY, state)
            self._reinit = state
            log.info("auto re-initialisation done", extra={"fields": state})
            self._publish("auto_reinit", state)

        self._reinit_thread = threading.Thread(target=work, name="fleetgen-reinit", daemon=True)
        self._reinit_thread.start()

    def clean(self) -> dict[str, Any]:
        with self._lock:
            if not self.paused:
                log.warning("clean refused: the service is running (pause it first)")
                raise LifecycleError("clean needs the service paused: POST /api/pause first")
            with self.pipeline.stream_locks(), self.pipeline.manifests_replaced():
                report = remove_generated(self.pipeline.layout)
                self.store.clear_generated()
                self.pipeline.forget_roster()
        log.info("data cleaned", extra={"fields": report.as_dict()})
        self._publish("cleaned", report.as_dict())
        return {"status": "cleaned", **report.as_dict()}

    @property
    def reinit_running(self) -> bool:
        return bool(self._reinit_thread and self._reinit_thread.is_alive())

    def auto_reinit_state(self) -> dict[str, Any]:
        state = self._reinit
        return {"count": int(state.get("count", 0)), "last_at": state.get("last_at"),
                "reason": state.get("reason"), "in_progress": bool(self._reinit_thread
                                                                   and self._reinit_thread.is_alive())}

    def _publish(self, kind: str, data: dict[str, Any]) -> None:
        if self.broadcaster is not None:
            self.broadcaster.publish(kind, data)


def clean_offline(config: Config) -> dict[str, Any]:
    """`fleetgen clean`: the same removal without a running service (the caller holds the data
    directory's lock, so no service or other command is writing there)."""
    check_data_dir(config.output.data_dir)  # before anything is opened or created there
    store = Store.for_config(config)
    try:
        pipeline = Pipeline(config, store)
        with pipeline.stream_locks():
            report = remove_generated(pipeline.layout)
            store.clear_generated()
        return {"status": "cleaned", **report.as_dict()}
    finally:
        store.close()
