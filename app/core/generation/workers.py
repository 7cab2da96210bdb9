"""Worker threads: numpy and the compiled writer release the GIL, so work split into independent pieces
runs on every core. Generation and rendering have pools of their own: a chunk to render never queues
behind a part being generated ahead (the operating system shares the cores between them). "prefetch"
makes the next part of a streamed window while this one is rendered, one at a time (bounded memory)."""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from app.core.memory import tune_malloc

T = TypeVar("T")
R = TypeVar("R")
THREADS = max(1, min(4, os.cpu_count() or 1))
POOLS = {"generate": THREADS, "render": THREADS, "prefetch": 1}  # pool -> threads
_EXECUTORS: dict[str, ThreadPoolExecutor] = {}
_CREATING = threading.Lock()  # two streams' batches may first ask for a pool at once


def executor(pool: str) -> ThreadPoolExecutor:
    with _CREATING:
        if pool not in _EXECUTORS:
            tune_malloc()  # before the threads first allocate: see app/core/memory.py
            _EXECUTORS[pool] = ThreadPoolExecutor(max_workers=POOLS[pool], thread_name_prefix=f"fleetgen-{pool}")
        return _EXECUTORS[pool]


def in_order(work: Callable[[T], R], items: Iterable[T], ahead: int, pool: str) -> Iterator[R]:
    """``work`` of each item, in the items' order, on ``pool``'s threads, with up to ``ahead`` items worked
    on at once beyond the one being handed out (memory stays bounded whatever the number of items)."""
    assert pool in POOLS, pool
    if on_pool(pool):  # on this pool already: waiting on
        yield from map(work, items)  # its own threads could leave none to do the work
        return
    threads = executor(pool)
    pending: deque[Future[R]] = deque()
    for item in items:
        pending.append(threads.submit(work, item))
        if len(pending) > ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def on_pool(pool: str) -> bool:
    """Whether the calling thread is one of ``pool``'s."""
    return threading.current_thread().name.startswith(f"fleetgen-{pool}_")
