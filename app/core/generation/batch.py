"""One batch of a stream for a window: the pure core of every producer."""

from __future__ import annotations

from app.core.config import Config
from app.core.generation.columns import ColumnBatch
from app.core.generation.companies import generate_companies
from app.core.generation.defects import DefectPlan, plan_defects
from app.core.generation.emulated_fleet import FleetState
from app.core.generation.events import DriverPool, Roster, generate_events
from app.core.generation.seeding import batch_rng
from app.core.timeline import Window


def generate_batch(config: Config, stream: str, window: Window, roster: DriverPool | Roster | None = None,
                   fleet: FleetState | None = None) -> tuple[ColumnBatch, DefectPlan]:
    """One batch of ``stream`` for ``window`` with its defects: the pure core of every producer. An
    emulated events batch continues ``fleet``, the state the previous events batch handed on; with
    ``companies.churn`` a companies batch also records the changes of ``roster``'s companies."""
    rng = batch_rng(config.seed, stream, window)
    if stream == "companies":
        pool = roster if isinstance(roster, DriverPool) or roster is None else DriverPool.of(roster)
        batch: ColumnBatch = generate_companies(config, window, rng, pool)
    else:
        batch = generate_events(config, window, roster if roster is not None else Roster.empty(), rng, fleet)
    return batch, plan_defects(batch, config.quality_injection, rng)
