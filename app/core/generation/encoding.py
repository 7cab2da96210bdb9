"""Column batches to JSON Lines: records in cache-sized chunks on both cores, and the issue trace."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future

import numpy as np

from app.core.config import DEFECT_TYPES
from app.core.generation import render as r
from app.core.generation import workers
from app.core.generation.columns import ColumnBatch, Patches
from app.core.generation.defects import DefectPlan
from app.core.generation.events import EventBatch

COMPILED_MIN_ROWS = 2048  # below this (emulated batches) preparing each company's line head costs more than it saves
CHUNK_ROWS = 8_192  # ~2.4 MB of text: stays in cache while it is assembled
IN_FLIGHT = 2  # chunks rendered ahead of the one handed out
ISSUES_AHEAD_MIN = 1_024  # defects in a part below which its issue log renders inline (emulated batches)
ISSUE_CHUNK_ROWS = 32_768  # defects: each chunk renders its values field by field, worth a larger chunk
DEFECT_TYPE_TEXT = r.pool(DEFECT_TYPES)


def render_chunk(batch: ColumnBatch, plan: DefectPlan, start: int, stop: int) -> memoryview:
    if stop - start >= COMPILED_MIN_ROWS:
        lines = batch.compiled_lines(start, stop, chunk_patches(batch, plan, start, stop))
        if lines is not None:
            return lines
    return reference_chunk(batch, plan, start, stop)


def reference_chunk(batch: ColumnBatch, plan: DefectPlan, start: int, stop: int) -> memoryview:
    """Rows [start, stop) as JSON Lines by the numpy renderers: every stream, any chunk size."""
    rows = slice(start, stop)
    fields = []
    absent = {}
    for name in batch.fields:
        values = batch.render(name, rows)
        override = plan.overrides.get(name)
        if override is not None:
            lo, hi = np.searchsorted(override.rows, [start, stop])
            if hi > lo:
                values = r.replace_rows(values, override.rows[lo:hi] - start, override.values[lo:hi])
        missing = plan.absent.get(name)
        if missing is not None:
            lo, hi = np.searchsorted(missing, [start, stop])
            if hi > lo:
                mask = np.zeros(stop - start, bool)
                mask[missing[lo:hi] - start] = True
                absent[name] = mask
        fields.append((name, values))
    return r.encode_lines(fields, absent)


def chunk_patches(batch: ColumnBatch, plan: DefectPlan, start: int, stop: int) -> Patches:
    """The plan's overrides and removed fields within rows [start, stop), as a line writer takes them."""
    every = plan.patches(batch.fields)
    a, b = np.searchsorted(every.row, [start, stop])
    return Patches(every.row[a:b] - start, every.field[a:b], every.absent[a:b], every.values[a:b])


def render_records(batch: ColumnBatch, plan: DefectPlan, chunk_rows: int = CHUNK_ROWS) -> Iterator[memoryview]:
    """The records file in order, chunk by chunk."""
    return _in_chunks(lambda a, b: render_chunk(batch, plan, a, b), batch.size, chunk_rows)


def _in_chunks(render: Callable[[int, int], memoryview], total: int, chunk_rows: int) -> Iterator[memoryview]:
    """Results of ``render`` over consecutive row ranges, in order; a few ranges in flight at once."""
    bounds = [(a, min(a + chunk_rows, total)) for a in range(0, total, chunk_rows)]
    if len(bounds) <= 1:
        return (render(a, b) for a, b in bounds)
    return workers.in_order(lambda ab: render(*ab), bounds, IN_FLIGHT, "render")


def render_issues(batch: ColumnBatch, plan: DefectPlan, offset: int = 0) -> bytes:
    """One line per injected defect: where, what, and the value before and after (``offset``: the
    batch's first record, when it is a part of a larger one); the text of ``issue_chunks`` in one piece."""
    return b"".join(issue_chunks(batch, plan, offset))


def issue_chunks(batch: ColumnBatch, plan: DefectPlan, offset: int = 0) -> Iterator[memoryview]:
    """The issue log (see ``render_issues``) in order, chunk by chunk: rendered in chunks of defects on the
    render threads, each from its own slice of the plan, and handed out as they are (not joined)."""
    if plan.corrupted_count == 0:
        return iter(())
    field_text = r.raw_pool([b"null" if not t.field else b'"' + t.field.encode() + b'"' for t in plan.targets])
    reason_text = r.pool([t.reason for t in plan.targets])
    stream = b'"' + batch.stream.encode() + b'"'

    def chunk(a: int, b: int) -> memoryview:
        some = plan.between(a, b)
        n = some.corrupted_count
        before, after = some.values(batch)
        has_source = some.duplicate_of >= 0
        source_line = r.integer(np.where(has_source, some.duplicate_of + 1, 0), 10)
        source_line = r.replace_rows(source_line, np.flatnonzero(~has_source),
                                     r.literal(b"null", int((~has_source).sum())))
        return r.encode_lines([
            ("line", r.integer(some.rows + offset + 1, 10)),
            ("record_id", batch.render(batch.id_field, some.rows)),
            ("stream", r.literal(stream, n)),
            ("defect_type", r.pick(DEFECT_TYPE_TEXT, some.kinds)),
            ("field", r.pick(field_text, some.target_codes)),
            ("original_value", before),
            ("injected_value", after),
            ("reason_code", r.pick(reason_text, some.target_codes)),
            ("duplicate_of_line", source_line),
        ], sparse_padding=False)

    return _in_chunks(chunk, plan.corrupted_count, ISSUE_CHUNK_ROWS)


def issues_ahead(batch: ColumnBatch, plan: DefectPlan, offset: int = 0) -> Future[list[memoryview]]:
    """``issue_chunks`` of a part, rendered on a render thread while the caller hands out the part's
    records (a part's issue log is one chunk or two: rendered inline it held up the records' writer)."""
    if plan.corrupted_count < ISSUES_AHEAD_MIN or workers.on_pool("render"):  # small: not worth a hand-off
        done: Future[list[memoryview]] = Future()
        done.set_result(list(issue_chunks(batch, plan, offset)))
        return done
    return workers.executor("render").submit(lambda: list(issue_chunks(batch, plan, offset)))


def render_late(batch: EventBatch, interval_s: int, offset: int = 0) -> tuple[bytes, int]:
    """One line per late arrival among the batch's records (its true values: the ground truth): where it
    is, its id and time, and the window it belongs to (``offset`` as for ``render_issues``). Returns the
    text and the line count."""
    rows = batch.late_rows()
    n = len(rows)
    if n == 0:
        return b"", 0
    own_start = batch.timestamp_ms[rows] // (interval_s * 1000) * (interval_s * 1000)
    p = r.timestamp_parts(own_start)
    z = r.zero_padded
    batch_id = r.quoted(r.hcat([z(p["year"], 4), z(p["month"], 2), z(p["day"], 2), r.literal(b"T", n),
                                z(p["hour"], 2), z(p["minute"], 2), z(p["second"], 2), r.literal(b"Z", n)]))
    fields = [
        ("line", r.integer(rows + offset + 1, 10)),
        ("event_id", batch.render("event_id", rows)),
        ("event_timestamp", batch.render("event_timestamp", rows)),
        ("true_batch_id", batch_id),
        ("before_window_ms", r.integer(batch.window.start_s * 1000 - batch.timestamp_ms[rows], 13)),
    ]
    return b"".join(_in_chunks(lambda a, b: r.encode_lines([(k, v[a:b]) for k, v in fields]), n, CHUNK_ROWS)), n
