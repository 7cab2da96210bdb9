"""Company onboarding batches, generated column-wise."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np

from app.core.config import GEOGRAPHIES, Config
from app.core.generation import render as r
from app.core.generation.columns import ColumnBatch, DefectTarget
from app.core.generation.corruptions import malformed_timestamps, outside_window
from app.core.generation.events import DriverPool
from app.core.generation.lifecycle import Churn, lives
from app.core.generation.names import name_pool, pick_names
from app.core.generation.seeding import batch_rng
from app.core.timeline import Window, from_epoch_seconds

GEOGRAPHY_TEXT = r.pool(GEOGRAPHIES)
BOOL_TEXT = r.raw_pool([b"false", b"true"])
NULL_TEXT = b"null"
INVALID_GEOGRAPHIES = r.pool(["USA", "Europe", "XX", "", "us", "APAC"])


@dataclass
class CompanyBatch(ColumnBatch):
    window: Window
    seed: int
    company_uuid: np.ndarray  # (n, 16) uint8
    name_index: np.ndarray
    geography: np.ndarray  # uint8 index into GEOGRAPHIES
    active: np.ndarray  # bool
    drivers_count: np.ndarray  # int32
    onboarded_ms: np.ndarray  # int64 epoch milliseconds
    updated_ms: np.ndarray  # int64: when the record's values took effect (onboarding, or a change)
    change: np.ndarray  # bool: a change of a company onboarded earlier (companies.churn), not an onboarding

    fields = ("company_id", "company_name", "geography", "active", "drivers_count", "onboarded_at", "updated_at")
    id_field = "company_id"
    stream = "companies"

    @property
    def size(self) -> int:
        return len(self.geography)

    def render(self, field: str, rows: np.ndarray | slice) -> r.Matrix:
        if field == "company_id":
            return r.uuid_text(self.company_uuid[rows], quoted=True)
        if field == "company_name":
            return r.pick(name_pool(self.seed)[1], self.name_index[rows])
        if field == "geography":
            return r.pick(GEOGRAPHY_TEXT, self.geography[rows])
        if field == "active":
            return r.pick(BOOL_TEXT, self.active[rows].astype(np.intp))
        if field == "drivers_count":
            return r.integer(self.drivers_count[rows], 6)
        if field == "onboarded_at":
            return r.timestamp_text(self.onboarded_ms[rows], quote=True)
        if field == "updated_at":
            return r.timestamp_text(self.updated_ms[rows], quote=True)
        raise KeyError(field)

    def copy_rows(self, dst: np.ndarray, src: np.ndarray) -> None:
        for column in (self.company_uuid, self.name_index, self.geography, self.active,
                       self.drivers_count, self.onboarded_ms, self.updated_ms, self.change):
            column[dst] = column[src]

    def company_names(self) -> list[str]:
        names = name_pool(self.seed)[0]
        return [names[i] for i in self.name_index]

    def distinct_rows(self) -> np.ndarray:
        """Rows of distinct companies onboarded by the batch, in file order: a duplicate line onboards nobody
        new, and a change record describes a company onboarded earlier."""
        onboarding = np.flatnonzero(~self.change)
        keys = np.ascontiguousarray(self.company_uuid[onboarding]).view(np.dtype((np.void, 16))).ravel()
        _, first = np.unique(keys, return_index=True)
        return np.sort(onboarding[first])

    @classmethod
    def defect_targets(cls) -> dict[str, list[DefectTarget]]:
        optional = ("company_name", "geography", "active", "drivers_count", "onboarded_at", "updated_at")
        return {
            "missing_field": [DefectTarget(f, "FIELD_REMOVED") for f in optional],
            "null_value": [DefectTarget(f, "NULL_INJECTED", _null) for f in optional],
            "malformed_timestamp": [DefectTarget("onboarded_at", "TIMESTAMP_MALFORMED", _malformed_onboarded),
                                    DefectTarget("updated_at", "TIMESTAMP_MALFORMED", _malformed_updated)],
            "invalid_enum": [DefectTarget("geography", "ENUM_OUT_OF_DOMAIN", _invalid_geography)],
            "duplicate": [DefectTarget("", "DUPLICATE_RECORD")],
            "boundary_violation": [
                DefectTarget("drivers_count", "NEGATIVE_COUNT", _negative_drivers),
                DefectTarget("updated_at", "TIMESTAMP_OUTSIDE_WINDOW", _updated_outside),
            ],
        }


def _null(batch: ColumnBatch, rows: np.ndarray, rng: np.random.Generator) -> r.Matrix:
    return r.literal(NULL_TEXT, len(rows))


def _malformed_onboarded(batch: CompanyBatch, rows: np.ndarray, rng: np.random.Generator) -> r.Matrix:
    return malformed_timestamps(batch.onboarded_ms[rows], rng)


def _invalid_geography(batch: CompanyBatch, rows: np.ndarray, rng: np.random.Generator) -> r.Matrix:
    return r.pick(INVALID_GEOGRAPHIES, rng.integers(0, len(INVALID_GEOGRAPHIES), len(rows)))


def _negative_drivers(batch: CompanyBatch, rows: np.ndarray, rng: np.random.Generator) -> r.Matrix:
    return r.integer(-rng.integers(1, 1000, len(rows)), 6)


def _malformed_updated(batch: CompanyBatch, rows: np.ndarray, rng: np.random.Generator) -> r.Matrix:
    return malformed_timestamps(batch.updated_ms[rows], rng)


def _updated_outside(batch: CompanyBatch, rows: np.ndarray, rng: np.random.Generator) -> r.Matrix:
    return r.timestamp_text(outside_window(batch.window, len(rows), rng), quote=True)


def generate_companies(config: Config, window: Window, rng: np.random.Generator,
                       roster: DriverPool | None = None) -> CompanyBatch:
    """``active_company_count`` companies onboarded inside ``window`` and, with ``companies.churn``, a
    record for each change inside it of a company of ``roster`` (onboarded before the window)."""
    onboarded = _onboardings(config, window, rng)
    churn = config.companies.churn
    if not churn.enabled or roster is None or len(roster.geography) == 0:
        return onboarded
    return _with_changes(config, window, onboarded, roster)


def _onboardings(config: Config, window: Window, rng: np.random.Generator) -> CompanyBatch:
    count = config.active_company_count
    company_uuid = r.uuid4_bytes(r.random_bytes(rng, count, 16))
    weights = np.array([config.companies.geography_weights.get(g, 0.0) for g in GEOGRAPHIES])
    geography = rng.choice(len(GEOGRAPHIES), count, p=weights / weights.sum()).astype(np.uint8)
    name_index = pick_names(rng, geography)
    active = rng.random(count) < config.companies.active_probability
    drivers = np.full(count, config.drivers_per_company, dtype=np.int32)
    start_ms = window.start_s * 1000
    onboarded = np.sort(rng.integers(start_ms, window.end_s * 1000, count, dtype=np.int64))
    return CompanyBatch(window, config.seed, company_uuid, name_index, geography, active, drivers, onboarded,
                        onboarded.copy(), np.zeros(count, bool))


def _with_changes(config: Config, window: Window, onboarded: CompanyBatch, roster: DriverPool) -> CompanyBatch:
    """The batch's onboardings and the roster's changes inside the window, in time order: a company leaving
    (``active`` false) or its driver count changing, each as a whole record with the new ``updated_at``."""
    churn = config.companies.churn
    active = np.flatnonzero(roster.active)
    since = roster.onboarded_by()[active]
    life = lives(config.seed, Churn(churn.monthly_rate, churn.driver_changes_per_month),
                 roster.company_uuid[active], since, roster.drivers_count[active])
    rows = np.arange(len(active))
    start_s, end_s = window.start_s, window.end_s
    leaving = np.flatnonzero((life.leave_s >= start_s) & (life.leave_s < end_s))
    # driver-count changes: every period starting inside the window, before the company leaves
    first = np.maximum(np.ceil((start_s - since) / life.period_s), 1)
    last = np.floor((end_s - 1e-9 - since) / life.period_s)
    valid = np.isfinite(first) & np.isfinite(last) & (last >= first)
    counts = np.where(valid, last - first + 1, 0).astype(np.int64)
    company = np.repeat(rows, counts)
    period = (np.repeat(np.where(valid, first, 0).astype(np.int64), counts)
              + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    at = life.change_at(company, period)
    new, old = life.drivers(company, period), life.drivers(company, period - 1)
    keep = (at < life.leave_s[company]) & (new != old)
    company, period, at = company[keep], period[keep], at[keep]
    change_rows = np.concatenate([company, leaving])
    change_ms = np.floor(np.concatenate([at, life.leave_s[leaving]]) * 1000).astype(np.int64)
    drivers = np.concatenate([life.drivers(company, period),
                              life.drivers(leaving, life.period_at(leaving, life.leave_s[leaving]))])
    still = np.concatenate([np.ones(len(company), bool), np.zeros(len(leaving), bool)])
    origin = _origins(config, roster, active[change_rows])
    batch = CompanyBatch(
        window, config.seed,
        np.concatenate([onboarded.company_uuid, roster.company_uuid[active[change_rows]]]),
        np.concatenate([onboarded.name_index, origin.name_index]),
        np.concatenate([onboarded.geography, roster.geography[active[change_rows]]]),
        np.concatenate([onboarded.active, still]),
        np.concatenate([onboarded.drivers_count, drivers.astype(np.int32)]),
        np.concatenate([onboarded.onboarded_ms, origin.onboarded_ms]),
        np.concatenate([onboarded.updated_ms, change_ms]),
        np.concatenate([onboarded.change, np.ones(len(change_rows), bool)]))
    order = np.argsort(batch.updated_ms, kind="stable")
    return CompanyBatch(window, config.seed, *(column[order] for column in (
        batch.company_uuid, batch.name_index, batch.geography, batch.active, batch.drivers_count,
        batch.onboarded_ms, batch.updated_ms, batch.change)))


@dataclass(frozen=True)
class _Origin:
    name_index: np.ndarray
    onboarded_ms: np.ndarray


def _origins(config: Config, roster: DriverPool, rows: np.ndarray) -> _Origin:
    """The name and onboarding instant of roster companies, from their onboarding batches made again (a
    batch is a pure function of its window): the roster keeps neither."""
    names = np.zeros(len(rows), np.int64)
    onboarded = np.zeros(len(rows), np.int64)
    interval = config.active_company_interval
    made: dict[int, CompanyBatch] = {}
    since = roster.onboarded_by()
    for i, row in enumerate(rows):
        end_s = int(since[row])
        if end_s not in made:
            window = Window(from_epoch_seconds(end_s) - interval, from_epoch_seconds(end_s))
            made[end_s] = _onboardings(config, window, batch_rng(config.seed, "companies", window))
        batch = made[end_s]
        match = np.flatnonzero((batch.company_uuid == roster.company_uuid[row]).all(axis=1))
        if not len(match):
            raise ValueError(
                f"company {uuid.UUID(bytes=bytes(roster.company_uuid[row]))} is not in the onboarding batch of the "
                f"window ending {from_epoch_seconds(end_s).isoformat()} made again with this configuration (was the "
                "company interval or the seed changed?): its change record cannot be written")
        names[i], onboarded[i] = batch.name_index[match[0]], batch.onboarded_ms[match[0]]
    return _Origin(names.astype(batch.name_index.dtype if made else np.int64), onboarded)
