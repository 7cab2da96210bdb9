"""Durable sequential file writing: O_DIRECT for large files, the page cache otherwise.

Writing a few hundred MB through the page cache costs as much kernel time as rendering it on a
small VM (copy, dirty-page accounting, writeback at fsync). With O_DIRECT the device reads the
data straight from an aligned user buffer while the next chunks render. File systems without
O_DIRECT (tmpfs, some network mounts) refuse it with EINVAL; the sink then carries on buffered.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
from pathlib import Path

import numpy as np

BLOCK = 4096
DIRECT_BUFFER = 8 << 20
WRITEBACK_BYTES = 32 << 20
O_DIRECT = getattr(os, "O_DIRECT", 0)


class FileSink:
    """Append bytes, then ``close()`` to make them durable (fsync); ``size`` counts what was given."""

    def __init__(self, path: Path, large: bool):
        self.path = path
        self.size = 0
        self._flushed = 0  # buffered mode: bytes already handed to writeback
        self._buffer: mmap.mmap | None = None
        self._fill = 0
        self._fd = -1
        if large and O_DIRECT:
            try:
                self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | O_DIRECT, 0o644)
                self._buffer = mmap.mmap(-1, DIRECT_BUFFER)  # page-aligned, as O_DIRECT needs
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
        if self._fd < 0:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    @property
    def direct(self) -> bool:
        return self._buffer is not None

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data).cast("B")
        if self._buffer is None:
            self._write_buffered(view)
            return
        # numpy copies without holding the GIL: the render threads go on meanwhile
        buffer = np.frombuffer(self._buffer, np.uint8)
        source = np.frombuffer(view, np.uint8)
        position = 0
        while position < len(view):
            take = min(len(view) - position, DIRECT_BUFFER - self._fill)
            buffer[self._fill:self._fill + take] = source[position:position + take]
            self._fill += take
            position += take
            if self._fill == DIRECT_BUFFER:
                self._flush_direct(DIRECT_BUFFER)
                if self._buffer is None:  # fell back to buffered while flushing
                    self._write_buffered(view[position:])
                    return

    def close(self, sync: bool = True) -> int:
        """Write what is pending, fsync (unless the caller syncs the file later), close; returns the size."""
        try:
            if self._buffer is not None and self._fill:
                self._flush_tail()
            if sync:
                os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = -1
            if self._buffer is not None:
                self._buffer.close()
        return self.size

    def abort(self) -> None:
        """Close without finishing; a no-op once closed (an error path may abort every file of a batch)."""
        if self._fd < 0:
            return
        os.close(self._fd)
        self._fd = -1
        if self._buffer is not None:
            # the failed write's traceback may still hold a view of the buffer: then it goes with the view,
            # and the write's own error (disk full, ...) is what the caller sees
            with contextlib.suppress(BufferError):
                self._buffer.close()

    def _flush_direct(self, length: int) -> None:
        if self._write_direct(length):
            self.size += length
            self._fill = 0

    def _flush_tail(self) -> None:
        """The last, partial block: written padded to the block size, then the file is cut back."""
        tail = self._fill
        padded = -(-tail // BLOCK) * BLOCK
        self._direct_buffer()[tail:padded] = bytes(padded - tail)
        if self._write_direct(padded):
            self.size += tail
            os.ftruncate(self._fd, self.size)
            self._fill = 0

    def _direct_buffer(self) -> memoryview:
        assert self._buffer is not None, "only the O_DIRECT path has a buffer"
        return memoryview(self._buffer)

    def _write_direct(self, length: int) -> bool:
        """The buffer's first ``length`` bytes to the file; False when O_DIRECT was refused."""
        try:
            _write_all(self._fd, self._direct_buffer()[:length])
            return True
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
        self._fall_back()
        return False

    def _fall_back(self) -> None:
        """O_DIRECT refused mid-way: reopen through the page cache and keep what is pending."""
        pending = bytes(self._direct_buffer()[:self._fill])
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY)
        os.ftruncate(self._fd, self.size)
        os.lseek(self._fd, self.size, os.SEEK_SET)
        self._buffer = None  # released with the last view of it (a caller may still hold one)
        self._fill = 0
        self._write_buffered(memoryview(pending))

    def _write_buffered(self, view: memoryview) -> None:
        _write_all(self._fd, view)
        self.size += len(view)
        if self.size - self._flushed >= WRITEBACK_BYTES:
            # Start writing back what is done (asynchronously) so the final fsync has little left.
            advise = getattr(os, "posix_fadvise", None)
            if advise is not None:
                advise(self._fd, self._flushed, self.size - self._flushed, os.POSIX_FADV_DONTNEED)
            self._flushed = self.size


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        written = os.write(fd, view)
        view = view[written:]
