"""`fleetgen backfill --engine spark`: the events windows of a backfill as Spark tasks.

The driver holds the data directory's lock and the ledger. It produces the company windows itself, in
order (they are few and small and each depends on the roster before it), then hands the events windows
to Spark in waves: one task per window, running the same numpy engine in an executor from the roster
(broadcast once) and publishing its batch atomically — a rename on a shared folder, or ``_SUCCESS`` last
on object storage. After each wave the driver commits the windows in order from the tasks' results.

A task that dies is retried by Spark (``spark.task.maxFailures``, or ``local[N,F]``); a retry makes the
same bytes, and finding its batch already published with those bytes adopts it, so nothing is written
twice and the ledger — committed by the driver alone — counts each window once. Emulated mode is not
distributed: each events batch starts from the fleet the previous one left (a chain).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from app.core import bronze
from app.core.config import Config
from app.core.errors import FleetgenError
from app.core.remote_bronze import RemoteBronze
from app.core.timeline import Window
from app.service.pipeline import COMPANIES, EVENTS, Outcome, Pipeline, batch_meta, make_batch
from app.store.store import CommitStats, LedgerRow

log = logging.getLogger(__name__)
DEFAULT_MASTER = "local[*,4]"  # every core, and up to 4 attempts per task (local mode retries nothing by default)
# fault injection for the tests: "<batch_id>:staged|published[,…]" kills a task's first attempt there
FAULT_ENV = "FLEETGEN_SPARK_TASK_FAULT"


class SparkBackfillError(FleetgenError):
    """Spark is missing, or the configuration cannot be distributed (exit 2)."""


def spark_problem(config: Config) -> str | None:
    if config.emulated_mode.enabled:
        return ("--engine spark: emulated mode's events batches form a chain (each starts from the fleet the "
                "previous one left), so they cannot be made apart; backfill emulated data without --engine spark")
    return None


def backfill_on_spark(pipeline: Pipeline, start: datetime, end: datetime, master: str | None = None,
                      wave: int | None = None) -> list[Outcome]:
    """Every window of both streams in [start, end), the events windows made by Spark tasks."""
    config = pipeline.config
    problem = spark_problem(config)
    if problem:
        raise SparkBackfillError(problem)
    pipeline.check_backfill_range(start, end)
    windows = pipeline.due_for_backfill(EVENTS, start, end)
    # the company windows first, as the local backfill accounts for them: each events window's roster
    # (a baseline window before the first one included), then the rest of the range
    try:
        for window in windows:
            pipeline.ensure_companies_through(window.start, limit=10**9)
    except FleetgenError as exc:
        return [Outcome(EVENTS, windows[0], "failed", reason=str(exc))]
    outcomes = pipeline.catch_up(COMPANIES, end, start_if_empty=start, limit=10**9)
    if any(o.status == "failed" for o in outcomes) or not windows:
        return outcomes
    session = _session(master)
    context = session.sparkContext
    payload = context.broadcast({"config": config.model_dump(mode="json"), "roster": pipeline.roster_rows()})
    size = wave or max(8, 4 * context.defaultParallelism)
    try:
        for first in range(0, len(windows), size):
            done = _wave(pipeline, context, payload, windows[first:first + size])
            outcomes += done
            if any(o.status == "failed" for o in done):
                break
    finally:
        payload.destroy()
        bronze.remove_staging(pipeline.layout.staging)  # what a killed task attempt left (never visible)
    return outcomes


def _session(master: str | None) -> Any:
    """The Spark session: under spark-submit its master and settings; else ``master`` (default local)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SparkBackfillError("--engine spark needs PySpark (and Java 17): pip install 'fleetgen[spark]'") from None
    builder = SparkSession.builder.appName("fleetgen-backfill").config("spark.ui.showConsoleProgress", "false")
    submitted = bool(os.environ.get("PYSPARK_GATEWAY_PORT"))  # launched by spark-submit: its JVM is up
    if master is not None or not submitted:
        master = master or DEFAULT_MASTER
        builder = builder.master(master)
        if master.startswith("local"):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the workers run this fleetgen's interpreter
            builder = builder.config("spark.ui.enabled", "false")
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def _wave(pipeline: Pipeline, context: Any, payload: Any, windows: list[Window]) -> list[Outcome]:
    """Claim ``windows``, make them as Spark tasks, commit them in order; stops at the first failure."""
    store = pipeline.store
    rows: list[LedgerRow] = []
    for window in windows:
        claim = store.claim_window(EVENTS, window, None)
        if claim.row is None:
            raise FleetgenError(f"events window {window.batch_id} is held by another writer ({claim.reason})")
        rows.append(claim.row)
    spans = [(w.start_s, w.end_s) for w in windows]
    try:
        results = context.parallelize(spans, len(spans)).mapPartitions(partial(_make_windows, payload)).collect()
    except Exception as exc:  # noqa: BLE001 - a task failed past its retries: the wave's claims fail, retried later
        message = f"Spark job failed: {_first_line(exc)}"
        outcomes = []
        for row, window in zip(rows, windows, strict=True):
            store.fail(row, message)
            outcomes.append(Outcome(EVENTS, window, "failed", reason=message))
            pipeline.report(outcomes[-1])
        log.error("spark backfill wave failed", extra={"fields": {"from": windows[0].batch_id, "error": message}})
        return outcomes
    by_id = {result["batch_id"]: result for result in results}
    outcomes = []
    for row, window in zip(rows, windows, strict=True):
        result = by_id[window.batch_id]
        stats = CommitStats(pipeline.config.generation_mode, result["record_count"],
                            result["record_count"] - result["corrupted_count"], result["corrupted_count"],
                            result["issue_counts"], row.scheduled_at, result["started_at"], result["finished_at"],
                            None, result["published_at"], result["lateness_ms"], True)
        store.commit(row, stats)
        if result["attempt"] > 0:
            log.warning("events window made by a retried Spark task", extra={"fields": {
                "batch_id": window.batch_id, "attempt": result["attempt"] + 1, "adopted": result["adopted"]}})
        outcomes.append(Outcome(EVENTS, window, "committed", stats.record_count, stats.corrupted_count,
                                stats.issue_counts, stats.finished_at - stats.started_at, adopted=result["adopted"],
                                lateness_ms=stats.lateness_ms, catch_up=True))
        pipeline.report(outcomes[-1])
    pipeline.manifest_due()
    return outcomes


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        if "Error" in line or "Exception" in line:
            return line.strip()[:500]
    return text[:500]


