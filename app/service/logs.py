"""Structured logging: one JSON object per line on stdout, optionally mirrored into the store."""

from __future__ import annotations

import logging
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from app.core.timeline import format_timestamp

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = dict(getattr(record, "fields", None) or {})
    for key, value in vars(record).items():
        if key not in _STANDARD and key != "fields":
            fields[key] = value
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": format_timestamp(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(record_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class StoreHandler(logging.Handler):
    """Buffers log entries and writes them to the store in small transactions."""

    def __init__(self, store, level: int = logging.INFO, flush_every: float = 0.5, keep: int = 50_000):
        super().__init__(level)
        self.store = store
        self.keep = keep
        self._buffer: list[dict[str, Any]] = []
        self._buffer_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(flush_every,), name="fleetgen-logs", daemon=True)
        self._thread.start()
        self._written = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("sqlalchemy", "alembic")):
            return
        entry = {"created": record.created, "level": record.levelname, "logger": record.name,
                 "message": record.getMessage(),
                 "fields": orjson.loads(orjson.dumps(record_fields(record), default=str))}
        with self._buffer_lock:
            self._buffer.append(entry)

    def flush(self) -> None:
        with self._buffer_lock:
            entries, self._buffer = self._buffer, []
        if not entries:
            return
        try:
            self.store.add_logs(entries)
            self._written += len(entries)
            if self._written >= 5_000:
                self._written = 0
                self.store.prune_logs(self.keep)
        except Exception:  # noqa: BLE001 - the store being down must not stop logging to stdout
            with self._buffer_lock:
                self._buffer[:0] = entries[-1000:]

    def _loop(self, every: float) -> None:
        while not self._stop.wait(until_next_flush(time.time(), every)):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.flush()
        super().close()


def until_next_flush(now: float, every: float) -> float:
    """Seconds to the next flush: midway between whole seconds of an ``every`` grid (x.25 and x.75 for
    0.5 s). Windows end on whole seconds, so the log's store write never lands on a batch's claim or
    commit at a boundary."""
    return (every / 2 - now) % every or every


def configure_logging(quiet: bool = False, level: int = logging.INFO) -> None:
    """JSON lines on stdout (stderr when ``quiet``, so a command's own output stays clean)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_fleetgen", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr if quiet else sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler._fleetgen = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.WARNING if quiet else level)
    logging.getLogger("app").setLevel(logging.WARNING if quiet else level)
    # APScheduler reports every run at INFO; the batch lines already say what happened.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)

