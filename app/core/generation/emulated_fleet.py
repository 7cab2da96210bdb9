"""Emulated mode's drivers: a small fleet on shift whose state carries from one batch to the next.

Emulated mode is a time-lapse: a batch every few seconds holding a drawn number of events, so a day's
itinerary (production) cannot be used; instead a few drivers are on shift at once (``slots``), each one
stepping through OFF → DRIVING → STOPPED one event at a time. A batch's events are spread over the
slots, and each slot's events apply its driver's next transitions in time order:
- OFF → ``start_driving`` from the company's depot (where every shift starts and ends);
- DRIVING → ``stopped_driving`` a leg away: a drawn speed (SPEED_KMH) times the time driven, at most
  MAX_LEG_KM; the last legs of a shift head back to the depot;
- STOPPED → ``delivered`` while the stop has deliveries left (0-2, the configured mix), else
  ``start_driving``, or, back at the depot with the shift's legs done, the shift ends and the slot's
  next event is a fresh driver's (drawn from the roster) first ``start_driving``.
A shift takes its driver's own truck, or now and then a spare one no other driver on shift holds.

The state after a batch (every slot's driver, truck, phase, position, time of its last event) is
committed with the batch in the store's transaction, and the next batch starts from it: a batch is a
function of the seed, the window, the roster and the state the previous batch left, so live, catch-up,
``generate`` and ``backfill`` write the same bytes, and a restart continues every driver's sequence.
Each batch's events take distinct milliseconds, so a driver's order is its events' time order.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from app.core.generation import geography as geo
from app.core.generation.geography import COORD_SCALE
from app.core.generation.itinerary import KM_PER_DEG, depots

START, STOP, DELIVER = 0, 1, 2  # event type codes (EVENT_TYPES order)
OFF, DRIVING, STOPPED = 0, 1, 2  # phases
SLOTS_MIN, SLOTS_MAX = 3, 64
SPEED_KMH = (25.0, 90.0)
MAX_LEG_KM = 2.0  # a long wait between events (a pause) means a slow leg, not a long one
MIN_LEG_KM = 0.005  # shorter legs end where they began: 1e-5° rounding (≤ 0.8 m) must not dominate the speed
LEGS_PER_SHIFT = (3, 10)  # legs driven before heading back to the depot
SPARE_TRUCK_SHARE = 0.1  # shifts that take a spare truck (when one is free)
REFILL_TRIES = 8


def slot_count(events_per_batch_max: int) -> int:
    """Drivers on shift at once: about two events each per batch at the most."""
    return int(min(SLOTS_MAX, max(SLOTS_MIN, -(-events_per_batch_max // 2))))


@dataclass(frozen=True)
class FleetState:
    """Every slot's driver (``driver`` 0: the slot waits for one) after the batch ending at ``as_of_s``."""

    company_uuid: np.ndarray  # (s, 16) uint8
    geography: np.ndarray  # (s,) uint8
    drivers_count: np.ndarray  # (s,) int32
    driver: np.ndarray  # (s,) int16, 0 = vacant
    truck: np.ndarray  # (s,) int16
    phase: np.ndarray  # (s,) uint8
    lat: np.ndarray  # (s,) int32, degrees × COORD_SCALE
    lon: np.ndarray  # (s,) int32
    last_ms: np.ndarray  # (s,) int64
    deliveries_left: np.ndarray  # (s,) int8
    legs_left: np.ndarray  # (s,) int16
    as_of_s: int
    pending: Pending | None = None  # late events not arrived yet

    @classmethod
    def vacant(cls, slots: int, as_of_s: int = 0) -> FleetState:
        return cls(np.zeros((slots, 16), np.uint8), np.zeros(slots, np.uint8), np.zeros(slots, np.int32),
                   np.zeros(slots, np.int16), np.zeros(slots, np.int16), np.zeros(slots, np.uint8),
                   np.zeros(slots, np.int32), np.zeros(slots, np.int32), np.zeros(slots, np.int64),
                   np.zeros(slots, np.int8), np.zeros(slots, np.int16), as_of_s)

    @property
    def slots(self) -> int:
        return len(self.driver)

    def resized(self, slots: int) -> FleetState:
        """``slots`` slots (after a config change): a driver still on shift keeps its slot, so a smaller fleet
        is reached as shifts end (vacant slots and drivers whose shift is over are dropped first)."""
        if slots > self.slots:
            extra = FleetState.vacant(slots - self.slots)
            return self._with([np.concatenate([a, b]) for a, b in zip(self._columns(), extra._columns(), strict=True)])
        if slots == self.slots:
            return self
        working = np.flatnonzero((self.driver > 0) & ~self.shift_over(np.arange(self.slots)))
        others = np.setdiff1d(np.arange(self.slots), working)[: max(slots - len(working), 0)]
        return self._take(np.sort(np.concatenate([working, others])))

    def shift_over(self, slots: np.ndarray) -> np.ndarray:
        """Whether each slot's driver has finished its shift (stopped at the depot, nothing left to do)."""
        lat, lon = depot_fixed(self.company_uuid[slots], self.geography[slots])
        over: np.ndarray = ((self.phase[slots] == STOPPED) & (self.deliveries_left[slots] == 0)
                            & (self.legs_left[slots] <= 0) & (self.lat[slots] == lat) & (self.lon[slots] == lon))
        return over

    def _columns(self) -> tuple[np.ndarray, ...]:
        return (self.company_uuid, self.geography, self.drivers_count, self.driver, self.truck, self.phase,
                self.lat, self.lon, self.last_ms, self.deliveries_left, self.legs_left)

    def _with(self, columns: list[np.ndarray]) -> FleetState:
        names = ("company_uuid", "geography", "drivers_count", "driver", "truck", "phase", "lat", "lon", "last_ms",
                 "deliveries_left", "legs_left")
        fields: dict[str, Any] = dict(zip(names, columns, strict=True))
        return replace(self, **fields)

    def _take(self, rows: np.ndarray) -> FleetState:
        return self._with([c[rows] for c in self._columns()])

    def copy(self) -> FleetState:
        return self._with([c.copy() for c in self._columns()])

    def to_json(self) -> dict[str, Any]:
        pending = self.pending.steps.to_json(self.pending.arrival_s) if self.pending is not None else []
        return {"as_of_s": self.as_of_s, "pending": pending, "slots": [
            {"company_id": str(uuid.UUID(bytes=bytes(self.company_uuid[i]))), "geography": int(self.geography[i]),
             "drivers_count": int(self.drivers_count[i]), "driver": int(self.driver[i]),
             "truck": int(self.truck[i]), "phase": int(self.phase[i]), "lat": int(self.lat[i]),
             "lon": int(self.lon[i]), "last_ms": int(self.last_ms[i]),
             "deliveries_left": int(self.deliveries_left[i]), "legs_left": int(self.legs_left[i])}
            for i in range(self.slots)]}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> FleetState:
        slots = value["slots"]
        state = cls.vacant(len(slots), int(value["as_of_s"]))
        for i, slot in enumerate(slots):
            state.company_uuid[i] = np.frombuffer(uuid.UUID(slot["company_id"]).bytes, np.uint8)
            for name in ("geography", "drivers_count", "driver", "truck", "phase", "lat", "lon", "last_ms",
                         "deliveries_left", "legs_left"):
                getattr(state, name)[i] = slot[name]
        if value.get("pending"):
            return replace(state, pending=Pending(*Steps.from_json(value["pending"])))
        return state