# ---- in the executors ---------------------------------------------------------------------------

def _make_windows(payload: Any, spans: Iterator[tuple[int, int]]) -> Iterator[dict[str, Any]]:
    from pyspark import TaskContext

    spec = payload.value
    config = Config.model_validate(spec["config"])
    context = TaskContext.get()
    attempt = context.attemptNumber() if context is not None else 0
    for start_s, end_s in spans:
        yield make_window(config, spec["roster"], Window.from_epoch(start_s, end_s), attempt)


def make_window(config: Config, roster: Any, window: Window, attempt: int = 0) -> dict[str, Any]:
    """Generate, stage and publish one events window (what a task does); its facts for the ledger."""
    layout, scratch = _task_layout(config)
    fault = _fault_for(window.batch_id) if attempt == 0 else None
    try:
        started = time.time()
        made = make_batch(config, layout, EVENTS, window, roster.before(window.start_s), None)
        if fault == "staged":
            os._exit(1)  # noqa: SLF001 - an injected crash of this Python worker, with the batch staged
        published = bronze.finish_batch(layout, made.staged, batch_meta(config, made, False, True), started,
                                        window_end=window.end_s)
        if fault == "published":
            os._exit(1)  # published, the driver never told: the retry must adopt it
        return {"batch_id": window.batch_id, "record_count": made.record_count,
                "corrupted_count": made.corrupted_count, "issue_counts": made.issue_counts,
                "started_at": started, "finished_at": time.time(), "published_at": published.published_at,
                "lateness_ms": published.lateness_ms, "adopted": published.adopted, "attempt": attempt}
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _task_layout(config: Config) -> tuple[bronze.Layout, Path | None]:
    """Where a task stages and publishes: the data directory itself (a folder every executor mounts), or,
    on object storage, a scratch folder of the executor's own with the upload going to the bucket."""
    store = config.output.object_store()
    if store is None:
        return bronze.layout_of(config), None
    scratch = Path(tempfile.mkdtemp(prefix="fleetgen-task-"))
    return bronze.Layout(scratch, config.output.format, config.output.layout, RemoteBronze(store)), scratch


def _fault_for(batch_id: str) -> str | None:
    for fault in os.environ.get(FAULT_ENV, "").split(","):
        target, _, when = fault.partition(":")
        if target == batch_id:
            return when
    return None
