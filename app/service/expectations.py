"""`fleetgen expect`: the silver and gold tables a correct bronze → silver → gold pipeline produces,
derived from the generator's own ground truth, never by re-reading bronze with the silver rules.

Each committed window in the ledger is generated again from the seed (a batch is a pure function of
seed, stream, window, roster and config), its rendered record file checked against the sha256 its
``_batch_meta.json`` recorded (so the truth is provably the one that produced bronze), and its true
records kept except the lines the defect plan touched: a defective record is quarantined by a correct
pipeline, and a duplicate line repeats a clean record that is already kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from app.core import bronze
from app.core.config import EVENT_TYPES, GEOGRAPHIES, MASKED, Config
from app.core.errors import FleetgenError
from app.core.generation.batch import generate_in_parts
from app.core.generation.columns import ColumnBatch
from app.core.generation.companies import CompanyBatch
from app.core.generation.defects import DefectPlan
from app.core.generation.emulated_fleet import FleetState
from app.core.generation.encoding import render_records
from app.core.generation.events import EventBatch
from app.core.generation.geography import COORD_SCALE
from app.core.generation.parquet import record_chunks
from app.core.remote_bronze import RemoteBronze
from app.core.schema import arrow_schema
from app.core.storage import ObjectStore, local_path, location_problem
from app.core.timeline import Window, format_timestamp
from app.service.expected_tables import INSTANT, Spill, silver_schema, write_tables
from app.service.pipeline import COMPANIES, EVENTS, Pipeline
from app.store import Store

# Every table: its file under the expectations folder, its key, and what it holds.
TABLES: dict[str, dict[str, Any]] = {
    "silver/events": {"key": ["event_id"], "about": "valid driver events, one row per event_id (late arrivals "
                                                    "included, window_start their own window)"},
    "silver/companies": {"key": ["company_id", "updated_at"],
                         "about": "valid company records, one row per company_id and updated_at: the onboarding and, "
                                  "with companies.churn, each change (an SCD-2 history)"},
    "gold/events_per_company_window_type": {
        "key": ["company_id", "window_start", "event_type"],
        "about": "valid events per company, driver window (its start, UTC: the window the event happened in, "
                 "earlier than its batch's for a late arrival) and event_type"},
    "gold/deliveries_per_company_day": {
        "key": ["company_id", "day"],
        "about": "valid `delivered` events per company and UTC day (days with none left out)"},
    "gold/driver_day": {
        "key": ["company_id", "driver_id", "day"],
        "about": "per driver and UTC day (of the event): trips (a stopped_driving right after a start_driving in "
                 "the driver's valid events ordered by event_timestamp, event_id), driving_ms / driving_minutes "
                 "(their durations), stops (stopped_driving) and deliveries (delivered)"},
}
class ExpectationError(FleetgenError):
    """The expectations cannot be derived (missing batch, a config that did not write this bronze…)."""


def record_schema(stream: str) -> pa.Schema:
    """The shipped record schema as Arrow types (what the silver tables hold, plus ``batch_id``)."""
    return arrow_schema(stream, INSTANT)


def config_of_dataset(data_dir: str | Path) -> Config:
    """The configuration a data directory was created with, from the snapshot in manifests/dataset.md
    (on object storage: the copy uploaded beside the batches)."""
    location = str(data_dir)
    local = local_path(location)
    descriptor = f"{location.rstrip('/')}/manifests/dataset.md"
    try:
        if local is not None:
            text = (local / "manifests" / "dataset.md").read_text(encoding="utf-8")
        else:
            problem = location_problem(location)
            if problem:
                raise ExpectationError(f"--data-dir {problem}")
            text = RemoteBronze(ObjectStore(location.rstrip("/"), {})).read_bytes("manifests/dataset.md").decode()
    except (FileNotFoundError, UnicodeDecodeError):
        raise ExpectationError(f"{descriptor} not found: is {location} a fleetgen data directory? "
                               "(or pass --config)") from None
    except OSError as exc:
        raise ExpectationError(f"{descriptor} cannot be read ({exc}); pass --config") from None
    match = re.search(r"```yaml\n(.*?)```", text, re.S)
    if match is None:
        raise ExpectationError(f"{descriptor} has no configuration snapshot; pass --config")
    snapshot = yaml.safe_load(match.group(1)) or {}
    snapshot.pop("api", None)  # masked token; the API plays no part in what was generated
    output = snapshot.setdefault("output", {})
    # masked credentials: the standard environment supplies them to whoever reads the snapshot
    output["storage_options"] = {k: v for k, v in (output.get("storage_options") or {}).items() if v != MASKED}
    return Config.model_validate(snapshot).with_data_dir(data_dir)


@dataclass
class Derived:
    """What ``derive_into`` wrote: rows per table, windows per stream, records regenerated, seconds."""

    rows: dict[str, int]
    windows: dict[str, int]
    records_regenerated: int
    seconds: float


@dataclass
class Expectations:
    tables: dict[str, pa.Table]
    windows: dict[str, int]
    records_regenerated: int
    seconds: float


def derive(config: Config, store: Store, start: datetime | None = None, end: datetime | None = None,
           progress: Callable[[str, int], None] | None = None,
           batches: dict[str, set[str]] | None = None) -> Expectations:
    """``derive_into``'s tables read back into memory (for callers comparing small ranges at once)."""
    with tempfile.TemporaryDirectory(prefix="fleetgen-expect-") as folder:
        derived = derive_into(config, store, Path(folder), start, end, progress, batches)
        tables = {name: pq.read_table(Path(folder) / f"{name}.parquet") for name in TABLES}
    return Expectations(tables, derived.windows, derived.records_regenerated, derived.seconds)


