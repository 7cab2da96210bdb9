"""Quality injection: which records get which defect, applied column-wise and traced."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from app.core.config import DEFECT_TYPES, QualityInjectionConfig
from app.core.generation import render as r
from app.core.generation.columns import ColumnBatch, DefectTarget, Patches


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
    overrides: dict[str, FieldOverride] = field(default_factory=dict)  # the injected values
    absent: dict[str, np.ndarray] = field(default_factory=dict)  # field -> sorted rows
    _patches: dict[tuple[str, ...], Patches] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def corrupted_count(self) -> int:
        return len(self.rows)

    def values(self, batch: ColumnBatch) -> tuple[r.Matrix, r.Matrix]:
        """Each defect's field value before and after (``null`` for a removed field and a duplicate), as
        the issue log shows them; ``batch`` holds the plan's rows (duplicates copied). Rendered when
        asked, not held: a large batch's plan stays small. Each field's defects are rendered together,
        whatever their kinds."""
        fields = sorted({t.field for t in self.targets if t.field})
        field_of = np.array([fields.index(t.field) if t.field else -1 for t in self.targets] or [-1], np.int64)
        injects = np.array([t.inject is not None for t in self.targets] or [False])
        by_field = field_of[self.target_codes]
        before: list[r.Matrix] = []
        after: list[r.Matrix] = []
        positions = []
        for index in np.flatnonzero(np.bincount(by_field[by_field >= 0], minlength=len(fields))).tolist():
            name = fields[index]
            members = np.flatnonzero(by_field == index)
            rows = self.rows[members]
            before.append(batch.render(name, rows))
            injected = injects[self.target_codes[members]]
            if not injected.any():
                after.append(r.literal(b"null", len(rows)))
            else:
                override = self.overrides[name]
                values = _take_rows(override.values, np.searchsorted(override.rows, rows[injected]))
                after.append(values if injected.all() else
                             r.replace_rows(r.widen(r.literal(b"null", len(rows)), values.shape[1]),
                                            np.flatnonzero(injected), values))
            positions.append(members)
        return _gather(before, positions, len(self.rows)), _gather(after, positions, len(self.rows))

    def between(self, a: int, b: int) -> DefectPlan:
        """Defects [a, b) (in row order) as a plan of their own; rows keep their numbers."""
        part = DefectPlan(rows=self.rows[a:b], kinds=self.kinds[a:b], target_codes=self.target_codes[a:b],
                          targets=self.targets, duplicate_of=self.duplicate_of[a:b])
        if b > a:
            lo, hi = int(self.rows[a]), int(self.rows[b - 1]) + 1
            for name, override in self.overrides.items():
                c, d = np.searchsorted(override.rows, [lo, hi])
                if d > c:
                    part.overrides[name] = FieldOverride(override.rows[c:d], override.values[c:d])
            for name, absent in self.absent.items():
                c, d = np.searchsorted(absent, [lo, hi])
                if d > c:
                    part.absent[name] = absent[c:d]
        return part

    def patches(self, fields: tuple[str, ...]) -> Patches:
        """Every override and removed field as one list sorted by (row, field index in ``fields``): what the
        compiled line writer takes, sliced per chunk. Made once per plan."""
        made = self._patches.get(fields)
        if made is not None:
            return made
        rows: list[np.ndarray] = [np.zeros(0, np.int64)]
        codes: list[np.ndarray] = [np.zeros(0, np.int64)]
        absent: list[np.ndarray] = [np.zeros(0, bool)]
        values: list[r.Matrix] = [np.zeros((0, 1), np.uint8)]
        for index, name in enumerate(fields):
            override = self.overrides.get(name)
            if override is not None:
                rows.append(override.rows)
                values.append(override.values)
                absent.append(np.zeros(len(override.rows), bool))
                codes.append(np.full(len(override.rows), index))
            missing = self.absent.get(name)
            if missing is not None:
                rows.append(missing)
                values.append(np.zeros((len(missing), 1), np.uint8))
                absent.append(np.ones(len(missing), bool))
                codes.append(np.full(len(missing), index))
        width = max(v.shape[1] for v in values)
        row, code = np.concatenate(rows).astype(np.int64), np.concatenate(codes).astype(np.int64)
        order = np.lexsort((code, row))
        padded = np.concatenate([r.widen(v, width) for v in values])
        made = Patches(row[order], code[order], np.concatenate(absent)[order], np.ascontiguousarray(padded[order]))
        self._patches[fields] = made
        return made

    def restrict(self, lo: int, hi: int) -> DefectPlan:
        return restrict(self, lo, hi)

    def counts(self) -> dict[str, int]:
        tally = np.bincount(self.kinds, minlength=len(DEFECT_TYPES))
        return {name: int(tally[i]) for i, name in enumerate(DEFECT_TYPES)}


@dataclass
class DefectChoice:
    """Which rows of a batch get a defect, of which kind and target, and which row each duplicate copies:
    everything about a batch's defects that needs no record values."""

    rows: np.ndarray  # sorted, int64
    kinds: np.ndarray
    target_index: np.ndarray  # per defect, into its kind's targets
    duplicate_sources: np.ndarray  # per duplicate defect (in defect order): the row it copies


