"""Company onboarding batches, generated column-wise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.core.config import GEOGRAPHIES, Config
from app.core.generation import render as r
from app.core.generation.columns import ColumnBatch, DefectTarget
from app.core.generation.corruptions import malformed_timestamps, outside_window
from app.core.generation.names import name_pool, pick_names
from app.core.timeline import Window

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

    fields = ("company_id", "company_name", "geography", "active", "drivers_count", "onboarded_at")
    id_field = "company_id"
    stream = "companies"

    @property
    def size(self) -> int:
        return len(self.geography)

    def render(self, field: str, rows: np.ndarray | slice) -> r.Matrix:
        if field == "company_id":
            return r.quoted(r.uuid_text(self.company_uuid[rows]))
        if field == "company_name":
            return r.pick(name_pool(self.seed)[1], self.name_index[rows])
        if field == "geography":
            return r.pick(GEOGRAPHY_TEXT, self.geography[rows])
        if field == "active":
            return r.pick(BOOL_TEXT, self.active[rows].astype(np.intp))
        if field == "drivers_count":
            return r.integer(self.drivers_count[rows], 6)
        if field == "onboarded_at":
            return r.quoted(r.timestamp_text(self.onboarded_ms[rows]))
        raise KeyError(field)

    def copy_rows(self, dst: np.ndarray, src: np.ndarray) -> None:
        for column in (self.company_uuid, self.name_index, self.geography, self.active,
                       self.drivers_count, self.onboarded_ms):
            column[dst] = column[src]

    def company_names(self) -> list[str]:
        names = name_pool(self.seed)[0]
        return [names[i] for i in self.name_index]

    def distinct_rows(self) -> np.ndarray:
        """Rows of distinct companies, in file order: a duplicate line onboards nobody new."""
        keys = np.ascontiguousarray(self.company_uuid).view(np.dtype((np.void, 16))).ravel()
        _, first = np.unique(keys, return_index=True)
        return np.sort(first)

    @classmethod
    def defect_targets(cls) -> dict[str, list[DefectTarget]]:
        optional = ("company_name", "geography", "active", "drivers_count", "onboarded_at")
        return {
            "missing_field": [DefectTarget(f, "FIELD_REMOVED") for f in optional],
            "null_value": [DefectTarget(f, "NULL_INJECTED", _null) for f in optional],
            "malformed_timestamp": [DefectTarget("onboarded_at", "TIMESTAMP_MALFORMED", _malformed_onboarded)],
            "invalid_enum": [DefectTarget("geography", "ENUM_OUT_OF_DOMAIN", _invalid_geography)],
            "duplicate": [DefectTarget("", "DUPLICATE_RECORD")],
            "boundary_violation": [
                DefectTarget("drivers_count", "NEGATIVE_COUNT", _negative_drivers),
                DefectTarget("onboarded_at", "TIMESTAMP_OUTSIDE_WINDOW", _onboarded_outside),
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


def _onboarded_outside(batch: CompanyBatch, rows: np.ndarray, rng: np.random.Generator) -> r.Matrix:
    return r.quoted(r.timestamp_text(outside_window(batch.window, len(rows), rng)))


def generate_companies(config: Config, window: Window, rng: np.random.Generator) -> CompanyBatch:
    """``active_company_count`` companies onboarded inside ``window``."""
    count = config.active_company_count
    company_uuid = r.uuid4_bytes(r.random_bytes(rng, count, 16))
    weights = np.array([config.companies.geography_weights.get(g, 0.0) for g in GEOGRAPHIES])
    geography = rng.choice(len(GEOGRAPHIES), count, p=weights / weights.sum()).astype(np.uint8)
    name_index = pick_names(rng, geography)
    active = rng.random(count) < config.companies.active_probability
    drivers = np.full(count, config.drivers_per_company, dtype=np.int32)
    start_ms = window.start_s * 1000
    onboarded = np.sort(rng.integers(start_ms, window.end_s * 1000, count, dtype=np.int64))
    return CompanyBatch(window, config.seed, company_uuid, name_index, geography, active, drivers, onboarded)
