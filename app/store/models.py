"""SQLAlchemy models of the metadata store: batch ledger, company roster, lifecycle state, logs."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

PENDING, COMMITTED, FAILED, SKIPPED = "pending", "committed", "failed", "skipped"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Batch(Base):
    """One ledger row per (stream, window); a skipped row may span several windows."""

    __tablename__ = "batches"
    __table_args__ = (
        UniqueConstraint("stream", "interval_start"),
        Index("ix_batches_stream_end", "stream", "interval_end"),
        Index("ix_batches_stream_status_end", "stream", "status", "interval_end"),  # open rows
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stream: Mapped[str] = mapped_column(String(16))
    batch_id: Mapped[str] = mapped_column(String(16))
    interval_start: Mapped[int] = mapped_column(BigInteger)  # epoch seconds
    interval_end: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    generation_mode: Mapped[str | None] = mapped_column(String(12))
    record_count: Mapped[int] = mapped_column(Integer, default=0)
    valid_count: Mapped[int] = mapped_column(Integer, default=0)
    corrupted_count: Mapped[int] = mapped_column(Integer, default=0)
    issue_counts: Mapped[dict | None] = mapped_column(JSON)
    scheduled_at: Mapped[float | None] = mapped_column(Float)  # epoch seconds of the boundary
    started_at: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)
    duration_s: Mapped[float | None] = mapped_column(Float)
    firing_delay_s: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(32))  # the writer holding a pending claim
    published_at: Mapped[float | None] = mapped_column(Float)  # the batch became visible (epoch s)
    lateness_ms: Mapped[float | None] = mapped_column(Float)  # published_at - interval_end
    catch_up: Mapped[bool | None] = mapped_column(Boolean)  # produced after its cadence slot had passed


class Company(Base):
    """The roster: every committed company, in onboarding order."""

    __tablename__ = "companies"
    __table_args__ = (Index("ix_companies_batch_end", "batch_end"),)

    company_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    batch_start: Mapped[int] = mapped_column(BigInteger)
    batch_end: Mapped[int] = mapped_column(BigInteger)
    ordinal: Mapped[int] = mapped_column(Integer)
    company_name: Mapped[str] = mapped_column(String(200))
    geography: Mapped[str] = mapped_column(String(8))
    active: Mapped[bool] = mapped_column(Boolean)
    drivers_count: Mapped[int] = mapped_column(Integer)
    onboarded_at_ms: Mapped[int] = mapped_column(BigInteger)


class StreamCounter(Base):
    """Cumulative totals per stream, kept in the commit's transaction so reading them is O(1)."""

    __tablename__ = "stream_counters"

    stream: Mapped[str] = mapped_column(String(16), primary_key=True)
    committed_batches: Mapped[int] = mapped_column(Integer, default=0)
    skipped_ranges: Mapped[int] = mapped_column(Integer, default=0)
    records: Mapped[int] = mapped_column(BigInteger, default=0)
    corrupted: Mapped[int] = mapped_column(BigInteger, default=0)
    issue_counts: Mapped[dict | None] = mapped_column(JSON)
    last_interval_end: Mapped[int | None] = mapped_column(BigInteger)
    last_finished_at: Mapped[float | None] = mapped_column(Float)


class StateEntry(Base):
    """Lifecycle state that must survive a restart (paused, last auto re-initialisation...)."""

    __tablename__ = "state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict | None] = mapped_column(JSON)


class LogEntry(Base):
    __tablename__ = "log_entries"
    __table_args__ = (Index("ix_log_entries_created", "created"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created: Mapped[float] = mapped_column(Float)
    level: Mapped[str] = mapped_column(String(10))
    logger: Mapped[str] = mapped_column(String(100))
    message: Mapped[str] = mapped_column(Text)
    fields: Mapped[dict | None] = mapped_column(JSON)
