"""Production driver events that tell a story: shifts, legs, stops and deliveries.

Each driver's day is a pure function of (seed, company, driver, local day), so the events of any window
are the itinerary events that fall inside it, computed column-wise for the window alone: live,
catch-up, ``generate`` and ``backfill`` give the same bytes, and consecutive windows continue each
driver's sequence.

The model, per driver and local day (the company region's standard time):
- a shift starts between 06:00 and 10:00 and lasts 8 to 10 hours (a company onboarded during a shift
  has its drivers join it at the next slot, leaving from OFF);
- the shift is cut into slots of equal length ``slot``; in slot k the driver leaves the previous stop
  (``start_driving``, OFF or STOPPED → DRIVING), drives for 40–60 % of the slot, reaches stop k
  (``stopped_driving``, DRIVING → STOPPED) and makes 0–2 deliveries there (``delivered``, while STOPPED);
  the shift ends after the last slot, STOPPED;
- stops lie along a loop around the company's depot (a route centre moving at ``ROUTE_SPEED_KMH``) with a
  small scatter, so a leg never needs more than ``3·route speed + 5·scatter/slot`` (≤ 110 km/h) and a
  driver does not move while stopped; depots sit ``DEPOT_MARGIN_DEG`` inside the region's box, further
  than any route reaches, so every position stays inside it;
- the slot length makes the expected events per driver per day equal ``event_rate_per_driver`` times
  the driver windows in a day: the volume follows the local working day, its daily mean the configured
  rate;
- each company has ``ceil(drivers × trucks_per_driver)`` trucks; a driver drives one truck per shift,
  given by a per-company rotation that changes weekly, so two drivers never share a truck on a day.

Random values come from a counter-based hash of (seed, company, driver, day, slot, purpose), which
gives any slot's values without generating the ones before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from app.core.generation import compiled, workers
from app.core.generation.hashing import PURPOSE, company_keys, key, mix, uniform
from app.core.timeline import Window
from app.core.workday import (
    DAY_S,
    MAX_DELIVERIES,
    SHIFT_LENGTH_MIN_H,
    SHIFT_LENGTH_SPAN_H,
    SHIFT_START_MIN_H,
    SHIFT_START_SPAN_H,
)

if TYPE_CHECKING:  # lifecycle builds on this module's hashing
    from app.core.generation.lifecycle import Lives

# Region standard time offsets from UTC (hours), in the order of geography.REGIONS: US, EU, SA, AUS.
REGION_UTC_OFFSET_H = np.array([-6, 1, -3, 10], np.int64)
DRIVE_SHARE_MIN, DRIVE_SHARE_SPAN = 0.40, 0.20  # of a slot
DEPART_SHARE = 0.05  # a slot starts with a short wait at the stop
DELIVERY_STEP_SHARE = 0.08  # deliveries follow the stop by this share of a slot each
ROUTE_SPEED_KMH = 20.0
ROUTE_RADIUS_KM = (5.0, 15.0)
SCATTER_KMH = 10.0  # stop scatter radius = this speed × the slot, at most MAX_SCATTER_KM
MAX_SCATTER_KM = 0.3
DEPOT_MARGIN_DEG = 1.0  # > (2 × max route radius + scatter) in degrees of longitude at 59°
KM_PER_DEG = 111.195
WEEK_DAYS = 7
ROW_BITS = 26  # sort keys: up to 2**26 events per window with 2**37 ms (4 years) of window


@dataclass(frozen=True)
class Lateness:
    """Late arrival: a stop (its leg's start and stop and its deliveries) is late with ``probability`` and
    then lands in one of the later windows starting at most ``max_delay_s`` after it, chosen evenly (both
    decided by a hash of the stop's place in its itinerary; see ``_arriving_slots``)."""

    probability: float
    max_delay_s: int
    interval_s: int

    @property
    def reach(self) -> int:
        """Earlier windows whose events may arrive in a window (rounded up: with a delay of 20 minutes on
        15-minute windows, an event at 09:44 may arrive in the 10:00 window, two windows on)."""
        return -(-self.max_delay_s // self.interval_s)

    def landing_ms(self, at_ms: np.ndarray, uniform: np.ndarray) -> np.ndarray:
        """The start of the window a late event at ``at_ms`` lands in: one of the later windows starting at
        most ``max_delay_s`` after it, picked by ``uniform`` (in [0, 1)) evenly."""
        interval_ms = self.interval_s * 1000
        own_end = (at_ms // interval_ms + 1) * interval_ms
        choices = (at_ms + self.max_delay_s * 1000 - own_end) // interval_ms + 1
        landing: np.ndarray = own_end + np.floor(uniform * choices).astype(np.int64) * interval_ms
        return landing


@dataclass(frozen=True)
class Fleet:
    """The active companies a window's events come from."""

    company_uuid: np.ndarray  # (m, 16) uint8
    geography: np.ndarray  # (m,) uint8, index into REGIONS
    drivers_count: np.ndarray  # (m,) int32
    since_s: np.ndarray  # (m,) int64: a company's drivers work from the first slot starting at or after it
    lives: Lives | None = None  # with companies.churn: when each company leaves, its driver counts

    def depots(self, boxes: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, ...]:
        """Each company's depot (lat, lon) and the km in a degree of longitude there, computed once for
        every part of a window."""
        cache = self.__dict__.setdefault("_depots", {})  # a frozen dataclass: its dict is still its own
        key = tuple(id(box) for box in boxes)
        if key not in cache:
            lat, lon = depots(self.company_uuid, self.geography, *boxes)
            cache[key] = (lat, lon, KM_PER_DEG * np.cos(np.radians(lat)))
        found: tuple[np.ndarray, ...] = cache[key]
        return found

    def truck_fleets(self, trucks_per_driver: float) -> np.ndarray:
        """Each company's number of trucks (int64), computed once for every part of a window: enough for
        the most drivers it can have, one truck each at least."""
        cache = self.__dict__.setdefault("_truck_fleets", {})
        if trucks_per_driver not in cache:
            drivers = self.drivers_count.astype(np.int64)
            if self.lives is not None:  # the trucks cover the most drivers the company can have
                drivers = self.lives.most_drivers(np.arange(len(drivers)))
            cache[trucks_per_driver] = np.minimum(np.ceil(drivers * trucks_per_driver).astype(np.int64),
                                                  np.maximum(drivers, 9999))
        sizes: np.ndarray = cache[trucks_per_driver]
        return sizes


@dataclass(frozen=True)
class Itinerary:
    """One window's events, in time order (ties by company, driver and sequence)."""

    company: np.ndarray  # int32 index into the fleet
    driver: np.ndarray  # int16 driver number, from 1
    truck: np.ndarray  # int16 truck number, from 1
    event_type: np.ndarray  # uint8: 0 start_driving, 1 stopped_driving, 2 delivered
    timestamp_ms: np.ndarray  # int64
    lat: np.ndarray  # float64 degrees
    lon: np.ndarray  # float64 degrees


def depots(company_uuid: np.ndarray, geography: np.ndarray, lat_min: np.ndarray, lat_max: np.ndarray,
           lon_min: np.ndarray, lon_max: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each company's depot, from its id, inside its region's box shrunk by DEPOT_MARGIN_DEG."""
    fractions = company_uuid[:, 10:16].astype(np.float64)
    u_lat = (fractions[:, 0] * 256 + fractions[:, 1] + fractions[:, 2] / 256) / 65536
    u_lon = (fractions[:, 3] * 256 + fractions[:, 4] + fractions[:, 5] / 256) / 65536
    g = geography
    low_lat, high_lat = lat_min[g] + DEPOT_MARGIN_DEG, lat_max[g] - DEPOT_MARGIN_DEG
    low_lon, high_lon = lon_min[g] + DEPOT_MARGIN_DEG, lon_max[g] - DEPOT_MARGIN_DEG
    lat: np.ndarray = low_lat + u_lat * (high_lat - low_lat)
    lon: np.ndarray = low_lon + u_lon * (high_lon - low_lon)
    return lat, lon


SHIFT_BLOCK_DRIVERS = 1 << 16  # the shift table is built this many driver-days at a time (bounded memory)


@dataclass(frozen=True)
class Shifts:
    """The shifts of a window's drivers that can hold its events, one row per (driver, local day), in the
    order (day step, company, driver); ``first``/``last`` bound the slots that can hold them. A shift's
    start is derived from its day key when asked (``start_of``), not held: a table that lives as long as the
    window is 8 bytes a shift smaller, for a hash per slot (the day key itself would cost three)."""

    t0: int  # the span's start (s): the window's, less the look-back of late arrivals
    company: np.ndarray  # int32 index into the fleet
    driver: np.ndarray  # int32 driver number, from 1
    day: np.ndarray  # int32 local day
    day_key: np.ndarray  # uint64
    first: np.ndarray  # int32: first slot that can hold an event of the span
    last: np.ndarray  # int32: one past the last
    offset_s: np.ndarray  # int64 per company of the fleet: its region's UTC offset (s)

    @property
    def size(self) -> int:
        return len(self.first)

    def start_of(self, rows: np.ndarray) -> np.ndarray:
        """When shifts ``rows`` start (s, float64)."""
        return _shift_start(self.day[rows].astype(np.int64), self.offset_s[self.company[rows]], self.day_key[rows])


def _shift_start(day: np.ndarray, offset_s: np.ndarray, day_key: np.ndarray) -> np.ndarray:
    local_midnight = day * DAY_S - offset_s
    hours = SHIFT_START_MIN_H + SHIFT_START_SPAN_H * uniform(day_key, "shift_start")
    start: np.ndarray = local_midnight + hours * 3600
    return start


def window_events(seed: int, fleet: Fleet, window: Window, slot_s: float, deliveries: float,
                  trucks_per_driver: float, boxes: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                  late: Lateness | None = None) -> Itinerary:
    """Every itinerary event of ``fleet`` that arrives in ``window``, in time order: those inside it that
    are on time and, with ``late``, the late ones of the windows before it that arrive in it."""
    shifts = shift_table(seed, fleet, window, slot_s, late)
    return part_events(seed, fleet, window, shifts, (None, None), slot_s, deliveries,
                       trucks_per_driver, boxes, late)


def _looks_back(late: Lateness | None) -> int:
    return late.reach if late is not None and late.probability > 0 else 0


def shift_table(seed: int, fleet: Fleet, window: Window, slot_s: float, late: Lateness | None = None) -> Shifts:
    """The shifts that can hold events arriving in ``window`` (see ``Shifts``), built block by block."""
    t0, t1 = window.start_s - _looks_back(late) * (window.end_s - window.start_s), window.end_s
    if fleet.drivers_count.size == 0 or not np.isfinite(slot_s):
        return _no_shifts(t0)
    # A shift starts and ends on its local day (06:00 at the earliest, 20:00 at the latest), so only the
    # (company, local day) pairs whose working hours reach the window get a row per driver.
    offset_s = REGION_UTC_OFFSET_H[fleet.geography.astype(np.int64)] * 3600
    span = (t1 - 1 - t0) // DAY_S + 2
    pairs = np.tile(np.arange(len(fleet.drivers_count), dtype=np.int64), span)
    pair_day = np.concatenate([(t0 + offset_s) // DAY_S + step for step in range(span)])
    midnight = pair_day * DAY_S - offset_s[pairs]
    earliest = midnight + SHIFT_START_MIN_H * 3600
    latest_start = earliest + SHIFT_START_SPAN_H * 3600
    latest_end = latest_start + (SHIFT_LENGTH_MIN_H + SHIFT_LENGTH_SPAN_H) * 3600 + slot_s
    reach = (latest_end > t0 - slot_s) & (earliest < t1) & (latest_end > fleet.since_s[pairs])
    pairs, pair_day, earliest, latest_end = pairs[reach], pair_day[reach], earliest[reach], latest_end[reach]
    del midnight, latest_start, reach
    if fleet.lives is None:
        per_pair = fleet.drivers_count[pairs].astype(np.int64)
    else:  # the most drivers the company has during the pair's working hours (a period lasts > 1 day)
        per_pair = np.maximum(fleet.lives.drivers(pairs, fleet.lives.period_at(pairs, earliest)),
                              fleet.lives.drivers(pairs, fleet.lives.period_at(pairs, latest_end)))
    ckeys = company_keys(seed, fleet.company_uuid)
    # blocks of whole pairs in order, so the table is the same whatever the block size
    ends = np.cumsum(per_pair)
    cuts = np.searchsorted(ends, np.arange(SHIFT_BLOCK_DRIVERS, int(ends[-1]) if len(ends) else 0,
                                           SHIFT_BLOCK_DRIVERS), side="right")
    bounds = [0, *np.unique(cuts).tolist(), len(pairs)]
    spans = [(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
    blocks: list[list[np.ndarray | None]] = list(workers.in_order(
        lambda ab: list(_shift_block(fleet, pairs[ab[0]:ab[1]], pair_day[ab[0]:ab[1]], per_pair[ab[0]:ab[1]],
                                     offset_s, ckeys, t0, t1, slot_s)), spans, workers.THREADS, "generate"))
    if not blocks:
        return _no_shifts(t0)
    company, driver, day, day_key, first, last = _joined(blocks)
    return Shifts(t0, company, driver, day, day_key, first, last, offset_s)


def _shift_block(fleet: Fleet, pairs: np.ndarray, pair_day: np.ndarray, per_pair: np.ndarray, offset_s: np.ndarray,
                 ckeys: np.ndarray, t0: int, t1: int, slot_s: float) -> tuple[np.ndarray, ...]:
    company = np.repeat(pairs, per_pair)
    day = np.repeat(pair_day, per_pair)
    driver = np.arange(len(company), dtype=np.int64) - np.repeat(np.cumsum(per_pair) - per_pair, per_pair) + 1
    day_key = key(ckeys[company], driver.astype(np.uint64), day.astype(np.uint64))
    start = _shift_start(day, offset_s[company], day_key)
    length = (SHIFT_LENGTH_MIN_H + SHIFT_LENGTH_SPAN_H * uniform(day_key, "shift_length")) * 3600
    slots = np.rint(length / slot_s).astype(np.int64)
    end = start + slots * slot_s
    since = fleet.since_s[company]
    live = (end > t0 - slot_s) & (start < t1) & (end > since) & (slots > 0)
    rows = np.flatnonzero(live)
    company, driver, day, day_key = company[rows], driver[rows], day[rows], day_key[rows]
    start, slots, since = start[rows], slots[rows], since[rows]
    until = np.full(len(rows), np.inf)
    if fleet.lives is not None:
        since, until = _working(fleet.lives, company, driver, start, start + slots * slot_s, since)
    # the slots of each shift that can hold an event of the span (a slot's events lie inside it); a
    # company onboarded during a shift has its drivers join it at the next slot, leaving from OFF, and a
    # driver who leaves (the company does, or its count drops below the driver) stops after the last
    # whole slot before it, STOPPED
    joined = np.ceil(np.maximum(since - start, 0) / slot_s).astype(np.int64)
    first_slot = np.clip(np.maximum(np.floor((t0 - start) / slot_s).astype(np.int64), joined), 0, slots)
    last_slot = np.clip(np.floor((t1 - start) / slot_s).astype(np.int64) + 1, first_slot, slots)
    if fleet.lives is not None:
        whole = np.floor(np.minimum((until - start) / slot_s, slots)).astype(np.int64)
        last_slot = np.clip(np.minimum(last_slot, whole), first_slot, slots)
    held = np.flatnonzero(last_slot > first_slot)
    return (company[held].astype(np.int32), driver[held].astype(np.int32), day[held].astype(np.int32),
            day_key[held], first_slot[held].astype(np.int32), last_slot[held].astype(np.int32))


def _no_shifts(t0: int) -> Shifts:
    i32 = np.zeros(0, np.int32)
    return Shifts(t0, i32, i32, i32, np.zeros(0, np.uint64), i32, i32, np.zeros(0, np.int64))


def expected_events(shifts: Shifts, window: Window, slot_s: float, per_slot: float,
                    late: Lateness | None = None) -> np.ndarray:
    """About how many events of ``window`` each second of the span holds (from the shifts' slots; a slot
    of the look-back counts with the late-arrival probability): where to cut the window into parts."""
    seconds = window.end_s - shifts.t0
    if shifts.size == 0 or seconds <= 0:
        return np.zeros(max(seconds, 0))
    start = shifts.start_of(np.arange(shifts.size))
    begin = np.clip(np.floor(start + shifts.first * slot_s).astype(np.int64) - shifts.t0, 0, seconds)
    end = np.clip(np.floor(start + shifts.last * slot_s).astype(np.int64) - shifts.t0, 0, seconds)
    del start
    active = np.cumsum(np.bincount(begin, minlength=seconds + 1) - np.bincount(end, minlength=seconds + 1))
    density = active[:seconds] * (per_slot / slot_s)
    if late is not None and late.probability > 0:
        density[: window.start_s - shifts.t0] *= late.probability
    return density


SLOT_BLOCK_SHIFTS = 1 << 13  # the slot table is built this many shifts at a time (bounded memory)


@dataclass(frozen=True)
class SlotTable:
    """Every slot that can hold an event of a window cut into parts, in row order (shift, slot), with the
    first and last part its events fall in: a part then meets only its own slots."""

    ends: np.ndarray  # int32 (int64 if need be) per shift: one past its last slot's row (grouped by shift)
    slot: np.ndarray  # uint16 (int32 if need be): the slot, counted from the shift's first one
    first_part: np.ndarray  # uint16
    last_part: np.ndarray  # uint16
    events: int = 0  # the window's events (every kept event of every slot)

    def of_part(self, shifts: Shifts, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = np.flatnonzero((self.first_part <= index) & (self.last_part >= index)).astype(self.ends.dtype)
        shift = np.searchsorted(self.ends, rows, side="right")
        return shift, self.slot[rows].astype(np.int64) + shifts.first[shift]


def slot_table(window: Window, shifts: Shifts, cuts_s: list[int], slot_s: float, deliveries: float,
               late: Lateness | None = None) -> SlotTable:
    """The slot table of ``window`` cut at ``cuts_s`` (the inner part boundaries, s), built block by block."""
    assert len(cuts_s) < 1 << 16, "part numbers are uint16"
    cuts_ms = np.array(cuts_s, np.int64) * 1000
    widest = int((shifts.last.astype(np.int64) - shifts.first).max()) if shifts.size else 0
    offset_type = np.uint16 if widest <= np.iinfo(np.uint16).max else np.int32

    def block(lo: int) -> tuple[list[np.ndarray | None], int]:
        """Shifts [lo, lo + SLOT_BLOCK_SHIFTS): their held slots, and how many events they hold."""
        shift_of, slot = _slots_of(shifts, np.arange(lo, min(lo + SLOT_BLOCK_SHIFTS, shifts.size)))
        shift_of, slot, start, day_key, arrival_ms = _arriving(shifts, shift_of, slot, window, slot_s, late)
        depart, arrive, made = _slot_times(start, slot, day_key, slot_s, deliveries)
        if compiled.native is not None:  # the same, in one pass
            first_part, last_part = np.empty(len(slot), np.int64), np.empty(len(slot), np.int64)
            events = compiled.native.slot_parts(depart, arrive, made, *_kept_terms(window, slot_s, arrival_ms),
                                                cuts_ms, first_part, last_part)
        else:
            first_part = np.full(len(slot), len(cuts_s) + 1, np.int64)
            last_part = np.full(len(slot), -1, np.int64)
            events = 0
            for _, millis, ok in _kept_times(window, depart, arrive, made, slot_s, arrival_ms):
                events += int(np.count_nonzero(ok))
                part = np.searchsorted(cuts_ms, millis, side="right")
                first_part = np.where(ok, np.minimum(first_part, part), first_part)
                last_part = np.where(ok, np.maximum(last_part, part), last_part)
        held = np.flatnonzero(last_part >= 0)  # a slot none of whose events the window keeps is left out
        shift_of, slot = shift_of[held], slot[held]
        counts = np.bincount(shift_of - lo, minlength=min(SLOT_BLOCK_SHIFTS, shifts.size - lo))
        return [counts, (slot - shifts.first[shift_of]).astype(offset_type), first_part[held].astype(np.uint16),
                last_part[held].astype(np.uint16)], events

    made = list(workers.in_order(block, range(0, shifts.size, SLOT_BLOCK_SHIFTS), workers.THREADS, "generate"))
    blocks = [columns for columns, _ in made]
    events = sum(count for _, count in made)
    if not blocks:
        none = np.zeros(0, np.int32)
        return SlotTable(none.astype(np.int64), none, none, none)
    counts, slots, first, last = _joined(blocks)
    row_type = np.int32 if len(slots) <= np.iinfo(np.int32).max else np.int64
    return SlotTable(np.cumsum(counts, dtype=row_type), slots, first, last, events)


def _joined(blocks: list[list[np.ndarray | None]]) -> list[np.ndarray]:
    """The blocks' columns end to end, each block's column let go once copied (at most one column twice)."""
    columns = []
    for index in range(len(blocks[0])):
        columns.append(np.concatenate([block[index] for block in blocks]))
        for block in blocks:
            block[index] = None
    return columns


def _arriving(shifts: Shifts, shift_of: np.ndarray, slot: np.ndarray, window: Window, slot_s: float,
              late: Lateness | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """The slots that can hold events arriving in ``window`` (with a look-back, only the late ones of earlier
    windows that land in it), with their shift's start and day key, and each one's landing (None: no
    look-back)."""
    start, day_key = shifts.start_of(shift_of), shifts.day_key[shift_of]
    if not _looks_back(late) or late is None:
        return shift_of, slot, start, day_key, None
    kept, arrival_ms = _arriving_slots(late, window, start, slot, slot_s, day_key)
    return shift_of[kept], slot[kept], start[kept], day_key[kept], arrival_ms[kept]


def _slots_of(shifts: Shifts, rows: np.ndarray, part: tuple[int | None, int | None] = (None, None),
              slot_s: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(shift row, slot) of every slot of shifts ``rows`` that can hold an event of ``part`` (s), in order."""
    a, b = part
    start = shifts.start_of(rows)
    first, last = shifts.first[rows].astype(np.int64), shifts.last[rows].astype(np.int64)
    if a is not None:
        first = np.clip(np.floor((a - start) / slot_s).astype(np.int64), first, last)
    if b is not None:
        last = np.clip(np.floor((b - start) / slot_s).astype(np.int64) + 1, first, last)
    counts = last - first
    shift_of = np.repeat(rows.astype(np.int64), counts)
    slot = np.repeat(first, counts) + np.arange(len(shift_of), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts,
                                                                                           counts)
    return shift_of, slot


def part_events(seed: int, fleet: Fleet, window: Window, shifts: Shifts, part: tuple[int | None, int | None],
                slot_s: float, deliveries: float, trucks_per_driver: float,
                boxes: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                late: Lateness | None = None, slots: tuple[np.ndarray, np.ndarray] | None = None) -> Itinerary:
    """The events of ``window`` (as ``window_events``) that happen in ``part`` = [a, b) seconds of its span
    (None: unbounded): the parts of a partition of the span, in order, concatenate to the window's events.
    ``slots`` (shift row, slot), from a ``SlotTable``, spares looking for the part's slots among all shifts."""
    a, b = part
    if shifts.size == 0:
        return _empty()
    if slots is None:
        shift_of, slot = _slots_of(shifts, np.arange(shifts.size), part, slot_s)
    else:
        shift_of, slot = slots
    shift_of, slot, start, day_key, arrival_ms = _arriving(shifts, shift_of, slot, window, slot_s, late)
    first_of_shift = np.ones(len(slot), bool)  # a row whose previous row is not its shift's slot before
    first_of_shift[1:] = (shift_of[1:] != shift_of[:-1]) | (slot[1:] != slot[:-1] + 1)
    part_ms = (-(1 << 62) if a is None else a * 1000, 1 << 62 if b is None else b * 1000)
    return _events(fleet, window, shifts, part_ms, arrival_ms, slot_s, deliveries, trucks_per_driver, boxes,
                   shift_of, day_key, start, slot, first_of_shift, company_keys(seed, fleet.company_uuid))


def _kept_times(window: Window, depart: np.ndarray, arrive: np.ndarray, made: np.ndarray, slot_s: float,
                arrival_ms: np.ndarray | None) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """For each place of an event in its slot (seq 0 start, 1 stop, 2-3 deliveries): every slot's event
    time there (ms) and whether ``window`` keeps it (the event exists, and arrives in the window)."""
    step = DELIVERY_STEP_SHARE * slot_s
    interval_ms = (window.end_s - window.start_s) * 1000
    for seq in range(4):
        at = depart if seq == 0 else arrive if seq == 1 else arrive + (seq - 1) * step  # same sums as ever
        millis = np.floor(at * 1000).astype(np.int64)
        del at
        ok = made >= seq - 1 if seq >= 2 else np.ones(len(millis), bool)
        if arrival_ms is None:
            ok &= (millis >= window.start_s * 1000) & (millis < window.end_s * 1000)
        else:  # an event arrives in its own window, or in its late slot's if that is later
            ok &= np.maximum(millis // interval_ms * interval_ms, arrival_ms) == window.start_s * 1000
        yield seq, millis, ok


def _kept_terms(window: Window, slot_s: float, arrival_ms: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """What the compiled kernels need of ``_kept_times``' terms: each slot's landing window (empty without a
    look-back), the delivery step, and the window's start, end and length in ms."""
    arrival = np.zeros(0, np.int64) if arrival_ms is None else np.ascontiguousarray(arrival_ms, np.int64)
    return (arrival, np.array([DELIVERY_STEP_SHARE * slot_s], np.float64),
            np.array([window.start_s * 1000, window.end_s * 1000, (window.end_s - window.start_s) * 1000], np.int64))


def _slot_times(shift_start: np.ndarray, slot: np.ndarray, day_key: np.ndarray, slot_s: float,
                deliveries: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """When each slot's driver departs and arrives (s), and how many deliveries it makes there (0-2); by the
    compiled kernel when there is one (the same doubles)."""
    share = deliveries / MAX_DELIVERIES  # each of two chances delivers with this probability
    if compiled.native is not None:
        depart, arrive, made = np.empty(len(slot)), np.empty(len(slot)), np.empty(len(slot), np.int64)
        numbers = np.array([slot_s, DEPART_SHARE * slot_s, DRIVE_SHARE_MIN, DRIVE_SHARE_SPAN, share], np.float64)
        compiled.native.slot_times(np.ascontiguousarray(shift_start, np.float64), np.ascontiguousarray(slot, np.int64),
                                   np.ascontiguousarray(day_key, np.uint64), numbers, _SLOT_SALTS, depart, arrive,
                                   made)
        return depart, arrive, made
    slot_key = key(day_key, slot.astype(np.uint64))
    begin = shift_start + slot * slot_s
    depart = begin + DEPART_SHARE * slot_s
    arrive = depart + (DRIVE_SHARE_MIN + DRIVE_SHARE_SPAN * uniform(slot_key, "drive")) * slot_s
    made = ((uniform(slot_key, "deliveries") < share).astype(np.int64)
            + (uniform(mix(slot_key), "deliveries") < share).astype(np.int64))
    return depart, arrive, made


def _working(lives: Lives, company: np.ndarray, driver: np.ndarray, start: np.ndarray, end: np.ndarray,
             since: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """When each driver's shift may hold its work: from its company's onboarding (or from the driver-count
    change that takes it on) until the company leaves (or the change that lets it go). A period lasts more
    than a shift, so a shift meets at most one change."""
    period = lives.period_at(company, start)
    change = lives.change_at(company, period + 1)
    before, after = lives.drivers(company, period), lives.drivers(company, period + 1)
    crosses = change < end
    works_before, works_after = driver <= before, np.where(crosses, driver <= after, driver <= before)
    leave = lives.leave_s[company]
    begin = np.where(works_before, since, np.where(works_after & crosses, np.maximum(since, change), end))
    stop = np.where(works_after, leave, np.where(crosses, np.minimum(change, leave), leave))
    idle = ~(works_before | works_after)
    return np.where(idle, end, begin), np.where(idle, start, stop)  # an idle driver's shift holds no slot


def _events(fleet: Fleet, window: Window, shifts: Shifts, part_ms: tuple[int, int], arrival_ms: np.ndarray | None,
            slot_s: float,
            deliveries: float, trucks_per_driver: float, boxes: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
            shift_of: np.ndarray, day_key: np.ndarray, shift_start: np.ndarray, slot: np.ndarray,
            first_of_shift: np.ndarray, ckeys: np.ndarray) -> Itinerary:
    span_start_s = shifts.t0
    depart, arrive, made = _slot_times(shift_start, slot, day_key, slot_s, deliveries)
    # the events kept, as cells row * 4 + seq (seq 0 start, 1 stop, 2-3 deliveries), found one seq at a
    # time: only a part's own events are ever expanded, never all the events of the slots it meets
    # (the compiled kernel finds them row by row: the cells come in another order, which the sort below undoes)
    if compiled.native is not None:
        cell, millis = np.empty(4 * len(slot), np.int64), np.empty(4 * len(slot), np.int64)
        kept = compiled.native.part_cells(depart, arrive, made, *_kept_terms(window, slot_s, arrival_ms),
                                          np.array(part_ms, np.int64), cell, millis)
        cell, millis = cell[:kept], millis[:kept]
    else:
        cells, stamps = [], []
        for seq, millis, ok in _kept_times(window, depart, arrive, made, slot_s, arrival_ms):
            ok &= (millis >= part_ms[0]) & (millis < part_ms[1])
            rows = np.flatnonzero(ok)
            cells.append(rows * 4 + seq)
            stamps.append(millis[rows])
            del millis, ok, rows
        cell, millis = np.concatenate(cells), np.concatenate(stamps)
        del cells, stamps
    del depart, arrive, made, arrival_ms
    # Time order, ties in row order ((company, driver, slot, seq)): one sort of unique int64 keys
    # (time since the span's start, then the cell) is several times faster than a stable argsort.
    numbered = 4 * len(slot) > 1 << ROW_BITS  # more cells than the key holds: number the kept ones in cell order
    if numbered:
        order = np.argsort(cell, kind="stable")
        cell, millis = cell[order], millis[order]
    keys = ((millis - span_start_s * 1000) << ROW_BITS) | (np.arange(len(cell), dtype=np.int64) if numbered else cell)
    keys.sort()
    millis = (keys >> ROW_BITS) + span_start_s * 1000
    low = keys & ((1 << ROW_BITS) - 1)
    del keys
    cell = cell[low] if numbered else low
    # the places and trucks of the slots that hold a kept event only (a part of a window meets many slots
    # whose events all fall in other parts): stop k where an event happens at it, and the stop before
    # (slot -1: where the shift begins, on the route at its start) where a start_driving leaves it, taken
    # from the row before when that is the same shift's slot and its stop was needed too
    held = np.zeros(len(slot), bool)  # (a mask, not np.unique: no sort)
    held[cell >> 2] = True
    used = np.flatnonzero(held)
    source = (np.cumsum(held, dtype=np.int64) - 1)[cell >> 2]
    del held
    kind = np.minimum(cell & 3, 2).astype(np.uint8)
    del cell
    at_stop, leaving = np.zeros(len(used), bool), np.zeros(len(used), bool)
    at_stop[source[kind > 0]] = True
    leaving[source[kind == 0]] = True
    shift_of, day_key, slot = shift_of[used], day_key[used], slot[used]
    company, driver = shifts.company[shift_of].astype(np.int64), shifts.driver[shift_of].astype(np.int64)
    day = shifts.day[shift_of].astype(np.int64)
    depot = fleet.depots(boxes)
    follows = np.zeros(len(used), bool)
    follows[1:] = (used[1:] == used[:-1] + 1) & ~first_of_shift[used[1:]] & at_stop[:-1]
    lat_k, lon_k = np.zeros(len(used)), np.zeros(len(used))
    lat_p, lon_p = np.zeros(len(used)), np.zeros(len(used))
    _stops_into(depot, company, day_key, slot, slot_s, (np.flatnonzero(at_stop), lat_k, lon_k),
                (np.flatnonzero(leaving & ~follows), lat_p, lon_p))
    reuse = np.flatnonzero(leaving & follows)
    lat_p[reuse], lon_p[reuse] = lat_k[reuse - 1], lon_k[reuse - 1]
    truck = _trucks(fleet, company, driver, day, ckeys, trucks_per_driver)
    # start_driving leaves the previous stop; the others happen at this one: one gather per coordinate
    place = source.astype(np.int64) * 2 + (kind > 0)
    lat = np.stack([lat_p, lat_k], axis=1).ravel()[place]
    lon = np.stack([lon_p, lon_k], axis=1).ravel()[place]
    return Itinerary(company[source].astype(np.int32), driver[source].astype(np.int16),
                     truck[source].astype(np.int16), kind, millis, lat, lon)


def _arriving_slots(late: Lateness, window: Window, shift_start: np.ndarray, slot: np.ndarray, slot_s: float,
                   day_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Late arrival is decided per slot (a stop's leg and deliveries travel together, like a device that was
    offline): a slot is late with ``late.probability`` and then lands in one of the later windows starting
    at most ``max_delay`` after it departs, chosen evenly. Returns the slot rows that can hold events of
    ``window`` (those overlapping it, and late ones landing in it) and each row's landing window start
    in ms (0 when on time)."""
    slot_key = key(day_key, slot.astype(np.uint64))
    begin = shift_start + slot * slot_s
    depart_ms = np.floor((begin + DEPART_SHARE * slot_s) * 1000).astype(np.int64)
    delayed = uniform(slot_key, "late") < late.probability
    arrival = np.where(delayed, late.landing_ms(depart_ms, uniform(slot_key, "late_window")), 0)
    overlaps = (begin < window.end_s) & (begin + slot_s > window.start_s)
    kept = np.flatnonzero(overlaps | (arrival == window.start_s * 1000))
    return kept, arrival


def _stops_into(depot: tuple[np.ndarray, ...], company: np.ndarray, day_key: np.ndarray, slot: np.ndarray,
                slot_s: float, at: tuple[np.ndarray, np.ndarray, np.ndarray],
                before: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """Where stops are (``_stop``): ``at = (rows, lat, lon)`` gets each row's stop ``slot`` in ``lat[rows]``,
    ``lon[rows]``, ``before`` the stop before it (``slot - 1``; rows sorted). By the compiled kernel when there
    is one (one pass, a row in both drawing its day's route once, no GIL: the same doubles)."""
    if compiled.native is None:
        for (rows, lat, lon), shift in ((at, 0), (before, -1)):
            lat[rows], lon[rows] = _stop(depot, company[rows], day_key[rows], slot[rows] + shift, slot_s)
        return
    depot_lat, depot_lon, lon_km = depot
    numbers = np.array([ROUTE_RADIUS_KM[0], ROUTE_RADIUS_KM[1] - ROUTE_RADIUS_KM[0], 2 * np.pi, ROUTE_SPEED_KMH,
                        slot_s, _scatter_km(slot_s), KM_PER_DEG], np.float64)
    compiled.native.stop_places(at[0].astype(np.int64, copy=False), before[0].astype(np.int64, copy=False),
                                company.astype(np.int64, copy=False), day_key.astype(np.uint64, copy=False),
                                slot.astype(np.int64, copy=False), depot_lat, depot_lon, lon_km, numbers, _STOP_SALTS,
                                at[1], at[2], before[1], before[2])


def _scatter_km(slot_s: float) -> float:
    return min(MAX_SCATTER_KM, SCATTER_KMH * slot_s / 3600)


_SLOT_SALTS = mix(np.array([PURPOSE["drive"], PURPOSE["deliveries"]], np.uint64))
_STOP_SALTS = mix(np.array([PURPOSE[name] for name in ("route_radius", "route_phase", "route_turn", "scatter_radius",
                                                       "scatter_angle")], np.uint64))


def _stop(depot: tuple[np.ndarray, ...], company: np.ndarray, day_key: np.ndarray, slot: np.ndarray,
          slot_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Where stop ``slot`` of a shift is: on the route loop at the slot's arrival-ish time, scattered."""
    depot_lat, depot_lon, lon_km = depot
    radius = ROUTE_RADIUS_KM[0] + (ROUTE_RADIUS_KM[1] - ROUTE_RADIUS_KM[0]) * uniform(day_key, "route_radius")
    phase = 2 * np.pi * uniform(day_key, "route_phase")
    turn = np.where(uniform(day_key, "route_turn") < 0.5, -1.0, 1.0)
    hours = np.maximum(slot + 0.5, 0.0) * slot_s / 3600  # the route time of the stop (slot -1: the start)
    angle = phase + turn * ROUTE_SPEED_KMH * hours / radius
    north = radius * (np.sin(angle) - np.sin(phase))
    east = radius * (np.cos(angle) - np.cos(phase))
    scatter = _scatter_km(slot_s)
    stop_key = key(day_key, (slot + 1).astype(np.uint64))
    distance = scatter * np.sqrt(uniform(stop_key, "scatter_radius"))
    direction = 2 * np.pi * uniform(stop_key, "scatter_angle")
    north = north + distance * np.sin(direction)
    east = east + distance * np.cos(direction)
    lat = depot_lat[company] + north / KM_PER_DEG
    lon = depot_lon[company] + east / lon_km[company]
    return lat, lon


def _trucks(fleet: Fleet, company: np.ndarray, driver: np.ndarray, day: np.ndarray, ckeys: np.ndarray,
            trucks_per_driver: float) -> np.ndarray:
    """Truck of each driver's shift: a per-company weekly rotation over the fleet (one driver per truck).
    The rotation is hashed once per company and week met (a part meets one or two weeks), not per row."""
    fleet_size = fleet.truck_fleets(trucks_per_driver)
    if compiled.native is not None:
        trucks = np.empty(len(company), np.int64)
        compiled.native.trucks(np.ascontiguousarray(company, np.int64), np.ascontiguousarray(driver, np.int64),
                               np.ascontiguousarray(day, np.int64), np.ascontiguousarray(ckeys, np.uint64),
                               fleet_size, trucks)
        return trucks
    week = np.floor_divide(day, WEEK_DAYS)
    first, last = (int(week.min()), int(week.max())) if len(week) else (0, -1)
    if last - first < ROTATION_WEEKS:
        weeks = np.arange(first, last + 1, dtype=np.int64)
        table = (mix(ckeys[None, :] ^ mix(weeks.astype(np.uint64))[:, None]) % fleet_size.astype(np.uint64))
        rotation = table.astype(np.int64).ravel()[(week - first) * len(fleet_size) + company]
    else:
        rotation = (mix(ckeys[company] ^ mix(week.astype(np.uint64))) % fleet_size[company].astype(np.uint64)
                    ).astype(np.int64)
    made: np.ndarray = (driver - 1 + rotation) % fleet_size[company] + 1
    return made


ROTATION_WEEKS = 8  # a part's shifts meeting more weeks than this hash their rotations per row


def _empty() -> Itinerary:
    none = np.zeros(0, np.int64)
    return Itinerary(none.astype(np.int32), none.astype(np.int16), none.astype(np.int16), none.astype(np.uint8),
                     none, none.astype(np.float64), none.astype(np.float64))
