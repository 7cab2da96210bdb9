"""The /api blueprint: health, control, logs, batches, live events."""

from __future__ import annotations

import hmac
import queue
import time
from functools import wraps

import orjson
from flask import Blueprint, Response, current_app, request

from app.api import wire
from app.api.errors import ApiError
from app.api.health import health_document
from app.core.timeline import parse_timestamp
from app.service.logs import LEVELS

bp = Blueprint("api", __name__, url_prefix="/api")
MAX_LOG_LIMIT = 500
DEFAULT_LOG_LIMIT = 200
MAX_BATCH_LIMIT = 500
SSE_HEARTBEAT_S = 15.0
MAX_LIVE_STREAMS = 8  # the WSGI server runs 16 threads
MAX_EPOCH_S = 253_402_300_799  # 9999-12-31T23:59:59Z


def service():
    return current_app.extensions["fleetgen.service"]


def json_response(body, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def check_token() -> None:
    """With api.token set: `Authorization: Bearer <token>` (the live event stream may also pass it as
    `?access_token=`, since a browser's EventSource cannot send headers)."""
    token = service().config.api.token
    if not token:
        return
    given = request.headers.get("Authorization", "")
    supplied = given[7:] if given.startswith("Bearer ") else None
    if supplied is None and request.path == "/api/events":
        supplied = request.args.get("access_token")
    if supplied is None or not hmac.compare_digest(supplied.encode(), token.encode()):
        raise ApiError(401, "unauthorized", "this endpoint needs 'Authorization: Bearer <token>' "
                                            "with the token from api.token")


def requires_token(view):
    """A state-changing call: always needs the token when one is configured."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        check_token()
        return view(*args, **kwargs)

    return wrapper


def reads_protected(view):
    """A read of logs or data: needs the token when api.protect_reads is set."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if service().config.api.protect_reads:
            check_token()
        return view(*args, **kwargs)

    return wrapper


@bp.get("/health")
def health():
    return json_response(health_document(service().snapshot()))


@bp.post("/pause")
@requires_token
def pause():
    return json_response(wire.control("pause", service().pause()))


@bp.post("/resume")
@requires_token
def resume():
    return json_response(wire.control("resume", service().resume()))


@bp.post("/clean")
@requires_token
def clean():
    return json_response(wire.clean(service().clean()))


def int_param(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "bad_request", f"{name}: {raw[:50]!r} is not an integer") from None
    if not low <= value <= high:
        raise ApiError(400, "bad_request", f"{name}: {value} is outside {low}..{high}")
    return value


def since_param() -> float | None:
    raw = request.args.get("since")
    if raw is None or raw == "":
        return None
    try:
        value = float(raw) if raw.replace(".", "", 1).isdigit() else parse_timestamp(raw).timestamp()
    except (ValueError, OverflowError):
        raise ApiError(400, "bad_request", f"since: {raw[:50]!r} is neither an ISO 8601 timestamp "
                                           "(2026-11-25T20:00:00Z) nor epoch seconds") from None
    if not 0 <= value <= MAX_EPOCH_S:
        raise ApiError(400, "bad_request", f"since: {raw[:50]!r} is outside 1970-01-01 .. 9999-12-31")
    return value


@bp.get("/logs")
@reads_protected
def logs():
    """Newest first. ``level`` keeps that level and the ones above it (info → info, warning, error)."""
    limit = int_param("limit", DEFAULT_LOG_LIMIT, 1, MAX_LOG_LIMIT)
    since = since_param()
    level = request.args.get("level")
    if level is not None:
        level = level.upper()
        if level not in LEVELS:
            raise ApiError(400, "bad_request", f"level: {request.args['level'][:50]!r} is not one of "
                                               f"{', '.join(name.lower() for name in LEVELS)}")
    return json_response(wire.logs(service().logs(limit=limit, since=since, level=level)))


@bp.get("/batches")
@reads_protected
def batches():
    stream = request.args.get("stream")
    if stream is not None and stream not in ("companies", "events"):
        raise ApiError(400, "bad_request", f"stream: {stream[:50]!r} is not one of companies, events")
    limit = int_param("limit", 20, 1, MAX_BATCH_LIMIT)
    rows = service().recent_batches(stream, limit)
    return json_response({"count": len(rows), "batches": [row.as_dict() for row in rows]})


@bp.get("/dataset")
@reads_protected
def dataset():
    """Where the data is and how to read it: the dashboard's copy-paste snippets for this config."""
    from app.core.schema import read_snippets, record_glob

    output = service().config.output
    data_dir = output.url or str(output.local_dir.resolve())
    return json_response({
        "data_dir": data_dir, "layout": output.layout, "format": output.format,
        "record_globs": {stream: record_glob(data_dir, stream, output.layout, output.format)
                         for stream in ("companies", "events")},
        "schemas_dir": f"{data_dir}/manifests/schemas",
        "snippets": read_snippets(data_dir, output.layout, output.format)})


@bp.get("/pipeline")
@reads_protected
def pipeline():
    """The reference pipeline's status (`fleetgen pipeline` or `run --with-pipeline` on this data directory)."""
    from app.medallion.status import pipeline_view

    return json_response(pipeline_view(service().config.output.local_dir))


@bp.get("/chart")
@reads_protected
def chart():
    """Records per batch and firing delay of the latest batches, per stream (the dashboard's chart)."""
    return json_response(service().stats.recent_points())


@bp.get("/events")
@reads_protected
def events():
    """Server-Sent Events: `batch`, `paused`, `resumed`, `cleaned`, `auto_reinit`, `failure`."""
    svc = service()
    if svc.broadcaster.subscriber_count >= MAX_LIVE_STREAMS:
        # each stream holds one server thread: keep most of them for ordinary requests
        raise ApiError(503, "too_many_streams", f"at most {MAX_LIVE_STREAMS} live event streams at once; "
                                                "poll /api/health instead or close another dashboard")
    subscriber = svc.broadcaster.subscribe()

    def stream():
        try:
            yield b"retry: 2000\n: connected\n\n"
            last_beat = time.monotonic()
            while not svc.shutdown_requested.is_set():
                try:
                    message = subscriber.get(timeout=0.5)
                except queue.Empty:
                    if time.monotonic() - last_beat >= SSE_HEARTBEAT_S:
                        last_beat = time.monotonic()
                        yield b": heartbeat\n\n"
                    continue
                yield (f"id: {message['id']}\nevent: {message['event']}\n".encode()
                       + b"data: " + orjson.dumps(message["data"]) + b"\n\n")
        finally:
            svc.broadcaster.unsubscribe(subscriber)

    return Response(stream(), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
