"""Flask application factory: the /api blueprint, metrics, OpenAPI document and dashboard."""

from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from app.api import dashboard, routes
from app.api.errors import register_error_handlers
from app.api.fastpath import HealthFastPath
from app.api.guard import RequestGuard
from app.api.health import health_document
from app.api.metrics import Metrics
from app.api.openapi import openapi_document
from app.core.config import Config
from app.service.service import Service


def create_app(config: Config, service: Service | None = None, test_config: dict | None = None) -> Flask:
    """The WSGI app for a config's service; never starts the scheduler (`fleetgen run` does)."""
    if service is None:
        service = Service(config)
    app = Flask(__name__, static_folder=None)
    app.config.update(JSON_SORT_KEYS=False, MAX_CONTENT_LENGTH=64 * 1024)
    if test_config:
        app.config.update(test_config)
    app.extensions["fleetgen.service"] = service
    metrics = Metrics(service)
    app.register_blueprint(routes.bp)
    app.register_blueprint(dashboard.bp)
    register_error_handlers(app)

    @app.before_request
    def refuse_oversized_bodies():
        # No endpoint takes a body; refuse big ones before anything else happens.
        if (request.content_length or 0) > app.config["MAX_CONTENT_LENGTH"]:
            raise RequestEntityTooLarge(f"request bodies are limited to {app.config['MAX_CONTENT_LENGTH']} bytes")

    @app.get("/metrics")
    @routes.reads_protected
    def prometheus():
        return Response(metrics.render(), mimetype="text/plain; version=0.0.4")

    @app.get("/api/openapi.json")
    def openapi():
        return routes.json_response(openapi_document())

    fast = HealthFastPath(app.wsgi_app, lambda: health_document(service.snapshot()))
    app.wsgi_app = RequestGuard(fast, config.api)  # type: ignore[method-assign]
    return app
