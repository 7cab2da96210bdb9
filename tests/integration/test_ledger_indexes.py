"""The reads made at every wake-up and every health/API poll walk an index, never the whole ledger.

A data directory at a 1 s cadence gains 172,800 ledger rows a day; a read that scans them all turns
into lateness that grows with the directory's age (an unindexed open-rows read took 26 ms per call
at 100,000 windows). SQLite's own query plan is the check.
"""

from __future__ import annotations

import pytest
from sqlalchemy import insert, text
from sqlalchemy.dialects import sqlite

from app.store import Store
from app.store import store as ledger
from app.store.models import Batch

BASE = 1_790_000_000


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'ledger.db'}")
    with store.session() as s:
        for stream in ("events", "companies"):
            s.execute(insert(Batch), [
                {"stream": stream, "batch_id": str(i), "interval_start": BASE + i, "interval_end": BASE + i + 1,
                 "status": "committed" if i % 500 else "failed", "attempts": 1} for i in range(2_000)])
    yield store
    store.close()


def plan(store: Store, statement, **values) -> str:
    compiled = statement.params(**values).compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True})
    with store.engine.connect() as c:
        return "\n".join(row[-1] for row in c.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))


@pytest.mark.parametrize("name, statement, values", [
    ("open rows", ledger._OPEN_ROWS, {"stream": "events", "until": BASE + 10**6}),
    ("ledger end", ledger._LEDGER_END, {"stream": "events"}),
    ("row at", ledger._ROW_AT, {"stream": "events", "start": BASE + 7}),
    ("recent", ledger._RECENT, {"stream": "events", "limit": 20}),
    ("first committed", ledger._FIRST_COMMITTED, {"stream": "events"}),
])
def test_every_hot_read_searches_an_index(store, name, statement, values):
    shown = plan(store, statement, **values)
    assert "SEARCH batches USING" in shown, f"{name}: {shown}"
    assert "SCAN batches" not in shown and "TEMP B-TREE" not in shown, f"{name}: {shown}"


def test_open_rows_use_the_status_index(store):
    assert "ix_batches_stream_status_end" in plan(store, ledger._OPEN_ROWS, stream="events", until=BASE + 10**6)


def test_the_reads_still_answer_right(store):
    rows, end = store.cursor("events", until_s=BASE + 10**6)
    assert [r.window.start_s for r in rows] == [BASE, BASE + 500, BASE + 1000, BASE + 1500]  # oldest first
    assert end == BASE + 2000
    recent = store.recent_batches(None, 5)  # newest first; at a tie the later-written row first
    assert [(r.stream, r.window.start_s - BASE) for r in recent] == [
        ("companies", 1999), ("events", 1999), ("companies", 1998), ("events", 1998), ("companies", 1997)]
    assert [r.window.start_s for r in store.recent_batches("companies", 3)] == [BASE + 1999, BASE + 1998, BASE + 1997]
