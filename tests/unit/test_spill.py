"""The spilled defect plan reads back, part by part, exactly what the plan held in memory gives."""

from __future__ import annotations

import os

import numpy as np
import pytest

from app.core.config import Config
from app.core.generation import spill
from app.core.generation.batch import generate_batch
from app.core.generation.defects import DefectPlan, restrict
from app.core.generation.spill import SpilledPlan
from tests.unit.test_generation import EVENT_WINDOW, roster_for


def same(a: DefectPlan, b: DefectPlan) -> None:
    for name in ("rows", "kinds", "target_codes", "duplicate_of"):
        left, right = getattr(a, name), getattr(b, name)
        assert left.dtype == right.dtype and np.array_equal(left, right), name
    assert a.targets == b.targets
    assert a.overrides.keys() == b.overrides.keys() and a.absent.keys() == b.absent.keys()
    for name, override in a.overrides.items():
        assert np.array_equal(override.rows, b.overrides[name].rows)
        assert np.array_equal(override.values, b.overrides[name].values), name
    for name, rows in a.absent.items():
        assert np.array_equal(rows, b.absent[name]), name


@pytest.fixture(scope="module")
def plan_and_size(tmp_path_factory):
    config = Config.model_validate({"seed": 11, "number_of_companies": 100, "drivers_per_company": 20,
                                    "event_rate_per_driver": 3.0,
                                    "output": {"data_dir": str(tmp_path_factory.mktemp("data"))},
                                    "quality_injection": {"enabled": True, "error_rate": 0.3}})
    _, roster = roster_for(config)
    batch, plan = generate_batch(config, "events", EVENT_WINDOW, roster)
    return plan, batch.size


@pytest.mark.parametrize("stride", [1, 3, 64, spill.STRIDE])
def test_every_part_reads_back_as_restrict_gives_it(plan_and_size, stride, tmp_path, monkeypatch):
    plan, size = plan_and_size
    assert plan.corrupted_count > 1000 and plan.overrides and plan.absent and (plan.duplicate_of >= 0).any()
    monkeypatch.setattr(spill, "STRIDE", stride)
    spilled = SpilledPlan(plan, tmp_path)
    assert spilled.corrupted_count == plan.corrupted_count and spilled.counts() == plan.counts()
    rng = np.random.default_rng(stride)
    cuts = [(0, size), (0, 0), (size, size + 10), (-5, 3), (size - 1, size)]
    cuts += [tuple(sorted(rng.integers(0, size + 1, 2).tolist())) for _ in range(40)]
    cuts += [(int(plan.rows[k]), int(plan.rows[k]) + 1) for k in (0, len(plan.rows) // 2, -1)]
    for lo, hi in cuts:
        same(spilled.restrict(lo, hi), restrict(plan, lo, hi))
    spilled.close()


def test_the_file_leaves_nothing_behind_and_a_closed_plan_is_not_read(plan_and_size, tmp_path):
    plan, _ = plan_and_size
    spilled = SpilledPlan(plan, tmp_path)
    assert os.listdir(tmp_path) == []  # unlinked from the start
    spilled.close()
    with pytest.raises(ValueError):
        spilled.restrict(0, 10)


def test_an_empty_plan_spills_and_reads_back_empty(tmp_path):
    spilled = SpilledPlan(DefectPlan(), tmp_path)
    part = spilled.restrict(0, 1000)
    assert part.corrupted_count == 0 and not part.overrides and not part.absent
    assert spilled.counts() == DefectPlan().counts()
    spilled.close()
