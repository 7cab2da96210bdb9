"""The durable file sink writes exactly the bytes given, with O_DIRECT or without."""

import errno
import os
import random

import pytest

from app.core import filesink
from app.core.filesink import FileSink


def chunks_of(total: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out, left = [], total
    while left:
        size = min(left, rng.choice([0, 1, 4095, 4096, 4097, 70_000, filesink.DIRECT_BUFFER + 3]))
        out.append(rng.randbytes(size))
        left -= size
    return out


@pytest.mark.parametrize("total", [0, 1, 4096, 4097, filesink.DIRECT_BUFFER, 3 * filesink.DIRECT_BUFFER + 12345])
@pytest.mark.parametrize("large", [True, False])
def test_writes_exactly_the_bytes_given(tmp_path, total, large):
    chunks = chunks_of(total, total)
    path = tmp_path / "out.bin"
    sink = FileSink(path, large=large)
    for chunk in chunks:
        sink.write(memoryview(chunk))
    assert sink.close() == total
    assert path.read_bytes() == b"".join(chunks)


def fcntl_direct(fd):
    import fcntl

    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & filesink.O_DIRECT)


@pytest.mark.parametrize("refused_from", [1, 2, 3])
def test_falls_back_when_the_file_system_refuses_direct_writes(tmp_path, monkeypatch, refused_from):
    """Refused at the first direct write, or at a later one (written on the I/O thread while the next
    buffer fills, or the last block's): every byte still lands once, in order, through the page cache."""
    real_write = os.write
    direct = {"count": 0}

    def picky_write(fd, data):
        if fcntl_direct(fd):
            direct["count"] += 1
            if direct["count"] >= refused_from:
                raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", picky_write)
    chunks = chunks_of(2 * filesink.DIRECT_BUFFER + 999, 7)
    path = tmp_path / "out.bin"
    sink = FileSink(path, large=True)
    for chunk in chunks:
        sink.write(chunk)
    assert sink.close() == len(b"".join(chunks))
    assert direct["count"] == refused_from and not sink.direct
    assert path.read_bytes() == b"".join(chunks)


def test_direct_io_is_used_for_large_files_where_supported(tmp_path):
    sink = FileSink(tmp_path / "big.bin", large=True)
    sink.write(b"x" * 10)
    sink.close()
    assert (tmp_path / "big.bin").read_bytes() == b"x" * 10


def test_file_systems_refusing_o_direct_at_open_use_the_page_cache(tmp_path, monkeypatch):
    real_open = os.open

    def no_direct(path, flags, mode=0o777):
        if flags & filesink.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")  # what tmpfs answers
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", no_direct)
    sink = FileSink(tmp_path / "out.bin", large=True)
    assert not sink.direct
    sink.write(b"abc" * 5000)
    assert sink.close() == 15000
    assert (tmp_path / "out.bin").read_bytes() == b"abc" * 5000


@pytest.mark.parametrize("buffers", [1, 3])
def test_a_direct_write_failing_mid_file_is_reported_as_itself_and_abort_does_not_mask_it(tmp_path, monkeypatch,
                                                                                       buffers):
    """A full buffer is written on the I/O thread: its error comes back from the next write that needs the
    buffer, or from close, as itself."""
    real_write = os.write

    def full(fd, data):
        if len(data) >= 4096:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    sink = FileSink(tmp_path / "out.bin", large=True)
    with pytest.raises(OSError, match="No space left") as failure:
        sink.write(b"x" * (buffers * filesink.DIRECT_BUFFER + 1))
        sink.close()
    sink.abort()  # while the failure's traceback still holds the buffer: no BufferError
    assert failure.value.errno == errno.ENOSPC


def test_abort_waits_for_the_write_under_way(tmp_path, monkeypatch):
    """The descriptor is not closed under a write still running on the I/O thread."""
    import threading

    real_write = os.write
    started, release = threading.Event(), threading.Event()
    seen = []

    def slow(fd, data):
        if len(data) == filesink.DIRECT_BUFFER:
            started.set()
            assert release.wait(10)
        written = real_write(fd, data)
        seen.append(fd)
        return written

    monkeypatch.setattr(os, "write", slow)
    sink = FileSink(tmp_path / "out.bin", large=True)
    sink.write(b"x" * filesink.DIRECT_BUFFER)
    assert started.wait(10)
    aborting = threading.Thread(target=sink.abort)
    aborting.start()
    aborting.join(0.2)
    assert aborting.is_alive()  # still waiting for the write
    release.set()
    aborting.join(10)
    assert not aborting.is_alive() and len(seen) == 1
    assert (tmp_path / "out.bin").stat().st_size == filesink.DIRECT_BUFFER


def test_the_stream_writer_writes_and_checksums_chunks_in_order_on_its_threads(tmp_path):
    import hashlib

    from app.core import bronze

    chunks = chunks_of(3 * filesink.DIRECT_BUFFER + 12345, 7) * 3  # large ones go to the threads, small inline
    writer = bronze.StreamWriter(tmp_path / "out.bin", large=True)
    for chunk in chunks:
        writer.write(memoryview(chunk))
    info = writer.close(rows=len(chunks))
    text = b"".join(chunks)
    assert (tmp_path / "out.bin").read_bytes() == text
    assert (info.bytes, info.sha256) == (len(text), hashlib.sha256(text).hexdigest())


def test_a_write_failing_on_the_writer_thread_is_raised_to_the_caller(tmp_path, monkeypatch):
    from app.core import bronze

    real_write = FileSink.write
    calls = {"n": 0}

    def disk_full_on_the_third(sink, data):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(sink, data)

    monkeypatch.setattr(FileSink, "write", disk_full_on_the_third)
    writer = bronze.StreamWriter(tmp_path / "out.bin", large=True)
    with pytest.raises(OSError, match="No space left"):
        for _ in range(20):
            writer.write(bytes(bronze.HASH_INLINE_BYTES))
        writer.close(rows=20)
    writer.abort()  # what callers do on an error: nothing is written after, the file is closed
    assert calls["n"] < 3 + bronze.WRITE_AHEAD + 1


@pytest.mark.parametrize("buffer_bytes", [4096, 3 * 4096, 1 << 20])
def test_smaller_buffers_take_turns_as_well(tmp_path, buffer_bytes):
    """A sidecar's smaller buffers: many turns of the two buffers, chunks larger and smaller than one."""
    chunks = chunks_of(5 * buffer_bytes + 4097, buffer_bytes) + chunks_of(70_001, 3)
    path = tmp_path / "out.bin"
    sink = FileSink(path, large=True, buffer_bytes=buffer_bytes)
    for chunk in chunks:
        sink.write(chunk)
    assert sink.close() == len(b"".join(chunks))
    assert path.read_bytes() == b"".join(chunks)
