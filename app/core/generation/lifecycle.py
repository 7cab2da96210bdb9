"""Company lifecycle (``companies.churn``): when a company leaves and how its driver count moves, as a
pure function of (seed, company id, the end of the window that onboarded it), so the companies stream
(which writes each change as a new record) and the events stream (which stops a company's drivers from
it) agree without sharing any state.

- Tenure is exponential: a company still active leaves within the next 30 days with probability
  ``monthly_rate`` (hazard −ln(1 − rate) / 30 d), whatever its age.
- The driver count changes every ``period`` (30 d / ``driver_changes_per_month``, times 0.5-1.5 per
  company) after onboarding; period k ≥ 1 has ``drivers_count × (0.7-1.3)`` drivers (at least 1), drawn
  afresh each period, so the fleet size wanders around its onboarding size instead of drifting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.core.generation.hashing import company_keys, key, uniform

MONTH_S = 30 * 86_400
FACTOR_MIN, FACTOR_SPAN = 0.7, 0.6
PERIOD_MIN, PERIOD_SPAN = 0.5, 1.0
MAX_DRIVERS = 9999


@dataclass(frozen=True)
class Churn:
    monthly_rate: float
    driver_changes_per_month: float

    @property
    def active(self) -> bool:
        return self.monthly_rate > 0 or self.driver_changes_per_month > 0


@dataclass(frozen=True)
class Lives:
    """The lifecycle of a set of companies (arrays aligned with them)."""

    since_s: np.ndarray  # int64: end of the onboarding window (the lifecycle's origin)
    leave_s: np.ndarray  # float64: the instant it leaves (inf: never)
    period_s: np.ndarray  # float64: driver-count period (inf: never changes)
    base: np.ndarray  # int32: drivers_count at onboarding
    keys: np.ndarray  # uint64 per company

    def period_at(self, rows: np.ndarray, moment_s: np.ndarray) -> np.ndarray:
        """The driver-count period index of companies ``rows`` at ``moment_s`` (0 before the first change)."""
        elapsed = np.maximum(moment_s - self.since_s[rows], 0)
        with np.errstate(invalid="ignore"):
            index = np.floor(elapsed / self.period_s[rows])
        return np.where(np.isfinite(index), index, 0).astype(np.int64)

    def drivers(self, rows: np.ndarray, period: np.ndarray) -> np.ndarray:
        """Drivers of companies ``rows`` in period ``period``."""
        factor = FACTOR_MIN + FACTOR_SPAN * uniform(key(self.keys[rows], period.astype(np.uint64)), "change_factor")
        drawn = np.clip(np.rint(self.base[rows] * factor), 1, MAX_DRIVERS).astype(np.int64)
        counts: np.ndarray = np.where(period == 0, self.base[rows].astype(np.int64), drawn)
        return counts

    def most_drivers(self, rows: np.ndarray) -> np.ndarray:
        """The most drivers companies ``rows`` can have in any period (their trucks cover them all)."""
        most = np.clip(np.ceil(self.base[rows] * (FACTOR_MIN + FACTOR_SPAN)), 1, MAX_DRIVERS).astype(np.int64)
        covered: np.ndarray = np.maximum(most, self.base[rows])
        return covered

    def change_at(self, rows: np.ndarray, period: np.ndarray) -> np.ndarray:
        """When period ``period`` of companies ``rows`` begins (s)."""
        starts: np.ndarray = self.since_s[rows] + period * self.period_s[rows]
        return starts


def lives(seed: int, churn: Churn, company_uuid: np.ndarray, since_s: np.ndarray, base: np.ndarray) -> Lives:
    keys = company_keys(seed, company_uuid)
    count = len(since_s)
    if churn.monthly_rate > 0:
        hazard = -np.log1p(-churn.monthly_rate) / MONTH_S
        tenure = -np.log1p(-uniform(keys, "tenure")) / hazard
        leave = since_s + tenure
    else:
        leave = np.full(count, np.inf)
    if churn.driver_changes_per_month > 0:
        period = MONTH_S / churn.driver_changes_per_month * (PERIOD_MIN + PERIOD_SPAN * uniform(keys, "change_period"))
    else:
        period = np.full(count, np.inf)
    return Lives(since_s.astype(np.int64), leave, period, base.astype(np.int32), keys)
