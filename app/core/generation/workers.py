"""The threads generation and rendering share: numpy and the compiled writer release the GIL, so work
split into independent pieces runs on every core."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from app.core.memory import limit_malloc_arenas

T = TypeVar("T")
R = TypeVar("R")
THREADS = max(1, min(4, os.cpu_count() or 1))
_EXECUTOR: ThreadPoolExecutor | None = None


def executor() -> ThreadPoolExecutor:
    global _EXECUTOR
    if _EXECUTOR is None:
        limit_malloc_arenas()  # before the threads first allocate: see app/core/memory.py
        _EXECUTOR = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="fleetgen-worker")
    return _EXECUTOR


def in_order(work: Callable[[T], R], items: Iterable[T], ahead: int) -> Iterator[R]:
    """``work`` of each item, in the items' order, with up to ``ahead`` items worked on at once beyond
    the one being handed out (memory stays bounded whatever the number of items)."""
    pool = executor()
    pending: deque[Future[R]] = deque()
    for item in items:
        pending.append(pool.submit(work, item))
        if len(pending) > ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
