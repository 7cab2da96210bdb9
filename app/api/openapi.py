"""The OpenAPI 3.0 document describing every endpoint the service answers."""

from __future__ import annotations

from typing import Any

from app import __version__

NULLABLE_STR = {"type": "string", "nullable": True}
NULLABLE_NUM = {"type": "number", "nullable": True}
TIMESTAMP = {"type": "string", "pattern": "^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d+)?Z$",
             "description": "ISO 8601, UTC, with Z"}
NULLABLE_TIMESTAMP = {**TIMESTAMP, "nullable": True}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _json(schema_ref: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}}


GENERATOR = {
    "type": "object",
    "required": ["total_batches", "last_batch_time", "idle_seconds", "next_run_time", "interval_seconds"],
    "properties": {
        "total_batches": {"type": "integer", "minimum": 0},
        "failed_batches": {"type": "integer", "minimum": 0},
        "skipped_windows": {"type": "integer", "minimum": 0},
        "total_records": {"type": "integer", "minimum": 0},
        "corrupted_records": {"type": "integer", "minimum": 0},
        "last_batch_time": NULLABLE_TIMESTAMP,
        "idle_seconds": NULLABLE_NUM,
        "next_run_time": NULLABLE_TIMESTAMP,
        "seconds_to_next_run": NULLABLE_NUM,
        "lateness_ms": {"type": "object", "description": "publish minus window end over the latest on-cadence "
                        "windows (up to 1,000)", "properties": {
                            "samples": {"type": "integer"}, "p50": NULLABLE_NUM, "p99": NULLABLE_NUM,
                            "max": NULLABLE_NUM}},
        "late_windows": {"type": "integer", "minimum": 0},
        "catch_up_windows": {"type": "integer", "minimum": 0},
        "interval_seconds": {"type": "integer", "minimum": 1},
        "last_firing_delay_ms": NULLABLE_NUM,
        "max_firing_delay_ms": NULLABLE_NUM,
        "batches_per_minute": {"type": "integer", "minimum": 0},
        "last_error": NULLABLE_STR,
        "last_interval_end": NULLABLE_TIMESTAMP,
    },
}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error", "detail", "timestamp"], "properties": {
        "error": {"type": "string"}, "detail": {"type": "string"}, "timestamp": TIMESTAMP}},
    "Health": {
        "type": "object",
        "required": ["status", "timestamp", "generation_mode", "uptime", "company_generator", "driver_generator",
                     "lifecycle", "auto_reinit", "quality", "reasons", "uptime_seconds", "start_time",
                     "company_batches", "driver_batches", "paused", "shutdown_requested", "last_company_time",
                     "last_driver_time", "auto_reinitialized", "reinit_company_time", "reinit_driver_batch_id",
                     "reinit_driver_time", "state"],
        "properties": {
            "status": {"type": "string", "enum": ["running", "paused", "degraded"]},
            "reasons": {"type": "array", "items": {"type": "string"},
                        "description": "why the status is degraded (empty otherwise)"},
            "timestamp": TIMESTAMP,
            "generation_mode": {"type": "string", "enum": ["production", "emulated"]},
            "uptime": {"type": "object", "required": ["seconds", "hours", "start_time"], "properties": {
                "seconds": {"type": "number"}, "hours": {"type": "number"}, "start_time": TIMESTAMP}},
            "company_generator": GENERATOR,
            "driver_generator": {**GENERATOR, "required": [*GENERATOR["required"], "last_interval_end"]},
            "lifecycle": {"type": "object", "required": ["paused", "shutdown_requested"], "properties": {
                "paused": {"type": "boolean"}, "shutdown_requested": {"type": "boolean"}}},
            "auto_reinit": {"type": "object", "required": ["performed", "at", "actions", "missing_files", "count"],
                            "properties": {
                                "performed": {"type": "boolean"}, "at": NULLABLE_TIMESTAMP,
                                "actions": {"type": "array", "items": {"type": "string"}},
                                "missing_files": {"type": "array", "items": {"type": "string"}},
                                "count": {"type": "integer"}, "last_at": NULLABLE_TIMESTAMP, "reason": NULLABLE_STR,
                                "in_progress": {"type": "boolean"},
                                "company_total": {"type": "integer", "nullable": True},
                                "first_driver_batch_events": {"type": "integer", "nullable": True}}},
            "catch_up": {"type": "object", "properties": {"finished_at": NULLABLE_TIMESTAMP}},
            "uptime_seconds": {"type": "number", "minimum": 0}, "start_time": TIMESTAMP,
            "company_batches": {"type": "integer", "minimum": 0}, "driver_batches": {"type": "integer", "minimum": 0},
            "paused": {"type": "boolean"}, "shutdown_requested": {"type": "boolean"},
            "last_company_time": NULLABLE_TIMESTAMP, "last_driver_time": NULLABLE_TIMESTAMP,
            "auto_reinitialized": {"type": "boolean"}, "reinit_company_time": NULLABLE_TIMESTAMP,
            "reinit_driver_batch_id": NULLABLE_STR, "reinit_driver_time": NULLABLE_TIMESTAMP,
            "state": {"type": "object", "required": ["last_saved", "state_file"], "properties": {
                "last_saved": NULLABLE_TIMESTAMP,
                "state_file": {"type": "string", "description": "the metadata store's URL, password masked"}}},
            "quality": {"type": "object", "required": ["enabled", "error_rate", "records", "corrupted_records",
                                                       "defect_percent", "by_type"],
                        "properties": {"enabled": {"type": "boolean"}, "error_rate": {"type": "number"},
                                       "records": {"type": "integer"}, "corrupted_records": {"type": "integer"},
                                       "defect_percent": {"type": "number"},
                                       "by_type": {"type": "object", "additionalProperties": {"type": "integer"}},
                                       "by_type_percent": {"type": "object",
                                                           "additionalProperties": {"type": "number"}}}},
            "seed": {"type": "integer"},
            "emulated_config": {
                "type": "object",
                "required": ["company_interval_seconds", "driver_interval_seconds", "companies_per_batch",
                             "events_per_batch_range"],
                "properties": {"company_interval_seconds": {"type": "integer"},
                               "driver_interval_seconds": {"type": "integer"},
                               "companies_per_batch": {"type": "integer"},
                               "events_per_batch_range": {"type": "array", "items": {"type": "integer"},
                                                          "minItems": 2, "maxItems": 2}}},
        },
    },
    "Control": {"type": "object",
                "required": ["success", "action", "status", "timestamp", "message", "error", "extra"],
                "properties": {
                    "success": {"type": "boolean"}, "action": {"type": "string", "enum": ["pause", "resume"]},
                    "status": {"type": "string", "enum": ["running", "paused"]},
                    "timestamp": TIMESTAMP, "message": NULLABLE_STR, "error": NULLABLE_STR,
                    "extra": {"type": "object", "nullable": True,
                              "description": "resume: the re-initialisation it started (auto_reinit, reason)"},
                    "changed": {"type": "boolean"}, "auto_reinit": {"type": "boolean"}}},
    "Clean": {"type": "object",
              "required": ["success", "action", "status", "timestamp", "message", "deleted_count", "deleted_items",
                           "errors", "filesRemoved", "durationMs"],
              "properties": {
                  "success": {"type": "boolean"}, "action": {"type": "string", "enum": ["clean"]},
                  "status": {"type": "string", "enum": ["paused"]}, "timestamp": TIMESTAMP,
                  "message": NULLABLE_STR, "error": NULLABLE_STR,
                  "deleted_count": {"type": "integer", "minimum": 0},
                  "deleted_items": {"type": "array", "items": {
                      "type": "object", "required": ["name", "path", "type", "size", "file_count"],
                      "properties": {"name": {"type": "string"},
                                     "path": {"type": "string", "description": "relative to the data directory"},
                                     "type": {"type": "string", "enum": ["batch", "staging", "manifest"]},
                                     "size": {"type": "integer", "minimum": 0},
                                     "file_count": {"type": "integer", "minimum": 0}}}},
                  "errors": {"type": "array", "items": {"type": "object", "required": ["name", "path", "error"],
                                                        "properties": {"name": {"type": "string"},
                                                                       "path": {"type": "string"},
                                                                       "error": {"type": "string"}}}},
                  "filesRemoved": {"type": "integer", "minimum": 0}, "durationMs": {"type": "integer", "minimum": 0},
                  "removed_batches": {"type": "integer"}, "removed_files": {"type": "integer"},
                  "skipped": {"type": "array", "items": {"type": "string"}}}},
    "Logs": {"type": "object", "required": ["entries", "totalReturned", "nextSince", "count", "logs"], "properties": {
        "entries": {"type": "array", "items": {
            "type": "object", "required": ["ts", "level", "message", "source", "context"],
            "properties": {"ts": TIMESTAMP,
                           "level": {"type": "string", "enum": ["debug", "info", "warning", "error", "critical"]},
                           "message": {"type": "string"}, "source": NULLABLE_STR,
                           "context": {"type": "object", "nullable": True}}}},
        "totalReturned": {"type": "integer", "minimum": 0},
        "nextSince": {**NULLABLE_STR, "description": "pass back as since to get only newer entries"},
        "count": {"type": "integer"},
        "logs": {"type": "array", "items": {"type": "object", "required": ["id", "timestamp", "level", "message"],
                                            "properties": {"id": {"type": "integer"}, "timestamp": TIMESTAMP,
                                                           "level": {"type": "string"}, "logger": {"type": "string"},
                                                           "message": {"type": "string"},
                                                           "fields": {"type": "object"}}}}}},
    "Batches": {"type": "object", "required": ["count", "batches"], "properties": {
        "count": {"type": "integer"},
        "batches": {"type": "array", "items": {"type": "object", "required": ["stream", "batch_id", "status"],
                                               "properties": {"stream": {"type": "string"},
                                                              "batch_id": {"type": "string"},
                                                              "status": {"type": "string"},
                                                              "record_count": {"type": "integer"},
                                                              "interval_start": TIMESTAMP,
                                                              "interval_end": TIMESTAMP,
                                                              "scheduled_at": NULLABLE_TIMESTAMP,
                                                              "started_at": NULLABLE_TIMESTAMP,
                                                              "finished_at": NULLABLE_TIMESTAMP,
                                                              "published_at": NULLABLE_TIMESTAMP}}}}},
    "Dataset": {"type": "object",
                "required": ["data_dir", "layout", "format", "record_globs", "schemas_dir", "snippets"],
                "properties": {
                    "data_dir": {"type": "string"}, "layout": {"type": "string", "enum": ["batch", "hive"]},
                    "format": {"type": "string"}, "schemas_dir": {"type": "string"},
                    "record_globs": {"type": "object", "required": ["companies", "events"],
                                     "additionalProperties": {"type": "string"}},
                    "snippets": {"type": "object", "required": ["duckdb", "polars", "spark"],
                                 "additionalProperties": {"type": "string"}}}},
    "Pipeline": {"type": "object", "required": ["running", "status"],
                 "properties": {"running": {"type": "boolean"}, "note": {"type": "string"},
                                "status": {"type": "object", "nullable": True, "properties": {
                                    "engine": {"type": "string"}, "pending_batches": {"type": "integer"},
                                    "layers": {"type": "object"}, "latency_ms": {"type": "object"},
                                    "quarantine_by_reason": {"type": "object"}, "processed": {"type": "object"},
                                    "check": {"type": "object", "nullable": True}}}}},
    "Chart": {"type": "object", "additionalProperties": {"type": "array", "items": {
        "type": "object", "properties": {"finished_at": NULLABLE_TIMESTAMP}}}},
}

