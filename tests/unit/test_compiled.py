"""The compiled kernels (_native.c) must give exactly what numpy gives: the events line writer, the joiner of
rendered fields and the counter hashing."""

from datetime import UTC, datetime

import numpy as np
import pytest

from app.core.config import EVENT_TYPES
from app.core.generation import events as events_module
from app.core.generation import render as r
from app.core.generation.defects import DefectPlan, FieldOverride
from app.core.generation.encoding import chunk_patches, reference_chunk
from app.core.generation.events import EventBatch, Roster
from app.core.timeline import Window

WINDOW = Window(datetime(2026, 11, 25, 10, tzinfo=UTC), datetime(2026, 11, 25, 10, 15, tzinfo=UTC))
EDGE_MS = [0, -1, 999, -86_400_001, 951_782_400_000, 253_402_300_799_999, 1_764_064_800_000, -62_135_596_800_000]
EDGE_COORDINATES = [0, 1, -1, 99_999, 100_000, -100_000, 999_999, 1_000_000, 9_999_999, 10_000_000, -18_000_000,
                    18_000_000, 99_999_999, -99_999_999]


def edge_batch(rows: int, seed: int, with_trucks: bool) -> EventBatch:
    """Random columns with the edges of every value mixed in: epoch limits and negative times, every
    width of coordinate, numbers past four digits, every event type."""
    rng = np.random.default_rng(seed)
    companies = 7
    roster = Roster(rng.integers(0, 256, (companies, 16), dtype=np.uint8), np.zeros(companies, np.uint8),
                    np.full(companies, 25, np.int32))

    def mixed(values: np.ndarray, edges: list[int]) -> np.ndarray:
        at = rng.choice(rows, min(rows, len(edges)), replace=False)
        values[at] = edges[:len(at)]
        return values

    ms = mixed(np.sort(rng.integers(1_764_064_800_000, 1_764_065_700_000, rows)), EDGE_MS)
    lat = mixed(rng.integers(-9_000_000, 9_000_001, rows).astype(np.int32), EDGE_COORDINATES)
    lon = mixed(rng.integers(-18_000_000, 18_000_001, rows).astype(np.int32), EDGE_COORDINATES[::-1])
    driver = rng.integers(1, 32_767, rows).astype(np.int16)
    truck = rng.integers(1, 32_767, rows).astype(np.int16) if with_trucks else None
    return EventBatch(WINDOW, roster, rng.integers(0, 256, (rows, 16), dtype=np.uint8),
                      rng.integers(0, companies, rows).astype(np.int32), driver,
                      rng.integers(0, len(EVENT_TYPES), rows).astype(np.uint8), ms, lat, lon, truck=truck)


