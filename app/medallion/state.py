"""The pipeline's own state: a DuckDB database holding silver, quarantine, gold and the progress ledger.

A micro-batch (one or more committed bronze batches) is applied in one DuckDB transaction: its valid
records into silver (deduplicated by key, against what silver already holds too), its rejected records
into quarantine, the gold rows it changes, and one progress row per bronze batch. A crash before the
commit leaves nothing of it (DuckDB's write-ahead log), after the commit everything: each batch is
counted exactly once, whatever instant the process dies at. The Parquet tables users read are
published from here afterwards (``publish``); what is still to publish is itself recorded in the
same transaction, so a restart finishes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from app.medallion import rules

STATE_VERSION = 1
FAST_READ_MIN_RECORDS = 20_000  # below this many lines the exact classification alone is quicker
SILVER_KEY = {"events": ("event_id",), "companies": ("company_id", "updated_at")}
GOLD_TABLES = ("events_per_company_window_type", "deliveries_per_company_day", "driver_day")
GOLD_KEY = {"events_per_company_window_type": ("company_id", "window_start", "event_type"),
            "deliveries_per_company_day": ("company_id", "day"), "driver_day": ("company_id", "driver_id", "day")}
GOLD_DAY = {"events_per_company_window_type": "(window_start AT TIME ZONE 'UTC')::DATE",
            "deliveries_per_company_day": "day", "driver_day": "day"}  # each gold table's partition day

# Another engine's classification of a stream's batches: (valid rows typed like silver, rejected rows
# as batch_id, line, record_id, reason, record).
SilverSource = Callable[[str, list[rules.BronzeBatch]], tuple[pa.Table, pa.Table]]

_DDL = """
CREATE TABLE IF NOT EXISTS state_info (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS progress (
    stream VARCHAR, batch_id VARCHAR, sha256 VARCHAR, records BIGINT, silver BIGINT, quarantined BIGINT,
    duplicates BIGINT, window_start_ms BIGINT, window_end_ms BIGINT, bronze_ms BIGINT, committed_ms BIGINT,
    silver_ms BIGINT, gold_ms BIGINT, micro_batch BIGINT, PRIMARY KEY (stream, batch_id));
CREATE TABLE IF NOT EXISTS silver_events (
    event_id VARCHAR, company_id VARCHAR, driver_id VARCHAR, truck_id VARCHAR, event_type VARCHAR,
    event_timestamp TIMESTAMPTZ, location STRUCT(lat DOUBLE, lon DOUBLE), batch_id VARCHAR, window_start TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS silver_companies (
    company_id VARCHAR, company_name VARCHAR, geography VARCHAR, active BOOLEAN, drivers_count INTEGER,
    onboarded_at TIMESTAMPTZ, updated_at TIMESTAMPTZ, batch_id VARCHAR);
CREATE TABLE IF NOT EXISTS quarantine (
    stream VARCHAR, batch_id VARCHAR, line BIGINT, record_id VARCHAR, reason VARCHAR, record VARCHAR);
CREATE TABLE IF NOT EXISTS gold_events_per_company_window_type (
    company_id VARCHAR, window_start TIMESTAMPTZ, event_type VARCHAR, events BIGINT,
    PRIMARY KEY (company_id, window_start, event_type));
CREATE TABLE IF NOT EXISTS gold_deliveries_per_company_day (
    company_id VARCHAR, day DATE, deliveries BIGINT, PRIMARY KEY (company_id, day));
CREATE TABLE IF NOT EXISTS gold_driver_day (
    company_id VARCHAR, driver_id VARCHAR, day DATE, trips BIGINT, driving_ms BIGINT, driving_minutes DOUBLE,
    stops BIGINT, deliveries BIGINT, PRIMARY KEY (company_id, driver_id, day));
CREATE TABLE IF NOT EXISTS unpublished_gold (gold_table VARCHAR, day DATE);
"""


@dataclass
class Applied:
    """What one micro-batch did: its bronze batches, and per stream the rows it put in silver and quarantine."""
    micro_batch: int
    batches: list[rules.BronzeBatch]
    silver: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class RewrittenBronze(Exception):
    """A bronze batch already processed was written again with other bytes (cleaned and regenerated)."""


MEMORY_LIMIT = "1GB"


class State:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Bounded beside the generator: beyond it DuckDB spills to <state>.tmp (6.5 M records in micro-batches of
        # 2 M: 1.25 GB peak RSS and ~18 % slower, against 4 GB without a limit).
        self.con = duckdb.connect(str(path), config={"memory_limit": MEMORY_LIMIT})
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute(_DDL)
        self.con.execute("INSERT OR IGNORE INTO state_info VALUES ('version', ?)", [str(STATE_VERSION)])

    def close(self) -> None:
        self.con.close()

    def processed(self) -> dict[tuple[str, str], str]:
        """(stream, batch_id) → sha256 of every bronze batch already applied."""
        return {(s, b): h for s, b, h in self.con.execute("SELECT stream, batch_id, sha256 FROM progress").fetchall()}

    def _next_micro_batch(self) -> int:
        return int(self.con.execute("SELECT coalesce(max(micro_batch), 0) + 1 FROM progress").fetchall()[0][0])

    def apply(self, batches: list[rules.BronzeBatch], silver_of: SilverSource | None = None) -> Applied:
        """One transaction: silver, quarantine, gold and progress for ``batches`` (none processed before).
        ``silver_of`` supplies already classified rows (another engine); by default DuckDB classifies."""
        began = time.perf_counter()
        con = self.con
        applied = Applied(self._next_micro_batch(), batches)
        streams = {s: [b for b in batches if b.stream == s] for s in ("companies", "events")}
        streams = {s: mine for s, mine in streams.items() if mine}
        # Reading bronze touches no table of the state: it happens before the transaction, so a file the
        # fast reader refuses can be read again exactly (an error inside a transaction aborts it).
        for stream, mine in streams.items():
            if silver_of is None:
                self._classify(stream, mine)
            else:
                valid, rejected = silver_of(stream, mine)
                con.register("valid_in", valid)
                con.register("rejected_in", rejected)
                con.execute("CREATE OR REPLACE TEMP TABLE valid AS SELECT * FROM valid_in")
                con.execute("CREATE OR REPLACE TEMP TABLE rejected AS SELECT * FROM rejected_in")
                con.unregister("valid_in")
                con.unregister("rejected_in")
            for name in ("valid", "rejected"):
                con.execute(f"DROP TABLE IF EXISTS {name}_{stream}")
                con.execute(f"ALTER TABLE {name} RENAME TO {name}_{stream}")
        con.execute("BEGIN TRANSACTION")
        try:
            for stream, mine in streams.items():
                self._insert_silver(stream)
                con.execute(f"INSERT INTO quarantine SELECT '{stream}', batch_id, line, record_id, reason, record "
                            f"FROM rejected_{stream}")
                applied.silver[stream] = _count(con, "fresh")
                applied.quarantined[stream] = _count(con, f"rejected_{stream}")
                if stream == "events":
                    self._update_gold()
                self._record_progress(stream, mine, applied.micro_batch)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        applied.seconds = time.perf_counter() - began
        return applied

    def _classify(self, stream: str, batches: list[rules.BronzeBatch]) -> None:
        """``valid`` (typed like silver) and ``rejected`` (with reason, line and raw text) for the batches'
        lines: every line through the fast typed read, the lines it flags classified again exactly from
        their raw text. Small micro-batches, and files the fast read refuses, are classified exactly."""
        con = self.con
        if sum(b.record_count for b in batches) < FAST_READ_MIN_RECORDS:
            self._classify_exactly(stream, batches)  # one pass: fewer statements, and little to parse
            return
        try:  # stored in file order (insertion order is preserved), so a row's place gives its line
            con.execute(f"""CREATE OR REPLACE TEMP TABLE lines AS
                SELECT reason, {rules.typed_columns(stream)} FROM ({rules.typed_read_sql(stream, batches)})""")
        except duckdb.Error:
            self._classify_exactly(stream, batches)
            return
        con.execute("""CREATE OR REPLACE TEMP TABLE suspects AS
            WITH firsts AS (SELECT batch_id, min(rowid) AS first FROM lines GROUP BY batch_id)
            SELECT batch_id, rowid - first + 1 AS line FROM lines JOIN firsts USING (batch_id)
            WHERE reason IS NOT NULL""")
        con.execute("CREATE OR REPLACE TEMP TABLE valid AS SELECT * EXCLUDE (reason) FROM lines WHERE reason IS NULL")
        flagged = {row[0] for row in con.execute("SELECT DISTINCT batch_id FROM suspects").fetchall()}
        exact = [b for b in batches if b.batch_id in flagged]
        if not exact:
            con.execute("CREATE OR REPLACE TEMP TABLE rejected AS SELECT batch_id, line, NULL::VARCHAR AS record_id, "
                        "NULL::VARCHAR AS reason, NULL::VARCHAR AS record FROM suspects")
            return
        con.execute(f"""CREATE OR REPLACE TEMP TABLE rejected AS
            SELECT batch_id, line, record_id, reason, record::VARCHAR AS record
            FROM ({rules.classified_sql(stream, exact, only="suspects")}) WHERE reason IS NOT NULL""")
        suspects, rejected = _count(con, "suspects"), _count(con, "rejected")
        if suspects != rejected:  # the two readings disagree: refuse rather than lose a line
            raise RuntimeError(f"{stream}: {suspects} lines flagged by the typed read, {rejected} rejected by the "
                               "exact classification")

    def _classify_exactly(self, stream: str, batches: list[rules.BronzeBatch]) -> None:
        con = self.con
        con.execute(f"""CREATE OR REPLACE TEMP TABLE lines AS
            SELECT line, record_id, reason, CASE WHEN reason IS NOT NULL THEN record::VARCHAR END AS record,
                   {rules.typed_columns(stream)}
            FROM ({rules.classified_sql(stream, batches)})""")
        con.execute("CREATE OR REPLACE TEMP TABLE rejected AS SELECT batch_id, line, record_id, reason, record "
                    "FROM lines WHERE reason IS NOT NULL")
        con.execute("CREATE OR REPLACE TEMP TABLE valid AS SELECT * EXCLUDE (line, record_id, reason, record) "
                    "FROM lines WHERE reason IS NULL")

    def _insert_silver(self, stream: str) -> None:
        """The valid records not already in silver (one copy per key) into ``fresh`` and silver. Copies
        of a key are identical, time included, so silver is searched only over the batch's time range
        (its zone maps skip the rest: the cost does not grow with silver)."""
        key = SILVER_KEY[stream]
        on = " AND ".join(f"s.{k} = v.{k}" for k in key)
        time_column = rules.WINDOW_FIELD[stream]
        valid = f"valid_{stream}"
        rows, keys = self.con.execute(f"SELECT count(*), count(DISTINCT ({', '.join(key)})) FROM {valid}").fetchall()[0]
        columns = ", ".join(key)
        # counting keys is far cheaper than deduplicating; when some repeat, only their rows are deduplicated
        once = f"SELECT * FROM {valid}" if keys == rows else f"""
            SELECT * FROM {valid} WHERE ({columns}) NOT IN (SELECT ({columns}) FROM repeated) UNION ALL
            SELECT * FROM (SELECT * FROM {valid} WHERE ({columns}) IN (SELECT ({columns}) FROM repeated)
                           QUALIFY row_number() OVER (PARTITION BY {columns}) = 1)"""
        if keys < rows:
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE repeated AS SELECT {columns} FROM {valid} "
                             f"GROUP BY ALL HAVING count(*) > 1")
        self.con.execute(f"""
            CREATE OR REPLACE TEMP TABLE fresh AS
            WITH once AS ({once}),
                 span AS (SELECT min({time_column}) AS low, max({time_column}) AS high FROM once)
            SELECT v.* FROM once v WHERE NOT EXISTS (
                SELECT 1 FROM silver_{stream} s, span
                WHERE s.{time_column} BETWEEN span.low AND span.high AND {on})""")
        self.con.execute(f"INSERT INTO silver_{stream} SELECT * FROM fresh")

    def _record_progress(self, stream: str, batches: list[rules.BronzeBatch], micro_batch: int) -> None:
        now_ms = int(time.time() * 1000)
        values = ", ".join(
            f"('{stream}', '{b.batch_id}', '{b.sha256}', {b.record_count}, {b.window_start_ms}, {b.window_end_ms}, "
            f"{b.published_ms}, {now_ms}, {micro_batch})" for b in batches)  # ids and digests: [0-9A-Za-z]
        self.con.execute(f"""
            INSERT INTO progress (stream, batch_id, sha256, records, window_start_ms, window_end_ms, bronze_ms,
                                  committed_ms, micro_batch, silver, quarantined, duplicates)
            SELECT b.*, coalesce(f.n, 0), coalesce(r.n, 0), b.records - coalesce(f.n, 0) - coalesce(r.n, 0)
            FROM (VALUES {values}) b(stream, batch_id, sha256, records, window_start_ms, window_end_ms, bronze_ms,
                                     committed_ms, micro_batch)
            LEFT JOIN (SELECT batch_id, count(*) AS n FROM fresh GROUP BY ALL) f USING (batch_id)
            LEFT JOIN (SELECT batch_id, count(*) AS n FROM rejected_{stream} GROUP BY ALL) r USING (batch_id)""")

    def _update_gold(self) -> None:
        """Gold rows changed by the ``fresh`` silver events: counts are added to; a driver's days from
        the earliest new event on are recomputed from the driver's silver events (a late event can change
        which legs are trips), starting at the driver's last event before that day (so a leg begun the
        day before is seen). The UTC days each table changed are recorded as still to publish."""
        con = self.con
        touched: dict[str, list[Any]] = {}
        touched["events_per_company_window_type"] = _days(con.execute("""
            INSERT INTO gold_events_per_company_window_type
            SELECT company_id, window_start, event_type, count(*) FROM fresh GROUP BY ALL
            ON CONFLICT DO UPDATE SET events = events + excluded.events
            RETURNING (window_start AT TIME ZONE 'UTC')::DATE""").fetchall())
        touched["deliveries_per_company_day"] = _days(con.execute("""
            INSERT INTO gold_deliveries_per_company_day
            SELECT company_id, (event_timestamp AT TIME ZONE 'UTC')::DATE, count(*) FROM fresh
            WHERE event_type = 'delivered' GROUP BY ALL
            ON CONFLICT DO UPDATE SET deliveries = deliveries + excluded.deliveries
            RETURNING day""").fetchall())
        touched["driver_day"] = _days(con.execute("""
            WITH drivers AS (
                SELECT driver_id, min((event_timestamp AT TIME ZONE 'UTC')::DATE) AS from_day FROM fresh GROUP BY ALL
            ), anchors AS (
                SELECT d.driver_id, d.from_day,
                       coalesce(max(s.event_timestamp) FILTER (WHERE s.event_timestamp < d.from_day::TIMESTAMPTZ),
                                d.from_day::TIMESTAMPTZ) AS anchor
                FROM drivers d JOIN silver_events s USING (driver_id) GROUP BY d.driver_id, d.from_day
            ), ordered AS (
                SELECT s.company_id, s.driver_id, s.event_type, s.event_timestamp, a.from_day,
                       lag(s.event_type) OVER w AS previous_type, lag(s.event_timestamp) OVER w AS previous_at
                FROM silver_events s JOIN anchors a ON s.driver_id = a.driver_id AND s.event_timestamp >= a.anchor
                WINDOW w AS (PARTITION BY s.driver_id ORDER BY s.event_timestamp, s.event_id)
            ), legs AS (
                SELECT *, (event_type = 'stopped_driving' AND previous_type = 'start_driving') AS trip,
                       (event_timestamp AT TIME ZONE 'UTC')::DATE AS day FROM ordered
            )
            INSERT INTO gold_driver_day
            SELECT company_id, driver_id, day,
                   count(*) FILTER (WHERE trip),
                   coalesce(sum(epoch_ms(event_timestamp) - epoch_ms(previous_at)) FILTER (WHERE trip), 0),
                   coalesce(sum(epoch_ms(event_timestamp) - epoch_ms(previous_at)) FILTER (WHERE trip), 0)::DOUBLE
                       / 60000,
                   count(*) FILTER (WHERE event_type = 'stopped_driving'),
                   count(*) FILTER (WHERE event_type = 'delivered')
            FROM legs WHERE day >= from_day GROUP BY ALL
            ON CONFLICT DO UPDATE SET trips = excluded.trips, driving_ms = excluded.driving_ms,
                driving_minutes = excluded.driving_minutes, stops = excluded.stops, deliveries = excluded.deliveries
            RETURNING day""").fetchall())
        rows = [(table, day) for table, days in touched.items() for day in days]
        if rows:
            con.execute("INSERT INTO unpublished_gold VALUES " + ", ".join(
                f"('{table}', DATE '{day.isoformat()}')" for table, day in rows))

    # -- publishing bookkeeping -------------------------------------------------------------------------

    def unpublished_silver(self) -> list[tuple[str, str]]:
        return [(s, b) for s, b in self.con.execute(
            "SELECT stream, batch_id FROM progress WHERE silver_ms IS NULL ORDER BY stream, batch_id").fetchall()]

    def unpublished_gold(self) -> list[tuple[str, Any]]:
        return [(t, d) for t, d in self.con.execute(
            "SELECT DISTINCT gold_table, day FROM unpublished_gold ORDER BY ALL").fetchall()]

    def mark_published(self, silver: list[tuple[str, str]], gold: list[tuple[str, Any]], silver_ms: int,
                       gold_ms: int) -> None:
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            if silver:
                con.executemany("UPDATE progress SET silver_ms = ?, gold_ms = ? WHERE stream = ? AND batch_id = ?",
                                [(silver_ms, gold_ms, s, b) for s, b in silver])
            if gold:
                con.executemany("DELETE FROM unpublished_gold WHERE gold_table = ? AND day = ?", gold)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def copy_silver(self, stream: str, batch_id: str, path: Path) -> bool:
        """A batch's silver rows as a Parquet file at ``path``; False when it has none."""
        return self._copy(f"SELECT * FROM silver_{stream} WHERE batch_id = $1", [batch_id], path)

    def copy_quarantine(self, stream: str, batch_id: str, path: Path) -> bool:
        return self._copy("SELECT * FROM quarantine WHERE stream = $1 AND batch_id = $2 ORDER BY line",
                          [stream, batch_id], path)

    def copy_gold(self, table: str, day: Any, path: Path) -> bool:
        key = ", ".join(GOLD_KEY[table])
        return self._copy(f"SELECT * FROM gold_{table} WHERE {GOLD_DAY[table]} = $1 ORDER BY {key}", [day], path)

    def _copy(self, query: str, parameters: list[Any], path: Path) -> bool:
        """``query``'s rows as a Parquet file at ``path``, written by DuckDB's own Parquet writer (in
        parallel, the rows never pass through Python); whether there were any."""
        target = str(path).replace("'", "''")
        written = self.con.execute(f"COPY ({query}) TO '{target}' (FORMAT parquet)", parameters).fetchall()
        return bool(written and written[0][0])


def _days(rows: list[Any]) -> list[Any]:
    return sorted({row[0] for row in rows})


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
