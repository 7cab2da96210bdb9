"""The bronze layout on disk and atomic batch publishing (stage, fsync, rename, _SUCCESS last)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from app.core.config import Config
from app.core.errors import PublishError
from app.core.filesink import DIRECT_BUFFER, FileSink
from app.core.remote_bronze import RemoteBronze
from app.core.timeline import format_timestamp

# 2.0: sidecars _batch_meta.json and _issues.ndjson (record-only folders); 2.1: late arrival (events meta
# late_count, max_delay, accepts_from; _late_arrivals.ndjson); 2.2: companies' updated_at (change records)
SCHEMA_VERSION = "2.2"
STREAMS = ("companies", "events")
# Only the record file ends in .jsonl and has no leading underscore, so a folder-wide read
# (`raw/events/*/*.jsonl`, `**/*.jsonl`, Spark on `raw/events/*`: Hadoop hides `_` names) takes
# records and nothing else. The quality log is JSON Lines too, named .ndjson to stay out of record globs.
META_FILE, ISSUES_FILE, SUCCESS_FILE = "_batch_meta.json", "_issues.ndjson", "_SUCCESS"
LATE_FILE = "_late_arrivals.ndjson"  # events batches: the late arrivals among the records (ground truth)
LEGACY_NAMES = {"batch_meta.json": META_FILE, "issues.jsonl": ISSUES_FILE}  # before schema 2
BATCH_DIR_PATTERN = re.compile(r"^\d{8}T\d{6}Z$")
HIVE_BATCH_PATTERN = re.compile(r"^batch_id=(\d{8}T\d{6}Z)$")
STAGING_DIR = ".staging"
LAYOUTS = ("batch", "hive")  # output.layout: raw/<stream>/<batch_id>/ or raw/<stream>/date=…/hour=…/batch_id=…/


@dataclass(frozen=True)
class Layout:
    root: Path
    record_format: str = "jsonl"  # output.format: the record files' extension
    partitioning: str = "batch"  # output.layout, one of LAYOUTS
    # object storage: batches are published there; root keeps the ledger, lock, staging and manifests
    remote: RemoteBronze | None = None

    def record_file(self, stream: str) -> str:
        return f"{stream}.{self.record_format}"

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    @property
    def staging(self) -> Path:
        return self.root / STAGING_DIR

    def stream_dir(self, stream: str) -> Path:
        return self.raw / stream

    def batch_dir(self, stream: str, batch_id: str) -> Path:
        return self.root / self.batch_path(stream, batch_id)

    def batch_path(self, stream: str, batch_id: str) -> str:
        """The batch folder relative to the data directory (``raw/events/<batch_id>`` or its hive form)."""
        if self.partitioning == "hive":  # the window start's UTC date and hour, for partition discovery
            day = f"{batch_id[0:4]}-{batch_id[4:6]}-{batch_id[6:8]}"
            return f"raw/{stream}/date={day}/hour={batch_id[9:11]}/batch_id={batch_id}"
        return f"raw/{stream}/{batch_id}"

    def location(self, stream: str, batch_id: str) -> str:
        """Where readers find the batch: a local folder, or its object-storage URL."""
        if self.remote is not None:
            return self.remote.store.uri(self.batch_path(stream, batch_id))
        return str(self.batch_dir(stream, batch_id))

    def read_meta(self, stream: str, batch_id: str) -> dict[str, Any]:
        """A published batch's meta file (OSError or ValueError when it cannot be read)."""
        if self.remote is not None:
            meta = self.remote.read_meta(self.batch_path(stream, batch_id))
            if meta is None:
                raise FileNotFoundError(f"{self.location(stream, batch_id)}/{META_FILE} not found or unreadable")
            return meta
        data = orjson.loads((self.batch_dir(stream, batch_id) / META_FILE).read_bytes())
        if not isinstance(data, dict):
            raise ValueError(f"{META_FILE} is not a JSON object")
        return data

    def has_batches(self, stream: str) -> bool:
        if self.remote is not None:
            return bool(self.remote.committed(stream))
        return bool(self.batch_dirs(stream))

    def batch_dirs(self, stream: str, partitioning: str | None = None) -> list[tuple[str, Path]]:
        """(batch_id, folder) of every batch folder of ``stream`` in ``partitioning`` (default: this
        layout's), sorted by batch_id; symbolic links are never followed."""
        folder = self.stream_dir(stream)
        if not folder.is_dir() or folder.is_symlink():
            return []
        found: list[tuple[str, Path]] = []
        if (partitioning or self.partitioning) == "batch":
            found = [(e.name, e) for e in folder.iterdir()
                     if BATCH_DIR_PATTERN.match(e.name) and e.is_dir() and not e.is_symlink()]
        else:
            for day in _subfolders(folder, "date="):
                for hour in _subfolders(day, "hour="):
                    for batch in _subfolders(hour, "batch_id="):
                        match = HIVE_BATCH_PATTERN.match(batch.name)
                        if match:
                            found.append((match.group(1), batch))
        return sorted(found)

    def foreign_batches(self) -> list[str]:
        """Batch folders written in the other layout (a data directory keeps one), relative to the root."""
        if self.remote is not None:
            hive = self.partitioning == "hive"
            return [folder for _, folder in self.remote.batches() if ("/date=" in folder) != hive]
        other = next(name for name in LAYOUTS if name != self.partitioning)
        return [str(path.relative_to(self.root)) for stream in STREAMS for _, path in self.batch_dirs(stream, other)]

    @property
    def schemas(self) -> Path:
        return self.manifests / "schemas"

    def ensure(self) -> None:
        for stream in STREAMS:
            self.stream_dir(stream).mkdir(parents=True, exist_ok=True)
        self.manifests.mkdir(parents=True, exist_ok=True)
        self.staging.mkdir(parents=True, exist_ok=True)


