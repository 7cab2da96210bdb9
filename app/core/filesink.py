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
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from pathlib import Path

import numpy as np

BLOCK = 4096
DIRECT_BUFFER = 8 << 20
WRITEBACK_BYTES = 32 << 20
O_DIRECT = getattr(os, "O_DIRECT", 0)


class FileSink:
    """Append bytes, then ``close()`` to make them durable (fsync); ``size`` counts what was given.

    With O_DIRECT two aligned buffers take turns: one is written by the I/O thread while the caller fills
    the other, so the copy into the buffer and the device's write overlap instead of following each other.
    A write's error is raised by the next ``write`` or by ``close``."""

    def __init__(self, path: Path, large: bool, buffer_bytes: int = DIRECT_BUFFER):
        assert buffer_bytes > 0 and buffer_bytes % BLOCK == 0, buffer_bytes
        self.path = path
        self._block = buffer_bytes  # each aligned buffer's size: one O_DIRECT write
        self.size = 0  # bytes on their way to the file (written, or in the write under way)
        self._flushed = 0  # buffered mode: bytes already handed to writeback
        self._buffer: mmap.mmap | None = None  # the one being filled
        self._spare: mmap.mmap | None = None  # the one being written (or free); made when first needed
        self._writing: Future[None] | None = None  # the write of the spare buffer, a whole one
        self._fill = 0
        self._fd = -1
        if large and O_DIRECT:
            try:
                self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | O_DIRECT, 0o644)
                self._buffer = mmap.mmap(-1, self._block)  # page-aligned, as O_DIRECT needs
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
        source = np.frombuffer(view, np.uint8)
        position = 0
        while position < len(view):
            buffer = np.frombuffer(self._buffer, np.uint8)
            take = min(len(view) - position, self._block - self._fill)
            buffer[self._fill:self._fill + take] = source[position:position + take]
            del buffer
            self._fill += take
            position += take
            if self._fill == self._block:
                self._send()
                if self._buffer is None:  # fell back to buffered: what was pending is written
                    self._write_buffered(view[position:])
                    return

    def close(self, sync: bool = True) -> int:
        """Write what is pending, fsync (unless the caller syncs the file later), close; returns the size."""
        try:
            self._settle()
            if self._buffer is not None and self._fill:
                self._flush_tail()
            if sync:
                os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = -1
            self._release_buffers()
        return self.size

    def abort(self) -> None:
        """Close without finishing; a no-op once closed (an error path may abort every file of a batch).
        A write under way on the I/O thread ends first: the descriptor is never closed under it."""
        if self._fd < 0:
            return
        if self._writing is not None:
            futures_wait([self._writing])
            self._writing = None
        os.close(self._fd)
        self._fd = -1
        self._release_buffers()

    def _release_buffers(self) -> None:
        # a failed write's traceback may still hold a view of a buffer: then it goes with the view, and
        # the write's own error (disk full, ...) is what the caller sees
        for buffer in (self._buffer, self._spare):
            if buffer is not None:
                with contextlib.suppress(BufferError):
                    buffer.close()

    def _send(self) -> None:
        """The full buffer goes to the I/O thread once the write before it is done; filling goes on in
        the other one."""
        self._settle()
        if self._buffer is None:
            return
        if self._spare is None:  # a file of one buffer or less never maps the second
            self._spare = mmap.mmap(-1, self._block)
        self._buffer, self._spare = self._spare, self._buffer
        self._writing = _IO.submit(_write_direct_block, self._fd, self._spare)
        self.size += self._block
        self._fill = 0

    def _settle(self) -> None:
        """Wait for the write under way; when O_DIRECT was refused, carry on through the page cache."""
        if self._writing is None:
            return
        writing, self._writing = self._writing, None
        try:
            writing.result()
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            assert self._buffer is not None and self._spare is not None
            self.size -= self._block
            self._fall_back(bytes(self._spare) + bytes(self._direct_buffer()[:self._fill]))

    def _flush_tail(self) -> None:
        """The last, partial block: written padded to the block size, then the file is cut back."""
        tail = self._fill
        padded = -(-tail // BLOCK) * BLOCK
        self._direct_buffer()[tail:padded] = bytes(padded - tail)
        try:
            _write_all(self._fd, self._direct_buffer()[:padded])
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            self._fall_back(bytes(self._direct_buffer()[:tail]))
            return
        self.size += tail
        os.ftruncate(self._fd, self.size)
        self._fill = 0

    def _direct_buffer(self) -> memoryview:
        assert self._buffer is not None, "only the O_DIRECT path has a buffer"
        return memoryview(self._buffer)

    def _fall_back(self, pending: bytes) -> None:
        """O_DIRECT refused mid-way: reopen through the page cache and write what is pending."""
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY)
        os.ftruncate(self._fd, self.size)
        os.lseek(self._fd, self.size, os.SEEK_SET)
        self._release_buffers()
        self._buffer = self._spare = None
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


_IO = ThreadPoolExecutor(max_workers=2, thread_name_prefix="fleetgen-io")  # one write in flight per file


def _write_direct_block(fd: int, buffer: mmap.mmap) -> None:
    with memoryview(buffer) as view:
        _write_all(fd, view)


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        written = os.write(fd, view)
        view = view[written:]
