"""Process-wide memory settings for generation.

glibc gives each thread that contends for malloc an arena of its own and keeps what the thread freed
there. The render threads allocate and free megabytes per chunk, so with one arena per thread the
freed chunks of one cannot serve another: a 1 M-event batch peaked at ~335 MB with per-thread arenas
and ~285 MB with one (measured with `fleetgen bench --only generation_clean`, MALLOC_ARENA_MAX=1), and
ran no slower. Large numpy buffers are malloc'd; Python's small objects have their own allocator.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_ARENA_MAX = -8  # mallopt parameter number in glibc's malloc.h
_done = False


def limit_malloc_arenas(count: int = 1) -> bool:
    """Cap glibc's malloc arenas (before the worker threads first allocate); False where there is no glibc
    or MALLOC_ARENA_MAX is set by the user (theirs wins)."""
    global _done
    if _done or "MALLOC_ARENA_MAX" in os.environ:
        return False
    _done = True
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, count))
