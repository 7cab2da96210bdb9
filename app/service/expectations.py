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
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from app.core import bronze
from app.core.config import EVENT_TYPES, GEOGRAPHIES, MASKED, Config
from app.core.errors import FleetgenError
from app.core.generation.batch import generate_batch
from app.core.generation.columns import ColumnBatch
from app.core.generation.companies import CompanyBatch
from app.core.generation.emulated_fleet import FleetState
from app.core.generation.encoding import render_records
from app.core.generation.events import EventBatch
from app.core.generation.geography import COORD_SCALE
from app.core.generation.parquet import record_chunks
from app.core.remote_bronze import RemoteBronze
from app.core.schema import arrow_schema
from app.core.storage import ObjectStore, local_path, location_problem
from app.core.timeline import Window, format_timestamp
from app.service.pipeline import COMPANIES, EVENTS, Pipeline
from app.store import Store

DAY_MS = 86_400_000
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
    return arrow_schema(stream, pa.timestamp("ms", tz="UTC"))


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
class Expectations:
    tables: dict[str, pa.Table]
    windows: dict[str, int]
    records_regenerated: int
    seconds: float


def derive(config: Config, store: Store, start: datetime | None = None, end: datetime | None = None,
           progress: Callable[[str, int], None] | None = None,
           batches: dict[str, set[str]] | None = None) -> Expectations:
    """Every table of ``TABLES`` for the committed windows inside [start, end) (all when None), and
    only those of ``batches`` (per stream, batch ids) when given."""
    began = time.perf_counter()
    pipeline = Pipeline(config, store)
    silver: dict[str, list[pa.Table]] = {COMPANIES: [], EVENTS: []}
    windows: dict[str, int] = {}
    regenerated = 0
    # An emulated events batch continues the fleet the batch before it left: those batches are made from
    # the first one on (each cheap), and only the range's are kept.
    chained = config.emulated_mode.enabled
    for stream in (COMPANIES, EVENTS):
        committed = [r for r in store.all_batches(stream) if r.status == "committed"
                     and (end is None or r.window.end <= end)]
        wanted = None if batches is None else batches.get(stream, set())
        inside_of = {r.batch_id: (start is None or r.window.start >= start) and (wanted is None or r.batch_id in wanted)
                     for r in committed}
        windows[stream] = sum(inside_of.values())
        fleet, done = None, 0
        for row in committed:
            inside = inside_of[row.batch_id]
            if not inside and not (stream == EVENTS and chained):
                continue
            table, size, fleet = _true_records(config, pipeline, stream, row.window, fleet)
            regenerated += size
            if inside:
                silver[stream].append(table)
                done += 1
                if progress is not None:
                    progress(stream, done)
    tables = {f"silver/{stream}": _sorted(_concat(parts, stream), TABLES[f"silver/{stream}"]["key"])
              for stream, parts in silver.items()}
    events = tables["silver/events"]
    tables["gold/events_per_company_window_type"] = _events_per_window(events)
    tables["gold/deliveries_per_company_day"] = _deliveries_per_day(events)
    tables["gold/driver_day"] = _driver_days(events)
    return Expectations(tables, windows, regenerated, time.perf_counter() - began)


def _true_records(config: Config, pipeline: Pipeline, stream: str, window: Window,
                  fleet: FleetState | None) -> tuple[pa.Table, int, FleetState | None]:
    pool = pipeline.roster_for(stream, window)
    batch, plan = generate_batch(config, stream, window, pool, fleet)
    layout = pipeline.layout
    _check_against_bronze(layout, stream, window,
                          record_chunks(layout.record_format, stream, render_records(batch, plan)))
    keep = np.ones(batch.size, bool)
    keep[plan.rows] = False  # defective lines and duplicate lines (each repeats a kept clean line)
    rows = np.flatnonzero(keep)
    table = _truth_table(batch, rows)
    table = table.append_column("batch_id", pa.array([window.batch_id] * table.num_rows, pa.string()))
    if stream == EVENTS:  # the window an event belongs to: a late arrival's is earlier than its batch's
        interval_ms = (window.end_s - window.start_s) * 1000
        own = batch.timestamp_ms[rows] // interval_ms * interval_ms  # type: ignore[attr-defined]
        table = table.append_column("window_start", pa.array(own, pa.timestamp("ms", tz="UTC")))
    return table, batch.size, batch.carried if isinstance(batch, EventBatch) else None


def _truth_table(batch: ColumnBatch, rows: np.ndarray) -> pa.Table:
    """The true values of ``rows``, straight from the batch's columns (the same values its clean lines
    hold in bronze: ids rendered by the batch itself, coordinates as the doubles their text parses to)."""
    instant = pa.timestamp("ms", tz="UTC")
    if isinstance(batch, CompanyBatch):
        names = batch.company_names()
        return pa.table({
            "company_id": _quoted_strings(batch.render("company_id", rows)),
            "company_name": pa.array([names[i] for i in rows], pa.string()),
            "geography": pa.array(np.asarray(GEOGRAPHIES, object)[batch.geography[rows]], pa.string()),
            "active": pa.array(batch.active[rows], pa.bool_()),
            "drivers_count": pa.array(batch.drivers_count[rows], pa.int32()),
            "onboarded_at": pa.array(batch.onboarded_ms[rows], instant),
            "updated_at": pa.array(batch.updated_ms[rows], instant),
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
        "event_timestamp": pa.array(batch.timestamp_ms[rows], instant),
        "location": location,
    }, schema=record_schema(EVENTS))