@dataclass(frozen=True)
class Steps:
    """Events in time order, with the driver of each (a batch's, or late ones waiting to arrive)."""

    company_uuid: np.ndarray  # (n, 16) uint8
    geography: np.ndarray  # (n,) uint8
    drivers_count: np.ndarray  # (n,) int32
    driver: np.ndarray  # int16
    truck: np.ndarray  # int16
    event_type: np.ndarray  # uint8
    timestamp_ms: np.ndarray  # int64
    lat: np.ndarray  # int32 fixed point
    lon: np.ndarray


    @classmethod
    def empty(cls) -> Steps:
        return cls(np.zeros((0, 16), np.uint8), np.zeros(0, np.uint8), np.zeros(0, np.int32), np.zeros(0, np.int16),
                   np.zeros(0, np.int16), np.zeros(0, np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int32),
                   np.zeros(0, np.int32))

    def _columns(self) -> tuple[np.ndarray, ...]:
        return (self.company_uuid, self.geography, self.drivers_count, self.driver, self.truck, self.event_type,
                self.timestamp_ms, self.lat, self.lon)

    def take(self, rows: np.ndarray) -> Steps:
        return Steps(*(c[rows] for c in self._columns()))

    def __len__(self) -> int:
        return len(self.timestamp_ms)

    @staticmethod
    def joined(first: Steps, second: Steps) -> Steps:
        """Both, in time order (ties: ``first`` first)."""
        both = Steps(*(np.concatenate([a, b]) for a, b in zip(first._columns(), second._columns(), strict=True)))
        return both.take(np.argsort(both.timestamp_ms, kind="stable"))

    def to_json(self, arrival_s: np.ndarray) -> list[dict[str, Any]]:
        return [{"company_id": str(uuid.UUID(bytes=bytes(self.company_uuid[i]))), "geography": int(self.geography[i]),
                 "drivers_count": int(self.drivers_count[i]), "driver": int(self.driver[i]),
                 "truck": int(self.truck[i]), "event_type": int(self.event_type[i]),
                 "timestamp_ms": int(self.timestamp_ms[i]), "lat": int(self.lat[i]), "lon": int(self.lon[i]),
                 "arrival_s": int(arrival_s[i])} for i in range(len(self))]

    @classmethod
    def from_json(cls, rows: list[dict[str, Any]]) -> tuple[Steps, np.ndarray]:
        steps = cls(np.array([np.frombuffer(uuid.UUID(r["company_id"]).bytes, np.uint8) for r in rows],
                             np.uint8).reshape(len(rows), 16),
                    *(np.array([r[name] for r in rows], dtype) for name, dtype in (
                        ("geography", np.uint8), ("drivers_count", np.int32), ("driver", np.int16),
                        ("truck", np.int16), ("event_type", np.uint8), ("timestamp_ms", np.int64), ("lat", np.int32),
                        ("lon", np.int32))))
        return steps, np.array([r["arrival_s"] for r in rows], np.int64)


