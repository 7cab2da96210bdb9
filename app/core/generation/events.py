"""Driver event batches, generated column-wise from the eligible roster."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from app.core.config import EVENT_TYPES, Config
from app.core.generation import compiled, workers
from app.core.generation import geography as geo
from app.core.generation import render as r
from app.core.generation.columns import ColumnBatch, DefectTarget, Patches
from app.core.generation.corruptions import malformed_timestamps, outside_window
from app.core.generation.emulated_fleet import FleetState, Pending, Steps, slot_count, step_fleet
from app.core.generation.geography import COORD_DECIMALS, COORD_SCALE
from app.core.generation.itinerary import Fleet, Lateness, expected_events, part_events, shift_table, slot_table
from app.core.generation.lifecycle import Churn, lives
from app.core.timeline import Window
from app.core.workday import mean_deliveries, slot_seconds

EVENT_TYPE_TEXT = r.pool(EVENT_TYPES)
_ID_PREFIX = {"driver_id": b'"DRV-', "truck_id": b'"TRK-'}  # then the company's tag, '-' and the number
INVALID_EVENT_TYPES = r.pool(["START_DRIVING", "unknown", "parked", "deliverd", "", "stop"])


@dataclass(frozen=True)
class Roster:
    """Companies a driver batch may reference: onboarded before it, and active."""

    company_uuid: np.ndarray  # (m, 16) uint8
    geography: np.ndarray  # (m,) uint8
    drivers_count: np.ndarray  # (m,) int32
    since_s: np.ndarray | None = None  # (m,) int64: end of the window that onboarded each company

    @property
    def size(self) -> int:
        return len(self.geography)

    @classmethod
    def empty(cls) -> Roster:
        return cls(np.zeros((0, 16), np.uint8), np.zeros(0, np.uint8), np.zeros(0, np.int32))

    def onboarded_by(self) -> np.ndarray:
        return _onboarded_by(self.since_s, self.size)


@dataclass(frozen=True)
class DriverPool:
    """Every company a driver batch may reference, as prefix columns of the whole roster, inactive ones
    included (they hold no drivers in ``active_drivers_end``, the running total of active drivers).

    Emulated batches pick their drivers here in O(events · log companies): a driver is a global index
    into the active drivers, and the company holding it is found by bisecting the running total.
    """

    company_uuid: np.ndarray  # (m, 16) uint8
    geography: np.ndarray  # (m,) uint8
    drivers_count: np.ndarray  # (m,) int32
    active: np.ndarray  # (m,) bool
    active_drivers_end: np.ndarray  # (m,) int64
    since_s: np.ndarray | None = None  # (m,) int64: end of the window that onboarded each company

    @classmethod
    def of(cls, roster: Roster) -> DriverPool:
        """Every company of ``roster`` active (tests and benchmarks build rosters directly)."""
        return cls(roster.company_uuid, roster.geography, roster.drivers_count,
                   np.ones(roster.size, bool), np.cumsum(roster.drivers_count, dtype=np.int64), roster.since_s)

    def onboarded_by(self) -> np.ndarray:
        return _onboarded_by(self.since_s, len(self.geography))

    @property
    def total_drivers(self) -> int:
        return int(self.active_drivers_end[-1]) if len(self.active_drivers_end) else 0

    def compact(self) -> Roster:
        """The active companies as a roster of their own (O(companies): production batches)."""
        keep = self.active
        since = self.since_s[keep] if self.since_s is not None else None
        return Roster(self.company_uuid[keep], self.geography[keep], self.drivers_count[keep], since)

    def locate(self, drivers: np.ndarray) -> tuple[Roster, np.ndarray, np.ndarray]:
        """For global active-driver indices: the roster of just the companies they belong to, each
        driver's company (index into that roster) and its number within the company (from 1)."""
        rows = np.searchsorted(self.active_drivers_end, drivers, side="right")
        first = np.where(rows > 0, np.take(self.active_drivers_end, rows - 1, mode="clip"), 0)
        number = (drivers - first + 1).astype(np.int16)
        picked, company = np.unique(rows, return_inverse=True)
        roster = Roster(self.company_uuid[picked], self.geography[picked], self.drivers_count[picked])
        return roster, company.astype(np.int32), number


def _onboarded_by(since_s: np.ndarray | None, size: int) -> np.ndarray:
    """End of the window that onboarded each company (0 when a test or benchmark roster has none)."""
    return since_s if since_s is not None else np.zeros(size, np.int64)


