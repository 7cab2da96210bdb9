"""The company roster as the store hands it out: columns in onboarding order."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np

from app.core.generation.events import DriverPool

GEOGRAPHY_CODES = {"US": 0, "EU": 1, "SA": 2, "AUS": 3}


@dataclass(frozen=True)
class NewCompanies:
    """Clean roster values of a committed company batch."""

    company_ids: list[str]
    names: list[str]
    geography: list[str]
    active: list[bool]
    drivers_count: list[int]
    onboarded_at_ms: list[int]


class RosterRows:
    """The whole roster as columns in onboarding order (sorted by the end of the onboarding window).

    Columns live in arrays with spare capacity that double when full, so adding a window's companies
    costs O(new companies) amortised, never a copy of the roster. ``before`` hands out views (no copy)
    plus the running total of active drivers, which is what lets a driver batch pick its drivers in
    O(events · log roster) instead of scanning millions of companies.
    """

    def __init__(self) -> None:
        self.size = 0
        self._batch_end = np.zeros(0, np.int64)
        self._company_uuid = np.zeros((0, 16), np.uint8)
        self._geography = np.zeros(0, np.uint8)
        self._active = np.zeros(0, bool)
        self._drivers_count = np.zeros(0, np.int32)
        self._active_drivers_end = np.zeros(0, np.int64)  # cumulative drivers of active companies

    @classmethod
    def of(cls, batch_end: np.ndarray, company_uuid: np.ndarray, geography: np.ndarray, active: np.ndarray,
           drivers_count: np.ndarray) -> RosterRows:
        rows = cls()
        rows.extend(batch_end, company_uuid, geography, active, drivers_count)
        return rows

    @property
    def batch_end(self) -> np.ndarray:
        return self._batch_end[:self.size]

    @property
    def active(self) -> np.ndarray:
        return self._active[:self.size]

    @property
    def last_end(self) -> int | None:
        return int(self._batch_end[self.size - 1]) if self.size else None

    def extend(self, batch_end: np.ndarray, company_uuid: np.ndarray, geography: np.ndarray, active: np.ndarray,
               drivers_count: np.ndarray) -> None:
        """Add companies of later windows (``batch_end`` not before the last one held)."""
        added = len(geography)
        if not added:
            return
        if self.size and int(batch_end[0]) < int(self._batch_end[self.size - 1]):
            raise ValueError("roster rows must be added in onboarding order")
        self._reserve(self.size + added)
        span = slice(self.size, self.size + added)
        self._batch_end[span] = batch_end
        self._company_uuid[span] = company_uuid
        self._geography[span] = geography
        self._active[span] = active
        self._drivers_count[span] = drivers_count
        before = int(self._active_drivers_end[self.size - 1]) if self.size else 0
        self._active_drivers_end[span] = before + np.cumsum(np.where(active, drivers_count, 0), dtype=np.int64)
        self.size += added

    def add_window(self, companies: NewCompanies, batch_end: int) -> None:
        """The companies one window onboarded, in their onboarding order."""
        ids = b"".join(uuid.UUID(company_id).bytes for company_id in companies.company_ids)
        added = len(companies.company_ids)
        self.extend(np.full(added, batch_end, np.int64), np.frombuffer(ids, np.uint8).reshape(added, 16),
                    np.array([GEOGRAPHY_CODES[g] for g in companies.geography], np.uint8),
                    np.array(companies.active, bool), np.array(companies.drivers_count, np.int32))

    def merge(self, other: RosterRows) -> None:
        view = slice(0, other.size)
        self.extend(other._batch_end[view], other._company_uuid[view], other._geography[view],
                    other._active[view], other._drivers_count[view])

    def _reserve(self, needed: int) -> None:
        capacity = len(self._batch_end)
        if needed <= capacity:
            return
        capacity = max(needed, 2 * capacity, 1024)
        for name in ("_batch_end", "_company_uuid", "_geography", "_active", "_drivers_count",
                     "_active_drivers_end"):
            old = getattr(self, name)
            grown = np.zeros((capacity, *old.shape[1:]), old.dtype)
            grown[:self.size] = old[:self.size]
            setattr(self, name, grown)

    def before(self, moment_s: int) -> DriverPool:
        """Companies of windows that closed at or before ``moment_s`` (views, no copy)."""
        count = int(np.searchsorted(self._batch_end[:self.size], moment_s, side="right"))
        return DriverPool(self._company_uuid[:count], self._geography[:count], self._drivers_count[:count],
                          self._active[:count], self._active_drivers_end[:count], self._batch_end[:count])