def edge_plan(batch: EventBatch, seed: int) -> DefectPlan:
    """Overrides of every width (NULs inside and around the text) and removed fields, several on a row,
    on the first and last rows too."""
    rng = np.random.default_rng(seed)
    plan = DefectPlan()
    n = batch.size
    for name in batch.fields:
        rows = np.unique(np.concatenate([rng.choice(n, n // 10, replace=False), [0, n - 1]]))
        width = int(rng.integers(1, 40))
        values = rng.integers(32, 127, (len(rows), width)).astype(np.uint8)
        values[rng.random(values.shape) < 0.2] = r.PAD
        plan.overrides[name] = FieldOverride(rows, values)
        plan.absent[name] = np.unique(np.concatenate([rng.choice(n, n // 20, replace=False), [n - 1]]))
    return plan


def compiled(batch: EventBatch, plan: DefectPlan, start: int, stop: int) -> bytes:
    lines = batch.compiled_lines(start, stop, chunk_patches(batch, plan, start, stop))
    assert lines is not None
    return bytes(lines)


@pytest.mark.parametrize("with_trucks", [False, True], ids=["trucks are drivers", "own trucks"])
@pytest.mark.parametrize("seed", range(4))
def test_clean_lines_match_the_reference(seed, with_trucks):
    batch = edge_batch(3000, seed, with_trucks)
    plan = DefectPlan()
    for start, stop in ((0, batch.size), (17, 2048), (2999, 3000)):
        assert compiled(batch, plan, start, stop) == bytes(reference_chunk(batch, plan, start, stop))


@pytest.mark.parametrize("seed", range(4))
def test_lines_with_defects_match_the_reference(seed):
    batch = edge_batch(3000, seed, with_trucks=seed % 2 == 1)
    plan = edge_plan(batch, seed)
    for start, stop in ((0, batch.size), (1, 1500), (1500, 3000)):
        assert compiled(batch, plan, start, stop) == bytes(reference_chunk(batch, plan, start, stop))


def test_the_writer_serves_large_chunks_of_a_real_batch():
    from app.core.generation import encoding

    batch = edge_batch(encoding.COMPILED_MIN_ROWS, 9, with_trucks=False)
    chunks = list(encoding.render_records(batch, DefectPlan(), chunk_rows=encoding.COMPILED_MIN_ROWS))
    assert len(chunks) == 1 and bytes(chunks[0]) == bytes(reference_chunk(batch, DefectPlan(), 0, batch.size))


def test_without_the_compiled_writer_the_reference_writes_every_chunk(monkeypatch):
    """A machine that could not build _native.c (no C compiler) writes the same bytes, by numpy."""
    from app.core.generation import compiled, encoding

    batch = edge_batch(encoding.COMPILED_MIN_ROWS * 2, 11, with_trucks=True)
    expected = b"".join(encoding.render_records(batch, DefectPlan()))
    monkeypatch.setattr(compiled, "native", None)
    assert batch.compiled_lines(0, batch.size, chunk_patches(batch, DefectPlan(), 0, batch.size)) is None
    assert b"".join(encoding.render_records(batch, DefectPlan())) == expected


@pytest.mark.parametrize(("column", "value", "message"), [
    ("company", 7, "a company index is outside the roster"),
    ("company", -1, "a company index is outside the roster"),
    ("event_type", len(EVENT_TYPES), "an event type index is outside the types"),
    ("lat", 100_000_000, "a coordinate is 1000 degrees or more"),
])
def test_columns_the_writer_cannot_read_are_refused_not_read_out_of_bounds(column, value, message):
    batch = edge_batch(100, 3, with_trucks=False)
    getattr(batch, column)[50] = value
    with pytest.raises(ValueError, match=message):
        compiled(batch, DefectPlan(), 0, batch.size)


@pytest.mark.parametrize("rows", [0, 1, 777])
@pytest.mark.parametrize("sparse_padding", [True, False])
def test_the_compiled_joiner_writes_what_numpy_writes(rows, sparse_padding, monkeypatch):
    from app.core.generation import compiled

    rng = np.random.default_rng(rows)
    values = rng.integers(32, 127, (rows, 9)).astype(np.uint8)
    values[rng.random(values.shape) < 0.3] = r.PAD
    # text padded at its end only (the joiner copies it whole up to the first NUL), of every length, and the
    # same with a byte after a run of padding (which must not be lost)
    lengths = rng.integers(0, 22, rows)
    padded_end = np.where(np.arange(21) < lengths[:, None], rng.integers(32, 127, (rows, 21)), 0).astype(np.uint8)
    after_a_gap = padded_end.copy()
    after_a_gap[rng.random(rows) < 0.5, 20] = ord("x")
    fields = [("id", r.integer(rng.integers(-10**6, 10**6, rows), 7)), ("text", values),
              ("constant", r.literal(b'"same"', rows)), ("empty", np.zeros((rows, 0), np.uint8)),
              ("tail", r.quoted(values[:, 2:5])), ("padded_end", padded_end), ("after_a_gap", after_a_gap)]
    absent = {"text": rng.random(rows) < 0.4, "tail": np.zeros(rows, bool), "id": rng.random(rows) < 0.1}
    joined = bytes(r.encode_lines(fields, absent, sparse_padding))
    monkeypatch.setattr(compiled, "native", None)
    assert joined == bytes(r.encode_lines(fields, absent, sparse_padding))


def test_the_compiled_joiner_refuses_what_it_cannot_read():
    from app.core.generation import compiled

    assert compiled.native is not None, "the C extension was not built (see pyproject's ext-modules)"
    ends = np.array([3, 6, 8], np.int64)
    with pytest.raises(ValueError, match="uint8 matrix"):
        compiled.native.join_lines(b'{a:,b:}\n', ends, [np.zeros((2, 2), np.uint8), np.zeros((3, 2), np.uint8)],
                                  [None, None])
    with pytest.raises(ValueError, match="one flag per row"):
        compiled.native.join_lines(b'{a:,b:}\n', ends, [np.zeros((2, 2), np.uint8)] * 2, [np.zeros(3, bool), None])
    with pytest.raises(ValueError, match="one key more"):
        compiled.native.join_lines(b'{a:}\n', ends, [np.zeros((2, 2), np.uint8)], [None])


@pytest.mark.parametrize("size", [0, 1, 1000])
def test_the_compiled_hashing_is_numpys(size, monkeypatch):
    from app.core.generation import compiled, hashing

    rng = np.random.default_rng(size)
    keys = rng.integers(0, 2**64, size, dtype=np.uint64, endpoint=False)
    parts = (keys, rng.integers(-2**31, 2**31, size).astype(np.int32), rng.integers(-2**62, 2**62, size))
    fast = hashing.mix(keys), hashing.uniform(keys, "late"), hashing.key(*parts)
    monkeypatch.setattr(compiled, "native", None)
    slow = hashing.mix(keys), hashing.uniform(keys, "late"), hashing.key(*parts)
    for a, b in zip(fast, slow, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)


@pytest.mark.parametrize("width", [1, 4, 6, 10, 13, 16, 18])
def test_the_compiled_integers_and_uuids_are_numpys(width, monkeypatch):
    from app.core.generation import compiled

    rng = np.random.default_rng(width)
    values = np.concatenate([rng.integers(-10**18, 10**18, 3000), [0, 1, -1, 9, 10, -10, 99, 10**width - 1, 10**width,
                                                                     -(10**width) - 7, 2**63 - 1, -(2**63) + 1]])
    raw = rng.integers(0, 256, (500, 16), dtype=np.uint8)
    fast = r.integer(values, width), r.uuid_text(raw), r.uuid_text(raw, quoted=True)
    monkeypatch.setattr(compiled, "native", None)
    slow = r.integer(values, width), r.uuid_text(raw), r.uuid_text(raw, quoted=True)
    for a, b in zip(fast, slow, strict=True):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("blank", range(6))
def test_the_writer_refuses_blanks_outside_the_line_head(monkeypatch, blank):
    batch = edge_batch(100, 5, with_trucks=False)
    blanks = events_module._BLANKS.copy()
    blanks[blank] = len(events_module._HEAD) - 3  # every blank is wider than 3 bytes
    monkeypatch.setattr(events_module, "_BLANKS", blanks)
    with pytest.raises(ValueError, match="outside what it indexes"):
        compiled(batch, DefectPlan(), 0, batch.size)


@pytest.mark.parametrize("slot_s", [900.0, 3600 / 7, 37.5])
@pytest.mark.parametrize("overlap", [0.0, 0.5, 1.0], ids=["apart", "half shared", "the same rows"])
def test_the_compiled_stop_places_are_numpys(slot_s, overlap, monkeypatch):
    """Every stop's latitude and longitude and the one's before, bit for bit (sin, cos and sqrt are the C
    library's, as numpy's are), written to the rows asked for and nowhere else; rows asked for both, one or
    the other; slots from the shift's start to long shifts, route times far past one turn of the loop."""
    from app.core.generation import compiled, itinerary

    rng = np.random.default_rng(int(slot_s) + int(overlap * 10))
    companies, size = 300, 200_000
    depot = rng.uniform(25, 49, companies), rng.uniform(-124, -67, companies), rng.uniform(70, 101, companies)
    company = rng.integers(0, companies, size)
    day_key = rng.integers(0, 2**64, size, dtype=np.uint64, endpoint=False)
    slot = rng.integers(0, 400, size)
    at = np.sort(rng.choice(size, size // 3, replace=False))
    shared = at[rng.random(len(at)) < overlap]
    before = np.union1d(shared, rng.choice(size, int(size // 3 * (1 - overlap)), replace=False))

    def made() -> list[np.ndarray]:
        out = [np.full(size, np.nan) for _ in range(4)]
        itinerary._stops_into(depot, company, day_key, slot, slot_s, (at, out[0], out[1]), (before, out[2], out[3]))
        return out

    fast = made()
    monkeypatch.setattr(compiled, "native", None)
    for index, (a, b) in enumerate(zip(fast, made(), strict=True)):
        assert np.array_equal(a.view(np.uint64), b.view(np.uint64))
        rows = at if index < 2 else before
        assert np.isnan(np.delete(a, rows)).all() and not np.isnan(a[rows]).any()


def test_the_compiled_stop_places_refuse_rows_outside_their_columns():
    from app.core.generation import compiled, itinerary

    assert compiled.native is not None
    depot = np.zeros(2), np.zeros(2), np.ones(2)
    columns = np.zeros(4, np.int64), np.zeros(4, np.uint64), np.zeros(4, np.int64)
    out = [np.zeros(4) for _ in range(4)]
    none = np.zeros(0, np.int64)
    for rows, company in ((np.array([4]), columns[0]), (np.array([-1]), columns[0]), (np.array([2, 1]), columns[0]),
                          (np.array([1]), np.array([0, 2, 0, 0]))):
        for at, before in ((rows, none), (none, rows)):
            with pytest.raises(ValueError, match="sorted rows and companies within them"):
                compiled.native.stop_places(at, before, company, columns[1], columns[2], *depot, np.ones(7),
                                            itinerary._STOP_SALTS, *out)


@pytest.mark.parametrize("seed", range(3))
def test_the_compiled_timestamps_and_locations_are_numpys(seed, monkeypatch):
    """Timestamps over years 0..9999 and before the epoch, quoted and not; locations of every width and sign,
    with numpy's padding: the same matrices."""
    from app.core.generation import compiled

    rng = np.random.default_rng(seed)
    ms = np.concatenate([rng.integers(-62_135_596_800_000, 253_402_300_800_000, 5000), EDGE_MS,
                         np.sort(rng.integers(1_764_064_800_000, 1_764_065_700_000, 5000))])
    lat = np.concatenate([rng.integers(-99_999_999, 100_000_000, 5000), EDGE_COORDINATES])
    lon = np.concatenate([rng.integers(-18_000_000, 18_000_001, 5000), EDGE_COORDINATES[::-1]])

    def made() -> list[np.ndarray]:
        return [r.timestamp_text(ms), r.timestamp_text(ms, quote=True), events_module.location_text(lat, lon),
                r.timestamp_text(ms[:0], quote=True), events_module.location_text(lat[:0], lon[:0])]

    fast = made()
    monkeypatch.setattr(compiled, "native", None)
    for a, b in zip(fast, made(), strict=True):
        assert a.shape == b.shape and np.array_equal(a, b)


def test_the_compiled_locations_refuse_coordinates_past_1000_degrees():
    with pytest.raises(ValueError, match="within 1000 degrees"):
        events_module.location_text(np.array([0, 100_000_000]), np.array([0, 0]))


@pytest.mark.parametrize("slot_s", [900.0, 3600 / 7, 37.5])
def test_the_compiled_slot_times_and_trucks_are_numpys(slot_s, monkeypatch):
    """Departures and arrivals bit for bit, delivery counts, and truck numbers (days before the epoch,
    weeks changing between rows, fleets of one truck to many) as numpy computes them."""
    from app.core.generation import compiled, itinerary

    rng = np.random.default_rng(int(slot_s))
    size, companies = 100_000, 500
    start = rng.uniform(-2e9, 4e9, size)
    slot = rng.integers(0, 600, size)
    day_key = rng.integers(0, 2**64, size, dtype=np.uint64, endpoint=False)
    company = rng.integers(0, companies, size)
    driver = rng.integers(1, 400, size)
    day = np.sort(rng.integers(-40_000, 40_000, size))
    day[: size // 2] = rng.integers(20_000, 20_003, size // 2)  # runs of one week, as a part has
    ckeys = rng.integers(0, 2**64, companies, dtype=np.uint64, endpoint=False)
    drivers = rng.integers(1, 400, companies).astype(np.int32)
    fleet = itinerary.Fleet(np.zeros((companies, 16), np.uint8), np.zeros(companies, np.uint8), drivers,
                            np.zeros(companies, np.int64))
    driver = np.minimum(driver, drivers[company])

    def made() -> list[np.ndarray]:
        return [*itinerary._slot_times(start, slot, day_key, slot_s, 1.3),
                itinerary._trucks(fleet, company, driver, day, ckeys, 1.2),
                itinerary._trucks(fleet, company, driver, day, ckeys, 0.5)]

    fast = made()
    monkeypatch.setattr(compiled, "native", None)
    for a, b in zip(fast, made(), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a.view(np.uint64) if a.dtype == np.float64 else a,
                                                     b.view(np.uint64) if b.dtype == np.float64 else b)


@pytest.mark.parametrize("late", [False, True], ids=["own window", "late arrivals"])
def test_the_compiled_kept_events_are_numpys(late, monkeypatch):
    """The slot table's parts and a part's kept events: the same first and last parts and event count, and the
    same (cell, time) pairs, with times on the window's and the parts' edges, missing deliveries and slots
    landing in later windows."""
    from app.core.generation import compiled, itinerary

    rng = np.random.default_rng(late)
    window = Window(datetime(2026, 11, 25, 10, tzinfo=UTC), datetime(2026, 11, 25, 10, 15, tzinfo=UTC))
    size, slot_s = 50_000, 900.0
    depart = window.start_s - 1800 + rng.uniform(0, 3600, size)
    depart[:200] = window.start_s + rng.integers(-2, 3, 200) * 0.0005  # around the edge, to the millisecond
    arrive = depart + rng.uniform(0.4, 0.6, size) * slot_s
    arrive[200:400] = window.end_s - (np.arange(200) % 3) * itinerary.DELIVERY_STEP_SHARE * slot_s
    made = rng.integers(0, 3, size)
    arrival = (np.where(rng.random(size) < 0.3, (window.start_s + rng.integers(-1, 2, size) * 900) * 1000, 0)
               if late else None)
    cuts_ms = np.array([window.start_s * 1000 + 300_000, window.start_s * 1000 + 300_001,
                        window.start_s * 1000 + 600_000], np.int64)

    def table() -> tuple:
        first, last = np.empty(size, np.int64), np.empty(size, np.int64)
        if compiled.native is not None:
            events = compiled.native.slot_parts(depart, arrive, made, *itinerary._kept_terms(window, slot_s, arrival),
                                                cuts_ms, first, last)
            return events, first, last
        first[:], last[:], events = len(cuts_ms) + 1, -1, 0
        for _, millis, ok in itinerary._kept_times(window, depart, arrive, made, slot_s, arrival):
            events += int(np.count_nonzero(ok))
            part = np.searchsorted(cuts_ms, millis, side="right")
            first, last = np.where(ok, np.minimum(first, part), first), np.where(ok, np.maximum(last, part), last)
        return events, first, last

    def cells(part_ms: tuple[int, int]) -> set:
        if compiled.native is not None:
            cell, stamp = np.empty(4 * size, np.int64), np.empty(4 * size, np.int64)
            kept = compiled.native.part_cells(depart, arrive, made, *itinerary._kept_terms(window, slot_s, arrival),
                                              np.array(part_ms, np.int64), cell, stamp)
            return set(zip(cell[:kept].tolist(), stamp[:kept].tolist(), strict=True))
        found = set()
        for seq, millis, ok in itinerary._kept_times(window, depart, arrive, made, slot_s, arrival):
            rows = np.flatnonzero(ok & (millis >= part_ms[0]) & (millis < part_ms[1]))
            found |= set(zip((rows * 4 + seq).tolist(), millis[rows].tolist(), strict=True))
        return found

    parts = [(window.start_s * 1000 - 10**7, int(cuts_ms[0])), (int(cuts_ms[0]), int(cuts_ms[2])),
             (int(cuts_ms[2]), window.end_s * 1000 + 10**7)]
    fast = table(), [cells(p) for p in parts]
    monkeypatch.setattr(compiled, "native", None)
    slow = table(), [cells(p) for p in parts]
    assert fast[0][0] == slow[0][0] > 0
    assert all(np.array_equal(a, b) for a, b in zip(fast[0][1:], slow[0][1:], strict=True))
    assert fast[1] == slow[1] and all(fast[1])