@dataclass
class EventBatch(ColumnBatch):
    window: Window
    roster: Roster
    event_uuid: np.ndarray  # (n, 16) uint8
    company: np.ndarray  # int32 index into roster
    driver: np.ndarray  # int32 driver number within the company, from 1
    event_type: np.ndarray  # uint8 index into EVENT_TYPES
    timestamp_ms: np.ndarray  # int64
    lat: np.ndarray  # int32, degrees * COORD_SCALE
    lon: np.ndarray
    truck: np.ndarray | None = None  # int16 truck number within the company; None: the driver's number
    carried: FleetState | None = None  # emulated: the fleet's state after this batch, committed with it
    max_delay_s: int = 0  # late arrival: events of this batch may be this much older than the window

    @property
    def accepts_from_ms(self) -> int:
        """The earliest valid event_timestamp of the batch: its window start, less the late-arrival delay."""
        return (self.window.start_s - self.max_delay_s) * 1000

    def late_rows(self) -> np.ndarray:
        """Rows of events that happened before the window: late arrivals from earlier windows."""
        rows: np.ndarray = np.flatnonzero(self.timestamp_ms < self.window.start_s * 1000)
        return rows

    fields = ("event_id", "company_id", "driver_id", "truck_id", "event_type", "event_timestamp", "location")
    id_field = "event_id"
    stream = "events"

    def __post_init__(self) -> None:
        self._per_company: dict[str, r.Matrix] = {}

    def _company_column(self, field: str) -> r.Matrix:
        """Text of a per-company field, rendered once per roster company rather than per event (and only
        the ones asked for)."""
        if field not in self._per_company:
            if "text" not in self._per_company:
                self._per_company["text"] = r.uuid_text(self.roster.company_uuid)
            ids = self._per_company["text"]
            if field == "company_id":
                self._per_company["company_id"] = r.quoted(ids)
            elif field == "tag":
                self._per_company["tag"] = ids[:, 24:36]
        return self._per_company[field]

    @property
    def size(self) -> int:
        return len(self.event_type)

    def render(self, field: str, rows: np.ndarray | slice) -> r.Matrix:
        if field == "event_id":
            return r.uuid_text(self.event_uuid[rows], quoted=True)
        if field == "company_id":
            return r.pick(self._company_column("company_id"), self.company[rows])
        if field in ("driver_id", "truck_id"):
            company = self.company[rows]
            out = np.empty((len(company), 23), np.uint8)
            out[:, 0:5] = np.frombuffer(_ID_PREFIX[field], np.uint8)
            out[:, 5:17] = r.pick(self._company_column("tag"), company)
            out[:, 17] = ord("-")
            numbers = self.driver if field == "driver_id" or self.truck is None else self.truck
            out[:, 18:22] = r.zero_padded(numbers[rows], 4)
            out[:, 22] = ord('"')
            return out
        if field == "event_type":
            return r.pick(EVENT_TYPE_TEXT, self.event_type[rows])
        if field == "event_timestamp":
            return r.timestamp_text(self.timestamp_ms[rows], quote=True)
        if field == "location":
            return location_text(self.lat[rows], self.lon[rows])
        raise KeyError(field)

    def compiled_lines(self, start: int, stop: int, patches: Patches) -> memoryview | None:
        if compiled.native is None:
            return None
        rows = slice(start, stop)

        def column(values: np.ndarray, dtype: type) -> np.ndarray:  # as the writer reads them (no copy if so)
            return np.ascontiguousarray(values[rows], dtype)

        driver = column(self.driver, np.int16)
        lines = compiled.native.event_lines(
            _HEAD, _BLANKS, _TAILS_TEXT, _TAILS_ENDS, _TEXTS, _TEXT_ENDS, column(self.event_uuid, np.uint8),
            column(self.company, np.int32), driver, driver if self.truck is None else column(self.truck, np.int16),
            column(self.event_type, np.uint8), column(self.timestamp_ms, np.int64), column(self.lat, np.int32),
            column(self.lon, np.int32), self._company_column("text"), EVENT_TYPE_TEXT, patches.row, patches.field,
            patches.absent, patches.values)
        return memoryview(lines)

    def _columns(self) -> list[np.ndarray]:
        columns = [self.event_uuid, self.company, self.driver, self.event_type, self.timestamp_ms, self.lat, self.lon]
        return columns + ([self.truck] if self.truck is not None else [])

    def copy_rows(self, dst: np.ndarray, src: np.ndarray, source: EventBatch | None = None) -> None:
        for mine, theirs in zip(self._columns(), (source or self)._columns(), strict=True):
            mine[dst] = theirs[src]

    def _with_columns(self, columns: list[np.ndarray]) -> EventBatch:
        """A batch of this window and roster with ``columns`` (in ``_columns`` order)."""
        event_uuid, company, driver, event_type, timestamp_ms, lat, lon, *truck = columns
        return EventBatch(self.window, self.roster, event_uuid, company, driver, event_type, timestamp_ms, lat, lon,
                          truck=truck[0] if truck else None, max_delay_s=self.max_delay_s)

    def put(self, offset: int, part: EventBatch) -> None:
        """Copy ``part``'s rows into rows [offset, offset + part.size)."""
        for mine, theirs in zip(self._columns(), part._columns(), strict=True):
            mine[offset:offset + len(theirs)] = theirs

    def take(self, rows: np.ndarray) -> EventBatch:
        """A batch of just ``rows`` (same window and roster)."""
        return self._with_columns([column[rows] for column in self._columns()])

    def between(self, lo: int, hi: int) -> EventBatch:
        """Rows [lo, hi) as a batch of their own (views of these columns, no copy)."""
        return self._with_columns([column[lo:hi] for column in self._columns()])

    def blank(self, size: int) -> EventBatch:
        """A batch of ``size`` unset rows with this one's window, roster and columns (filled by copy_rows)."""
        return self._with_columns([np.empty((size, *column.shape[1:]), column.dtype) for column in self._columns()])


    @classmethod
    def defect_targets(cls) -> dict[str, list[DefectTarget]]:
        optional = ("company_id", "driver_id", "truck_id", "event_type", "event_timestamp", "location")
        return {
            "missing_field": [DefectTarget(f, "FIELD_REMOVED") for f in optional],
            "null_value": [DefectTarget(f, "NULL_INJECTED", _null, reads_record=False) for f in optional],
            "malformed_timestamp": [DefectTarget("event_timestamp", "TIMESTAMP_MALFORMED", _malformed)],
            "invalid_enum": [DefectTarget("event_type", "ENUM_OUT_OF_DOMAIN", _invalid_type, reads_record=False)],
            "duplicate": [DefectTarget("", "DUPLICATE_RECORD")],
            "boundary_violation": [
                DefectTarget("event_timestamp", "TIMESTAMP_OUTSIDE_WINDOW", _outside, reads_record=False),
                DefectTarget("location", "LATITUDE_OUT_OF_RANGE", _bad_latitude),
                DefectTarget("location", "LONGITUDE_OUT_OF_RANGE", _bad_longitude),
            ],
        }


