"""Pause, resume and clean: the operations the API and CLI share, with their state in the store."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core import bronze
from app.core.config import Config, shared_directory_problem
from app.core.errors import LifecycleError
from app.core.remote_bronze import RemoteBronze
from app.core.timeline import format_timestamp, iso_or_none
from app.service.pipeline import Pipeline
from app.store import Store

log = logging.getLogger(__name__)
PAUSED_KEY, REINIT_KEY = "paused", "auto_reinit"
GENERATED_MANIFESTS = ("batch_manifest.json", "dataset.md")
MANIFEST_TEMPS = (".batch_manifest.json.*.tmp", ".dataset.md.*.tmp")


@dataclass(frozen=True)
class Removed:
    """One thing clean deleted: a batch folder, the staging area or a manifest file."""

    name: str
    path: str  # relative to the data directory
    type: str  # batch | staging | manifest
    size: int  # bytes
    file_count: int

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "type": self.type, "size": self.size,
                "file_count": self.file_count}


@dataclass
class CleanReport:
    removed_batches: int = 0
    removed_files: int = 0
    skipped: list[str] = field(default_factory=list)
    items: list[Removed] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)  # {name, path, error}: left in place
    duration_ms: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"removed_batches": self.removed_batches, "removed_files": self.removed_files,
                "skipped": self.skipped, "deleted_count": len(self.items),
                "deleted_items": [item.as_dict() for item in self.items], "errors": self.errors,
                "filesRemoved": self.removed_files, "durationMs": self.duration_ms}


def check_data_dir(data_dir: Path) -> Path:
    """Refuse to treat a system or home directory as fleetgen's own."""
    problem = shared_directory_problem(data_dir)
    if problem:
        raise LifecycleError(f"refusing to clean: {problem} (set output.data_dir to a folder of its own)")
    return data_dir.resolve()


def remove_generated(layout: bronze.Layout) -> CleanReport:
    """Delete what fleetgen wrote under the data directory, nothing else; follows no symlink. What
    cannot be removed (permissions, a busy file) is reported in ``errors`` and the rest still goes."""
    started = time.monotonic()
    root = check_data_dir(layout.root)
    report = CleanReport()
    for stream in bronze.STREAMS:
        stream_dir = layout.stream_dir(stream)
        if stream_dir.is_symlink():
            report.skipped.append(f"{stream_dir} is a symlink; left alone")
            continue
        if not stream_dir.is_dir():
            continue
        batches = [path for layout_name in bronze.LAYOUTS for _, path in layout.batch_dirs(stream, layout_name)]
        for entry in sorted(stream_dir.iterdir()):
            partition = entry.name.startswith("date=") and entry.is_dir() and not entry.is_symlink()
            if entry not in batches and not partition:
                report.skipped.append(f"{entry} is not a fleetgen batch; left alone")
        for entry in batches:
            if not _inside(entry, root):
                report.skipped.append(f"{entry} resolves outside {root}; left alone")
                continue
            if _remove(entry, "batch", root, report):
                report.removed_batches += 1
        _remove_empty_partitions(stream_dir)
    if layout.staging.is_dir() and not layout.staging.is_symlink() and any(layout.staging.iterdir()):
        _remove(layout.staging, "staging", root, report)
    temps = [p for pattern in MANIFEST_TEMPS for p in layout.manifests.glob(pattern)]
    for path in [layout.manifests / name for name in GENERATED_MANIFESTS] + temps:
        if path.is_file() and not path.is_symlink():
            _remove(path, "manifest", root, report)
    if layout.schemas.is_dir() and not layout.schemas.is_symlink():
        _remove(layout.schemas, "manifest", root, report)
    if layout.remote is not None:
        _remove_remote(layout.remote, report)
    layout.ensure()
    report.duration_ms = round((time.monotonic() - started) * 1000)
    return report


def _remove_remote(remote: RemoteBronze, report: CleanReport) -> None:
    """Object storage: every batch folder (markers first, so none is ever visible in part) and the uploaded
    manifests; other objects under raw/ are reported and left alone."""
    sizes = {**remote.objects("raw"), **remote.objects("manifests")}
    batches = remote.batches(objects=sizes)
    in_batches = {path for paths in batches.values() for path in paths}
    report.skipped += [f"{remote.store.uri(path)} is not a fleetgen batch; left alone"
                       for path in sizes if path.startswith("raw/") and path not in in_batches]
    manifests = [path for path in sizes if path.startswith("manifests/") and (
                 path.removeprefix("manifests/") in GENERATED_MANIFESTS or path.startswith("manifests/schemas/"))]
    try:
        remote.remove(sorted(in_batches) + manifests)
    except OSError as exc:
        report.errors.append({"name": remote.store.url, "path": remote.store.url,
                              "error": f"{type(exc).__name__}: {exc}"})
        return
    for (_, folder), paths in sorted(batches.items()):
        report.items.append(Removed(folder.rsplit("/", 1)[1], folder, "batch", sum(sizes.get(p, 0) for p in paths),
                                    len(paths)))
        report.removed_batches += 1
        report.removed_files += len(paths)
    for path in manifests:
        report.items.append(Removed(path.rsplit("/", 1)[1], path, "manifest", sizes.get(path, 0), 1))
        report.removed_files += 1


