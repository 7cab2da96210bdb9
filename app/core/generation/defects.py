"""Quality injection: which records get which defect, applied column-wise and traced."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from app.core.config import DEFECT_TYPES, QualityInjectionConfig
from app.core.generation import render as r
from app.core.generation.columns import ColumnBatch, DefectTarget


@dataclass
class FieldOverride:
    """Replacement values of one field, sorted by row."""

    rows: np.ndarray
    values: r.Matrix


@dataclass
class DefectPlan:
    """Every defect of a batch: one per affected record, in row order."""

    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    kinds: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    target_codes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    targets: list[DefectTarget] = field(default_factory=list)
    duplicate_of: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    originals: r.Matrix = field(default_factory=lambda: np.zeros((0, 1), np.uint8))
    injected: r.Matrix = field(default_factory=lambda: np.zeros((0, 1), np.uint8))
    overrides: dict[str, FieldOverride] = field(default_factory=dict)
    absent: dict[str, np.ndarray] = field(default_factory=dict)  # field -> sorted rows

    @property
    def corrupted_count(self) -> int:
        return len(self.rows)

    def counts(self) -> dict[str, int]:
        tally = np.bincount(self.kinds, minlength=len(DEFECT_TYPES))
        return {name: int(tally[i]) for i, name in enumerate(DEFECT_TYPES)}


def plan_defects(batch: ColumnBatch, quality: QualityInjectionConfig, rng: np.random.Generator) -> DefectPlan:
    """Choose and apply defects: duplicates are copied into the columns now, the rest kept as overrides."""
    rate = quality.effective_rate(batch.stream)
    n = batch.size
    if rate <= 0 or n == 0:
        return DefectPlan()
    weights = np.array([quality.type_weights()[name] for name in DEFECT_TYPES], dtype=np.float64)
    chosen = int(rng.binomial(n, rate))
    rows = np.sort(rng.choice(n, chosen, replace=False)).astype(np.int64)
    kinds = rng.choice(len(DEFECT_TYPES), chosen, p=weights / weights.sum()).astype(np.int64)
    rows, kinds = _keep_a_source_for_duplicates(rows, kinds, n)
    targets = batch.defect_targets()
    plan = DefectPlan(rows=rows, kinds=kinds, duplicate_of=np.full(len(rows), -1, np.int64))
    target_index = np.zeros(len(rows), np.int64)
    for kind_code, kind in enumerate(DEFECT_TYPES):
        members = np.flatnonzero(kinds == kind_code)
        target_index[members] = rng.integers(0, len(targets[kind]), len(members))
    _apply_duplicates(batch, plan, rng)
    plan.target_codes = np.zeros(len(rows), np.int64)
    original_parts, injected_parts, positions = [], [], []
    for kind_code, kind in enumerate(DEFECT_TYPES):
        of_kind = kinds == kind_code
        none_of_kind = not of_kind.any()  # the common case in a small batch: skip the per-target work
        for t_code, target in enumerate(targets[kind]):
            code = len(plan.targets)
            plan.targets.append(target)
            if none_of_kind:
                continue
            members = np.flatnonzero(of_kind & (target_index == t_code))
            plan.target_codes[members] = code
            if len(members) == 0:
                continue
            if kind == "duplicate":
                continue
            member_rows = rows[members]
            original_parts.append(batch.render(target.field, member_rows))
            positions.append(members)
            if target.inject is None:
                injected_parts.append(r.literal(b"null", len(members)))
                plan.absent.setdefault(target.field, np.zeros(0, np.int64))
                plan.absent[target.field] = np.concatenate([plan.absent[target.field], member_rows])
            else:
                values = target.inject(batch, member_rows, rng)
                injected_parts.append(values)
                _add_override(plan.overrides, target.field, member_rows, values)
    plan.originals = _gather(original_parts, positions, len(rows))
    plan.injected = _gather(injected_parts, positions, len(rows))
    for name, absent_rows in plan.absent.items():
        plan.absent[name] = np.sort(absent_rows)
    for override in plan.overrides.values():
        order = np.argsort(override.rows, kind="stable")
        override.rows, override.values = override.rows[order], override.values[order]
    return plan


def _keep_a_source_for_duplicates(rows: np.ndarray, kinds: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A duplicate needs another record to copy; in a batch of only duplicates, drop the first."""
    duplicate = DEFECT_TYPES.index("duplicate")
    if len(rows) == n and n > 0 and (kinds == duplicate).all():
        return rows[1:], kinds[1:]
    return rows, kinds


def _apply_duplicates(batch: ColumnBatch, plan: DefectPlan, rng: np.random.Generator) -> None:
    duplicate = DEFECT_TYPES.index("duplicate")
    members = np.flatnonzero(plan.kinds == duplicate)
    if len(members) == 0:
        return
    dup_rows = plan.rows[members]
    # Copy a clean record when there is one, so the duplicate is an exact repeat of a valid line.
    taken = np.zeros(batch.size, bool)
    taken[plan.rows] = True
    candidates = np.flatnonzero(~taken)
    if len(candidates) == 0:
        taken[:] = False
        taken[dup_rows] = True
        candidates = np.flatnonzero(~taken)
    sources = candidates[rng.integers(0, len(candidates), len(members))]
    batch.copy_rows(dup_rows, sources)
    plan.duplicate_of[members] = sources


def _add_override(overrides: dict[str, FieldOverride], name: str, rows: np.ndarray, values: r.Matrix) -> None:
    if name not in overrides:
        overrides[name] = FieldOverride(rows, np.ascontiguousarray(values))
        return
    current = overrides[name]
    width = max(current.values.shape[1], values.shape[1])
    overrides[name] = FieldOverride(
        np.concatenate([current.rows, rows]),
        np.concatenate([r.widen(current.values, width), r.widen(values, width)]),
    )


def _gather(parts: list[r.Matrix], positions: list[np.ndarray], total: int) -> r.Matrix:
    """Per-defect values in defect order; rows no part covers (duplicates) read null."""
    width = max([4, *(p.shape[1] for p in parts)])
    out = r.widen(np.broadcast_to(np.frombuffer(b"null", np.uint8), (total, 4)), width).copy()
    for part, where in zip(parts, positions, strict=True):
        out[where] = r.widen(part, width)
    return out