def derive_into(config: Config, store: Store, out: Path, start: datetime | None = None, end: datetime | None = None,
                progress: Callable[[str, int], None] | None = None,
                batches: dict[str, set[str]] | None = None) -> Derived:
    """Every table of ``TABLES`` for the committed windows inside [start, end) (all when None), and only
    those of ``batches`` (per stream, batch ids) when given, as ``<out>/<name>.parquet``. Windows are made
    again part by part and their true records spilled to a hidden folder under ``out`` (gone at the end),
    so memory stays bounded whatever the range's size (see ``expected_tables``)."""
    began = time.perf_counter()
    pipeline = Pipeline(config, store)
    windows: dict[str, int] = {}
    regenerated = 0
    out.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_work(out)
    with tempfile.TemporaryDirectory(prefix=f"{WORK_PREFIX}{os.getpid()}-", dir=out) as folder:
        work = Path(folder)
        spills = {stream: Spill(work / f"{stream}.parquet", silver_schema(stream)) for stream in (COMPANIES, EVENTS)}
        try:
            # An emulated events batch continues the fleet the batch before it left: those batches are made from
            # the first one on (each cheap), and only the range's are kept.
            chained = config.emulated_mode.enabled
            for stream in (COMPANIES, EVENTS):
                committed = [r for r in store.all_batches(stream) if r.status == "committed"
                             and (end is None or r.window.end <= end)]
                wanted = None if batches is None else batches.get(stream, set())
                inside_of = {r.batch_id: (start is None or r.window.start >= start)
                             and (wanted is None or r.batch_id in wanted) for r in committed}
                windows[stream] = sum(inside_of.values())
                fleet, done = None, 0
                for row in committed:
                    inside = inside_of[row.batch_id]
                    if not inside and not (stream == EVENTS and chained):
                        continue
                    keep = spills[stream].add if inside else None
                    size, fleet = _true_records(config, pipeline, stream, row.window, fleet, keep, work)
                    regenerated += size
                    if inside:
                        done += 1
                        if progress is not None:
                            progress(stream, done)
        finally:
            for spill in spills.values():
                spill.close()
        rows = write_tables({stream: spill.path for stream, spill in spills.items()}, out, work)
    return Derived(rows, windows, regenerated, time.perf_counter() - began)


WORK_PREFIX = ".expect-"  # then the pid of the process working in it


def _remove_abandoned_work(out: Path) -> None:
    """The work folders under ``out`` of `expect` runs that died without removing them (``kill -9``): their
    process is gone. A folder whose process is alive (another run into the same ``out``) is left alone."""
    for folder in out.glob(f"{WORK_PREFIX}*-*"):
        pid = folder.name.removeprefix(WORK_PREFIX).split("-", 1)[0]
        if folder.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _true_records(config: Config, pipeline: Pipeline, stream: str, window: Window, fleet: FleetState | None,
                  keep: Callable[[pa.Table], None] | None, work: Path) -> tuple[int, FleetState | None]:
    """Make ``window`` again part by part, check its record file against bronze's sha256, and hand each
    part's true records to ``keep``; returns the record count and the fleet an emulated batch hands on."""
    made = generate_in_parts(config, stream, window, pipeline.roster_for(stream, window), fleet)
    layout = pipeline.layout

    def rendered() -> Iterator[bytes | memoryview]:
        for part in made.parts(spill_dir=work):
            yield from render_records(part.batch, part.plan)
            if keep is not None:
                keep(_part_truth(part.batch, part.plan, window))

    _check_against_bronze(layout, stream, window, record_chunks(layout.record_format, stream, rendered()))
    whole = made.whole
    return made.size, whole.carried if isinstance(whole, EventBatch) else None