_KEYS = r.line_keys(EventBatch.fields)
# The compiled writer's fixed texts (_native.c names them) and, per event type, its
# value followed by the timestamp's key.
_TEXT_PIECES = [*_KEYS, b"}\n", _ID_PREFIX["driver_id"], _ID_PREFIX["truck_id"], b'Z"' + _KEYS[6] + b'{"lat":',
                b'{"lat":', b',"lon":']
_TEXTS = np.frombuffer(b"".join(_TEXT_PIECES), np.uint8)
_TEXT_ENDS = np.cumsum([len(t) for t in _TEXT_PIECES], dtype=np.int64)
_TAIL_PIECES = [bytes(row).rstrip(b"\0") + _KEYS[5] + b'"' for row in EVENT_TYPE_TEXT]
_TAILS_TEXT = np.frombuffer(b"".join(_TAIL_PIECES), np.uint8)
_TAILS_ENDS = np.cumsum([len(t) for t in _TAIL_PIECES], dtype=np.int64)


def _line_head() -> tuple[np.ndarray, np.ndarray]:
    """Every byte of a clean line up to the event type's value, the same for every company, with blanks for
    the event id's hex digits, the company id, and the driver and truck ids' company tags and numbers; and
    where those go (the compiled writer fills them)."""
    blank_id = b"-".join(b"\0" * n for n in (8, 4, 4, 4, 12))
    pieces = [_KEYS[0] + b'"', blank_id, b'"' + _KEYS[1] + b'"', b"\0" * 36,
              b'"' + _KEYS[2] + _ID_PREFIX["driver_id"], b"\0" * 12, b"-", b"0000",
              b'"' + _KEYS[3] + _ID_PREFIX["truck_id"], b"\0" * 12, b"-", b"0000", b'"' + _KEYS[4]]
    starts = np.cumsum([0] + [len(p) for p in pieces])
    return np.frombuffer(b"".join(pieces), np.uint8), starts[[1, 3, 5, 7, 9, 11]].astype(np.int64)