def layout_of(config: Config) -> Layout:
    """The bronze layout a configuration writes: its local folder, and its object store when it has one."""
    store = config.output.object_store()
    return Layout(config.output.local_dir, config.output.format, config.output.layout,
                  RemoteBronze(store) if store is not None else None)


def _subfolders(folder: Path, prefix: str) -> list[Path]:
    return [e for e in folder.iterdir() if e.name.startswith(prefix) and e.is_dir() and not e.is_symlink()]


@dataclass(frozen=True)
class FileInfo:
    rows: int
    bytes: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "bytes": self.bytes, "sha256": self.sha256}


@dataclass(frozen=True)
class Published:
    path: str  # the batch folder, or its URL on object storage
    files: dict[str, FileInfo]
    adopted: bool  # an identical batch was already visible (a retry after a crash past the rename)
    published_at: float  # epoch s: every file written and fsynced, just before the rename
    lateness_ms: float | None  # published_at - window end


@dataclass
class Staged:
    """A batch's record files written in a staging folder of their own, not yet visible."""

    stream: str
    batch_id: str
    staging: Path
    files: dict[str, FileInfo]
    synced: bool  # the record files are already fsynced (a batch prepared ahead of its boundary)


def publish_batch(
    layout: Layout,
    stream: str,
    batch_id: str,
    records: Iterable[bytes | memoryview],
    record_count: int,
    issues: bytes,
    issue_count: int,
    meta: dict[str, Any],
    started: float | None = None,
    checkpoint: Callable[[], None] = lambda: None,
    window_end: int | None = None,
) -> Published:
    """Write a batch in staging and make it visible in one rename; nothing partial is ever visible.

    ``checkpoint`` is called between chunks and just before the rename; raising there
    (shutdown) abandons the batch and leaves nothing behind. Each attempt stages in a folder of
    its own, so two writers (or a retry and a leftover) never share one. With ``window_end``
    (epoch s), ``published_at`` and ``lateness_ms`` go into the batch's meta file too.
    """
    staged = stage_batch(layout, stream, batch_id, records, record_count, issues, issue_count, checkpoint)
    return finish_batch(layout, staged, meta, started, checkpoint, window_end)