def _part_truth(batch: ColumnBatch, plan: DefectPlan, window: Window) -> pa.Table:
    """A part's true records but the lines its defect plan touched (a defective line is quarantined, and a
    duplicate line repeats a clean record that is kept), with ``batch_id`` and, for events, the window
    each event happened in (a late arrival's is earlier than its batch's)."""
    keep = np.ones(batch.size, bool)
    keep[plan.rows] = False
    rows = np.flatnonzero(keep)
    table = _truth_table(batch, rows)
    table = table.append_column("batch_id", pa.array(np.full(table.num_rows, window.batch_id, object), pa.string()))
    if isinstance(batch, EventBatch):
        interval_ms = (window.end_s - window.start_s) * 1000
        own = batch.timestamp_ms[rows] // interval_ms * interval_ms
        table = table.append_column("window_start", pa.array(own, INSTANT))
    return table


def _truth_table(batch: ColumnBatch, rows: np.ndarray) -> pa.Table:
    """The true values of ``rows``, straight from the batch's columns (the same values its clean lines
    hold in bronze: ids rendered by the batch itself, coordinates as the doubles their text parses to)."""
    if isinstance(batch, CompanyBatch):
        names = batch.company_names()
        return pa.table({
            "company_id": _quoted_strings(batch.render("company_id", rows)),
            "company_name": pa.array([names[i] for i in rows], pa.string()),
            "geography": pa.array(np.asarray(GEOGRAPHIES, object)[batch.geography[rows]], pa.string()),
            "active": pa.array(batch.active[rows], pa.bool_()),
            "drivers_count": pa.array(batch.drivers_count[rows], pa.int32()),
            "onboarded_at": pa.array(batch.onboarded_ms[rows], INSTANT),
            "updated_at": pa.array(batch.updated_ms[rows], INSTANT),
        }, schema=record_schema(COMPANIES))
    assert isinstance(batch, EventBatch)
    degrees = [pa.array(column[rows].astype(np.float64) / COORD_SCALE) for column in (batch.lat, batch.lon)]
    location = pa.StructArray.from_arrays(degrees, names=["lat", "lon"])
    return pa.table({
        "event_id": _quoted_strings(batch.render("event_id", rows)),
        "company_id": _quoted_strings(batch.render("company_id", rows)),
        "driver_id": _quoted_strings(batch.render("driver_id", rows)),
        "truck_id": _quoted_strings(batch.render("truck_id", rows)),
        "event_type": pa.array(np.asarray(EVENT_TYPES, object)[batch.event_type[rows]], pa.string()),
        "event_timestamp": pa.array(batch.timestamp_ms[rows], INSTANT),
        "location": location,
    }, schema=record_schema(EVENTS))


def _quoted_strings(matrix: np.ndarray) -> pa.Array:
    """A fixed-width matrix of quoted ASCII values (ids) as an Arrow string array, built on its bytes."""
    count, width = matrix.shape[0], matrix.shape[1] - 2
    data = np.ascontiguousarray(matrix[:, 1:-1]).view(np.uint8)
    offsets = np.arange(0, (count + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(data))


def _check_against_bronze(layout: bronze.Layout, stream: str, window: Window,
                          rendered: Iterable[bytes | memoryview]) -> None:
    try:
        meta = layout.read_meta(stream, window.batch_id)
        recorded = meta["files"][layout.record_file(stream)]["sha256"]
    except (OSError, ValueError, KeyError) as exc:
        raise ExpectationError(f"{stream} batch {window.batch_id} is committed in the ledger but its "
                               f"{bronze.META_FILE} cannot be read ({exc}); was bronze cleaned or moved?") from None
    digest = hashlib.sha256()
    for chunk in rendered:  # chunk by chunk: a production window's file need not sit in memory whole
        digest.update(chunk)
    if digest.hexdigest() != recorded:
        raise ExpectationError(
            f"{stream} batch {window.batch_id} was not written with this configuration (its regenerated records "
            "differ from the sha256 in its meta); pass the --config it was generated with")




def write_summary(derived: Derived, out: Path, about: dict[str, Any]) -> dict[str, Any]:
    """``<out>/expectations.json``: the range, windows and, per table, its file, rows, key and meaning."""
    summary: dict[str, Any] = {**about, "generated_at": format_timestamp(datetime.now(UTC)),
                               "windows": derived.windows, "tables": {}}
    for name, spec in TABLES.items():
        summary["tables"][name] = {"path": f"{name}.parquet", "rows": derived.rows[name], "key": spec["key"],
                                   "about": spec["about"]}
    (out / "expectations.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
