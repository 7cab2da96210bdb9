"""The dictionary's silver rules written as plain DuckDB SQL over bronze: the independent reference
that the generator's own outputs (issue log, `fleetgen expect`) are compared with in the tests."""

from __future__ import annotations

from pathlib import Path

import duckdb

from app.core.config import EVENT_TYPES, GEOGRAPHIES

TIMESTAMP_TEXT = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"
REQUIRED = {"events": ("company_id", "driver_id", "truck_id", "event_type", "event_timestamp", "location"),
            "companies": ("company_name", "geography", "active", "drivers_count", "onboarded_at", "updated_at")}
ID = {"events": "event_id", "companies": "company_id"}
TIME = {"events": "event_timestamp", "companies": "updated_at"}  # the one checked against the window
TIMESTAMPS = {"events": ("event_timestamp",), "companies": ("onboarded_at", "updated_at")}


def _enum(stream: str) -> tuple[str, tuple[str, ...]]:
    return ("event_type", EVENT_TYPES) if stream == "events" else ("geography", GEOGRAPHIES)


def classified(data_dir: Path, stream: str) -> str:
    """SQL: every record line of committed batches with its batch_id, id, JSON and ``reason`` (NULL when
    the record is valid, else the first rule it breaks, as a fleetgen reason code)."""
    root = Path(data_dir) / "raw" / stream
    missing = " ".join(
        f"WHEN json_type(j, '$.{f}') IS NULL THEN 'FIELD_REMOVED' WHEN json_type(j, '$.{f}') = 'NULL' "
        "THEN 'NULL_INJECTED'" for f in REQUIRED[stream])
    enum_field, domain = _enum(stream)
    values = ", ".join(f"'{v}'" for v in domain)
    time = TIME[stream]
    malformed = " ".join(
        f"WHEN NOT regexp_full_match(l.j ->> '$.{f}', '{TIMESTAMP_TEXT}') "
        f"OR try_strptime(l.j ->> '$.{f}', '%Y-%m-%dT%H:%M:%S.%gZ') IS NULL THEN 'TIMESTAMP_MALFORMED'"
        for f in TIMESTAMPS[stream])
    extra = ("WHEN (j ->> '$.location.lat')::DOUBLE NOT BETWEEN -90 AND 90 THEN 'LATITUDE_OUT_OF_RANGE' "
             "WHEN (j ->> '$.location.lon')::DOUBLE NOT BETWEEN -180 AND 180 THEN 'LONGITUDE_OUT_OF_RANGE'"
             if stream == "events" else
             "WHEN json_type(j, '$.active') <> 'BOOLEAN' THEN 'TYPE_MISMATCH' "
             "WHEN (j ->> '$.drivers_count')::BIGINT NOT BETWEEN 1 AND 9999 THEN 'NEGATIVE_COUNT'")
    return f"""
        WITH committed AS (
            SELECT regexp_extract(filename, '([0-9]{{8}}T[0-9]{{6}}Z)/_SUCCESS$', 1) AS batch_id
            FROM glob('{root}/*/_SUCCESS') AS g(filename)
        ), windows AS (
            SELECT json ->> '$.batch_id' AS batch_id,
                   strptime(json ->> '$.interval_start', '%Y-%m-%dT%H:%M:%S.%gZ') AS window_start,
                   strptime(coalesce(json ->> '$.accepts_from', json ->> '$.interval_start'),
                            '%Y-%m-%dT%H:%M:%S.%gZ') AS accepts_from,
                   strptime(json ->> '$.interval_end', '%Y-%m-%dT%H:%M:%S.%gZ') AS window_end
            FROM read_json_objects('{root}/*/_batch_meta.json', format='unstructured')
        ), lines AS (
            SELECT regexp_extract(filename, '([0-9]{{8}}T[0-9]{{6}}Z)/{stream}\\.jsonl$', 1) AS batch_id,
                   json AS j
            FROM read_ndjson_objects('{root}/*/{stream}.jsonl', filename=true)
        )
        SELECT l.batch_id, l.j ->> '$.{ID[stream]}' AS id, l.j AS record,
            CASE {missing}
                {malformed}
                WHEN l.j ->> '$.{enum_field}' NOT IN ({values}) THEN 'ENUM_OUT_OF_DOMAIN'
                WHEN strptime(l.j ->> '$.{time}', '%Y-%m-%dT%H:%M:%S.%gZ') < w.accepts_from
                     OR strptime(l.j ->> '$.{time}', '%Y-%m-%dT%H:%M:%S.%gZ') >= w.window_end
                    THEN 'TIMESTAMP_OUTSIDE_WINDOW'
                {extra}
            END AS reason,
            epoch_ms(w.window_end) - epoch_ms(w.window_start) AS interval_ms
        FROM lines l JOIN committed USING (batch_id) JOIN windows w USING (batch_id)
    """


