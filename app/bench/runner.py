"""`fleetgen bench`: measured figures, written as JSON and printed as a table.

Each benchmark runs in a fresh child process (``python -m app.bench NAME``) so its peak RSS is its own.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.bench import expect, generation, pipeline, roster, scaleout, service  # noqa: F401 - importing them registers their benchmarks
from app.bench.registry import BENCHMARKS
from app.core.errors import UsageError


def _child(name: str, quick: bool) -> dict[str, Any]:
    command = [sys.executable, "-m", "app.bench", name] + (["--quick"] if quick else [])
    result = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        return {"error": result.stderr.strip()[-2000:]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_benchmarks(output: Path, quick: bool = False, only: list[str] | None = None) -> int:
    only = [name.strip() for item in only for name in item.split(",") if name.strip()] if only else None
    names = [n for n in BENCHMARKS if not only or n in only]
    unknown = sorted(set(only or []) - set(BENCHMARKS))
    if unknown:
        raise UsageError(f"--only: unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    results: dict[str, Any] = {}
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results[name] = _child(name, quick)
    previous = {}
    if output.exists() and only:  # a partial run updates the figures it measured, keeps the others
        try:
            previous = json.loads(output.read_text()).get("results", {})
        except ValueError:
            previous = {}
    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "quick": quick,
        "results": {**previous, **results},
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print_table(results)
    print(f"\nresults written to {output}")
    return 1 if any("error" in r for r in results.values()) else 0


def print_table(results: dict[str, Any]) -> None:
    print(f"\n{'benchmark':<22} {'figure':<28} value")
    print("-" * 70)
    for name, figures in results.items():
        for key, value in figures.items():
            if isinstance(value, (dict, list)):
                value = json.dumps(value)
            print(f"{name:<22} {key:<28} {value}")
            name = ""


def run_child(argv: list[str]) -> None:
    """One benchmark in this process, its figures as one JSON line (what ``_child`` reads)."""
    print(json.dumps(BENCHMARKS[argv[0]]("--quick" in argv[1:])))