def plan_defects(batch: ColumnBatch, quality: QualityInjectionConfig, rng: np.random.Generator) -> DefectPlan:
    """Choose and apply defects: duplicates are copied into the columns now, the rest kept as overrides."""
    choice = choose_defects(batch.size, batch.defect_targets(), quality.effective_rate(batch.stream), quality, rng)
    return apply_defects(batch, choice, rng) if choice is not None else DefectPlan()


def choose_defects(n: int, targets: dict[str, list[DefectTarget]], rate: float, quality: QualityInjectionConfig,
                   rng: np.random.Generator) -> DefectChoice | None:
    """The first half of ``plan_defects``: the draws that depend on the record count alone (None: no
    defect is drawn for this batch, and nothing is taken from ``rng``)."""
    if rate <= 0 or n == 0:
        return None
    weights = np.array([quality.type_weights()[name] for name in DEFECT_TYPES], dtype=np.float64)
    chosen = int(rng.binomial(n, rate))
    rows = np.sort(rng.choice(n, chosen, replace=False)).astype(np.int64, copy=False)
    kinds = rng.choice(len(DEFECT_TYPES), chosen, p=weights / weights.sum()).astype(np.int8)
    rows, kinds = _keep_a_source_for_duplicates(rows, kinds, n)
    target_index = np.zeros(len(rows), np.int8)  # a kind has a handful of targets
    for kind_code, kind in enumerate(DEFECT_TYPES):
        members = np.flatnonzero(kinds == kind_code)
        target_index[members] = rng.integers(0, len(targets[kind]), len(members))
    return DefectChoice(rows, kinds, target_index, _duplicate_sources(n, rows, kinds, rng))


def apply_defects(batch: ColumnBatch, choice: DefectChoice, rng: np.random.Generator,
                  local: Callable[[np.ndarray], np.ndarray] | None = None) -> DefectPlan:
    """The second half: copy the duplicates and render the injected values. ``batch`` holds the rows
    ``choice`` names (all of them, or just the defective rows and the duplicates' sources, with ``local``
    mapping a row of the whole batch to its row in ``batch``); the plan names rows of the whole batch."""
    at = local or (lambda rows: rows)
    rows, kinds, target_index = choice.rows, choice.kinds, choice.target_index
    targets = batch.defect_targets()
    # a row number per defect, held as long as the plan: 4 bytes where they fit
    last_row = max(int(rows[-1]) if len(rows) else 0, int(choice.duplicate_sources.max(initial=0)))
    plan = DefectPlan(rows=rows, kinds=kinds,
                      duplicate_of=np.full(len(rows), -1, np.int32 if last_row < 2**31 - 1 else np.int64))
    duplicates = np.flatnonzero(kinds == DEFECT_TYPES.index("duplicate"))
    if len(duplicates):
        batch.copy_rows(at(rows[duplicates]), at(choice.duplicate_sources))
        plan.duplicate_of[duplicates] = choice.duplicate_sources
    plan.target_codes = np.zeros(len(rows), np.int16)
    injected: dict[str, list[tuple[np.ndarray, r.Matrix] | None]] = {}
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
            if target.inject is None:
                plan.absent.setdefault(target.field, np.zeros(0, np.int64))
                plan.absent[target.field] = np.concatenate([plan.absent[target.field], member_rows])
            else:
                injected.setdefault(target.field, []).append((member_rows, target.inject(batch, at(member_rows), rng)))
    for name, absent_rows in plan.absent.items():
        plan.absent[name] = np.sort(absent_rows)
    plan.overrides = _overrides(injected)
    return plan


