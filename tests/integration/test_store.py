"""The ledger primitives every batch goes through: claim, commit, fail, skip, cursor, counters."""

from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError

from app.core.timeline import Window
from app.store import Store
from app.store.roster import NewCompanies
from app.store.store import CommitStats

START = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())


def window(index: int, length: int = 1) -> Window:
    return Window.from_epoch(START + index, START + index + length)


def stats(records: int, corrupted: int = 0, issues=None) -> CommitStats:
    return CommitStats("emulated", records, records - corrupted, corrupted, issues or {}, None, 10.0, 10.5, 0.002)


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'meta.db'}")
    yield store
    store.close()


def test_claim_commit_and_the_counters_move_together(store):
    assert store.cursor("events") == ([], None)
    row = store.claim("events", window(0), scheduled_at=START + 1.0)
    assert (row.status, row.attempts, row.scheduled_at, row.window) == ("pending", 1, START + 1.0, window(0))
    assert store.cursor("events") == ([row], START + 1)
    store.commit(row, stats(10, 2, {"null_value": 2}))
    assert store.claim("events", window(0)) is None  # committed: never produced again
    second = store.claim("events", window(1))
    store.commit(second, stats(5, 1, {"null_value": 1}))
    counters = store.counters()["events"]
    assert counters["committed_batches"] == 2 and counters["records"] == 15 and counters["corrupted"] == 3
    assert counters["issue_counts"] == {"null_value": 3} and counters["last_interval_end"] == START + 2
    assert store.cursor("events") == ([], START + 2) and store.ledger_end("events") == START + 2
    assert "companies" not in store.counters()
    committed = store.all_batches("events")
    assert [b.status for b in committed] == ["committed", "committed"]
    assert committed[0].record_count == 10 and committed[0].issue_counts == {"null_value": 2}


def test_a_failed_window_stays_open_and_its_retry_counts_attempts(store):
    row = store.claim("events", window(0))
    store.fail(row, "disk full" * 1000)
    open_rows, end = store.cursor("events", until_s=START + 1)
    assert [(r.status, r.attempts) for r in open_rows] == [("failed", 1)] and end == START + 1
    assert len(open_rows[0].error) == 2000
    assert store.cursor("events", until_s=START)[0] == []  # not closed yet at that moment
    retry = store.claim("events", window(0))
    assert retry.id == row.id and retry.attempts == 2
    store.commit(retry, stats(3))
    assert store.cursor("events")[0] == [] and store.failed_count("events") == 0


def test_skip_records_a_range_once_and_counts_it(store):
    assert store.skip("companies", window(0, length=600), "catch_up_limit") is True
    assert store.skip("companies", window(0, length=600), "catch_up_limit") is False
    assert store.claim("companies", window(0)) is None  # the range accounts for that window
    assert store.counters()["companies"]["skipped_ranges"] == 1
    assert store.ledger_end("companies") == START + 600


def test_commit_adds_the_companies_of_a_company_batch_in_the_same_transaction(store):
    row = store.claim("companies", window(0))
    new = NewCompanies(["00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"],
                       ["Acme", "Globex"], ["US", "EU"], [True, False], [3, 4], [1, 2])
    store.commit(row, stats(2), new)
    roster = store.load_roster()
    assert roster.batch_end.tolist() == [START + 1, START + 1] and roster.active.tolist() == [True, False]
    assert store.roster_size() == 2
    with pytest.raises(IntegrityError):  # the same companies twice violate the roster's key: nothing half-done
        store.commit(store.claim("companies", window(1)), stats(2), new)
    assert store.roster_size() == 2 and store.counters()["companies"]["committed_batches"] == 1
