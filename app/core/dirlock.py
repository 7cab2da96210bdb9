"""One writer per data directory: an exclusive ``flock`` on ``<data_dir>/.fleetgen.lock``.

The lock is held by an open file for the whole life of a writing command (`run`, `generate`,
`backfill`, `clean`), so the kernel releases it when the process ends, `kill -9` included: there
is never a stale lock to remove by hand. The file's content (who holds it, since when) is only
there to word the refusal; the lock itself is the flock.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from app.core.errors import DataDirBusy

LOCK_NAME = ".fleetgen.lock"


class DataDirLock:
    """Exclusive, non-blocking; ``acquire`` raises ``DataDirBusy`` naming the holder."""

    def __init__(self, data_dir: Path, command: str, name: str = LOCK_NAME, url: str | None = None):
        """``url``: the object-storage data directory whose work dir ``data_dir`` is (named in the message)."""
        self.data_dir = data_dir
        self.shown = f"{url} (work dir {data_dir})" if url else str(data_dir)
        self.path = data_dir / name
        self.command = command
        self._fd: int | None = None

    def acquire(self) -> DataDirLock:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise DataDirBusy(self.shown, holder) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, orjson.dumps({"pid": os.getpid(), "command": self.command, "since": time.time()}), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        holder = orjson.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, orjson.JSONDecodeError):
        return {}
    return holder if isinstance(holder, dict) else {}