_HEAD, _BLANKS = _line_head()


def location_text(lat: np.ndarray, lon: np.ndarray) -> r.Matrix:
    """``{"lat":…,"lon":…}`` written straight into one matrix (no concatenation of parts)."""
    assert COORD_DECIMALS == 5, "coordinate_into renders five decimals"
    out = np.empty((len(lat), 35), np.uint8)
    if compiled.native is not None:
        compiled.native.location_into(np.ascontiguousarray(lat, np.int64), np.ascontiguousarray(lon, np.int64), out)
        return out
    out[:, 0:7] = np.frombuffer(b'{"lat":', np.uint8)
    r.coordinate_into(out, 7, lat)
    out[:, 17:24] = np.frombuffer(b',"lon":', np.uint8)
    r.coordinate_into(out, 24, lon)
    out[:, 34] = ord("}")
    return out


def _null(batch: EventBatch, rows: np.ndarray, rng: np.random.Generator) -> r.Matrix:
    return r.literal(b"null", len(rows))


def _malformed(batch: EventBatch, rows: np.ndarray, rng: np.random.Generator) -> r.Matrix:
    return malformed_timestamps(batch.timestamp_ms[rows], rng)


def _invalid_type(batch: EventBatch, rows: np.ndarray, rng: np.random.Generator) -> r.Matrix:
    return r.pick(INVALID_EVENT_TYPES, rng.integers(0, len(INVALID_EVENT_TYPES), len(rows)))


def _outside(batch: EventBatch, rows: np.ndarray, rng: np.random.Generator) -> r.Matrix:
    return r.timestamp_text(outside_window(batch.window, len(rows), rng, batch.accepts_from_ms), quote=True)


def _out_of_range(rng: np.random.Generator, rows: int, limit: int) -> np.ndarray:
    sign = np.where(rng.random(rows) < 0.5, -1, 1)
    out: np.ndarray = sign * (limit * COORD_SCALE + rng.integers(1, 10 * COORD_SCALE, rows))
    return out


def _bad_latitude(batch: EventBatch, rows: np.ndarray, rng: np.random.Generator) -> r.Matrix:
    return location_text(_out_of_range(rng, len(rows), 90), batch.lon[rows])


def _bad_longitude(batch: EventBatch, rows: np.ndarray, rng: np.random.Generator) -> r.Matrix:
    return location_text(batch.lat[rows], _out_of_range(rng, len(rows), 180))


def generate_events(config: Config, window: Window, roster: DriverPool | Roster, rng: np.random.Generator,
                    fleet: FleetState | None = None) -> EventBatch:
    """Driver events inside ``window``, sorted by time, for drivers of ``roster``; emulated mode continues
    ``fleet``, the state the previous batch left (None: nobody on shift yet)."""
    pool = roster if isinstance(roster, DriverPool) else DriverPool.of(roster)
    weights = np.array([config.events.event_type_weights.get(t, 0.0) for t in EVENT_TYPES])
    if not config.emulated_mode.enabled:
        return _itinerary_events(config, window, pool.compact(), rng)
    return _emulated_events(config, window, pool, weights, fleet, rng)