def stage_batch(
    layout: Layout,
    stream: str,
    batch_id: str,
    records: Iterable[bytes | memoryview],
    record_count: int,
    issues: bytes,
    issue_count: int,
    checkpoint: Callable[[], None] = lambda: None,
    sync: bool = False,
    late: bytes = b"",
    late_count: int = 0,
) -> Staged:
    """The first half of publishing: the record files (and the quality log) in a fresh staging folder;
    ``sync`` fsyncs them now, so that finishing only has the small meta file and the rename left."""
    def fill(staging: Path) -> dict[str, FileInfo]:
        record_file = layout.record_file(stream)
        files = {record_file: _write_stream(staging / record_file, records, record_count, checkpoint, sync=False)}
        if issues:
            files[ISSUES_FILE] = _write_stream(staging / ISSUES_FILE, [issues], issue_count, sync=False)
        if late:
            files[LATE_FILE] = _write_stream(staging / LATE_FILE, [late], late_count, sync=False)
        return files

    return stage_files(layout, stream, batch_id, fill, sync)


def stage_files(layout: Layout, stream: str, batch_id: str, fill: Callable[[Path], dict[str, FileInfo]],
                sync: bool = False) -> Staged:
    """``stage_batch`` for a caller that writes the files itself: ``fill`` writes them in the fresh staging
    folder it is given (e.g. with ``StreamWriter``) and returns them; an error removes the folder."""
    layout.ensure()
    staging = layout.staging / f"{stream}-{batch_id}-{uuid.uuid4().hex[:12]}"
    with _dropped_on_error(layout, staging, stream, batch_id):
        _remove_tree(staging)
        staging.mkdir(parents=True)
        files = fill(staging)
        if sync and layout.remote is None:
            _sync_together([staging / name for name in files])
        return Staged(stream, batch_id, staging, files, sync)


def finish_batch(
    layout: Layout,
    staged: Staged,
    meta: dict[str, Any],
    started: float | None = None,
    checkpoint: Callable[[], None] = lambda: None,
    window_end: int | None = None,
    work_before_s: float = 0.0,
) -> Published:
    """The second half: the meta file and ``_SUCCESS``, one fsync round, then the rename that makes
    the batch visible. ``work_before_s`` (a batch prepared ahead) is added to the meta's duration."""
    stream, staging = staged.stream, staged.staging
    final = layout.batch_dir(stream, staged.batch_id)
    files = staged.files
    with _dropped_on_error(layout, staging, stream, staged.batch_id):
        published_at = time.time()
        duration = round(work_before_s + published_at - started, 6) if started is not None else None
        lateness_ms = None
        timing: dict[str, Any] = {}
        if window_end is not None:
            lateness_ms = round(published_at * 1000 - window_end * 1000, 3)
            timing = {"published_at": format_timestamp(datetime.fromtimestamp(published_at, UTC)),
                      "lateness_ms": lateness_ms}
        full_meta = {**meta, "duration_s": duration, **timing,
                     "files": {name: info.as_dict() for name, info in files.items()}}
        _write_stream(staging / META_FILE, [orjson.dumps(full_meta, option=orjson.OPT_INDENT_2) + b"\n"], 1,
                      sync=False)
        (staging / SUCCESS_FILE).touch()  # empty: the directory fsync below makes it durable
        checkpoint()
        if layout.remote is not None:  # the staged files are a scratch copy: the object store keeps the batch
            adopted = layout.remote.publish(staging, layout.batch_path(stream, staged.batch_id),
                                            [*files, META_FILE], lambda meta: _same_files(meta, files), checkpoint)
            _remove_tree(staging)
            return Published(layout.location(stream, staged.batch_id), files, adopted, published_at, lateness_ms)
        unsynced = [] if staged.synced else list(files)
        _sync_together([staging / name for name in (*unsynced, META_FILE)] + [staging])
        checkpoint()
        adopted = _existing_matches(final, stream, files)
        if adopted:
            _remove_tree(staging)
        else:
            move_into_place(staging, final)
        return Published(str(final), files, adopted, published_at, lateness_ms)


