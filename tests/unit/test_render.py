"""The vectorised JSON text must equal what a plain per-value formatter would write."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from app.core.generation import render as r


def lines(matrix: np.ndarray) -> list[str]:
    rows = matrix.shape[0]
    return bytes(r.compact(r.hcat([matrix, r.literal(b"\n", rows)]))).decode().split("\n")[:-1]


def test_integers_match_python():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.integers(-10**9, 10**9, 5000), [0, 1, -1, 9, 10, 99, 100, -10**9 + 1]])
    assert lines(r.integer(values, 10)) == [str(int(v)) for v in values]


def test_zero_padded_keeps_leading_zeros():
    values = np.array([0, 7, 42, 123, 99999, 123456])
    assert lines(r.zero_padded(values, 6)) == [f"{v:06d}" for v in values]


def test_coordinates_match_python_and_are_valid_json():
    rng = np.random.default_rng(2)
    scaled = np.concatenate([rng.integers(-18_000_000, 18_000_000, 20_000),
                             [0, 1, -1, 99_999, 100_000, -100_000, 18_000_000, -9_000_000]])
    for text, value in zip(lines(r.fixed_point(scaled, 5, 3)), scaled, strict=True):
        sign = "-" if value < 0 else ""
        assert text == f"{sign}{abs(int(value)) // 100_000}.{abs(int(value)) % 100_000:05d}"
        assert json.loads(text) == pytest.approx(value / 1e5)


@pytest.mark.parametrize("span_ms", [900_000, 10**13], ids=["one window", "any date"])
def test_timestamps_match_python(span_ms):
    rng = np.random.default_rng(3)
    start = 1_764_100_800_000 if span_ms < 10**12 else 0
    ms = np.concatenate([start + rng.integers(0, span_ms, 5000), [start, start + span_ms - 1]])
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    expected = [(epoch + timedelta(milliseconds=int(v))).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" for v in ms]
    assert lines(r.timestamp_text(ms)) == expected


def test_uuid_text_is_canonical_version_4():
    raw = r.uuid4_bytes(r.random_bytes(np.random.default_rng(4), 1000, 16))
    for text, row in zip(lines(r.uuid_text(raw)), raw, strict=True):
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.bytes == bytes(row)


def test_encode_lines_drops_absent_fields_and_escapes_pool_strings():
    names = r.pool(['Say "hi"', "Émile & Co", "back\\slash"])
    ids = r.integer(np.array([1, 2, 3]), 3)
    text = r.encode_lines([("id", ids), ("name", names)], {"name": np.array([False, True, False])})
    records = [json.loads(line) for line in bytes(text).decode().splitlines()]
    assert records == [{"id": 1, "name": 'Say "hi"'}, {"id": 2}, {"id": 3, "name": "back\\slash"}]

