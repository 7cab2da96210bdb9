"""The seed system's wire contract for control and log responses (its SPA and scripts parse these).

Field names and types are the seed's; fleetgen's own fields stay beside them (additive only).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.core.timeline import format_timestamp, iso_or_none

CONTRACT_LEVELS = ("info", "warning", "error")


def now_iso() -> str:
    return format_timestamp(datetime.now(UTC))


def iso_micro(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def control(action: str, result: dict[str, Any]) -> dict[str, Any]:
    """POST /api/pause and /api/resume: {success, action, status, timestamp, message, error, extra}."""
    changed = bool(result.get("changed"))
    if action == "pause":
        message = "paused: no window is produced until resume" if changed else "already paused"
        extra = None
    else:
        reinit = bool(result.get("auto_reinit"))
        message = "resumed: production continues at the next boundary" if changed else "already running"
        if reinit:
            message += "; the baseline is being re-initialised (nothing committed since the clean)"
        extra = {"auto_reinit": reinit,
                 "reason": "no company window committed since the last clean" if reinit else None}
    return {"success": True, "action": action, "status": result["status"], "timestamp": now_iso(),
            "message": message, "error": None, "extra": extra, **result}


def clean(result: dict[str, Any]) -> dict[str, Any]:
    """POST /api/clean: the seed's report of what was deleted, plus fleetgen's own counts."""
    removed = result["deleted_count"]
    message = (f"removed {result['removed_batches']} batches and {removed - result['removed_batches']} other "
               f"items ({result['filesRemoved']} files)" if removed else "nothing to remove")
    if result["errors"]:
        message += f"; {len(result['errors'])} could not be removed (see errors)"
    return {**result, "success": not result["errors"], "action": "clean", "status": "paused",
            "timestamp": now_iso(), "message": message, "error": None if not result["errors"] else
            f"{len(result['errors'])} items could not be removed"}


def logs(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """GET /api/logs: the seed's {entries, totalReturned, nextSince}, plus fleetgen's {count, logs}.

    ``nextSince`` is just after the newest entry returned (microsecond precision): passing it back as
    ``since`` returns only newer entries. None when nothing was returned."""
    wire = [{"ts": iso_or_none(e["created"]), "level": e["level"].lower(), "message": e["message"],
             "source": e.get("logger"), "context": e.get("fields") or None} for e in entries]
    newest = max((e["created"] for e in entries), default=None)
    legacy = [{**{k: v for k, v in e.items() if k != "created"}, "timestamp": iso_or_none(e["created"])}
              for e in entries]
    return {"entries": wire, "totalReturned": len(wire),
            "nextSince": iso_micro(newest + 1e-6) if newest is not None else None,
            "count": len(legacy), "logs": legacy}