def _keep_a_source_for_duplicates(rows: np.ndarray, kinds: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A duplicate needs another record to copy; in a batch of only duplicates, drop the first."""
    duplicate = DEFECT_TYPES.index("duplicate")
    if len(rows) == n and n > 0 and (kinds == duplicate).all():
        return rows[1:], kinds[1:]
    return rows, kinds


def _duplicate_sources(n: int, rows: np.ndarray, kinds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The row each duplicate copies: a clean record when there is one (so the duplicate is an exact
    repeat of a valid line), else any record that is not a duplicate itself."""
    dup_rows = rows[kinds == DEFECT_TYPES.index("duplicate")]
    if len(dup_rows) == 0:
        return np.zeros(0, np.int64)
    excluded = rows if len(rows) < n else dup_rows  # both sorted
    picks = rng.integers(0, n - len(excluded), len(dup_rows))
    # the pick-th row not in ``excluded``, without listing the candidates (O(defects), not O(records))
    shifted = excluded - np.arange(len(excluded), dtype=np.int64)
    sources: np.ndarray = picks + np.searchsorted(shifted, picks, side="right")
    return sources.astype(np.int64)


def restrict(plan: DefectPlan, lo: int, hi: int) -> DefectPlan:
    """The defects of rows [lo, hi), renumbered from 0 (``duplicate_of`` keeps naming rows of the batch)."""
    part = plan.between(*np.searchsorted(plan.rows, [lo, hi]).tolist())
    part.rows = part.rows - lo
    part.overrides = {name: FieldOverride(o.rows - lo, o.values) for name, o in part.overrides.items()}
    part.absent = {name: rows - lo for name, rows in part.absent.items()}
    return part


def _overrides(parts: dict[str, list[tuple[np.ndarray, r.Matrix] | None]]) -> dict[str, FieldOverride]:
    """Each field's injected values in one matrix (as wide as the widest), sorted by row; each piece goes
    straight to its sorted place and is let go (``parts`` is emptied)."""
    overrides = {}
    for name in list(parts):
        pieces = parts.pop(name)
        rows = np.concatenate([piece[0] for piece in pieces if piece is not None])
        order = np.argsort(rows, kind="stable")
        place = np.empty(len(rows), np.int64)
        place[order] = np.arange(len(rows))
        values = np.zeros((len(rows), max(piece[1].shape[1] for piece in pieces if piece is not None)), np.uint8)
        at = 0
        for index, piece in enumerate(pieces):
            assert piece is not None
            piece_rows, piece_values = piece
            pieces[index] = None
            values[place[at:at + len(piece_rows)], :piece_values.shape[1]] = piece_values
            at += len(piece_rows)
            del piece, piece_values
        overrides[name] = FieldOverride(rows[order], values)
    return overrides


def _take_rows(values: r.Matrix, rows: np.ndarray) -> r.Matrix:
    """``values[rows]``, each row taken as one item of its width."""
    values = np.ascontiguousarray(values)
    taken: r.Matrix = np.take(values.view(np.dtype((np.void, values.shape[1]))).ravel(), rows).view(np.uint8)
    return taken.reshape(len(rows), values.shape[1])


def _gather(parts: list[r.Matrix], positions: list[np.ndarray], total: int) -> r.Matrix:
    """Per-defect values in defect order; rows no part covers (duplicates) read null. Rows move as single
    items of their width (much faster than fancy indexing rows of bytes)."""
    width = max([4, *(p.shape[1] for p in parts)])
    out = np.zeros((total, width), np.uint8)
    out[:, :4] = np.frombuffer(b"null", np.uint8)
    row = np.dtype((np.void, width))
    for part, where in zip(parts, positions, strict=True):
        np.put(out.view(row).ravel(), where, np.ascontiguousarray(r.widen(part, width)).view(row).ravel())
    return out
