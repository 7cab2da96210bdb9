"""Work that may run a moment late, on a thread of its own, once for any number of requests."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class DeferredTask:
    """Runs ``task`` on its own thread ``settle_s`` after a request; requests arriving before it runs
    share that run. ``stop()`` runs a pending request at once, and a request after it runs in the
    caller, so nothing requested is dropped.

    The service writes the manifest this way: at a window boundary the disk and the interpreter go to
    the batches being published, and the convenience copy follows once they are out.
    """

    def __init__(self, task: Callable[[], object], settle_s: float, name: str):
        self._task = task
        self._settle_s = settle_s
        self._name = name
        self._changed = threading.Condition()
        self._pending = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def request(self) -> None:
        with self._changed:
            stopped = self._stopping
            if not stopped:
                self._pending = True
                self._changed.notify_all()
        if stopped:  # a batch that finished during shutdown: nobody is left to run it later
            self._run_task()

    def stop(self, timeout: float = 5.0) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._changed:
            pending, self._pending = self._pending, False
        if pending:
            self._run_task()

    def _run(self) -> None:
        while self._next():
            self._run_task()

    def _next(self) -> bool:
        """Wait for a request, then for the settle time; False when stopping (stop runs what is left)."""
        with self._changed:
            self._changed.wait_for(lambda: self._pending or self._stopping)
            if not self._stopping:
                self._changed.wait_for(lambda: self._stopping, timeout=self._settle_s)
            if self._stopping:
                return False
            self._pending = False
            return True

    def _run_task(self) -> None:
        try:
            self._task()
        except Exception:  # noqa: BLE001 - the task reports its own failures; this thread must live on
            log.exception("deferred task failed", extra={"fields": {"task": self._name}})
