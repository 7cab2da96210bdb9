"""Process-wide memory settings for generation (glibc's malloc; elsewhere nothing is changed).

- One arena. glibc gives each thread that contends for malloc an arena of its own and keeps what the thread
  freed there. The render threads allocate and free megabytes per chunk, so with one arena per thread the
  freed chunks of one cannot serve another: a 1 M-event batch peaked at ~335 MB with per-thread arenas and
  ~285 MB with one (`fleetgen bench --only generation_clean`, MALLOC_ARENA_MAX=1), and ran no slower.
- Freed memory kept for the next part. A window is made in parts whose temporaries (tens of MB) are freed
  and allocated again part after part; by default glibc maps the largest ones afresh and hands the heap's
  free top back to the kernel, and every page of them then faults in again, zeroed, for the next part. Kept
  (no mapping below 128 MB, up to 128 MB of free top kept), generating the 870 k-event batch took 0.31-0.34 s
  of CPU instead of 0.37-0.41 s (the same peak RSS).
- A window made in parts streams in bounded memory: while one is made (``lean``) the heap's free top goes
  back above 16 MB, which keeps the 10.3 M-event window with defects at ~280 MB instead of ~305 MB.
- After each batch the service gives what was kept back (``release``): a waiting service holds little more
  than its live memory (the emulated memory benchmark: 146 MB after 100 batches, 154 MB without).

A setting the user gives (MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_) wins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # mallopt parameter numbers in glibc's malloc.h
MAPPED_FROM = 128 << 20
KEPT_FREE = 128 << 20
LEAN_FREE = 16 << 20
_USER = {M_ARENA_MAX: "MALLOC_ARENA_MAX", M_MMAP_THRESHOLD: "MALLOC_MMAP_THRESHOLD_",
         M_TRIM_THRESHOLD: "MALLOC_TRIM_THRESHOLD_"}
_lock = threading.Lock()
_done = False
_lean = 0  # windows being made in parts


def _glibc(name: str, argtypes: list[type]) -> Callable[..., int] | None:
    library = ctypes.util.find_library("c")
    if not library:
        return None
    try:
        function = getattr(ctypes.CDLL(library), name)
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None
    function.argtypes, function.restype = argtypes, ctypes.c_int
    return function  # type: ignore[no-any-return]


_MALLOPT = _glibc("mallopt", [ctypes.c_int, ctypes.c_int])
_MALLOC_TRIM = _glibc("malloc_trim", [ctypes.c_size_t])


def _set(parameter: int, value: int) -> bool:
    if _MALLOPT is None or _USER[parameter] in os.environ:
        return False
    return bool(_MALLOPT(parameter, value))


def tune_malloc(count: int = 1) -> bool:
    """Tune malloc for generation once, before the worker threads first allocate: ``count`` arenas, freed
    memory kept for the next part. False where there is no glibc or the user set MALLOC_ARENA_MAX."""
    global _done
    with _lock:
        if _done:
            return False
        _done = True
        _set(M_MMAP_THRESHOLD, MAPPED_FROM)
        _set(M_TRIM_THRESHOLD, LEAN_FREE if _lean else KEPT_FREE)
        return _set(M_ARENA_MAX, count)


@contextmanager
def lean() -> Iterator[None]:
    """While a window is made in parts (bounded memory whatever its size): give the heap's free top back."""
    global _lean
    with _lock:
        _lean += 1
        if _lean == 1 and _done:
            _set(M_TRIM_THRESHOLD, LEAN_FREE)
    try:
        yield
    finally:
        with _lock:
            _lean -= 1
            if _lean == 0 and _done:
                _set(M_TRIM_THRESHOLD, KEPT_FREE)


def release() -> None:
    """Give the heap's free memory back to the kernel: after a batch, what was kept for its parts is not held
    while the process waits for the next one (~9 ms after a 1 M-event batch, 60 MB; ~0.2 ms after a small one)."""
    if _MALLOC_TRIM is not None and _done and _USER[M_TRIM_THRESHOLD] not in os.environ:
        _MALLOC_TRIM(0)