@contextmanager
def _dropped_on_error(layout: Layout, staging: Path, stream: str, batch_id: str) -> Iterator[None]:
    """Whatever goes wrong while a batch is staged or finished, its staging folder goes; an OS error is
    reported as a PublishError naming the batch."""
    try:
        yield
    except OSError as exc:
        _remove_tree(staging, ignore_errors=True)
        raise PublishError(f"cannot publish {stream}/{batch_id} under {layout.root}: {exc}") from exc
    except BaseException:
        _remove_tree(staging, ignore_errors=True)
        raise


def discard(staged: Staged) -> None:
    """Drop a staged batch that will not be published (its window was taken, skipped or cleaned)."""
    _remove_tree(staged.staging, ignore_errors=True)


def move_into_place(staging: Path, final: Path) -> None:
    """The single step that makes a batch visible (a separate function so tests can break it)."""
    created = _make_parents(final.parent)
    if final.exists():
        # A different earlier copy (e.g. from another config): set it aside, then swap.
        retired = staging.parent / f"retired-{final.parent.name}-{final.name}"
        _remove_tree(retired)
        os.replace(final, retired)
        os.replace(staging, final)
        _remove_tree(retired)
    else:
        os.replace(staging, final)
    if created:
        _sync_together([final.parent] + [folder.parent for folder in created])
    else:
        fsync(final.parent)


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and missing ancestors (a new date= / hour= partition); the ones created."""
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
    return missing


def _existing_matches(final: Path, stream: str, files: dict[str, FileInfo]) -> bool:
    if not (final / SUCCESS_FILE).exists():
        return False
    try:
        return _same_files(orjson.loads((final / META_FILE).read_bytes()), files)
    except (OSError, ValueError):
        return False


def _same_files(meta: dict[str, Any], files: dict[str, FileInfo]) -> bool:
    """Whether a published batch's meta lists these files with the same checksums."""
    try:
        existing = _files_of(meta)
    except (KeyError, TypeError, AttributeError):
        return False
    return all(existing.get(name, {}).get("sha256") == info.sha256 for name, info in files.items())


def _write_stream(path: Path, chunks: Iterable[bytes | memoryview], rows: int,
                  checkpoint: Callable[[], None] = lambda: None, sync: bool = True) -> FileInfo:
    """Write, checksum and fsync one file (``sync=False``: the caller syncs it, e.g. with
    ``_sync_together``)."""
    writer = StreamWriter(path, large=rows >= DIRECT_IO_MIN_ROWS)
    try:
        for chunk in chunks:
            checkpoint()
            writer.write(chunk)
    except BaseException:
        writer.abort()
        raise
    return writer.close(rows, sync)


class StreamWriter:
    """One staged file written chunk by chunk: each chunk goes to disk on the writer thread and into the
    checksum on the hashing thread while the caller renders the next ones. At most ``WRITE_AHEAD`` chunks
    wait (memory stays bounded); a failed write is raised by the next ``write`` or by ``close``."""

    def __init__(self, path: Path, large: bool, buffer_bytes: int = DIRECT_BUFFER):
        self.path = path
        self.digest = hashlib.sha256()
        self.pending: deque[tuple[Future[None], Future[None]]] = deque()
        self.sink = FileSink(path, large=large, buffer_bytes=buffer_bytes)

    def write(self, chunk: bytes | memoryview) -> None:
        while len(self.pending) >= WRITE_AHEAD:
            self._settle(self.pending.popleft())
        if len(chunk) < HASH_INLINE_BYTES and not self.pending:
            self.digest.update(chunk)  # a hand-off to the threads would cost more than the work
            self.sink.write(chunk)
            return
        # each thread takes its tasks in order: the file and the checksum see the chunks as given
        self.pending.append((_HASHER.submit(self.digest.update, chunk), _WRITER.submit(self.sink.write, chunk)))

    def close(self, rows: int, sync: bool = True) -> FileInfo:
        try:
            while self.pending:
                self._settle(self.pending.popleft())
        except BaseException:
            self.abort()
            raise
        size = self.sink.close(sync)
        return FileInfo(rows, size, self.digest.hexdigest())

    def abort(self) -> None:
        """Drop what is still queued, let the write under way finish (the file is not closed under it),
        and close the file."""
        for hashing, writing in self.pending:
            hashing.cancel()
            writing.cancel()
        for pair in self.pending:
            for work in pair:
                if not work.cancelled():
                    futures_wait([work])
        self.pending.clear()
        self.sink.abort()

    @staticmethod
    def _settle(pair: tuple[Future[None], Future[None]]) -> None:
        for work in pair:
            work.result()


