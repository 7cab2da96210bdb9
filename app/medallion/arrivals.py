"""Waking up when a bronze batch appears, instead of polling on a timer.

A batch becomes visible in one rename into ``raw/<stream>/``; on Linux the kernel reports it
(inotify ``IN_MOVED_TO``), so the pipeline starts on a batch within a millisecond of its publication
and costs nothing while idle. Elsewhere (or with the hive layout, whose batch folders appear deeper)
``wait`` simply sleeps its timeout: the trigger interval is then the polling period.
"""

from __future__ import annotations

import ctypes
import os
import select
import time
from pathlib import Path
from types import TracebackType

IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100


class Arrivals:
    def __init__(self, folders: list[Path]):
        self._fd: int | None = None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
            if fd < 0:
                return
            for folder in folders:
                folder.mkdir(parents=True, exist_ok=True)
                if libc.inotify_add_watch(fd, str(folder).encode(), IN_MOVED_TO | IN_CREATE) < 0:
                    os.close(fd)
                    return
            self._fd = fd
        except (OSError, AttributeError):  # no inotify here: wait() sleeps
            self._fd = None

    @property
    def notified(self) -> bool:
        return self._fd is not None

    def wait(self, timeout: float) -> bool:
        """Until something appears (True) or ``timeout`` seconds pass (False)."""
        if self._fd is None:
            time.sleep(max(0.0, timeout))
            return False
        ready = select.select([self._fd], [], [], max(0.0, timeout))[0]
        if ready:
            try:
                while os.read(self._fd, 65536):
                    pass
            except BlockingIOError:
                pass
        return bool(ready)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Arrivals:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
