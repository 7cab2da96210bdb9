"""JSON errors for every failure: {error, detail, timestamp}; never an HTML page or a traceback."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from app.core.errors import LifecycleError
from app.core.timeline import format_timestamp

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status_code: int, error: str, detail: str):
        super().__init__(detail)
        self.status_code = status_code
        self.error = error
        self.detail = detail


def error_body(error: str, detail: str) -> dict[str, str]:
    return {"error": error, "detail": detail, "timestamp": format_timestamp(datetime.now(UTC))}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return jsonify(error_body(exc.error, exc.detail)), exc.status_code

    @app.errorhandler(LifecycleError)
    def conflict(exc: LifecycleError):
        return jsonify(error_body("conflict", str(exc))), 409

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        name = (exc.name or "error").lower().replace(" ", "_")
        response = jsonify(error_body(name, exc.description or name))
        response.status_code = exc.code or 500
        allowed = getattr(exc, "valid_methods", None)
        if exc.code == 405 and allowed:
            response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("request failed")
        return jsonify(error_body("internal_error", "the server failed to answer; see the service log")), 500