WRITE_AHEAD = 2
_WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fleetgen-write")
_HASHER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fleetgen-sha256")
HASH_INLINE_BYTES = 1 << 20
SIDECAR_BUFFER = 1 << 20  # a sidecar's O_DIRECT buffers (two): its chunks are a few MB, memory is the records'
DIRECT_IO_MIN_ROWS = 50_000  # below this a batch is a few MB: the page cache is the faster path


_SYNCER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fleetgen-fsync")


def _sync_together(paths: list[Path]) -> None:
    """fsync files and directories at the same time: a journalling file system commits them together,
    so a small batch pays for about one flush instead of one per file."""
    for done in [_SYNCER.submit(fsync, path) for path in paths]:
        done.result()


def fsync(path: Path) -> None:
    """fsync a file or a directory (any descriptor of an inode flushes it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_tree(path: Path, ignore_errors: bool = False) -> None:
    if path.is_symlink():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, ignore_errors=ignore_errors)


def write_json_atomically(path: Path, data: Any) -> None:
    """Through a temp file of this call's own, then a rename: concurrent writers never clash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    os.replace(tmp, path)


def write_text_once(path: Path, text: str) -> bool:
    """Create ``path`` with ``text`` unless it exists; True when written."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return True


def verify_batch(batch_dir: Path) -> list[str]:
    """Problems with a published batch: missing marker, or files whose size or checksum differ."""
    problems = []
    if not (batch_dir / SUCCESS_FILE).exists():
        return [f"{batch_dir}: no {SUCCESS_FILE}"]
    meta = orjson.loads((batch_dir / META_FILE).read_bytes())
    for name, info in _files_of(meta).items():
        data = (batch_dir / name).read_bytes()
        if len(data) != info["bytes"] or hashlib.sha256(data).hexdigest() != info["sha256"]:
            problems.append(f"{batch_dir / name}: size or sha256 differs from {META_FILE}")
    return problems


def _files_of(meta: dict[str, Any]) -> dict[str, Any]:
    """The meta's file entries under today's names (a batch of the older layout lists the old ones)."""
    return {LEGACY_NAMES.get(name, name): info for name, info in meta["files"].items()}


def migrate_legacy_names(layout: Layout) -> int:
    """Rename the sidecars of batches written before record-only folders (``batch_meta.json``,
    ``issues.jsonl``) in place; each rename is atomic. Returns how many files were renamed."""
    renamed = 0
    for stream in STREAMS:
        for _, batch in layout.batch_dirs(stream, "batch"):  # the older names predate the hive layout
            for old, new in LEGACY_NAMES.items():
                if (batch / old).is_file() and not (batch / new).exists():
                    os.replace(batch / old, batch / new)
                    renamed += 1
    return renamed


def remove_staging(staging: Path) -> int:
    """Empty the staging folder (batches never made visible); returns how many entries went."""
    if not staging.is_dir() or staging.is_symlink():
        return 0
    removed = 0
    for entry in staging.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed += 1
    return removed
