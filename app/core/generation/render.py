"""Vectorised JSON text rendering.

Every value is rendered into a uint8 matrix, one row per record; NUL bytes are padding and
are deleted when rows are joined into lines, so a column may hold values of varying width
(leading zeros of a number, short enum names) without any per-record Python work.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import orjson

from app.core.generation import compiled

Matrix = np.ndarray  # shape (rows, width), dtype uint8, NUL = padding
PAD = 0
_ZERO = ord("0")


def _digit_table(width: int, strip_leading: bool) -> np.ndarray:
    """Row v holds v as ``width`` digits; with strip_leading, leading zeros become padding."""
    text = [f"{v:0{width}d}" for v in range(10**width)]
    if strip_leading:
        text = [(t.lstrip("0") or "0").rjust(width, "\0") for t in text]
    return np.frombuffer("".join(text).encode(), dtype=np.uint8).reshape(10**width, width)


_PADDED = {w: _digit_table(w, False) for w in (1, 2, 3, 4)}
SECOND_TABLE_LIMIT = 200_000
_STRIPPED4 = _digit_table(4, True)
_HEX_PAIRS = np.frombuffer("".join(f"{v:02x}" for v in range(256)).encode(), np.uint8).reshape(256, 2)


def literal(text: bytes, rows: int) -> Matrix:
    """``text`` repeated on every row: a read-only view of the bytes themselves (stride 0), no copy."""
    return np.ndarray((rows, len(text)), np.uint8, buffer=text, strides=(0, 1))


def hcat(parts: Sequence[Matrix]) -> Matrix:
    return np.concatenate(parts, axis=1)


def quoted(values: Matrix) -> Matrix:
    rows = values.shape[0]
    return hcat([literal(b'"', rows), values, literal(b'"', rows)])


def pool(strings: Sequence[str]) -> Matrix:
    """JSON string literals (quoted, escaped) for a small set of values, one row each."""
    encoded = [orjson.dumps(s) for s in strings]
    return as_matrix(np.array(encoded, dtype=f"S{max(map(len, encoded), default=1)}"))


def raw_pool(texts: Sequence[bytes]) -> Matrix:
    """Already-rendered JSON values (e.g. b'null', b'true'), one row each."""
    return as_matrix(np.array(list(texts), dtype=f"S{max(map(len, texts), default=1)}"))


def pick(table: Matrix, index: np.ndarray) -> Matrix:
    """Rows of a small rendered table (much faster than fancy indexing with small-int indices)."""
    return np.take(table, index, axis=0)


def as_matrix(values: np.ndarray) -> Matrix:
    """View a numpy bytes array (dtype S) as a NUL-padded uint8 matrix."""
    values = np.ascontiguousarray(values)
    return values.view(np.uint8).reshape(values.shape[0], values.dtype.itemsize)


def zero_padded(values: np.ndarray, width: int) -> Matrix:
    """Non-negative integers as exactly ``width`` digits, leading zeros kept (dates, ids)."""
    values = np.asarray(values)
    if width <= 4:
        small: Matrix = np.take(_PADDED[width], values % 10**width, axis=0)
        return small
    values = values.astype(np.int64)
    head = width % 4 or 4
    groups = [zero_padded(values // 10 ** (width - head), head)]
    for shift in range(width - head - 4, -1, -4):
        groups.append(np.take(_PADDED[4], (values // 10**shift) % 10_000, axis=0))
    return hcat(groups)


def integer(values: np.ndarray, width: int) -> Matrix:
    """Integers in JSON form (no leading zeros, '-' for negatives) within ``width`` digits."""
    values = np.asarray(values, dtype=np.int64)
    if compiled.native is not None and values.ndim == 1 and width <= 19:
        out = np.empty((len(values), width + 1), np.uint8)
        compiled.native.integer_into(np.ascontiguousarray(values), out)
        return out
    magnitude = np.abs(values)
    digits = zero_padded(magnitude, width)
    significant = magnitude[:, None] >= 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    significant[:, -1] = True
    digits[~significant] = PAD
    sign = np.where(values < 0, ord("-"), PAD).astype(np.uint8)[:, None]
    return hcat([sign, digits])


def fixed_point(scaled: np.ndarray, decimals: int, int_width: int) -> Matrix:
    """Numbers stored as integers times 10**decimals, rendered as JSON decimals."""
    scaled = np.asarray(scaled, dtype=np.int64)
    magnitude = np.abs(scaled)
    sign = np.where(scaled < 0, ord("-"), PAD).astype(np.uint8)
    if decimals == 5 and int_width <= 3:
        out = np.empty((len(scaled), 10), np.uint8)
        coordinate_into(out, 0, scaled)
        return out
    unit = 10**decimals
    if int_width <= 4:
        whole = np.take(_STRIPPED4, magnitude // unit, axis=0)[:, 4 - int_width:]
    else:
        whole = integer(magnitude // unit, int_width)[:, 1:]
    frac = _fraction_digits(magnitude % unit, decimals)
    return hcat([sign[:, None], whole, literal(b".", len(scaled)), frac])


def coordinate_into(out: Matrix, at: int, scaled: np.ndarray) -> None:
    """A coordinate (degrees × 10**5, |value| < 1000) as its JSON decimal in ``out[:, at:at + 10]``:
    sign, 'DDD.dd' from one table (whole part and two decimals), then three digits; NUL-padded."""
    scaled = np.asarray(scaled, dtype=np.int64)
    magnitude = np.abs(scaled)
    out[:, at] = np.where(scaled < 0, ord("-"), PAD)
    out[:, at + 1:at + 7] = np.take(_coordinate_heads(), magnitude // 1000, axis=0)
    out[:, at + 7:at + 10] = np.take(_PADDED[3], magnitude % 1000, axis=0)


@lru_cache(maxsize=1)
def _coordinate_heads() -> Matrix:
    """Row v: the text of v / 100 as whole part (no leading zeros) and two decimals, 6 wide."""
    values = np.arange(100_000)
    whole = np.take(_STRIPPED4, values // 100, axis=0)[:, 1:]
    return hcat([whole, literal(b".", len(values)), np.take(_PADDED[2], values % 100, axis=0)])


def _fraction_digits(values: np.ndarray, width: int) -> Matrix:
    if width <= 4:
        return zero_padded(values, width)
    low = width - 4 if width - 4 <= 4 else 4
    return hcat([_fraction_digits(values // 10**low, width - low), zero_padded(values % 10**low, low)])


def random_bytes(rng: np.random.Generator, rows: int, width: int) -> np.ndarray:
    """(rows, width) random bytes; drawn as 64-bit words, several times faster than Generator.bytes."""
    words = rng.integers(0, np.iinfo(np.uint64).max, size=-(-rows * width // 8), dtype=np.uint64, endpoint=True)
    return words.view(np.uint8)[: rows * width].reshape(rows, width)


def uuid4_bytes(random_bytes: np.ndarray) -> np.ndarray:
    """Stamp version 4 and the RFC 4122 variant on (rows, 16) random bytes, in place."""
    random_bytes[:, 6] = (random_bytes[:, 6] & 0x0F) | 0x40
    random_bytes[:, 8] = (random_bytes[:, 8] & 0x3F) | 0x80
    return random_bytes


@lru_cache(maxsize=1)
def _hex_quads() -> np.ndarray:
    """Entry v (two bytes, little-endian) holds their four hex digits, as one uint32 in memory order."""
    v = np.arange(65536)
    quads = np.ascontiguousarray(np.concatenate([_HEX_PAIRS[v & 0xFF], _HEX_PAIRS[v >> 8]], axis=1))
    return quads.view(np.uint32).ravel()


def uuid_text(raw: np.ndarray, quoted: bool = False) -> Matrix:
    """(rows, 16) bytes as canonical lower-case UUID text, 36 characters (38 with ``quoted``: the JSON
    string, without a second copy to add the quotes). The compiled kernel when built; numpy otherwise, two
    bytes at a time from a 256 KiB table."""
    rows = raw.shape[0]
    q = int(quoted)
    out = np.empty((rows, 36 + 2 * q), dtype=np.uint8)
    if compiled.native is not None:
        compiled.native.uuid_text_into(np.ascontiguousarray(raw, np.uint8), out)
        return out
    hexed = np.take(_hex_quads(), np.ascontiguousarray(raw).view(np.uint16)).view(np.uint8)  # (rows, 32)
    if quoted:
        out[:, 0] = out[:, 37] = ord('"')
    for start, stop, at in ((0, 8, 0), (8, 12, 9), (12, 16, 14), (16, 20, 19), (20, 32, 24)):
        out[:, at + q:at + q + stop - start] = hexed[:, start:stop]
    for dash in (8, 13, 18, 23):
        out[:, dash + q] = ord("-")
    return out


def civil_from_days(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Proleptic Gregorian (year, month, day) from days since 1970-01-01 (H. Hinnant's algorithm)."""
    z = np.asarray(days, dtype=np.int64) + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    return year, month, day


