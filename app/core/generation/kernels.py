"""Compiled line writer: an events chunk's JSON Lines written straight from its columns.

The numpy renderers (render.py, ``EventBatch.render`` + ``encoding.render_chunk``) are the reference and
serve small chunks, every other stream and the logs. For large chunks this writes the same bytes in one
pass per record, with no padded matrices, no padding to delete afterwards and no GIL held, so the render
threads use both cores. tests/unit/test_kernels.py holds the two equal, defects and edge values included.

A clean line is mostly fixed per company: its ``head`` (every byte up to the event type, the event's id
and the driver and truck numbers left blank) is copied whole, the blanks filled, then the tail written.
Lines with defects are written field by field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np

_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
_UUID_HEX_AT = np.array([0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34], np.int64)
F = TypeVar("F", bound=Callable[..., Any])


def _compiled(**options: Any) -> Callable[[F], F]:
    def compile_(function: F) -> F:
        return cast(F, numba.njit(nogil=True, **options)(function))
    return compile_


_JIT = _compiled(cache=True)
# Helpers are inlined into the writer: called as functions, every array argument costs reference counting
# and blocks optimisation across the call (~5x slower copies).
_INLINE = _compiled(inline="always")


@_INLINE
def _digits(out: np.ndarray, at: int, value: int, width: int) -> int:
    """``value`` (>= 0) as exactly ``width`` decimal digits (leading zeros kept)."""
    for k in range(width - 1, -1, -1):
        out[at + k] = 48 + value % 10
        value //= 10
    return at + width


@_INLINE
def _copy(out: np.ndarray, at: int, text: np.ndarray) -> int:
    for k in range(text.shape[0]):
        out[at + k] = text[k]
    return at + len(text)


@_INLINE
def _copy_unpadded(out: np.ndarray, at: int, values: np.ndarray) -> int:
    """A NUL-padded value (a row of a rendered matrix) without its padding."""
    for k in range(values.shape[0]):
        byte = values[k]
        if byte != 0:
            out[at] = byte
            at += 1
    return at


@_INLINE
def _uuid_hex(out: np.ndarray, at: int, raw: np.ndarray) -> None:
    """The 32 hex digits of 16 bytes into canonical UUID text at ``at`` (dashes already in place)."""
    for k in range(16):
        where = at + _UUID_HEX_AT[k]
        out[where] = _HEX[raw[k] >> 4]
        out[where + 1] = _HEX[raw[k] & 15]


@_INLINE
def _second_text(out: np.ndarray, at: int, second: int) -> int:
    """'YYYY-MM-DDTHH:MM:SS.' of a second since the epoch (H. Hinnant's civil-from-days, as
    render.civil_from_days)."""
    days = second // 86_400
    of_day = second - days * 86_400
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    at = _digits(out, at, year % 10000, 4)
    out[at] = 45
    at = _digits(out, at + 1, month, 2)
    out[at] = 45
    at = _digits(out, at + 1, day, 2)
    out[at] = 84
    at = _digits(out, at + 1, of_day // 3600, 2)
    out[at] = 58
    at = _digits(out, at + 1, of_day // 60 % 60, 2)
    out[at] = 58
    at = _digits(out, at + 1, of_day % 60, 2)
    out[at] = 46
    return at + 1


@_INLINE
def _timestamp(out: np.ndarray, at: int, ms: int) -> int:
    """Quoted 'YYYY-MM-DDTHH:MM:SS.mmmZ'."""
    second = ms // 1000
    out[at] = 34
    at = _second_text(out, at + 1, second)
    at = _digits(out, at, ms - second * 1000, 3)
    out[at] = 90
    out[at + 1] = 34
    return at + 2


@_INLINE
def _coordinate(out: np.ndarray, at: int, scaled: int) -> int:
    """Degrees x 10**5 (|value| < 1000 degrees) as a JSON decimal with five places, as render.coordinate_into."""
    if scaled < 0:
        out[at] = 45
        at += 1
        scaled = -scaled
    whole = scaled // 100_000
    at = _digits(out, at, whole, 3 if whole >= 100 else 2 if whole >= 10 else 1)
    out[at] = 46
    return _digits(out, at + 1, scaled % 100_000, 5)


@_INLINE
def _location(out: np.ndarray, at: int, lat: int, lon: int, opening: np.ndarray, between: np.ndarray) -> int:
    """``{"lat":…,"lon":…}`` (``opening`` ends with ``{"lat":``; ``between`` is ``,"lon":``)."""
    at = _copy(out, at, opening)
    at = _coordinate(out, at, lat)
    at = _copy(out, at, between)
    at = _coordinate(out, at, lon)
    out[at] = 125
    return at + 1


@_INLINE
def _identifier(out: np.ndarray, at: int, prefix: np.ndarray, company_text: np.ndarray, number: int) -> int:
    """'"DRV-<last 12 hex of the company>-NNNN"' (or TRK-)."""
    at = _copy(out, at, prefix)
    at = _copy(out, at, company_text[24:36])
    out[at] = 45
    at = _digits(out, at + 1, number % 10000, 4)
    out[at] = 34
    return at + 1


@_JIT
def event_lines(out: np.ndarray, heads: np.ndarray, blanks: np.ndarray, tails: np.ndarray, tail_ends: np.ndarray,
                texts: np.ndarray, text_ends: np.ndarray, uuid: np.ndarray, company: np.ndarray,
                driver: np.ndarray, truck: np.ndarray, event_type: np.ndarray, timestamp_ms: np.ndarray,
                lat: np.ndarray, lon: np.ndarray, company_text: np.ndarray, type_text: np.ndarray,
                patch_row: np.ndarray, patch_field: np.ndarray, patch_absent: np.ndarray,
                patch_values: np.ndarray) -> int:
    """Write the lines of rows [0, len(event_type)) into ``out``; returns the bytes written.

    ``heads``: per company, its line up to the event type; ``blanks``: where the event id, driver number
    and truck number go in it. ``tails``: per event type, its value and the timestamp's key (ending at
    ``tail_ends``). ``texts`` (ending at ``text_ends``): the seven keys (``{"event_id":`` …), the closing
    ``}\\n``, the driver and truck prefixes, ``Z"`` + the location key + ``{"lat":``, ``{"lat":`` and
    ``,"lon":``. Patches, sorted by (row, field): a field left out (key and value) or its value replaced
    by a NUL-padded row of ``patch_values``.
    """
    at = 0
    p = 0
    second = np.iinfo(np.int64).min
    stamp = np.empty(20, np.uint8)
    stamp_tail = texts[text_ends[9]:text_ends[10]]
    between = texts[text_ends[11]:text_ends[12]]
    for i in range(event_type.shape[0]):
        if p < patch_row.shape[0] and patch_row[p] == i:
            at, p = _patched_line(out, at, p, i, texts, text_ends, uuid, company, driver, truck, event_type,
                                  timestamp_ms, lat, lon, company_text, type_text, patch_row, patch_field,
                                  patch_absent, patch_values)
            continue
        start = at
        at = _copy(out, at, heads[company[i]])
        _uuid_hex(out, start + blanks[0], uuid[i])
        _digits(out, start + blanks[1], driver[i] % 10000, 4)
        _digits(out, start + blanks[2], truck[i] % 10000, 4)
        kind = event_type[i]
        at = _copy(out, at, tails[tail_ends[kind - 1] if kind else 0:tail_ends[kind]])
        ms = timestamp_ms[i]
        if ms // 1000 != second:
            second = ms // 1000
            _second_text(stamp, 0, second)
        at = _copy(out, at, stamp)
        at = _digits(out, at, ms - second * 1000, 3)
        at = _location(out, at, lat[i], lon[i], stamp_tail, between)
        out[at] = 125
        out[at + 1] = 10
        at += 2
    return at


@_INLINE
def _patched_line(out: np.ndarray, at: int, p: int, i: int, texts: np.ndarray, text_ends: np.ndarray,
                  uuid: np.ndarray, company: np.ndarray, driver: np.ndarray, truck: np.ndarray,
                  event_type: np.ndarray, timestamp_ms: np.ndarray, lat: np.ndarray, lon: np.ndarray,
                  company_text: np.ndarray, type_text: np.ndarray, patch_row: np.ndarray,
                  patch_field: np.ndarray, patch_absent: np.ndarray, patch_values: np.ndarray) -> tuple[int, int]:
    """Row ``i``'s line field by field, its patches (from ``p``) applied; returns (at, next patch)."""
    for f in range(7):
        absent = False
        override = -1
        while p < patch_row.shape[0] and patch_row[p] == i and patch_field[p] == f:
            if patch_absent[p]:
                absent = True
            else:
                override = p
            p += 1
        if absent:
            continue
        at = _copy(out, at, texts[text_ends[f - 1] if f else 0:text_ends[f]])
        if override >= 0:
            at = _copy_unpadded(out, at, patch_values[override])
        elif f == 0:
            out[at] = 34
            for dash in (9, 14, 19, 24):
                out[at + dash] = 45
            _uuid_hex(out, at + 1, uuid[i])
            out[at + 37] = 34
            at += 38
        elif f == 1:
            out[at] = 34
            at = _copy(out, at + 1, company_text[company[i]])
            out[at] = 34
            at += 1
        elif f == 2:
            at = _identifier(out, at, texts[text_ends[7]:text_ends[8]], company_text[company[i]], driver[i])
        elif f == 3:
            at = _identifier(out, at, texts[text_ends[8]:text_ends[9]], company_text[company[i]], truck[i])
        elif f == 4:
            at = _copy_unpadded(out, at, type_text[event_type[i]])
        elif f == 5:
            at = _timestamp(out, at, timestamp_ms[i])
        else:
            at = _location(out, at, lat[i], lon[i], texts[text_ends[10]:text_ends[11]],
                           texts[text_ends[11]:text_ends[12]])
    return _copy(out, at, texts[text_ends[6]:text_ends[7]]), p