@dataclass(frozen=True)
class Pending:
    """Late events made by earlier batches, each waiting for the window starting at its ``arrival_s``."""

    steps: Steps
    arrival_s: np.ndarray  # int64

    @classmethod
    def empty(cls) -> Pending:
        return cls(Steps.empty(), np.zeros(0, np.int64))

    def split(self, window_start_s: int) -> tuple[Steps, Pending]:
        """The events arriving in the window starting at ``window_start_s``, and those still waiting.
        Events whose window went by without a batch (skipped while paused) are gone with it."""
        due = self.arrival_s == window_start_s
        later = self.arrival_s > window_start_s
        return self.steps.take(np.flatnonzero(due)), Pending(self.steps.take(np.flatnonzero(later)),
                                                             self.arrival_s[later])

    def plus(self, steps: Steps, arrival_s: np.ndarray) -> Pending:
        joined = Steps(*(np.concatenate([a, b]) for a, b in zip(self.steps._columns(), steps._columns(), strict=True)))
        return Pending(joined, np.concatenate([self.arrival_s, arrival_s]))


# Where a slot's next driver comes from: (company uuid, geography, drivers_count, driver number), or None
# when the roster has no driver.
DriverDraw = Callable[[np.random.Generator], "tuple[np.ndarray, int, int, int] | None"]