def _remove_empty_partitions(stream_dir: Path) -> None:
    """The date= / hour= folders of the hive layout once their batches are gone (others stay)."""
    for day in [e for e in stream_dir.iterdir() if e.name.startswith("date=") and e.is_dir() and not e.is_symlink()]:
        for hour in [e for e in day.iterdir() if e.name.startswith("hour=") and e.is_dir() and not e.is_symlink()]:
            if not any(hour.iterdir()):
                hour.rmdir()
        if not any(day.iterdir()):
            day.rmdir()


def _remove(path: Path, kind: str, root: Path, report: CleanReport) -> bool:
    relative = str(path.relative_to(root)) if _inside(path, root) else str(path)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    size = sum(p.stat().st_size for p in files)
    try:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    except OSError as exc:
        report.errors.append({"name": path.name, "path": relative, "error": f"{type(exc).__name__}: {exc}"})
        return False
    report.items.append(Removed(path.name, relative, kind, size, len(files)))
    report.removed_files += len(files)
    return True


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
        self.pipeline.discard_prepared()
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
        missing = self._missing_outputs()

        def work() -> None:
            started = time.time()
            outcomes = self.pipeline.catch_up("events", now_fn())
            outcomes += self.pipeline.catch_up("companies", now_fn())
            committed = [o for o in outcomes if o.status == "committed"]
            # From the ledger, not the outcomes: a scheduled wake-up may have produced one of them first.
            company = self.store.first_committed("companies")
            driver = self.store.first_committed("events")
            actions = []
            if company is not None:
                actions.append(f"baseline company batch {company.batch_id} regenerated")
            if driver is not None:
                actions.append(f"driver batch {driver.batch_id} produced on the new roster")
            state = self.store.get_state(REINIT_KEY, {}) or {}
            state = {"count": int(state.get("count", 0)) + 1, "last_at": time.time(),
                     "reason": "baseline data was cleaned", "batches": len(committed),
                     "duration_s": round(time.time() - started, 3), "actions": actions, "missing_files": missing,
                     "company_total": self.store.roster_size(),
                     "reinit_company_time": format_timestamp(company.window.end) if company else None,
                     "reinit_driver_batch_id": driver.batch_id if driver else None,
                     "reinit_driver_time": format_timestamp(driver.window.end) if driver else None,
                     "first_driver_batch_events": driver.record_count if driver else None}
            self.store.set_state(REINIT_KEY, state)
            self._reinit = state
            log.info("auto re-initialisation done", extra={"fields": state})
            self._publish("auto_reinit", self.auto_reinit_state())  # ISO timestamps, like health

        self._reinit_thread = threading.Thread(target=work, name="fleetgen-reinit", daemon=True)
        self._reinit_thread.start()

    def _missing_outputs(self) -> list[str]:
        """What a re-initialisation has to bring back (paths relative to the data directory)."""
        layout = self.pipeline.layout
        missing = []
        for stream in bronze.STREAMS:
            if not layout.has_batches(stream):
                missing.append(f"raw/{stream}/")
        manifest = layout.manifests / GENERATED_MANIFESTS[0]
        if not manifest.exists():
            missing.append(str(manifest.relative_to(layout.root)))
        return missing

    def clean(self) -> dict[str, Any]:
        with self._lock:
            if not self.paused:
                log.warning("clean refused: the service is running (pause it first)")
                raise LifecycleError("clean needs the service paused: POST /api/pause first")
            with self.pipeline.stream_locks(), self.pipeline.manifests_replaced():
                self.pipeline.discard_prepared()
                report = remove_generated(self.pipeline.layout)
                self.store.clear_generated()
                self.pipeline.forget_roster()
        log.info("data cleaned", extra={"fields": report.as_dict()})
        self._publish("cleaned", report.as_dict())
        return {"status": "cleaned", **report.as_dict()}

    def wait_reinit(self, timeout: float) -> bool:
        """At shutdown: let a re-initialisation in flight finish its bookkeeping; False if it did not."""
        thread = self._reinit_thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    @property
    def reinit_running(self) -> bool:
        return bool(self._reinit_thread and self._reinit_thread.is_alive())

    def auto_reinit_state(self) -> dict[str, Any]:
        """The latest re-initialisation, in the seed's terms (performed, at, actions, missing_files and
        the reinit_* facts) beside fleetgen's count, reason and in_progress; timestamps ISO 8601."""
        state = self._reinit
        at = iso_or_none(state.get("last_at"))
        return {"performed": bool(state.get("count")), "at": at, "actions": list(state.get("actions", [])),
                "missing_files": list(state.get("missing_files", [])), "count": int(state.get("count", 0)),
                "last_at": at, "reason": state.get("reason"),
                "in_progress": bool(self._reinit_thread and self._reinit_thread.is_alive()),
                "company_total": state.get("company_total"),
                "reinit_company_time": state.get("reinit_company_time"),
                "reinit_driver_batch_id": state.get("reinit_driver_batch_id"),
                "reinit_driver_time": state.get("reinit_driver_time"),
                "first_driver_batch_events": state.get("first_driver_batch_events")}

    def _publish(self, kind: str, data: dict[str, Any]) -> None:
        if self.broadcaster is not None:
            self.broadcaster.publish(kind, data)


def clean_offline(config: Config) -> dict[str, Any]:
    """`fleetgen clean`: the same removal without a running service (the caller holds the data
    directory's lock, so no service or other command is writing there)."""
    check_data_dir(config.output.local_dir)  # before anything is opened or created there
    store = Store.for_config(config)
    try:
        pipeline = Pipeline(config, store)
        with pipeline.stream_locks():
            report = remove_generated(pipeline.layout)
            store.clear_generated()
        return {"status": "cleaned", **report.as_dict()}
    finally:
        store.close()
