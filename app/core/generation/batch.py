"""One batch of a stream for a window: the pure core of every producer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.core import memory
from app.core.config import DEFECT_TYPES, Config
from app.core.generation import events as events_module
from app.core.generation.columns import ColumnBatch
from app.core.generation.companies import generate_companies
from app.core.generation.defects import DefectChoice, DefectPlan, apply_defects, choose_defects, plan_defects
from app.core.generation.emulated_fleet import FleetState
from app.core.generation.events import DriverPool, EventBatch, ProductionEvents, Roster, generate_events
from app.core.generation.seeding import batch_rng
from app.core.generation.spill import SpilledPlan
from app.core.timeline import Window

HELD_EVENTS = 2_000_000  # a production batch with defects up to this size is made once and held (~41 bytes an event)


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


@dataclass
class BatchPart:
    """Consecutive records of a batch, from record ``offset`` on, with their defects (rows from 0)."""

    offset: int
    batch: ColumnBatch
    plan: DefectPlan


@dataclass
class BatchInParts:
    """A batch handed out part by part in bounded memory. ``whole`` is the batch when it is held in one
    piece (companies, emulated events, a production window of at most ``HELD_EVENTS`` events); the
    record count and defect counts are known once ``parts()`` has been gone through."""

    whole: ColumnBatch | None
    size: int = 0
    plan: DefectPlan | SpilledPlan = field(default_factory=DefectPlan)
    _parts: Iterator[BatchPart] | None = None
    spill_dir: Path | None = None  # where a plan drawn for a window made in parts is kept (None: in memory)

    @property
    def corrupted_count(self) -> int:
        return self.plan.corrupted_count

    def parts(self, spill_dir: Path | None = None) -> Iterator[BatchPart]:
        """The batch's records in order, part by part; a large batch held whole is handed out in slices,
        so that its issue and late-arrival logs are rendered (and held) a slice at a time too. A window
        made in parts keeps its defect plan in a file in ``spill_dir`` while they are made (see ``spill``)."""
        self.spill_dir = spill_dir
        whole = self.whole
        if isinstance(whole, EventBatch) and whole.size > events_module.PART_EVENTS:
            for lo in range(0, whole.size, events_module.PART_EVENTS):
                hi = min(lo + events_module.PART_EVENTS, whole.size)
                yield BatchPart(lo, whole.between(lo, hi), self.plan.restrict(lo, hi))
            return
        if whole is not None:
            assert isinstance(self.plan, DefectPlan), "a batch held whole holds its plan"
            yield BatchPart(0, whole, self.plan)
            return
        assert self._parts is not None, "a batch's parts are gone through once"
        parts, self._parts = self._parts, None
        for part in parts:
            self.size = part.offset + part.batch.size
            yield part


def generate_in_parts(config: Config, stream: str, window: Window, roster: DriverPool | Roster | None = None,
                      fleet: FleetState | None = None) -> BatchInParts:
    """The batch ``generate_batch`` makes, with the same bytes, made part by part when it is a production
    events window larger than ``HELD_EVENTS`` (see ``_parts``)."""
    if stream != "events" or config.emulated_mode.enabled:
        batch, plan = generate_batch(config, stream, window, roster, fleet)
        return BatchInParts(batch, batch.size, plan)
    pool = roster if roster is not None else Roster.empty()
    events = ProductionEvents(config, window, pool.compact() if isinstance(pool, DriverPool) else pool)
    rng = batch_rng(config.seed, stream, window)
    rate = config.quality_injection.effective_rate(stream)
    if events.slots is None or (rate > 0 and events.slots.events <= HELD_EVENTS):
        held = events.whole(rng)
        return BatchInParts(held, held.size, plan_defects(held, config.quality_injection, rng))
    made = BatchInParts(None)
    made._parts = _parts(config, events, made, rate)
    return made


def _parts(config: Config, events: ProductionEvents, made: BatchInParts, rate: float) -> Iterator[BatchPart]:
    """A window's parts; one larger than ``HELD_EVENTS`` made lean (``memory.lean``): its memory stays bounded."""
    assert events.slots is not None
    with memory.lean() if events.slots.events > HELD_EVENTS else nullcontext():
        yield from _parts_of(config, events, made, rate)


