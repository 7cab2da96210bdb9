"""Store: ledger, roster, lifecycle state and log entries over one SQLAlchemy engine."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from sqlalchemy import Connection, Integer, Table, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.core.bronze import STREAMS
from app.core.errors import StoreError
from app.core.timeline import Window, format_timestamp, iso_or_none
from app.store.database import create_store_engine, migrate
from app.store.models import (
    COMMITTED,
    FAILED,
    PENDING,
    SKIPPED,
    Batch,
    Company,
    LogEntry,
    StateEntry,
    StreamCounter,
)
from app.store.roster import GEOGRAPHY_CODES, NewCompanies, RosterRows

NO_LIMIT_S = 2**62
CLAIMED_ELSEWHERE = "claimed by another writer"
ROSTER_EPOCH_KEY = "roster_epoch"
CARRIED_KEY = "carried_state"  # what an events batch hands the next (emulated fleet, late arrivals)

# The ledger statements run on every batch: built once (Core, not ORM) so each costs a compiled-cache
# lookup instead of a statement build and a unit of work, which matters to the API threads sharing the GIL.
_BATCHES = cast(Table, Batch.__table__)
_COUNTERS = cast(Table, StreamCounter.__table__)
_LEDGER_END = select(func.max(_BATCHES.c.interval_end)).where(_BATCHES.c.stream == bindparam("stream"))
# Unordered on purpose: with an ORDER BY, SQLite walks the (stream, interval_start) index through the
# stream's whole history instead of the open-rows index; the few open rows are sorted in Python.
_OPEN_ROWS = select(_BATCHES).where(_BATCHES.c.stream == bindparam("stream"),
                                    _BATCHES.c.status.in_([PENDING, FAILED]),
                                    _BATCHES.c.interval_end <= bindparam("until"))
_RECENT = (select(_BATCHES).where(_BATCHES.c.stream == bindparam("stream"))
           .order_by(_BATCHES.c.interval_start.desc()).limit(bindparam("limit", type_=Integer)))
_FIRST_COMMITTED = (select(_BATCHES).where(_BATCHES.c.stream == bindparam("stream"), _BATCHES.c.status == COMMITTED)
                    .order_by(_BATCHES.c.interval_end).limit(1))
_ROW_AT = select(_BATCHES).where(_BATCHES.c.stream == bindparam("stream"),
                                 _BATCHES.c.interval_start == bindparam("start"))
_COUNTER_OF = select(_COUNTERS).where(_COUNTERS.c.stream == bindparam("stream"))
_ALL_COUNTERS = select(_COUNTERS)
# Executed with a dict of column values: the SET / VALUES clause is the dict's keys.
_INSERT_BATCH = insert(_BATCHES)
_UPDATE_BATCH = update(_BATCHES).where(_BATCHES.c.id == bindparam("row_id"))
# Compare-and-set on a claim: only the writer holding a pending row may commit or fail it; a failed
# (or released) row may be taken by anyone, and only one of two racing writers gets it.
_MINE = (_BATCHES.c.id == bindparam("row_id"), _BATCHES.c.status == PENDING, _BATCHES.c.owner == bindparam("me"))
_SETTLE_MINE = update(_BATCHES).where(*_MINE)
_TAKE = (update(_BATCHES)
         .where(_BATCHES.c.id == bindparam("row_id"),
                or_(_BATCHES.c.status == FAILED,
                    and_(_BATCHES.c.status == PENDING,
                         or_(_BATCHES.c.owner.is_(None), _BATCHES.c.owner == bindparam("me"))))))
_RELEASE = update(_BATCHES).where(_BATCHES.c.status == PENDING).values(owner=None)
_ROSTER_MARK = select(select(func.max(Company.batch_end)).scalar_subquery(),
                      select(StateEntry.value).where(StateEntry.key == ROSTER_EPOCH_KEY).scalar_subquery())
_INSERT_COUNTER = insert(_COUNTERS)
_UPDATE_COUNTER = update(_COUNTERS).where(_COUNTERS.c.stream == bindparam("counter_stream"))
_INSERT_COMPANY = insert(cast(Table, Company.__table__))
_STATES = cast(Table, StateEntry.__table__)
_DELETE_STATE = delete(_STATES).where(_STATES.c.key == bindparam("state_key"))
_CARRIED = select(_STATES.c.value).where(_STATES.c.key == CARRIED_KEY)
_INSERT_STATE = insert(_STATES)


@dataclass(frozen=True)
class LedgerRow:
    id: int
    stream: str
    batch_id: str
    window: Window
    status: str
    reason: str | None
    attempts: int
    generation_mode: str | None
    record_count: int
    valid_count: int
    corrupted_count: int
    issue_counts: dict | None
    scheduled_at: float | None
    started_at: float | None
    finished_at: float | None
    duration_s: float | None
    firing_delay_s: float | None
    error: str | None
    owner: str | None = None
    published_at: float | None = None
    lateness_ms: float | None = None
    catch_up: bool | None = None

    @classmethod
    def of(cls, row: Any) -> LedgerRow:
        """From an ORM ``Batch`` or a Core row of the batches table."""
        return cls(row.id, row.stream, row.batch_id, Window.from_epoch(row.interval_start, row.interval_end),
                   row.status, row.reason, row.attempts, row.generation_mode, row.record_count,
                   row.valid_count, row.corrupted_count, row.issue_counts, row.scheduled_at,
                   row.started_at, row.finished_at, row.duration_s, row.firing_delay_s, row.error,
                   row.owner, row.published_at, row.lateness_ms, row.catch_up)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stream": self.stream, "batch_id": self.batch_id, "status": self.status, "reason": self.reason,
            "interval_start": format_timestamp(self.window.start), "interval_end": format_timestamp(self.window.end),
            "attempts": self.attempts, "generation_mode": self.generation_mode,
            "record_count": self.record_count, "valid_count": self.valid_count,
            "corrupted_count": self.corrupted_count, "issue_counts": self.issue_counts or {},
            "scheduled_at": iso_or_none(self.scheduled_at), "started_at": iso_or_none(self.started_at),
            "finished_at": iso_or_none(self.finished_at), "duration_s": self.duration_s,
            "firing_delay_s": self.firing_delay_s, "error": self.error,
            "published_at": iso_or_none(self.published_at), "lateness_ms": self.lateness_ms,
            "catch_up": self.catch_up,
        }


@dataclass(frozen=True)
class CommitStats:
    generation_mode: str
    record_count: int
    valid_count: int
    corrupted_count: int
    issue_counts: dict[str, int]
    scheduled_at: float | None
    started_at: float
    finished_at: float
    firing_delay_s: float | None
    published_at: float | None = None
    lateness_ms: float | None = None
    catch_up: bool = False


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming a window: the row to produce, or why there is none."""

    row: LedgerRow | None
    reason: str | None = None  # committed | skipped | claimed by another writer


