"""What a browser may ask of the service: Host allow-list, no cross-site writes, CORS for listed origins.

Any web page the user opens can send requests to localhost. Three rules, applied before anything
else (the health fast path included):

- **Host.** Only loopback names, ``api.host`` and ``api.allowed_hosts`` are answered; any other
  ``Host`` gets 421. A page on a domain that re-binds its DNS to 127.0.0.1 (DNS rebinding) sends
  its own domain as ``Host``, so it reaches nothing.
- **No cross-site writes.** A request that is not GET/HEAD/OPTIONS must come from the service's own
  origin or one in ``api.cors_origins`` (when the browser says where it comes from: ``Origin``,
  ``Sec-Fetch-Site``), and carry ``application/json`` or no body at all. A form or a ``text/plain``
  ``fetch`` (what a page can send without a CORS preflight) gets 403 and changes nothing.
- **CORS** headers only for origins in ``api.cors_origins``; their preflight is answered here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson

from app.api.errors import error_body
from app.core.config import LOOPBACK_HOSTS, ApiConfig

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ALLOWED_METHODS = "GET, POST, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type"
PREFLIGHT_MAX_AGE_S = "600"
STATUS_TEXT = {403: "403 Forbidden", 421: "421 Misdirected Request", 204: "204 No Content"}

StartResponse = Callable[..., Any]


def host_name(header: str) -> str:
    """The name in a ``Host`` header, lower case, without port ("[::1]:8080" → "::1")."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class RequestGuard:
    def __init__(self, app: Callable[..., Iterable[bytes]], api: ApiConfig):
        self.app = app
        self.hosts = {*LOOPBACK_HOSTS, api.host.lower(), *api.allowed_hosts}
        self.cors_origins = frozenset(api.cors_origins)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
        if host_name(host) not in self.hosts:
            return _refuse(start_response, 421, "misdirected_request",
                           f"Host {host[:100]!r} is not a name this service answers to (loopback names, "
                           "api.host, api.allowed_hosts)")
        method = environ.get("REQUEST_METHOD", "GET")
        origin = (environ.get("HTTP_ORIGIN") or "").lower()
        listed = origin in self.cors_origins
        if method == "OPTIONS" and origin and environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD"):
            if not listed:
                return _refuse(start_response, 403, "forbidden",
                               f"origin {origin[:100]!r} is not in api.cors_origins")
            start_response(STATUS_TEXT[204], [*_cors_headers(origin), ("Access-Control-Allow-Methods", ALLOWED_METHODS),
                                              ("Access-Control-Allow-Headers", ALLOWED_HEADERS),
                                              ("Access-Control-Max-Age", PREFLIGHT_MAX_AGE_S),
                                              ("Content-Length", "0")])
            return [b""]
        if method not in SAFE_METHODS:
            problem = self._cross_site_problem(environ, origin, listed)
            if problem:
                return _refuse(start_response, 403, "forbidden", problem)
        if not listed:
            return self.app(environ, start_response)

        def with_cors(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, [*headers, *_cors_headers(origin)], exc_info)

        return self.app(environ, with_cors)

    def _cross_site_problem(self, environ: dict[str, Any], origin: str, listed: bool) -> str | None:
        own = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}".lower()
        if origin and origin != own and not listed:
            return (f"cross-site request refused: origin {origin[:100]!r} is neither this service's own "
                    "nor listed in api.cors_origins")
        if not origin and environ.get("HTTP_SEC_FETCH_SITE") == "cross-site":
            return "cross-site request refused: the browser says it comes from another site"
        content_type = (environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
        has_body = environ.get("CONTENT_LENGTH") not in (None, "", "0") or "HTTP_TRANSFER_ENCODING" in environ
        if (content_type or has_body) and content_type != "application/json":
            return (f"a state-changing request takes application/json or no body, not "
                    f"{content_type[:60] or 'a body without a content type'!r}")
        return None


def _cors_headers(origin: str) -> list[tuple[str, str]]:
    return [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]


def _refuse(start_response: StartResponse, status: int, error: str, detail: str) -> Iterable[bytes]:
    body = orjson.dumps(error_body(error, detail))
    start_response(STATUS_TEXT[status], [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                         ("Vary", "Origin")])
    return [body]
