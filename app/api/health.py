"""The health document (`GET /api/health`), built from the service's typed snapshot."""

from __future__ import annotations

from typing import Any

from app.core.timeline import format_timestamp, iso_or_none
from app.service.service import ServiceSnapshot

GENERATOR_KEYS = {"companies": "company_generator", "events": "driver_generator"}


def health_document(snap: ServiceSnapshot) -> dict[str, Any]:
    uptime = max(0.0, (snap.now - snap.started_at).total_seconds())
    generators = {}
    for stream, key in GENERATOR_KEYS.items():
        entry = dict(snap.streams[stream])
        entry["interval_seconds"] = int(snap.intervals[stream].total_seconds())
        next_run = snap.next_runs[stream]
        entry["next_run_time"] = format_timestamp(next_run) if next_run else None
        entry["seconds_to_next_run"] = round((next_run - snap.now).total_seconds(), 3) if next_run else None
        entry.pop("last_interval_end_s", None)
        if stream == "companies":
            entry.pop("last_interval_end", None)
        generators[key] = entry
    config = snap.config
    quality = config.quality_injection
    catch_up = snap.catch_up
    body: dict[str, Any] = {
        "status": snap.status,
        "reasons": snap.reasons,
        "timestamp": format_timestamp(snap.now),
        "generation_mode": config.generation_mode,
        "uptime": {"seconds": round(uptime, 3), "hours": round(uptime / 3600, 4),
                   "start_time": format_timestamp(snap.started_at)},
        **generators,
        "lifecycle": {"paused": snap.paused, "shutdown_requested": snap.shutdown_requested},
        "auto_reinit": snap.auto_reinit,
        "catch_up": {"running": catch_up.running, "stream": catch_up.stream,
                     "windows_done": catch_up.windows_done, "finished_at": iso_or_none(catch_up.finished_at)},
        "quality": {"enabled": quality.enabled, "error_rate": quality.error_rate, **snap.quality},
        "seed": config.seed,
    }
    body.update(_seed_keys(snap, uptime))
    if config.emulated_mode.enabled:
        em = config.emulated_mode
        body["emulated_config"] = {
            "company_interval_seconds": int(em.company_batch_interval.total_seconds()),
            "driver_interval_seconds": int(em.driver_batch_interval.total_seconds()),
            "companies_per_batch": em.companies_per_batch,
            "events_per_batch_range": [em.events_per_batch_min, em.events_per_batch_max],
        }
    return body


def _seed_keys(snap: ServiceSnapshot, uptime: float) -> dict[str, Any]:
    """The seed blueprint's flat keys, which its SPA parses (beside fleetgen's nested ones)."""
    companies, events = snap.streams["companies"], snap.streams["events"]
    reinit = snap.auto_reinit
    saved = [t for t in (companies.get("last_batch_time"), events.get("last_batch_time")) if t]
    return {
        "uptime_seconds": round(uptime, 3), "start_time": format_timestamp(snap.started_at),
        "company_batches": int(companies.get("total_batches", 0)),
        "driver_batches": int(events.get("total_batches", 0)),
        "paused": snap.paused, "shutdown_requested": snap.shutdown_requested,
        "last_company_time": companies.get("last_batch_time"), "last_driver_time": events.get("last_batch_time"),
        "auto_reinitialized": reinit["performed"],
        "reinit_company_time": reinit.get("reinit_company_time"),
        "reinit_driver_batch_id": reinit.get("reinit_driver_batch_id"),
        "reinit_driver_time": reinit.get("reinit_driver_time"),
        "state": {"last_saved": max(saved) if saved else None, "state_file": snap.state_file},
    }