def depot_fixed(company_uuid: np.ndarray, geography: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each company's depot (the production model's) in fixed point: where shifts start and end."""
    lat, lon = depots(company_uuid, geography, geo.LAT_MIN, geo.LAT_MAX, geo.LON_MIN, geo.LON_MAX)
    return np.rint(lat * COORD_SCALE).astype(np.int32), np.rint(lon * COORD_SCALE).astype(np.int32)


def step_fleet(state: FleetState, timestamps: np.ndarray, draw: DriverDraw, deliveries: float,
               trucks_per_driver: float, rng: np.random.Generator) -> tuple[Steps, FleetState]:
    """Apply one event per timestamp (sorted, distinct) to the fleet: each goes to a slot drawn at random
    and is that slot's driver's next transition. Returns the events and the state after them."""
    state = state.copy()
    for slot in np.flatnonzero(state.driver == 0):  # vacant slots take a driver first (while the roster has one)
        _refill(state, int(slot), draw, trucks_per_driver, rng)
    occupied = np.flatnonzero(state.driver > 0)
    n = len(timestamps) if len(occupied) else 0
    timestamps = timestamps[:n]
    slot_of = occupied[rng.integers(0, len(occupied), n)] if n else np.zeros(0, np.int64)
    order = np.lexsort((timestamps, slot_of))  # by slot, then time
    sorted_slots = slot_of[order]
    first = np.searchsorted(sorted_slots, sorted_slots, side="left")
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - first
    out_uuid = np.zeros((n, 16), np.uint8)
    out = {name: np.zeros(n, dtype) for name, dtype in (
        ("geography", np.uint8), ("drivers_count", np.int32), ("driver", np.int16), ("truck", np.int16),
        ("event_type", np.uint8), ("lat", np.int32), ("lon", np.int32))}
    for k in range(int(rank.max()) + 1 if n else 0):
        events = np.flatnonzero(rank == k)  # at most one per slot
        slots = slot_of[events]
        at = timestamps[events]
        ended = (state.driver[slots] == 0) | state.shift_over(slots)
        for slot in slots[ended]:
            _refill(state, int(slot), draw, trucks_per_driver, rng)
        phase = state.phase[slots]
        stopping = phase == DRIVING
        delivering = (phase == STOPPED) & (state.deliveries_left[slots] > 0)
        starting = ~stopping & ~delivering
        _drive_legs(state, slots[stopping], at[stopping], deliveries, rng)
        state.deliveries_left[slots[delivering]] -= 1
        state.phase[slots[starting]] = DRIVING
        kind = np.where(stopping, STOP, np.where(delivering, DELIVER, START)).astype(np.uint8)
        state.last_ms[slots] = at
        out_uuid[events] = state.company_uuid[slots]
        out["geography"][events] = state.geography[slots]
        out["drivers_count"][events] = state.drivers_count[slots]
        out["driver"][events] = state.driver[slots]
        out["truck"][events] = state.truck[slots]
        out["event_type"][events] = kind
        out["lat"][events] = state.lat[slots]
        out["lon"][events] = state.lon[slots]
    steps = Steps(out_uuid, out["geography"], out["drivers_count"], out["driver"], out["truck"],
                  out["event_type"], timestamps, out["lat"], out["lon"])
    return steps, state


def _refill(state: FleetState, slot: int, draw: DriverDraw, trucks_per_driver: float,
            rng: np.random.Generator) -> None:
    """A fresh driver for ``slot``, OFF at its depot: one not on shift in another slot (the slot's own
    driver again only when the roster has no other), with its own truck or now and then a free spare."""
    on_shift = {(bytes(state.company_uuid[i]), int(state.driver[i]))
                for i in range(state.slots) if i != slot and state.driver[i] > 0}
    picked = None
    for _ in range(REFILL_TRIES):
        drawn = draw(rng)
        if drawn is None:
            break
        if (bytes(drawn[0]), drawn[3]) not in on_shift:
            picked = drawn
            break
    if picked is None:
        if state.driver[slot] == 0:
            return  # nobody free (or no roster yet): the slot stays vacant
        picked = (state.company_uuid[slot].copy(), int(state.geography[slot]), int(state.drivers_count[slot]),
                  int(state.driver[slot]))
    company_uuid, geography, drivers_count, driver = picked
    state.company_uuid[slot] = company_uuid
    state.geography[slot], state.drivers_count[slot], state.driver[slot] = geography, drivers_count, driver
    lat, lon = depot_fixed(state.company_uuid[slot:slot + 1], state.geography[slot:slot + 1])
    state.lat[slot], state.lon[slot] = lat[0], lon[0]
    state.phase[slot], state.deliveries_left[slot] = OFF, 0
    state.legs_left[slot] = rng.integers(LEGS_PER_SHIFT[0], LEGS_PER_SHIFT[1] + 1)
    state.truck[slot] = driver
    fleet = min(int(np.ceil(drivers_count * trucks_per_driver)), max(drivers_count, 9999))
    if fleet > drivers_count and rng.random() < SPARE_TRUCK_SHARE:
        held = {int(state.truck[i]) for i in range(state.slots)
                if i != slot and state.driver[i] > 0 and bytes(state.company_uuid[i]) == bytes(company_uuid)}
        free = [t for t in range(drivers_count + 1, fleet + 1) if t not in held]
        if free:
            state.truck[slot] = free[int(rng.integers(0, len(free)))]


def _drive_legs(state: FleetState, slots: np.ndarray, at: np.ndarray, deliveries: float,
                rng: np.random.Generator) -> None:
    """DRIVING → STOPPED for ``slots`` at ``at``: each moves a leg, then stops with 0-2 deliveries."""
    count = len(slots)
    speed = rng.uniform(*SPEED_KMH, count)
    heading = rng.uniform(0.0, 2 * np.pi, count)
    share = deliveries / 2
    made = (rng.random(count) < share).astype(np.int8) + (rng.random(count) < share).astype(np.int8)
    if not count:
        return
    hours = (at - state.last_ms[slots]) / 3_600_000
    budget = np.minimum(speed * hours, MAX_LEG_KM)
    lat0, lon0 = state.lat[slots] / COORD_SCALE, state.lon[slots] / COORD_SCALE
    home_lat, home_lon = depot_fixed(state.company_uuid[slots], state.geography[slots])
    km_per_lon = KM_PER_DEG * np.cos(np.radians(lat0))
    home_north = (home_lat / COORD_SCALE - lat0) * KM_PER_DEG
    home_east = (home_lon / COORD_SCALE - lon0) * km_per_lon
    home_km = np.hypot(home_north, home_east)
    going_home = state.legs_left[slots] <= 1
    arrives = going_home & (budget >= home_km)
    toward = np.arctan2(home_north, home_east)
    angle = np.where(going_home, toward, heading)
    moves = budget >= MIN_LEG_KM
    north = np.where(moves, budget * np.sin(angle), 0.0)
    east = np.where(moves, budget * np.cos(angle), 0.0)
    lat = np.rint((lat0 + north / KM_PER_DEG) * COORD_SCALE).astype(np.int32)
    lon = np.rint((lon0 + east / km_per_lon) * COORD_SCALE).astype(np.int32)
    state.lat[slots] = np.where(arrives, home_lat, lat)
    state.lon[slots] = np.where(arrives, home_lon, lon)
    state.phase[slots] = STOPPED
    state.deliveries_left[slots] = made
    state.legs_left[slots] = np.maximum(state.legs_left[slots] - 1, 0)

