"""``<out>/pipeline/status.json``: what the pipeline has done, for the dashboard and for scripts.

Written atomically after every micro-batch and every check, by the pipeline process only; anyone may
read it (the service's ``GET /api/pipeline`` serves it).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from app.core import bronze
from app.core.timeline import format_timestamp
from app.medallion.state import GOLD_TABLES, State
from app.service.stats import lateness_summary

STATUS_FILE = "status.json"
LATENCY_SAMPLES = 1000  # the latest live batches the percentiles are taken over


def status_path(out: Path) -> Path:
    return out / "pipeline" / STATUS_FILE


def read_status(out: Path) -> dict[str, Any] | None:
    try:
        document: dict[str, Any] = orjson.loads(status_path(out).read_bytes())
        return document
    except (OSError, orjson.JSONDecodeError):
        return None


def iso_ms(ms: int | None) -> str | None:
    """Epoch milliseconds as the ISO 8601 UTC text every fleetgen document uses."""
    if ms is None:
        return None
    return format_timestamp(datetime.fromtimestamp(ms / 1000, UTC))


def document(state: State, about: dict[str, Any], started_ms: int, pending: int,
             check: dict[str, Any] | None) -> dict[str, Any]:
    con = state.con
    layers: dict[str, Any] = {"bronze": {}, "silver": {}, "gold": {}}
    for stream, batches, records, silver, quarantined, duplicates, last in con.execute("""
            SELECT stream, count(*), sum(records), sum(silver), sum(quarantined), sum(duplicates), max(batch_id)
            FROM progress GROUP BY stream ORDER BY stream""").fetchall():
        layers["bronze"][stream] = {"batches": batches, "records": int(records or 0), "last_batch": last}
        layers["silver"][stream] = {"rows": int(silver or 0), "quarantined": int(quarantined or 0),
                                    "duplicates_dropped": int(duplicates or 0), "last_batch": last}
    last_gold = con.execute("SELECT max(batch_id) FROM progress WHERE stream = 'events' AND gold_ms IS NOT NULL"
                            ).fetchall()[0][0]
    for table in GOLD_TABLES:
        rows = con.execute(f"SELECT count(*) FROM gold_{table}").fetchall()[0][0]
        layers["gold"][table] = {"rows": int(rows)}
    layers["gold"]["last_batch"] = last_gold
    samples = con.execute("""
        SELECT bronze_ms - window_end_ms, silver_ms - window_end_ms, gold_ms - window_end_ms FROM progress
        WHERE gold_ms IS NOT NULL AND bronze_ms >= ? ORDER BY window_end_ms DESC LIMIT ?""",
                          [started_ms, LATENCY_SAMPLES]).fetchall()
    reasons: dict[str, dict[str, int]] = {}
    for stream, reason, count in con.execute(
            "SELECT stream, reason, count(*) FROM quarantine GROUP BY ALL ORDER BY ALL").fetchall():
        reasons.setdefault(stream, {})[reason] = count
    processed = {stream: [[first, last] for first, last in runs]
                 for stream, runs in _runs(state).items()}
    return {
        **about, "pid": os.getpid(), "started_at": iso_ms(started_ms), "updated_at": iso_ms(int(time.time() * 1000)),
        "pending_batches": pending, "layers": layers,
        "latency_ms": {"samples": len(samples), "about": "window close → visible in each layer, over the "
                       f"latest {LATENCY_SAMPLES} batches published to bronze since the pipeline started",
                       "bronze": lateness_summary([s[0] for s in samples]),
                       "silver": lateness_summary([s[1] for s in samples]),
                       "gold": lateness_summary([s[2] for s in samples])},
        "quarantine_by_reason": reasons, "processed": processed, "check": check,
    }


def _runs(state: State) -> dict[str, list[tuple[str, str]]]:
    """Per stream, the processed batches as runs of consecutive windows [first, last] (a gap: a new run)."""
    rows = state.con.execute("""
        SELECT stream, batch_id,
               window_start_ms = lag(window_end_ms) OVER (PARTITION BY stream ORDER BY window_start_ms) AS continues
        FROM progress ORDER BY stream, window_start_ms""").fetchall()
    runs: dict[str, list[tuple[str, str]]] = {}
    for stream, batch_id, continues in rows:
        mine = runs.setdefault(stream, [])
        if mine and continues:
            mine[-1] = (mine[-1][0], batch_id)
        else:
            mine.append((batch_id, batch_id))
    return runs


def pipeline_view(out: Path) -> dict[str, Any]:
    """What ``GET /api/pipeline`` answers: the status document, and whether its process is alive."""
    doc = read_status(out)
    if doc is None:
        return {"running": False, "status": None,
                "note": "no pipeline has run on this data directory: start `fleetgen pipeline --config C` "
                        "(or `fleetgen run --with-pipeline`)"}
    running = doc.get("stopped_at") is None and _alive(doc.get("pid"))
    view: dict[str, Any] = {"running": running, "status": doc}
    if not running:
        view["note"] = "the pipeline is not running: this is what it had done when it stopped"
    return view


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write(out: Path, doc: dict[str, Any]) -> None:
    bronze.write_json_atomically(status_path(out), doc)
