"""GET /api/health answered before Flask's request machinery.

Every open dashboard polls health, so it is by far the most frequent request, and it shares one
interpreter lock with batch generation and the other request threads. Flask's request and app
contexts, routing and response object cost about ten times what the health document itself
costs; this path skips them for exactly one method and path and defers to Flask for anything
else (a body, an error), so the answer and the error contract stay the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson

HEALTH_PATH = "/api/health"


class HealthFastPath:
    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], health: Callable[[], dict[str, Any]]):
        self.wsgi_app = wsgi_app
        self.health = health

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if (environ.get("PATH_INFO") != HEALTH_PATH or environ.get("REQUEST_METHOD") != "GET"
                or environ.get("CONTENT_LENGTH") not in (None, "", "0")):
            return self.wsgi_app(environ, start_response)
        try:
            body = orjson.dumps(self.health())
        except Exception:  # noqa: BLE001 - Flask's handlers turn it into the JSON 500 and log it
            return self.wsgi_app(environ, start_response)
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
