"""In-process fan-out of service events (batch committed, paused...) to live subscribers (SSE)."""

from __future__ import annotations

import itertools
import queue
import threading
from typing import Any


class Broadcaster:
    def __init__(self, queue_size: int = 1000):
        self._subscribers: set[queue.Queue] = set()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._queue_size = queue_size
        self._listeners: list = []

    def add_listener(self, listener) -> None:
        """Called in the publishing thread for every message (metrics); must be quick."""
        self._listeners.append(listener)

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        message = {"id": next(self._ids), "event": kind, "data": data}
        with self._lock:
            subscribers = list(self._subscribers)
        for listener in self._listeners:
            listener(kind, data)
        for subscriber in subscribers:
            try:
                subscriber.put_nowait(message)
            except queue.Full:  # a stalled client loses old events, never blocks production
                pass

    def subscribe(self) -> queue.Queue:
        subscriber: queue.Queue = queue.Queue(self._queue_size)
        with self._lock:
            self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: queue.Queue) -> None:
        with self._lock:
            self._subscribers.discard(subscriber)

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)
