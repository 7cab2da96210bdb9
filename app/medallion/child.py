"""`fleetgen run --with-pipeline`: the DuckDB pipeline as a child process of the service.

A process of its own (not a thread): the generator and the pipeline each get a core and a GIL, a
pipeline failure cannot take the service down, and the child is the same `fleetgen pipeline` a user
runs by hand. It is restarted if it exits unexpectedly, and stopped (SIGTERM: it finishes the
micro-batch in hand) when the service stops.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Sequence

log = logging.getLogger("app.pipeline")
RESTART_DELAY_S = 2.0
STOP_TIMEOUT_S = 15.0


class PipelineChild:
    def __init__(self, arguments: Sequence[str]):
        self.command = [sys.executable, "-m", "app", "pipeline", *arguments]
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self.restarts = 0

    def start(self) -> None:
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="fleetgen-pipeline-child", daemon=True)
        self._watcher.start()

    def _spawn(self) -> None:
        # the child's log lines go to this process's stderr, beside the service's own
        self._process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL)
        log.info("pipeline started", extra={"fields": {"pid": self._process.pid, "command": " ".join(self.command)}})

    def _watch(self) -> None:
        while not self._stopping.is_set():
            process = self._process
            if process is None:
                return
            code = process.wait()
            if self._stopping.is_set():
                return
            log.warning("pipeline exited unexpectedly; restarting", extra={"fields": {"exit_code": code}})
            if self._stopping.wait(RESTART_DELAY_S):
                return
            self.restarts += 1
            self._spawn()

    def stop(self) -> int | None:
        self._stopping.set()
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._watcher is not None:
            self._watcher.join(timeout=1)
        return process.returncode