def timestamp_parts(ms: np.ndarray) -> dict[str, np.ndarray]:
    ms = np.asarray(ms, dtype=np.int64)
    days, ms_of_day = np.divmod(ms, 86_400_000)
    if len(days) and days.max() - days.min() < 4096:
        # A batch spans few days: convert each distinct day once, then look rows up.
        first = days.min()
        table = civil_from_days(np.arange(first, days.max() + 1))
        offset = days - first
        year, month, day = (np.take(column, offset) for column in table)
    else:
        year, month, day = civil_from_days(days)
    seconds, millis = np.divmod(ms_of_day, 1000)
    return {
        "year": year, "month": month, "day": day,
        "hour": seconds // 3600, "minute": seconds // 60 % 60, "second": seconds % 60,
        "millis": millis,
    }


def timestamp_text(ms: np.ndarray, quote: bool = False) -> Matrix:
    """Epoch milliseconds as 'YYYY-MM-DDTHH:MM:SS.mmmZ' (years 0..9999), in quotes with ``quote``."""
    ms = np.asarray(ms, dtype=np.int64)
    if compiled.native is not None:
        out = np.empty((len(ms), 26 if quote else 24), np.uint8)
        compiled.native.timestamp_text_into(np.ascontiguousarray(ms), out)
        return out
    return quoted(_timestamp_text(ms)) if quote else _timestamp_text(ms)


