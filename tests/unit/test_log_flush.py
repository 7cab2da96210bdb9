"""The log's store writes fall between window boundaries (whole seconds), never on them."""

from __future__ import annotations

import pytest

from app.service.logs import until_next_flush


@pytest.mark.parametrize("now, expected", [
    (10.0, 0.25), (10.1, 0.15), (10.25, 0.5), (10.3, 0.45), (10.74, 0.01), (10.999, 0.251),
])
def test_flushes_land_midway_between_whole_seconds(now, expected):
    assert until_next_flush(now, 0.5) == pytest.approx(expected)


def test_every_flush_moment_is_a_quarter_second_from_a_boundary():
    now = 1_790_000_000.0
    for _ in range(50):
        now += until_next_flush(now, 0.5)
        assert abs(now % 1.0 - 0.25) < 1e-6 or abs(now % 1.0 - 0.75) < 1e-6
        now += 0.0371  # the flush itself takes a moment