LIMIT = {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1}}


def openapi_document() -> dict[str, Any]:
    bad = _error_response("Bad parameter")
    unauthorized = _error_response("Missing or wrong bearer token (only when api.token is set)")
    control = {"200": _json("Control"), "401": unauthorized}
    document: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "fleetgen API", "version": __version__,
                 "description": "Health, control and observability of a fleetgen service."},
        "components": {"schemas": SCHEMAS, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            "/api/health": {"get": {"summary": "Service state, read from memory and the store",
                                    "responses": {"200": _json("Health")}}},
            "/api/pause": {"post": {"summary": "Stop producing (idempotent); closing windows are recorded as skipped",
                                    "security": [{"bearer": []}], "responses": control}},
            "/api/resume": {"post": {"summary": "Continue at the next boundary (idempotent); re-initialises "
                                                "the baseline after a clean", "security": [{"bearer": []}],
                                     "responses": control}},
            "/api/clean": {"post": {"summary": "Remove everything fleetgen wrote (only while paused)",
                                    "security": [{"bearer": []}],
                                    "responses": {"200": _json("Clean"), "401": unauthorized,
                                                  "409": _error_response("The service is running")}}},
            "/api/logs": {"get": {
                "summary": "Recent log entries, newest first; level means that level and the ones above it",
                "parameters": [
                    {**LIMIT, "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 200}},
                    {"name": "since", "in": "query", "required": False,
                     "schema": {"type": "string"}, "description": "ISO 8601 timestamp or epoch seconds"},
                    {"name": "level", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL",
                                                           "debug", "info", "warning", "error", "critical"]}},
                ],
                "responses": {"200": _json("Logs"), "400": bad}}},
            "/api/batches": {"get": {
                "summary": "Latest ledger rows",
                "parameters": [{"name": "stream", "in": "query", "required": False,
                                "schema": {"type": "string", "enum": ["companies", "events"]}},
                               {**LIMIT, "schema": {"type": "integer", "minimum": 1, "maximum": 500}}],
                "responses": {"200": _json("Batches"), "400": bad}}},
            "/api/dataset": {"get": {"summary": "The data directory, its layout, record globs and copy-paste "
                                                "read snippets (DuckDB, Polars, Spark) for this config",
                                     "responses": {"200": _json("Dataset"), "401": unauthorized}}},
            "/api/pipeline": {"get": {"summary": "The reference pipeline's status on this data directory: rows per "
                                                 "layer, last batches, latency, quarantine, silver = expected check",
                                      "responses": {"200": _json("Pipeline"), "401": unauthorized}}},
            "/api/chart": {"get": {"summary": "Records and firing delay of recent batches, per stream",
                                   "responses": {"200": _json("Chart")}}},
            "/api/events": {"get": {"summary": "Server-Sent Events stream of batch and lifecycle events",
                                    "responses": {"200": {"description": "event stream",
                                                          "content": {"text/event-stream": {
                                                              "schema": {"type": "string"}}}}}}},
            "/api/openapi.json": {"get": {"summary": "This document",
                                          "responses": {"200": {"description": "OpenAPI document",
                                                                "content": {"application/json": {
                                                                    "schema": {"type": "object"}}}}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics",
                                 "responses": {"200": {"description": "text exposition format",
                                                       "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/": {"get": {"summary": "The dashboard",
                          "responses": {"200": {"description": "HTML page",
                                                "content": {"text/html": {"schema": {"type": "string"}}}}}}},
        },
    }
    for operations in document["paths"].values():
        for operation in operations.values():
            operation["responses"].setdefault("default", _error_response(
                "Any other error (404, 405, 413, 500...), always as JSON"))
    return document