class LostClaim(Exception):
    """The row this writer claimed is no longer its own (released and taken by another writer)."""


class Store:
    def __init__(self, url: str, *, auto_migrate: bool = True, busy_timeout_ms: int = 10_000):
        self.url = url
        try:
            self.engine = create_store_engine(url, busy_timeout_ms)
            if auto_migrate:
                migrate(self.engine)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the metadata store {url}: {exc}") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.owner = uuid.uuid4().hex  # this writer's claim token

    @property
    def location(self) -> str:
        """The store's URL with any password masked (safe to show in health)."""
        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except ArgumentError:
            return "<unparseable database URL>"

    @classmethod
    def for_config(cls, config) -> Store:
        return cls(config.database_url, busy_timeout_ms=config.database.busy_timeout_ms)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except OperationalError as exc:
            session.rollback()
            raise StoreError(f"metadata store unavailable: {exc.orig}") from exc
        except SQLAlchemyError as exc:
            session.rollback()
            if isinstance(exc, IntegrityError):
                raise
            raise StoreError(f"metadata store failed: {exc}") from exc
        except Exception:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One Core transaction, with the same error mapping as ``session``."""
        try:
            with self.engine.begin() as connection:
                yield connection
        except OperationalError as exc:
            raise StoreError(f"metadata store unavailable: {exc.orig}") from exc
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise StoreError(f"metadata store failed: {exc}") from exc

    # ---- ledger -------------------------------------------------------------------------------

    def ledger_end(self, stream: str) -> int | None:
        """End (epoch s) of the latest window the ledger accounts for, whatever its status."""
        with self.transaction() as c:
            return c.execute(_LEDGER_END, {"stream": stream}).scalar()

    def cursor(self, stream: str, until_s: int | None = None) -> tuple[list[LedgerRow], int | None]:
        """Where a stream stands, read in one transaction: its open rows (claimed or failed windows
        ending by ``until_s``, oldest first) and the end of the latest window accounted for."""
        until = NO_LIMIT_S if until_s is None else until_s
        with self.transaction() as c:
            rows = sorted((LedgerRow.of(r) for r in c.execute(_OPEN_ROWS, {"stream": stream, "until": until})),
                          key=lambda row: row.window.start_s)
            return rows, c.execute(_LEDGER_END, {"stream": stream}).scalar()

    def find(self, stream: str, window: Window) -> LedgerRow | None:
        with self.session() as s:
            row = s.scalar(select(Batch).where(Batch.stream == stream, Batch.interval_start == window.start_s))
            return LedgerRow.of(row) if row else None

    def covering(self, stream: str, moment_s: int) -> LedgerRow | None:
        """The row whose window (or skipped range) contains ``moment_s``."""
        with self.session() as s:
            row = s.scalar(select(Batch).where(Batch.stream == stream, Batch.interval_start <= moment_s,
                                               Batch.interval_end > moment_s))
            return LedgerRow.of(row) if row else None

    def claim(self, stream: str, window: Window, scheduled_at: float | None = None) -> LedgerRow | None:
        """Take a window for production; None when it is committed, skipped or another writer's."""
        return self.claim_window(stream, window, scheduled_at).row

    def claim_window(self, stream: str, window: Window, scheduled_at: float | None = None) -> Claim:
        """Compare-and-set: a new row, a failed one, or a pending one nobody holds becomes this
        writer's. Losing a race to another writer is an ordinary outcome, never an exception."""
        started = time.time()
        try:
            with self.transaction() as c:
                found = c.execute(_ROW_AT, {"stream": stream, "start": window.start_s}).first()
                if found is None:
                    values = {"stream": stream, "batch_id": window.batch_id, "interval_start": window.start_s,
                              "interval_end": window.end_s, "status": PENDING, "attempts": 1,
                              "scheduled_at": scheduled_at, "started_at": started, "owner": self.owner}
                    key = c.execute(_INSERT_BATCH, values).inserted_primary_key
                    assert key is not None
                    return Claim(LedgerRow(int(key[0]), stream, window.batch_id, window, PENDING, None, 1, None,
                                           0, 0, 0, None, scheduled_at, started, None, None, None, None,
                                           self.owner))
                if found.status in (COMMITTED, SKIPPED):
                    return Claim(None, found.status)
                taken = c.execute(_TAKE, {"row_id": found.id, "me": self.owner, "status": PENDING, "owner": self.owner,
                                          "attempts": found.attempts + 1, "started_at": started, "error": None})
                if taken.rowcount != 1:
                    return Claim(None, CLAIMED_ELSEWHERE)
                return Claim(dataclasses.replace(LedgerRow.of(found), status=PENDING, attempts=found.attempts + 1,
                                                 started_at=started, owner=self.owner))
        except IntegrityError:  # another writer inserted the same window first
            return Claim(None, CLAIMED_ELSEWHERE)

    def release_claims(self) -> int:
        """Hand back every pending claim (start-up, under the data-directory lock: their writer is gone)."""
        with self.transaction() as c:
            return c.execute(_RELEASE).rowcount

    def commit(self, row: LedgerRow, stats: CommitStats, companies: NewCompanies | None = None,
               carried: dict[str, Any] | None = None) -> tuple[int, int | None] | None:
        """Mark this writer's claimed window committed, adding its companies to the roster and saving
        the state it hands the next batch (``carried``) in the same transaction; ``LostClaim`` (nothing
        written) when the row is no longer this writer's.

        With companies, returns the roster mark as it stood just before they were added (read in the
        same transaction), so a cached roster at that mark can take them in without a reload."""
        with self.transaction() as c:
            settled = c.execute(_SETTLE_MINE, dict(
                row_id=row.id, me=self.owner, status=COMMITTED, owner=None, reason=None, error=None,
                generation_mode=stats.generation_mode,
                record_count=stats.record_count, valid_count=stats.valid_count,
                corrupted_count=stats.corrupted_count, issue_counts=stats.issue_counts,
                scheduled_at=stats.scheduled_at, started_at=stats.started_at,
                finished_at=stats.finished_at, duration_s=stats.finished_at - stats.started_at,
                firing_delay_s=stats.firing_delay_s, published_at=stats.published_at,
                lateness_ms=stats.lateness_ms, catch_up=stats.catch_up))
            if settled.rowcount != 1:
                raise LostClaim(f"{row.stream} {row.batch_id} is no longer claimed by this writer")
            counter = _counter_values(c, row.stream)
            counter["committed_batches"] += 1
            counter["records"] += stats.record_count
            counter["corrupted"] += stats.corrupted_count
            counter["issue_counts"] = {k: counter["issue_counts"].get(k, 0) + v
                                       for k, v in stats.issue_counts.items()}
            counter["last_interval_end"] = max(counter["last_interval_end"] or 0, row.window.end_s)
            counter["last_finished_at"] = stats.finished_at
            _save_counter(c, counter)
            if carried is not None:
                c.execute(_DELETE_STATE, {"state_key": CARRIED_KEY})
                c.execute(_INSERT_STATE, {"key": CARRIED_KEY, "value": {"v": carried}})
            if companies is None or not companies.company_ids:
                return None
            mark_before = _roster_mark(c)
            c.execute(_INSERT_COMPANY, [
                {"company_id": cid, "batch_start": row.window.start_s, "batch_end": row.window.end_s,
                 "ordinal": i, "company_name": name, "geography": geo, "active": act,
                 "drivers_count": drivers, "onboarded_at_ms": onboarded}
                for i, (cid, name, geo, act, drivers, onboarded) in enumerate(zip(
                    companies.company_ids, companies.names, companies.geography, companies.active,
                    companies.drivers_count, companies.onboarded_at_ms, strict=True))
            ])
            return mark_before

    def fail(self, row: LedgerRow, error: str) -> bool:
        """Record a failed attempt on this writer's pending claim; False (nothing changed) otherwise."""
        with self.transaction() as c:
            return c.execute(_SETTLE_MINE, {"row_id": row.id, "me": self.owner, "status": FAILED, "owner": None,
                                            "error": error[:2000], "finished_at": time.time()}).rowcount == 1

    def skip(self, stream: str, window: Window, reason: str) -> bool:
        """Record a window (or range) deliberately not produced; False if already accounted for."""
        try:
            with self.transaction() as c:
                c.execute(_INSERT_BATCH, dict(
                    stream=stream, batch_id=window.batch_id, interval_start=window.start_s,
                    interval_end=window.end_s, status=SKIPPED, reason=reason, attempts=0,
                    finished_at=time.time()))
                counter = _counter_values(c, stream)
                counter["skipped_ranges"] += 1
                _save_counter(c, counter)
            return True
        except IntegrityError:
            return False

    def counters(self) -> dict[str, dict[str, Any]]:
        """Cumulative committed/skipped totals per stream (one small table)."""
        with self.transaction() as c:
            return {row.stream: _counter_dict(row) for row in c.execute(_ALL_COUNTERS)}

    def failed_count(self, stream: str) -> int:
        with self.session() as s:
            return s.scalar(select(func.count()).select_from(Batch).where(
                Batch.stream == stream, Batch.status == FAILED)) or 0

    def recent_batches(self, stream: str | None = None, limit: int = 20) -> list[LedgerRow]:
        """The latest windows, newest first; read stream by stream so each read walks its index from
        the end (one read across streams would sort the whole ledger)."""
        rows: list[LedgerRow] = []
        with self.transaction() as c:
            for name in [stream] if stream else STREAMS:
                rows += [LedgerRow.of(r) for r in c.execute(_RECENT, {"stream": name, "limit": limit})]
        rows.sort(key=lambda row: (row.window.start_s, row.id), reverse=True)
        return rows[:limit]

    def all_batches(self, stream: str) -> list[LedgerRow]:
        with self.session() as s:
            query = select(Batch).where(Batch.stream == stream).order_by(Batch.interval_start)
            return [LedgerRow.of(b) for b in s.scalars(query)]

    def stream_totals(self) -> dict[str, dict[str, Any]]:
        """Per stream and status: batches, records and defects, from the ledger alone."""
        query = select(Batch.stream, Batch.status, func.count(), func.sum(Batch.record_count),
                       func.sum(Batch.corrupted_count), func.max(Batch.interval_end),
                       func.max(Batch.finished_at)).group_by(Batch.stream, Batch.status)
        totals: dict[str, dict[str, Any]] = {}
        with self.session() as s:
            for stream, status, count, records, corrupted, last_end, last_finished in s.execute(query):
                entry = totals.setdefault(stream, {})
                entry[status] = {"batches": count, "records": int(records or 0),
                                 "corrupted": int(corrupted or 0), "last_interval_end": last_end,
                                 "last_finished_at": last_finished}
        return totals

    # ---- roster -------------------------------------------------------------------------------

    def roster_mark(self) -> tuple[int, int | None]:
        """The roster's high-water mark: (clean epoch, end of the latest onboarding window). Companies
        are only ever added window by window in order, so an unchanged mark means an unchanged roster."""
        with self.transaction() as c:
            return _roster_mark(c)

    def load_roster(self, after_end: int | None = None) -> RosterRows:
        """Companies onboarded by windows ending after ``after_end`` (all when None), in onboarding order."""
        query = (select(Company.batch_end, Company.company_id, Company.geography, Company.active,
                        Company.drivers_count).order_by(Company.batch_start, Company.ordinal))
        if after_end is not None:
            query = query.where(Company.batch_end > after_end)
        with self.transaction() as c:
            rows = c.execute(query).all()
        ids = np.frombuffer(b"".join(uuid.UUID(r[1]).bytes for r in rows), np.uint8).reshape(len(rows), 16)
        return RosterRows.of(
            batch_end=np.array([r[0] for r in rows], np.int64),
            company_uuid=ids.copy(),
            geography=np.array([GEOGRAPHY_CODES[r[2]] for r in rows], np.uint8),
            active=np.array([bool(r[3]) for r in rows], bool),
            drivers_count=np.array([r[4] for r in rows], np.int32),
        )

    def first_committed(self, stream: str) -> LedgerRow | None:
        """The oldest committed window of a stream (after a clean: the re-initialisation's)."""
        with self.transaction() as c:
            row = c.execute(_FIRST_COMMITTED, {"stream": stream}).first()
        return LedgerRow.of(row) if row is not None else None

    def has_committed(self, stream: str) -> bool:
        with self.transaction() as c:
            return c.execute(select(_BATCHES.c.id).where(_BATCHES.c.stream == stream,
                                                         _BATCHES.c.status == COMMITTED).limit(1)).first() is not None

    def roster_size(self) -> int:
        with self.session() as s:
            return s.scalar(select(func.count()).select_from(Company)) or 0

    def clear_generated(self) -> None:
        """Forget every batch and company (clean); lifecycle state and logs stay."""
        with self.session() as s:
            s.execute(delete(Company))
            s.execute(delete(Batch))
            s.execute(delete(StreamCounter))
            s.execute(delete(StateEntry).where(StateEntry.key == CARRIED_KEY))
            epoch = s.get(StateEntry, ROSTER_EPOCH_KEY)
            previous = int((epoch.value or {}).get("v", 0)) if epoch is not None else 0
            s.merge(StateEntry(key=ROSTER_EPOCH_KEY, value={"v": previous + 1}))  # cached rosters are stale

    # ---- state --------------------------------------------------------------------------------

    def carried_state(self) -> dict[str, Any] | None:
        """What the latest committed events batch handed the next one (None before the first)."""
        with self.transaction() as c:  # Core, not the ORM: read before every emulated events batch
            entry = c.execute(_CARRIED).scalar()
        value = entry.get("v") if isinstance(entry, dict) else None
        return value if isinstance(value, dict) else None

    def get_state(self, key: str, default: Any = None) -> Any:
        with self.session() as s:
            entry = s.get(StateEntry, key)
            return default if entry is None or entry.value is None else entry.value.get("v", default)

    def set_state(self, key: str, value: Any) -> None:
        with self.session() as s:
            s.merge(StateEntry(key=key, value={"v": value}))

    # ---- logs ---------------------------------------------------------------------------------

    def add_logs(self, entries: list[dict[str, Any]]) -> None:
        if entries:
            with self.session() as s:
                s.execute(insert(LogEntry), entries)

    def query_logs(self, limit: int = 100, since: float | None = None,
                   levels: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        query = select(LogEntry).order_by(LogEntry.id.desc()).limit(limit)
        if since is not None:
            query = query.where(LogEntry.created >= since)
        if levels is not None:
            query = query.where(LogEntry.level.in_(levels))
        with self.session() as s:
            return [{"id": e.id, "created": e.created, "level": e.level, "logger": e.logger,
                     "message": e.message, "fields": e.fields or {}} for e in s.scalars(query)]

    def prune_logs(self, keep: int) -> None:
        with self.session() as s:
            newest = s.scalar(select(func.max(LogEntry.id))) or 0
            s.execute(delete(LogEntry).where(LogEntry.id <= newest - keep))


_COUNTER_FIELDS = ("committed_batches", "skipped_ranges", "records", "corrupted", "issue_counts",
                   "last_interval_end", "last_finished_at")


def _roster_mark(connection: Connection) -> tuple[int, int | None]:
    end, epoch = connection.execute(_ROSTER_MARK).one()
    return int((epoch or {}).get("v", 0)), end


def _counter_dict(row: Any) -> dict[str, Any]:
    counter = {name: getattr(row, name) for name in _COUNTER_FIELDS}
    counter["issue_counts"] = dict(counter["issue_counts"] or {})
    return counter


def _counter_values(connection: Connection, stream: str) -> dict[str, Any]:
    """A stream's counter row as a dict (zeros when the stream has none yet); ``exists`` says which."""
    row = connection.execute(_COUNTER_OF, {"stream": stream}).first()
    if row is None:
        return {"stream": stream, "exists": False, "committed_batches": 0, "skipped_ranges": 0, "records": 0,
                "corrupted": 0, "issue_counts": {}, "last_interval_end": None, "last_finished_at": None}
    return {"stream": stream, "exists": True, **_counter_dict(row)}


def _save_counter(connection: Connection, counter: dict[str, Any]) -> None:
    values = {name: counter[name] for name in _COUNTER_FIELDS}
    if counter["exists"]:
        connection.execute(_UPDATE_COUNTER, {"counter_stream": counter["stream"], **values})
    else:
        connection.execute(_INSERT_COUNTER, {"stream": counter["stream"], **values})
