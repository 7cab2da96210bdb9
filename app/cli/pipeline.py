"""`fleetgen pipeline`: the reference bronze → silver → gold pipeline on DuckDB or Spark."""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.cli.folders import writable_folder
from app.core.config import Config, parse_duration
from app.core.dirlock import DataDirLock
from app.core.errors import UsageError

ENGINES = ("duckdb", "spark")


def add_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--engine", choices=ENGINES, default="duckdb",
                         help="duckdb (default: embedded, no JVM) or spark (Structured Streaming; needs pyspark "
                              "and Java)")
    command.add_argument("--trigger", default="PT1S",
                         help="ISO 8601: the longest wait between looks at bronze (DuckDB also wakes on each new "
                              "batch), the Spark trigger interval (default PT1S)")
    command.add_argument("--once", action="store_true",
                         help="process every committed batch not yet processed, check, then exit")
    command.add_argument("--out", type=Path, help="where silver/, gold/ and pipeline/ go (default: the data directory)")
    command.add_argument("--master", default="local[*]", help="Spark master URL (spark engine; default local[*])")
    command.add_argument("--check-every", default="PT10S",
                         help="ISO 8601: how often to compare silver / gold with `fleetgen expect` (default PT10S)")
    command.add_argument("--no-check", action="store_true", help="never compare with `fleetgen expect`")
    command.add_argument("--reset", action="store_true",
                         help="first remove the pipeline's silver, gold and state (and start from the first batch)")


def _duration(text: str, option: str) -> float:
    try:
        return parse_duration(text).total_seconds()
    except ValueError as exc:
        raise UsageError(f"{option} {text!r}: {exc}") from None


def options_of(args: argparse.Namespace) -> Any:
    from app.medallion.runner import Options

    return Options(engine=args.engine, trigger_s=_duration(args.trigger, "--trigger"), out=args.out,
                   check_every_s=None if args.no_check else _duration(args.check_every, "--check-every"),
                   master=args.master)


def pipeline_problem(config: Config) -> str | None:
    """Why the reference pipeline cannot read this configuration's bronze, or None."""
    if config.output.url is not None:
        return (f"the reference pipeline reads bronze from a local data directory; output.data_dir is "
                f"{config.output.url} (DuckDB's httpfs extension cannot be installed here): point it at a local copy")
    if config.output.format != "jsonl":
        return (f"the reference pipeline reads JSON Lines bronze (its silver rules classify the raw text); "
                f"output.format is {config.output.format!r}")
    return None


def reset(config: Config, out: Path | None) -> list[str]:
    """Remove what the pipeline wrote under ``out`` (holding its lock: never under a running pipeline)."""
    from app.medallion.runner import LOCK_NAME

    root = out or config.output.local_dir
    removed = []
    with DataDirLock(root, "pipeline --reset", name=LOCK_NAME):
        for name in ("silver", "gold", "pipeline"):
            folder = root / name
            if folder.is_dir() and not folder.is_symlink():
                shutil.rmtree(folder)
                removed.append(str(folder))
    return removed


def cmd_pipeline(args: argparse.Namespace, load: Callable[[argparse.Namespace], tuple[Config, str]]) -> int:
    from app.medallion.runner import Sink, run_duckdb
    from app.service.logs import configure_logging

    config, _ = load(args)
    problem = pipeline_problem(config)
    if problem:
        raise UsageError(problem)
    options = options_of(args)
    if options.out is not None:
        writable_folder(options.out, "--out")
    if args.reset:
        reset(config, options.out)
    configure_logging(quiet=args.once)
    stop = threading.Event()
    if not args.once:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
    sink = Sink(config, options).open()
    try:
        if options.engine == "spark":
            from app.medallion.spark_engine import run_spark

            totals = run_spark(sink, once=args.once, stop=stop)
        else:
            totals = run_duckdb(sink, once=args.once, stop=stop)
    finally:
        sink.close()
    check = sink.last_check
    print(json.dumps({"engine": options.engine, "micro_batches": totals.micro_batches, "batches": totals.batches,
                      "records": totals.records, "silver_rows": totals.silver, "quarantined": totals.quarantined,
                      "silver": str(sink.tables.silver), "gold": str(sink.tables.gold),
                      "check": None if check is None else {k: check[k] for k in ("state", "batches", "seconds")
                                                           if k in check}}, indent=2))
    return 1 if check is not None and check["state"] != "equal" else 0
