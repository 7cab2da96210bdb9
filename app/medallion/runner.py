"""`fleetgen pipeline`: consume committed bronze batches, each exactly once, into silver and gold.

``Sink`` is the engine-independent half: the state (one transaction per micro-batch), the published
Parquet tables, the status document and the "silver = expected" check. The DuckDB engine (``run``)
finds new committed batches itself, waking on the rename that publishes one; the Spark engine
(``app.medallion.spark_engine``) streams the record files and hands its classified rows to the same
sink from ``foreachBatch``.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core import bronze
from app.core.config import Config
from app.core.dirlock import DataDirLock
from app.medallion import source, status
from app.medallion.arrivals import Arrivals
from app.medallion.check import check
from app.medallion.publish import Tables, publish_pending, remove_leftovers
from app.medallion.rules import BronzeBatch
from app.medallion.state import Applied, SilverSource, State

log = logging.getLogger("app.pipeline")
LOCK_NAME = ".fleetgen-pipeline.lock"
STATE_FILE = "state.duckdb"
MAX_MICRO_BATCH_RECORDS = 2_000_000  # a backlog is taken in micro-batches of about this many records
MAX_MICRO_BATCH_FILES = 500


@dataclass
class Options:
    engine: str = "duckdb"
    trigger_s: float = 1.0
    out: Path | None = None  # default: the data directory
    check_every_s: float | None = 10.0  # None: never check
    master: str = "local[*]"


@dataclass
class Totals:
    micro_batches: int = 0
    batches: int = 0
    records: int = 0
    silver: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)

    def add(self, applied: Applied) -> None:
        self.micro_batches += 1
        self.batches += len(applied.batches)
        self.records += sum(b.record_count for b in applied.batches)
        for stream, n in applied.silver.items():
            self.silver[stream] = self.silver.get(stream, 0) + n
        for stream, n in applied.quarantined.items():
            self.quarantined[stream] = self.quarantined.get(stream, 0) + n


class Sink:
    def __init__(self, config: Config, options: Options):
        self.config = config
        self.options = options
        self.out = options.out or config.output.local_dir
        self.layout = bronze.Layout(config.output.local_dir, config.output.format, config.output.layout)
        self.tables = Tables(self.out)
        self.started_ms = int(time.time() * 1000)
        self.totals = Totals()
        self.last_check: dict[str, Any] | None = None
        self._next_check_at = 0.0
        self._checked_version = -1
        self._version = 0
        self._lock = DataDirLock(self.out, "pipeline", name=LOCK_NAME)
        self.state: State | None = None
        self.stopped_ms: int | None = None
        self.processed: dict[tuple[str, str], str] = {}
        self._latest: dict[str, str] = {}  # per stream, the latest batch processed
        self._busy = threading.Lock()  # a micro-batch and a check never overlap (Spark calls from its own thread)

    def open(self) -> Sink:
        self._lock.acquire()
        try:
            self.state = State(self.out / "pipeline" / STATE_FILE)
            self.processed = self.state.processed()
            for stream, batch_id in self.processed:
                self._latest[stream] = max(batch_id, self._latest.get(stream, batch_id))
            if self._bronze_replaced(everything=True):
                self.reset()
            leftovers = remove_leftovers(self.tables)  # files a killed pipeline was writing: published again below
            if leftovers:
                log.info("half-written table files removed", extra={"fields": {"files": len(leftovers)}})
            publish_pending(self.state, self.tables)  # what a crash left committed but unpublished
            self.write_status(pending=0)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self.state is not None:
            self.stopped_ms = int(time.time() * 1000)
            try:
                self.write_status(pending=0)
            finally:
                self.state.close()
            self.state = None
        self._lock.release()

    def _bronze_replaced(self, everything: bool = False) -> bool:
        """Whether bronze was cleaned (and perhaps written again) under what the pipeline processed: a
        processed batch gone, or holding other bytes. Every batch is looked at on opening; afterwards
        only each stream's latest, which a clean removes like the others."""
        if not self.processed:
            return False
        if everything:
            wanted = list(self.processed)
        else:  # on every look at bronze: two folders, not the whole ledger
            wanted = list(self._latest.items())
        for key in wanted:
            stream, batch_id = key
            folder = self.layout.batch_dir(stream, batch_id)
            if not folder.is_dir():
                return True
            if everything:
                batch = source.read_batch(self.layout, stream, batch_id, folder)
                if batch is not None and batch.sha256 != self.processed[key]:
                    return True
        return False

    def reset(self) -> None:
        """Start over: bronze was cleaned, so silver, gold and the state describe data that is gone."""
        log.warning("bronze was cleaned under the pipeline: its silver, gold and state start over",
                    extra={"fields": {"out": str(self.out), "batches_forgotten": len(self.processed)}})
        if self.state is not None:
            self.state.close()
        for name in ("silver", "gold", "pipeline"):
            folder = self.out / name
            if folder.is_dir() and not folder.is_symlink():
                shutil.rmtree(folder)
        self.state = State(self.out / "pipeline" / STATE_FILE)
        self.processed, self._latest = {}, {}
        self.last_check = None
        self._version += 1

    def pending(self) -> list[BronzeBatch]:
        if self._bronze_replaced():
            with self._busy:
                self.reset()
        return source.pending(self.layout, self.processed)

    def absorb(self, batches: list[BronzeBatch], silver_of: SilverSource | None = None,
               still_pending: int = 0) -> Applied:
        """Apply ``batches`` (none processed before) in one transaction, publish, update the status."""
        assert self.state is not None
        with self._busy:
            applied = self.state.apply(batches, silver_of)
            for b in batches:
                self.processed[(b.stream, b.batch_id)] = b.sha256
                self._latest[b.stream] = max(b.batch_id, self._latest.get(b.stream, b.batch_id))
            publish_pending(self.state, self.tables)
            self.totals.add(applied)
            self._version += 1
            self.write_status(still_pending)
        log.info("micro-batch %d: %d batch(es), %d records -> silver %s, quarantine %s in %.0f ms",
                 applied.micro_batch, len(batches), sum(b.record_count for b in batches), applied.silver,
                 applied.quarantined, applied.seconds * 1000,
                 extra={"fields": {"micro_batch": applied.micro_batch,
                                    "batches": [f"{b.stream}/{b.batch_id}" for b in batches]}})
        return applied

    def check_due(self, force: bool = False) -> bool:
        if self.options.check_every_s is None or not self.processed or self._checked_version == self._version:
            return False
        return force or time.monotonic() >= self._next_check_at

    def run_check(self) -> dict[str, Any]:
        with self._busy:
            by_stream: dict[str, set[str]] = {s: set() for s in bronze.STREAMS}
            for stream, batch_id in self.processed:
                by_stream[stream].add(batch_id)
            self.last_check = check(self.config, self.tables, by_stream)
            self.last_check["at"] = status.iso_ms(int(time.time() * 1000))
            # an emulated check replays the fleet from the first batch, so its cost grows with the run:
            # it never takes more than a tenth of the pipeline's time
            pause = max(self.options.check_every_s or 0.0, 10 * self.last_check["seconds"])
            self._next_check_at, self._checked_version = time.monotonic() + pause, self._version
            self.write_status(pending=0)
        if self.last_check["state"] != "equal":
            log.warning("silver / gold differ from the expectation: %s", self.last_check.get("error") or {
                name: {k: t[k] for k in ("missing", "extra", "changed")}
                for name, t in self.last_check["tables"].items() if not t["equal"]})
        return self.last_check

    def write_status(self, pending: int) -> None:
        assert self.state is not None
        about = {"engine": self.options.engine, "data_dir": str(self.config.output.data_dir),
                 "silver_dir": str(self.tables.silver), "gold_dir": str(self.tables.gold),
                 "trigger_s": self.options.trigger_s, "stopped_at": status.iso_ms(self.stopped_ms)}
        status.write(self.out, status.document(self.state, about, self.started_ms, pending, self.last_check))