def quarantine(data_dir: Path, stream: str) -> list[tuple[str, str, str]]:
    """(batch_id, id, reason) of every record the rules reject, sorted."""
    return sorted(duckdb.sql(f"SELECT batch_id, id, reason FROM ({classified(data_dir, stream)}) "
                             "WHERE reason IS NOT NULL").fetchall())


def silver_ids(data_dir: Path, stream: str) -> list[tuple[str, str]]:
    """(batch_id, id) of the valid records after deduplication by id, sorted."""
    return sorted(duckdb.sql(f"SELECT DISTINCT batch_id, id FROM ({classified(data_dir, stream)}) "
                             "WHERE reason IS NULL").fetchall())


def silver_rows(data_dir: Path, stream: str) -> str:
    """SQL: the silver table by the dictionary's rules, typed like `fleetgen expect`'s."""
    ts = f"strptime(record ->> '$.{TIME[stream]}', '%Y-%m-%dT%H:%M:%S.%gZ')::TIMESTAMP AT TIME ZONE 'UTC'"
    if stream == "events":
        columns = ("id AS event_id, record ->> '$.company_id' AS company_id, record ->> '$.driver_id' AS driver_id, "
                   "record ->> '$.truck_id' AS truck_id, record ->> '$.event_type' AS event_type, "
                   f"{ts} AS event_timestamp, (record ->> '$.location.lat')::DOUBLE AS \"location.lat\", "
                   "(record ->> '$.location.lon')::DOUBLE AS \"location.lon\", batch_id, "
                   f"make_timestamp((epoch_ms({ts}) // interval_ms * interval_ms) * 1000) AS own_window")
    else:
        columns = ("id AS company_id, record ->> '$.company_name' AS company_name, "
                   "record ->> '$.geography' AS geography, (record ->> '$.active')::BOOLEAN AS active, "
                   "(record ->> '$.drivers_count')::INTEGER AS drivers_count, "
                   "strptime(record ->> '$.onboarded_at', '%Y-%m-%dT%H:%M:%S.%gZ')::TIMESTAMP AT TIME ZONE 'UTC' "
                   f"AS onboarded_at, {ts} AS updated_at, batch_id")
    return f"SELECT DISTINCT {columns} FROM ({classified(data_dir, stream)}) WHERE reason IS NULL"


def gold_queries(silver_events: str) -> dict[str, str]:
    """SQL: the gold tables from a silver events relation (``location`` flattened or not) that has
    ``own_window``, the start of the window each event happened in (UTC, no time zone)."""
    return {
        "events_per_company_window_type":
            "SELECT company_id, own_window AT TIME ZONE 'UTC' AS window_start, "
            f"event_type, count(*)::BIGINT AS events FROM ({silver_events}) GROUP BY ALL",
        "deliveries_per_company_day":
            "SELECT company_id, (event_timestamp AT TIME ZONE 'UTC')::DATE AS day, count(*)::BIGINT AS deliveries "
            f"FROM ({silver_events}) WHERE event_type = 'delivered' GROUP BY ALL",
        "driver_day": f"""
            WITH ordered AS (
                SELECT company_id, driver_id, event_type, event_timestamp,
                       lag(event_type) OVER w AS previous_type, lag(event_timestamp) OVER w AS previous_at
                FROM ({silver_events}) WINDOW w AS (PARTITION BY driver_id ORDER BY event_timestamp, event_id)
            ), legs AS (
                SELECT *, event_type = 'stopped_driving' AND previous_type = 'start_driving' AS trip FROM ordered
            )
            SELECT company_id, driver_id, (event_timestamp AT TIME ZONE 'UTC')::DATE AS day,
                   count(*) FILTER (WHERE trip)::BIGINT AS trips,
                   coalesce(sum(epoch_ms(event_timestamp) - epoch_ms(previous_at)) FILTER (WHERE trip), 0)::BIGINT
                       AS driving_ms,
                   coalesce(sum(epoch_ms(event_timestamp) - epoch_ms(previous_at)) FILTER (WHERE trip), 0)::DOUBLE
                       / 60000 AS driving_minutes,
                   count(*) FILTER (WHERE event_type = 'stopped_driving')::BIGINT AS stops,
                   count(*) FILTER (WHERE event_type = 'delivered')::BIGINT AS deliveries
            FROM legs GROUP BY ALL""",
    }