def _parts_of(config: Config, events: ProductionEvents, made: BatchInParts, rate: float) -> Iterator[BatchPart]:
    """A large window's parts. Its defects are drawn exactly as for the whole batch: the defect draws
    follow the ids' in the batch's generator, which is advanced past them (the slot table counted the
    records); a first pass over the parts gathers the rows the defects read, and the parts are then made
    again with the defects laid on."""
    stream, window = "events", events.window
    plan: DefectPlan | SpilledPlan = DefectPlan()
    copies, copied_rows = None, np.zeros(0, np.int64)
    if rate > 0:
        assert events.slots is not None
        n = events.slots.events
        rng = batch_rng(config.seed, stream, window)
        bits = rng.bit_generator
        assert isinstance(bits, np.random.PCG64)
        bits.advance(2 * n)  # the ids take two 64-bit words each
        choice = choose_defects(n, EventBatch.defect_targets(), rate, config.quality_injection, rng)
        if choice is not None:
            held, copies, copied_rows = _apply_to_gathered(events, choice, rng, config)
            plan = SpilledPlan(held, made.spill_dir) if made.spill_dir is not None else held
            del held
        del choice  # its rows and kinds live on in the plan; the rest is not needed again
    made.plan = plan
    rng = batch_rng(config.seed, stream, window)
    offset = 0
    try:
        for batch in events.in_order(rng):
            lo, hi = offset, offset + batch.size
            if copies is not None:
                a, b = np.searchsorted(copied_rows, [lo, hi])
                if b > a:
                    batch.copy_rows(copied_rows[a:b] - lo, np.arange(a, b), copies)
            yield BatchPart(offset, batch, plan.restrict(lo, hi))
            offset = hi
    finally:
        if isinstance(plan, SpilledPlan):
            plan.close()


def _apply_to_gathered(events: ProductionEvents, choice: DefectChoice, rng: np.random.Generator,
                       config: Config) -> tuple[DefectPlan, EventBatch, np.ndarray]:
    """The defect plan, applied to just the records it reads (gathered part by part); returns it with the
    duplicates' records (as copied) and their rows. Duplicates and their sources are gathered whole, the
    records whose injected value is made from their own only for what the injections read (time and
    place), after them; the others (a null, an unknown event type) are not gathered at all."""
    duplicate_rows = choice.rows[choice.kinds == DEFECT_TYPES.index("duplicate")]
    whole = np.union1d(duplicate_rows, choice.duplicate_sources)
    reads = np.zeros(len(choice.rows), bool)
    targets = EventBatch.defect_targets()
    for kind_code, kind in enumerate(DEFECT_TYPES):
        table = np.array([t.inject is not None and t.reads_record for t in targets[kind]])
        members = np.flatnonzero(choice.kinds == kind_code)
        reads[members] = table[choice.target_index[members]]
    lean = np.setdiff1d(choice.rows[reads], whole, assume_unique=True)
    del reads

    def local(rows: np.ndarray) -> np.ndarray:
        located: np.ndarray = np.where(np.isin(rows, whole), np.searchsorted(whole, rows),
                                       len(whole) + np.searchsorted(lean, rows))
        return located

    ids = batch_rng(config.seed, "events", events.window)
    gathered: EventBatch | None = None
    offset = 0
    for part in events.in_order(ids):
        if gathered is None:  # whole records first; time and place go on for the lean rows (read by nothing else)
            gathered = part.blank(len(whole))
            total = len(whole) + len(lean)
            gathered.timestamp_ms, gathered.lat, gathered.lon = (np.empty(total, column.dtype) for column in
                                                                 (part.timestamp_ms, part.lat, part.lon))
        a, b = np.searchsorted(whole, [offset, offset + part.size])
        gathered.copy_rows(np.arange(a, b), whole[a:b] - offset, part)
        c, d = np.searchsorted(lean, [offset, offset + part.size])
        for mine, theirs in ((gathered.timestamp_ms, part.timestamp_ms), (gathered.lat, part.lat),
                             (gathered.lon, part.lon)):
            mine[len(whole) + c:len(whole) + d] = theirs[lean[c:d] - offset]
        offset += part.size
        del part
    assert gathered is not None
    plan = apply_defects(gathered, choice, rng, local=local)
    copied_rows = plan.rows[plan.duplicate_of >= 0]
    return plan, gathered.take(local(copied_rows)), copied_rows