def micro_batches(batches: list[BronzeBatch]) -> list[list[BronzeBatch]]:
    """A backlog in groups of at most MAX_MICRO_BATCH_RECORDS records / MAX_MICRO_BATCH_FILES batches
    (a single larger batch is a group of its own)."""
    groups: list[list[BronzeBatch]] = []
    size = 0
    for batch in batches:
        full = bool(groups) and (size + batch.record_count > MAX_MICRO_BATCH_RECORDS
                                 or len(groups[-1]) >= MAX_MICRO_BATCH_FILES)
        if not groups or full:
            groups.append([])
            size = 0
        groups[-1].append(batch)
        size += batch.record_count
    return groups


def run_duckdb(sink: Sink, once: bool, stop: threading.Event) -> Totals:
    """Process every committed batch not yet processed; with ``once`` then return, else keep watching."""
    folders = [sink.layout.stream_dir(s) for s in bronze.STREAMS] if sink.layout.partitioning == "batch" else []
    with Arrivals(folders) as arrivals:
        while not stop.is_set():
            found = sink.pending()
            groups = micro_batches(found)
            for i, group in enumerate(groups):
                if stop.is_set():
                    break
                sink.absorb(group, still_pending=sum(len(g) for g in groups[i + 1:]))
            if groups:
                continue  # look again at once: more may have landed meanwhile
            if sink.check_due(force=once):
                sink.run_check()
            if once:
                break
            arrivals.wait(sink.options.trigger_s)
    return sink.totals
