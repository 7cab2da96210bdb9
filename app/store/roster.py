"""The company roster as the store hands it out: columns in onboarding order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.core.generation.events import Roster

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


@dataclass
class RosterRows:
    """The whole roster as columns, sorted by the end of the window that onboarded each company."""

    batch_end: np.ndarray
    company_uuid: np.ndarray
    geography: np.ndarray
    active: np.ndarray
    drivers_count: np.ndarray

    def append(self, batch_end: int, company_uuid: np.ndarray, geography: np.ndarray, active: np.ndarray,
               drivers_count: np.ndarray) -> None:
        self.batch_end = np.concatenate([self.batch_end, np.full(len(geography), batch_end, np.int64)])
        self.company_uuid = np.concatenate([self.company_uuid, company_uuid])
        self.geography = np.concatenate([self.geography, geography.astype(np.uint8)])
        self.active = np.concatenate([self.active, active.astype(bool)])
        self.drivers_count = np.concatenate([self.drivers_count, drivers_count.astype(np.int32)])

    def before(self, moment_s: int) -> Roster:
        """Active companies of batches that closed at or before ``moment_s``, in onboarding order."""
        count = int(np.searchsorted(self.batch_end, moment_s, side="right"))
        keep = self.active[:count]
        return Roster(self.company_uuid[:count][keep], self.geography[:count][keep],
                      self.drivers_count[:count][keep])