def _emulated_events(config: Config, window: Window, pool: DriverPool, weights: np.ndarray,
                     fleet: FleetState | None, rng: np.random.Generator) -> EventBatch:
    """Emulated: a drawn count of events, each the next step of a driver on shift at its own instant, plus
    the late events of earlier batches that arrive in this window (and less the new ones held back)."""
    em = config.emulated_mode
    if fleet is not None and fleet.as_of_s > window.start_s:
        raise ValueError(f"the emulated fleet's state is from {fleet.as_of_s}, after window {window.batch_id} "
                         "starts: event windows must be produced in order")
    state = (fleet or FleetState.vacant(0)).resized(slot_count(em.events_per_batch_max))
    arriving, waiting = (state.pending or Pending.empty()).split(window.start_s)
    count = int(rng.integers(em.events_per_batch_min, em.events_per_batch_max + 1))
    # new events to make so that, once the late ones among them are held back, the batch holds ``count``
    held = _late_draws(rng, max(count - len(arriving), 0), config.late_arrival.probability)
    span_ms = (window.end_s - window.start_s) * 1000
    made = min(len(held), span_ms)
    timestamps = window.start_s * 1000 + np.sort(rng.choice(span_ms, made, replace=False))

    def draw(source: np.random.Generator) -> tuple[np.ndarray, int, int, int] | None:
        if pool.total_drivers == 0:
            return None
        picked, _, number = pool.locate(source.integers(0, pool.total_drivers, 1))
        return picked.company_uuid[0], int(picked.geography[0]), int(picked.drivers_count[0]), int(number[0])

    steps, after = step_fleet(state, timestamps.astype(np.int64), draw, mean_deliveries([float(w) for w in weights]),
                              config.events.trucks_per_driver, rng)
    late = held[:len(steps)]
    arrival_s = _arrival_windows(rng, steps.timestamp_ms[late], window, config.late_arrival.max_delay.total_seconds())
    waiting = waiting.plus(steps.take(np.flatnonzero(late)), arrival_s)
    steps = Steps.joined(arriving, steps.take(np.flatnonzero(~late)))
    keys = np.ascontiguousarray(steps.company_uuid).view(np.dtype((np.void, 16))).ravel()
    _, first, company = np.unique(keys, return_index=True, return_inverse=True)
    batch_roster = Roster(steps.company_uuid[first], steps.geography[first], steps.drivers_count[first])
    event_uuid = r.uuid4_bytes(r.random_bytes(rng, len(steps), 16))
    return EventBatch(window, batch_roster, event_uuid, company.astype(np.int32).ravel(), steps.driver,
                      steps.event_type, steps.timestamp_ms, steps.lat, steps.lon, truck=steps.truck,
                      carried=replace(after, as_of_s=window.end_s, pending=waiting), max_delay_s=max_delay_s(config))


def _late_draws(rng: np.random.Generator, on_time: int, probability: float) -> np.ndarray:
    """Late flags for new events, as many as it takes to have ``on_time`` events not late."""
    if probability == 0 or on_time == 0:
        return np.zeros(on_time, bool)
    flags = rng.random(2 * on_time + 16) < probability
    while np.count_nonzero(~flags) < on_time:
        flags = np.concatenate([flags, rng.random(on_time) < probability])
    last = int(np.flatnonzero(~flags)[on_time - 1])
    held: np.ndarray = flags[:last + 1]
    return held


def _arrival_windows(rng: np.random.Generator, timestamp_ms: np.ndarray, window: Window,
                     max_delay_s: float) -> np.ndarray:
    """For late events of ``window``: the start of the later window each arrives in, chosen evenly among
    those starting at most ``max_delay_s`` after it."""
    late = Lateness(probability=1.0, max_delay_s=int(max_delay_s), interval_s=window.end_s - window.start_s)
    landing_ms = late.landing_ms(timestamp_ms, rng.random(len(timestamp_ms)))
    return landing_ms // 1000


PART_EVENTS = 150_000  # a production window is generated in time parts of about this many events
MAX_PARTS = 1 << 16
SIDE_BY_SIDE_EVENTS = 2_000_000  # windows up to this size make their parts on every core at once


