"""The benchmark registry and the process figures every benchmark reports."""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from typing import Any

BENCHMARKS: dict[str, Callable[[bool], dict[str, Any]]] = {}


def benchmark(name: str):
    def register(func):
        BENCHMARKS[name] = func
        return func

    return register


def peak_rss_mb() -> float:
    """This program's peak RSS. Linux's VmHWM belongs to the program; ru_maxrss carries over an exec, so a
    benchmark started by a larger process (`fleetgen bench` starts each one) would report that one's."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
