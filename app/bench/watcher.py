"""A consumer's view of publish lateness: another process that notices each batch folder appear.

`python -m app.bench.watcher DATA_DIR SECONDS` watches both streams' folders for SECONDS and prints one
JSON object ``{stream: {batch_id: seen_at_epoch_s}}``. A batch becomes visible in one rename, so the
moment its folder appears is the moment a reader can use it: what the user feels, measured outside
fleetgen. On Linux the kernel reports the rename (inotify, no polling load on the machine being
measured); elsewhere the folders are listed every millisecond.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import struct
import sys
import time
from pathlib import Path

from app.core import bronze

IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
_EVENT_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len (struct inotify_event)


def watch(data_dir: Path, seconds: float) -> dict[str, dict[str, float]]:
    layout = bronze.Layout(data_dir)
    folders = {stream: layout.stream_dir(stream) for stream in bronze.STREAMS}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    try:
        return _watch_inotify(folders, seconds)
    except OSError:
        return _watch_polling(folders, seconds)


def _watch_inotify(folders: dict[str, Path], seconds: float) -> dict[str, dict[str, float]]:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1")
    seen: dict[str, dict[str, float]] = {stream: {} for stream in folders}
    try:
        streams = {}
        for stream, folder in folders.items():
            wd = libc.inotify_add_watch(fd, str(folder).encode(), IN_MOVED_TO | IN_CREATE)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder}")
            streams[wd] = stream
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([fd], [], [], left)[0]:
                break
            data, at = os.read(fd, 65536), time.time()
            offset = 0
            while offset < len(data):
                wd, _mask, _cookie, length = _EVENT_HEADER.unpack_from(data, offset)
                name = data[offset + _EVENT_HEADER.size:offset + _EVENT_HEADER.size + length].rstrip(b"\0")
                offset += _EVENT_HEADER.size + length
                if wd in streams and bronze.BATCH_DIR_PATTERN.match(name.decode()):
                    seen[streams[wd]].setdefault(name.decode(), at)
    finally:
        os.close(fd)
    return seen


def _watch_polling(folders: dict[str, Path], seconds: float) -> dict[str, dict[str, float]]:
    seen: dict[str, dict[str, float]] = {stream: {} for stream in folders}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for stream, folder in folders.items():
            at = time.time()
            for name in os.listdir(folder):
                if bronze.BATCH_DIR_PATTERN.match(name):
                    seen[stream].setdefault(name, at)
        time.sleep(0.001)
    return seen


def main(argv: list[str]) -> None:
    print(json.dumps(watch(Path(argv[0]), float(argv[1]))))


if __name__ == "__main__":
    main(sys.argv[1:])
