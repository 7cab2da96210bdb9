"""A DuckDB connection for work larger than memory: its own memory limit, beyond which sorts, joins and
aggregates spill to a temporary folder, and no progress bar (it would print on a command's stdout)."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

THREADS = min(os.cpu_count() or 1, 4)
# A 33 M-row silver table sorts within it with a process peak of ~0.9 GB (2 threads); 256 MB for 2 threads
# runs out of memory on 5.5 M rows.
MEMORY_LIMIT = f"{256 * max(THREADS, 2)}MB"


def connect(spill: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory database spilling to ``spill``, with UTC as its time zone (a timestamp without one is
    read as UTC)."""
    connection = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "threads": THREADS,
                                        "temp_directory": str(spill), "preserve_insertion_order": False})
    connection.execute("SET enable_progress_bar = false")
    connection.execute("SET TimeZone = 'UTC'")
    return connection


def quoted(name: str) -> str:
    """``name`` as a DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """``text`` as a DuckDB string literal."""
    return "'" + text.replace("'", "''") + "'"