def _timestamp_text(ms: np.ndarray) -> Matrix:
    if len(ms) == 0:
        return np.zeros((0, 24), np.uint8)
    seconds, millis = np.divmod(ms, 1000)
    first, last = int(seconds.min()), int(seconds.max())
    if last - first >= min(SECOND_TABLE_LIMIT, 4 * len(ms)):
        # The table costs one rendering per second of the span: only worth it when rows outnumber seconds
        # (not for a few defects spread over two days, which it made 30 ms each).
        return _timestamp_text_direct(ms)
    # Rows of one batch share few distinct seconds: render each second once, then look up.
    prefixes = _timestamp_text_direct(np.arange(first, last + 1, dtype=np.int64) * 1000)[:, :20]
    out = np.empty((len(ms), 24), np.uint8)
    out[:, :20] = np.take(prefixes, seconds - first, axis=0)
    out[:, 20:23] = np.take(_PADDED[3], millis, axis=0)
    out[:, 23] = ord("Z")
    return out


def _timestamp_text_direct(ms: np.ndarray) -> Matrix:
    p = timestamp_parts(ms)
    rows = len(p["year"])
    def lit(b: bytes) -> Matrix:
        return literal(b, rows)

    return hcat([
        zero_padded(p["year"], 4), lit(b"-"), zero_padded(p["month"], 2), lit(b"-"),
        zero_padded(p["day"], 2), lit(b"T"), zero_padded(p["hour"], 2), lit(b":"),
        zero_padded(p["minute"], 2), lit(b":"), zero_padded(p["second"], 2), lit(b"."),
        zero_padded(p["millis"], 3), lit(b"Z"),
    ])