class ProductionEvents:
    """A production window's events, made in time parts of about ``PART_EVENTS`` events each: the
    parts, in order, concatenate to the whole batch (the itinerary is a pure function of each driver's
    slot, and the event ids are drawn from the batch's generator in order), so a window of any size is
    generated in bounded memory and its bytes do not depend on how it is cut."""

    def __init__(self, config: Config, window: Window, roster: Roster, part_events: int | None = None):
        weights = np.array([config.events.event_type_weights.get(t, 0.0) for t in EVENT_TYPES])
        self.config, self.window, self.roster = config, window, roster
        self.deliveries = mean_deliveries([float(w) for w in weights])
        self.slot_s = slot_seconds(config.event_rate_per_driver, window.end_s - window.start_s, self.deliveries)
        churn = config.companies.churn
        since = roster.onboarded_by()
        life = (lives(config.seed, Churn(churn.monthly_rate, churn.driver_changes_per_month), roster.company_uuid,
                      since, roster.drivers_count) if churn.enabled else None)
        self.fleet = Fleet(roster.company_uuid, roster.geography, roster.drivers_count, since, life)
        self.boxes = (geo.LAT_MIN, geo.LAT_MAX, geo.LON_MIN, geo.LON_MAX)
        self.late = Lateness(config.late_arrival.probability, int(config.late_arrival.max_delay.total_seconds()),
                             window.end_s - window.start_s)
        self.shifts = shift_table(config.seed, self.fleet, window, self.slot_s, self.late)
        density = expected_events(self.shifts, window, self.slot_s, 2 + self.deliveries, self.late)
        self.parts = _cut(self.shifts.t0, window.end_s, density, part_events or PART_EVENTS)
        self.company_texts: dict[str, r.Matrix] = {}
        self.slots = (slot_table(window, self.shifts, [a for a, _ in self.parts[1:]], self.slot_s, self.deliveries,
                                 self.late) if len(self.parts) > 1 else None)

    def part(self, index: int, rng: np.random.Generator) -> EventBatch:
        """The events of part ``index``, with ids drawn from ``rng`` (the batch's generator, handed each
        part in order)."""
        return self._with_ids(self.itinerary(index), rng)

    def itinerary(self, index: int) -> EventBatch:
        """Part ``index``'s events without their ids (a pure function: parts are made on any thread). The
        first and last parts are open-ended."""
        a, b = self.parts[index]
        bounds = (None if index == 0 else a, None if index == len(self.parts) - 1 else b)
        day = part_events(self.config.seed, self.fleet, self.window, self.shifts, bounds, self.slot_s,
                          self.deliveries, self.config.events.trucks_per_driver, self.boxes, self.late,
                          self.slots.of_part(self.shifts, index) if self.slots is not None else None)
        lat = np.rint(day.lat * COORD_SCALE).astype(np.int32)
        lon = np.rint(day.lon * COORD_SCALE).astype(np.int32)
        no_ids = np.zeros((0, 16), np.uint8)
        return EventBatch(self.window, self.roster, no_ids, day.company, day.driver, day.event_type,
                          day.timestamp_ms, lat, lon, truck=day.truck, max_delay_s=max_delay_s(self.config))

    def _with_ids(self, part: EventBatch, rng: np.random.Generator) -> EventBatch:
        made = replace(part, event_uuid=r.uuid4_bytes(r.random_bytes(rng, part.size, 16)))
        made._per_company = self.company_texts  # the roster's texts, rendered once for every part
        return made

    def in_order(self, rng: np.random.Generator) -> Iterator[EventBatch]:
        """Every part in order, ids drawn from ``rng``, each made on a worker thread while the one before is
        used: on every core at once for a window of up to ``SIDE_BY_SIDE_EVENTS``, one at a time for a
        larger one (which then holds one part in the making whatever its size)."""
        if len(self.parts) == 1:
            yield self.part(0, rng)
            return
        side_by_side = self.slots is None or self.slots.events <= SIDE_BY_SIDE_EVENTS
        ahead, pool = (workers.THREADS, "generate") if side_by_side else (1, "prefetch")
        for part in workers.in_order(self.itinerary, range(len(self.parts)), ahead, pool):
            yield self._with_ids(part, rng)

    def whole(self, rng: np.random.Generator) -> EventBatch:
        """Every part, put one after the other into columns sized once (the slot table counted the events)."""
        if self.slots is None:
            return self.part(0, rng)
        held: EventBatch | None = None
        offset = 0
        for part in self.in_order(rng):
            held = held or part.blank(self.slots.events)
            held.put(offset, part)
            offset += part.size
        assert held is not None and offset == held.size
        return held


def _cut(t0: int, t1: int, density: np.ndarray, part_events: int) -> list[tuple[int, int]]:
    """[t0, t1) cut at whole seconds into parts of about ``part_events`` expected events each."""
    total = float(density.sum())
    count = int(np.ceil(total / part_events))
    if count > 1:  # a multiple of the worker threads, which make parts side by side
        count = -(-count // workers.THREADS) * workers.THREADS
    count = max(1, min(count, t1 - t0, MAX_PARTS))
    if count == 1:
        return [(t0, t1)]
    cumulative = np.cumsum(density)
    cuts = np.searchsorted(cumulative, total * np.arange(1, count) / count, side="right") + 1 + t0
    edges = np.unique(np.concatenate([[t0], np.clip(cuts, t0, t1), [t1]])).tolist()
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _itinerary_events(config: Config, window: Window, roster: Roster, rng: np.random.Generator) -> EventBatch:
    """Production: each driver's shift, legs, stops and deliveries inside the window (see itinerary)."""
    return ProductionEvents(config, window, roster).whole(rng)


def max_delay_s(config: Config) -> int:
    """How much older than its window a valid event of a batch may be (0 when late arrival is off)."""
    return int(config.late_arrival.max_delay.total_seconds()) if config.late_arrival.probability > 0 else 0