def _quoted_strings(matrix: np.ndarray) -> pa.Array:
    """A fixed-width matrix of quoted ASCII values (ids) as an Arrow string array."""
    inner = np.ascontiguousarray(matrix[:, 1:-1])
    return pa.array(inner.view(f"S{inner.shape[1]}").ravel().astype(f"U{inner.shape[1]}"), pa.string())


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


def _concat(parts: list[pa.Table], stream: str) -> pa.Table:
    if parts:
        return pa.concat_tables(parts)
    schema = record_schema(stream).append(pa.field("batch_id", pa.string()))
    if stream == EVENTS:
        schema = schema.append(pa.field("window_start", pa.timestamp("ms", tz="UTC")))
    return schema.empty_table()


def _sorted(table: pa.Table, key: list[str]) -> pa.Table:
    return table.sort_by([(k, "ascending") for k in key])


def _events_per_window(events: pa.Table) -> pa.Table:
    counted = events.group_by(["company_id", "window_start", "event_type"]).aggregate([("event_id", "count")])
    counted = counted.rename_columns(["company_id", "window_start", "event_type", "events"])
    counted = counted.set_column(3, "events", pc.cast(counted["events"], pa.int64()))
    return _sorted(counted, TABLES["gold/events_per_company_window_type"]["key"])


def _deliveries_per_day(events: pa.Table) -> pa.Table:
    delivered = events.filter(pc.equal(events["event_type"], "delivered"))
    millis = pc.cast(pc.cast(delivered["event_timestamp"], pa.timestamp("ms")), pa.int64())
    days = pc.cast(pc.cast(pc.divide(millis, DAY_MS), pa.int32()), pa.date32())
    table = pa.table({"company_id": delivered["company_id"], "day": days})
    counted = table.group_by(["company_id", "day"]).aggregate([("company_id", "count")])
    counted = counted.rename_columns(["company_id", "day", "deliveries"])
    counted = counted.set_column(2, "deliveries", pc.cast(counted["deliveries"], pa.int64()))
    return _sorted(counted, TABLES["gold/deliveries_per_company_day"]["key"])


def _driver_days(events: pa.Table) -> pa.Table:
    """Trips, driving time, stops and deliveries per driver and UTC day, from the valid events alone."""
    ordered = events.select(["company_id", "driver_id", "event_type", "event_timestamp", "event_id"]).sort_by(
        [("driver_id", "ascending"), ("event_timestamp", "ascending"), ("event_id", "ascending")])
    driver = ordered["driver_id"].to_numpy(zero_copy_only=False)
    kind = ordered["event_type"].to_numpy(zero_copy_only=False)
    millis = pc.cast(pc.cast(ordered["event_timestamp"], pa.timestamp("ms")), pa.int64()).to_numpy()
    stop, delivered = kind == "stopped_driving", kind == "delivered"
    trip = np.zeros(len(kind), bool)
    trip[1:] = stop[1:] & (kind[:-1] == "start_driving") & (driver[1:] == driver[:-1])
    driving = np.zeros(len(kind), np.int64)
    driving[1:] = np.where(trip[1:], millis[1:] - millis[:-1], 0)
    table = pa.table({
        "company_id": ordered["company_id"], "driver_id": ordered["driver_id"],
        "day": pa.array(millis // DAY_MS, pa.int32()).cast(pa.date32()),
        "trips": trip.astype(np.int64), "driving_ms": driving, "stops": stop.astype(np.int64),
        "deliveries": delivered.astype(np.int64)})
    summed = table.group_by(["company_id", "driver_id", "day"]).aggregate(
        [("trips", "sum"), ("driving_ms", "sum"), ("stops", "sum"), ("deliveries", "sum")])
    summed = summed.rename_columns(["company_id", "driver_id", "day", "trips", "driving_ms", "stops", "deliveries"])
    minutes = pc.divide(pc.cast(summed["driving_ms"], pa.float64()), 60_000.0)
    summed = summed.append_column("driving_minutes", minutes)
    return _sorted(summed.select(["company_id", "driver_id", "day", "trips", "driving_ms", "driving_minutes", "stops",
                                  "deliveries"]), TABLES["gold/driver_day"]["key"])


def write(expectations: Expectations, out: Path, about: dict[str, Any]) -> dict[str, Any]:
    """Each table as ``<out>/<name>.parquet`` plus ``<out>/expectations.json`` describing them."""
    summary: dict[str, Any] = {**about, "generated_at": format_timestamp(datetime.now(UTC)),
                               "windows": expectations.windows, "tables": {}}
    for name, table in expectations.tables.items():
        path = out / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        pq.write_table(table, tmp)
        tmp.replace(path)
        summary["tables"][name] = {"path": str(path.relative_to(out)), "rows": table.num_rows,
                                   "key": TABLES[name]["key"], "about": TABLES[name]["about"]}
    (out / "expectations.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