def widen(values: Matrix, width: int) -> Matrix:
    if values.shape[1] >= width:
        return values
    out = np.zeros((values.shape[0], width), dtype=np.uint8)
    out[:, : values.shape[1]] = values
    return out


def replace_rows(values: Matrix, rows: np.ndarray, replacement: Matrix) -> Matrix:
    """A copy of ``values`` with ``rows`` set to ``replacement`` (NUL-padded to fit)."""
    width = max(values.shape[1], replacement.shape[1])
    out = widen(values, width)
    if out is values:
        out = values.copy()
    out[rows] = widen(replacement, width)
    return out


def line_keys(names: Sequence[str]) -> list[bytes]:
    """Each field's key as it opens its place in a line: ``{"first":``, then ``,"next":``."""
    return [(b"{" if position == 0 else b",") + orjson.dumps(name) + b":" for position, name in enumerate(names)]


def encode_lines(fields: Sequence[tuple[str, Matrix]], absent: dict[str, np.ndarray] | None = None,
                 sparse_padding: bool = True) -> memoryview:
    """Join per-field JSON values into JSON Lines; ``absent`` masks drop a field from rows.
    ``sparse_padding``: the values are mostly full width (records: ~2 % padding); False for text whose
    values are often much narrower than their column (the issue log: ~20 %). The compiled joiner writes
    them when it was built (without the GIL, in one pass); numpy otherwise."""
    absent = absent or {}
    keys = line_keys([name for name, _ in fields])
    if compiled.native is not None:
        key_ends = np.cumsum([len(k) for k in keys] + [2], dtype=np.int64)
        masks = [absent.get(name) for name, _ in fields]
        return memoryview(compiled.native.join_lines(b"".join(keys) + b"}\n", key_ends, [v for _, v in fields],
                                                    [m if m is None or m.any() else None for m in masks]))
    rows = fields[0][1].shape[0]
    # One row holding every key (and the closing brace) is broadcast over the lines, then each field's
    # values go into their columns: cheaper than concatenating narrow key columns with the values.
    template = bytearray()
    spans = []
    for key, (name, values) in zip(keys, fields, strict=True):
        spans.append((name, len(template), len(template) + len(key), values))
        template += key + bytes(values.shape[1])
    template += b"}\n"
    text = bytearray(rows * len(template))
    out = np.frombuffer(text, np.uint8).reshape(rows, len(template))
    out[:] = np.frombuffer(bytes(template), np.uint8)
    for name, key_at, value_at, values in spans:
        out[:, value_at:value_at + values.shape[1]] = values
        missing = absent.get(name)
        if missing is not None and missing.any():
            out[missing, key_at:value_at + values.shape[1]] = PAD  # the key goes with the value
    if not sparse_padding:
        return compact(out)
    del out  # the text's only view: the bytearray may now shrink
    # With ~2 % padding, deleting it with bytes' memchr-driven replace is ~2-3x the boolean mask; with runs
    # of padding (every NUL its own memchr hit) the mask is faster.
    return memoryview(text.replace(b"\0", b""))


def compact(values: Matrix) -> memoryview:
    """Drop the padding; boolean selection runs without the GIL, so chunks render in parallel.

    Returns a bytes-like view (no extra copy): files, hashes and b"".join take it as it is.
    """
    flat = values.reshape(-1)
    return memoryview(flat[flat != PAD])
