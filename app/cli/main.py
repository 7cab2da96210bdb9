"""The `fleetgen` command line: validate, generate, backfill, status, clean, run, schema, expect, verify, bench."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli import pipeline as pipeline_cli
from app.cli.folders import writable_file, writable_folder
from app.cli.presets import DEFAULT_PRESET, preset_names, write_starter_config
from app.core.config import Config, effective_settings, load_config, resolve_mode
from app.core.dirlock import DataDirLock
from app.core.errors import ConfigError, FleetgenError, RangeError, UsageError
from app.core.memory import tune_malloc
from app.core.timeline import format_timestamp, parse_timestamp, window_for_firing

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
if TYPE_CHECKING:  # the service layer loads lazily: `validate` and `init` stay quick
    from app.service.pipeline import Outcome, Pipeline

log = logging.getLogger("app.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleetgen", description="Synthetic fleet-telematics batches for bronze.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = sub.add_parser("init", help="write a commented starter config from a preset")
    init.add_argument("path", nargs="?", type=Path, default=Path("fleetgen.yaml"),
                      help="where to write it (default: fleetgen.yaml)")
    init.add_argument("--preset", default=DEFAULT_PRESET,
                      help=f"one of: {', '.join(preset_names())} (default: {DEFAULT_PRESET})")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")

    validate = sub.add_parser("validate", help="check a config and print the effective settings")
    validate.add_argument("config", help="YAML config file")
    _mode_option(validate)

    def with_config(name: str, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text)
        command.add_argument("--config", required=True, help="YAML config file")
        _mode_option(command)
        command.add_argument("--data-dir", help="data directory: a folder, or an s3:// gs:// abfs:// URL "
                                                  "(overrides output.data_dir)")
        return command

    run = with_config("run", "the service: scheduler, API and dashboard in one process")
    run.add_argument("--port", type=int, help="API port (overrides api.port)")
    run.add_argument("--host", help="API bind address (overrides api.host)")
    run.add_argument("--with-pipeline", action="store_true",
                     help="also run `fleetgen pipeline` (DuckDB) on the data directory, as a child process")

    generate = with_config("generate", "produce the window(s) due at a moment now, through the ledger")
    generate.add_argument("--stream", required=True, choices=["companies", "events"])
    generate.add_argument("--at", help="ISO 8601 UTC moment acting as 'now' (default: the current time)")

    backfill = with_config("backfill", "produce every window of a time range, resumable and idempotent")
    backfill.add_argument("--from", dest="start", required=True, help="ISO 8601 UTC start")
    backfill.add_argument("--to", dest="end", required=True, help="ISO 8601 UTC end (exclusive)")
    backfill.add_argument("--allow-future", action="store_true", help="allow --to after the current time")
    backfill.add_argument("--engine", choices=["local", "spark"], default="local",
                          help="spark: the events windows as Spark tasks (production mode; needs fleetgen[spark])")
    backfill.add_argument("--master", help="Spark master URL (--engine spark; default local[*,4]: every core, "
                          "4 attempts per task)")

    with_config("status", "ledger summary of a data directory")
    clean = with_config("clean", "remove what fleetgen wrote in the data directory (no service may be using it)")
    clean.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    pipeline = with_config("pipeline", "the reference bronze → silver → gold pipeline (DuckDB or Spark), each "
                                       "committed batch exactly once")
    pipeline_cli.add_arguments(pipeline)

    schema = sub.add_parser("schema", help="print a stream's record schema for a reader (DuckDB, Polars, Spark…)")
    schema.add_argument("--stream", choices=("events", "companies"), required=True)
    schema.add_argument("--format", dest="schema_format", default="json-schema",
                        choices=("json-schema", "spark-ddl", "spark-json", "duckdb", "polars", "arrow"))

    expect = sub.add_parser("expect", help="write, as Parquet, the silver and gold tables a correct pipeline "
                                           "makes of a data directory (from the generator's ground truth)")
    expect.add_argument("--data-dir", required=True, help="the data directory bronze was written to (a folder or URL)")
    expect.add_argument("--config", help="the config it was written with (default: the snapshot in "
                                         "<data-dir>/manifests/dataset.md)")
    expect.add_argument("--from", dest="start", help="ISO 8601 UTC: only windows starting at or after it")
    expect.add_argument("--to", dest="end", help="ISO 8601 UTC: only windows ending at or before it")
    expect.add_argument("--out", type=Path, required=True, help="folder for the tables and expectations.json")

    verify = sub.add_parser("verify", help="compare silver / gold tables (Parquet, Delta or CSV) with "
                                           "`fleetgen expect`'s; exit 0 equal, 1 different, 2 bad input")
    verify.add_argument("--expected", type=Path, required=True, help="the folder `fleetgen expect` wrote")
    verify.add_argument("--silver", type=Path, help="folder holding the tables events and companies")
    verify.add_argument("--gold", type=Path,
                        help="folder holding events_per_company_window_type and deliveries_per_company_day")

    bench = sub.add_parser("bench", help="run the benchmark suite and write results as JSON")
    bench.add_argument("--output", type=Path, default=Path("bench-results/bench.json"))
    bench.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    bench.add_argument("--only", action="append", help="run only the named benchmark(s)")
    return parser


def _mode_option(command: argparse.ArgumentParser) -> None:
    command.add_argument("--mode", help="emulated or production (overrides the config file and FLEETGEN_MODE)")


def main(argv: Sequence[str] | None = None) -> int:
    tune_malloc()  # before any worker thread allocates: see app/core/memory.py
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, UsageError) as exc:
        print(f"fleetgen: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FleetgenError as exc:
        print(f"fleetgen: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FAILURE
    except Exception as exc:  # noqa: BLE001 - no traceback for the user unless asked for
        if os.environ.get("FLEETGEN_DEBUG"):
            raise
        print(f"fleetgen: internal error: {type(exc).__name__}: {exc} (set FLEETGEN_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return EXIT_FAILURE


def load(args: argparse.Namespace) -> tuple[Config, str]:
    config, mode_source = resolve_mode(load_config(args.config), args.mode, override_source="--mode")
    if getattr(args, "data_dir", None) is not None:
        config = with_data_dir_option(config, args.data_dir)
    return config, mode_source


def with_data_dir_option(config: Config, data_dir: str) -> Config:
    """``config`` writing to ``--data-dir``, checked like output.data_dir; a problem is a usage error."""
    try:
        return config.with_data_dir(data_dir)
    except ConfigError as exc:
        raise UsageError("--data-dir: " + "; ".join(p.removeprefix("output.data_dir: ") for p in exc.problems)) \
            from None


def moment(text: str | None, option: str) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        return parse_timestamp(text)
    except ValueError:
        raise UsageError(f"{option}: {text!r} is not an ISO 8601 timestamp (e.g. 2026-11-25T20:00:00Z)") from None


def cmd_init(args: argparse.Namespace) -> int:
    path = write_starter_config(args.preset, args.path, force=args.force)
    load_config(path)  # what we write must load
    print(f"wrote {path} (preset {args.preset}); next: fleetgen validate {path} && fleetgen run --config {path}")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from app.core.schema import render

    print(render(args.stream, args.schema_format))
    return EXIT_OK


def cmd_expect(args: argparse.Namespace) -> int:
    from app.service.expectations import ExpectationError, config_of_dataset, derive_into, write_summary
    from app.store import Store

    start = moment(args.start, "--from") if args.start else None
    end = moment(args.end, "--to") if args.end else None
    if start is not None and end is not None and end <= start:
        raise UsageError(f"--to ({format_timestamp(end)}) must be after --from ({format_timestamp(start)})")
    writable_folder(args.out, "--out")
    try:
        config = (with_data_dir_option(load_config(args.config), args.data_dir) if args.config
                  else config_of_dataset(args.data_dir))
    except ConfigError as exc:  # the dataset's own snapshot with this --data-dir
        raise UsageError(f"--data-dir: {'; '.join(exc.problems)}") from None
    except ExpectationError as exc:
        raise UsageError(str(exc)) from None
    if config.database.url is None and not (config.output.local_dir / "manifests" / "generator.db").exists():
        raise UsageError(f"--data-dir {args.data_dir}: no ledger (manifests/generator.db): nothing was generated there")
    store = Store(config.database_url, auto_migrate=False, busy_timeout_ms=config.database.busy_timeout_ms)
    try:  # read-only, like status: a service may be writing beside it
        derived = derive_into(config, store, args.out, start, end)
    except ExpectationError as exc:  # a config or a data directory that does not fit: bad input
        raise UsageError(str(exc)) from None
    finally:
        store.close()
    about = {"data_dir": str(args.data_dir), "seed": config.seed,
             "from": format_timestamp(start) if start else None, "to": format_timestamp(end) if end else None,
             "records_regenerated": derived.records_regenerated,
             "seconds": round(derived.seconds, 3)}
    print(json.dumps(write_summary(derived, args.out, about), indent=2))
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from app.service.verification import VerifyInputError, dumps, verify

    try:
        report = verify(args.expected, args.silver, args.gold)
    except VerifyInputError as exc:
        raise UsageError(str(exc)) from None
    print(dumps(report))
    return EXIT_OK if report["equal"] else EXIT_FAILURE


def cmd_validate(args: argparse.Namespace) -> int:
    config, mode_source = load(args)
    print(json.dumps({"valid": True, "effective": effective_settings(config, mode_source),
                      "config": config.snapshot()}, indent=2))
    return EXIT_OK


@contextmanager
def writer(config: Config, command: str) -> Iterator[tuple[Pipeline, list[Outcome]]]:
    """A writing command's pipeline, holding the data directory's lock for the command's whole life;
    the list collects every outcome, baseline company windows produced on the way included."""
    from app.service.logs import configure_logging
    from app.service.pipeline import Pipeline
    from app.store import Store

    with DataDirLock(config.output.local_dir, command, url=config.output.url):
        configure_logging(quiet=True)
        outcomes: list[Outcome] = []
        store = Store.for_config(config)
        try:
            pipeline = Pipeline(config, store, on_outcome=outcomes.append)
            pipeline.prepare()
            yield pipeline, outcomes
        finally:
            store.close()


def cmd_generate(args: argparse.Namespace) -> int:
    config, _ = load(args)
    at = moment(args.at, "--at")
    with writer(config, "generate") as (pipeline, outcomes):
        pipeline.catch_up(args.stream, at)
        if not outcomes:
            print(json.dumps({"produced": [], "note": _nothing_due(pipeline, args.stream, at)}, indent=2))
            return EXIT_OK
        print(json.dumps({"produced": [o.as_dict() for o in outcomes]}, indent=2))
        return EXIT_FAILURE if any(o.status == "failed" for o in outcomes) else EXIT_OK


def _nothing_due(pipeline, stream: str, at: datetime) -> str:
    last_closed = window_for_firing(at, pipeline.interval(stream))
    row = pipeline.store.covering(stream, last_closed.start_s)
    if row is not None:
        return f"nothing due: window {row.batch_id}, the last one closed at --at, is already {row.status}"
    first = pipeline.store.all_batches(stream)[:1]
    if first and at <= first[0].window.start:
        return (f"nothing due: this data directory's {stream} ledger starts at {first[0].batch_id}; "
                "earlier windows belong to another data directory (use a fresh --data-dir and backfill)")
    return "nothing due: no window closed by --at is missing from the ledger"


def cmd_backfill(args: argparse.Namespace) -> int:
    config, _ = load(args)
    start, end = moment(args.start, "--from"), moment(args.end, "--to")
    now = datetime.now(UTC)
    if end > now and not args.allow_future:
        raise UsageError(f"--to {format_timestamp(end)} is in the future (now {format_timestamp(now)}): windows "
                         "that have not happened yet would be written; pass --allow-future to write them anyway")
    if args.engine == "spark":
        from app.service.spark_backfill import spark_problem

        problem = spark_problem(config)
        if problem:
            raise UsageError(problem)
    elif args.master:
        raise UsageError("--master is for --engine spark")
    with writer(config, "backfill") as (pipeline, outcomes):
        try:
            if args.engine == "spark":
                from app.service.spark_backfill import backfill_on_spark

                backfill_on_spark(pipeline, start, end, args.master)  # outcomes reach the list as reported
            else:
                pipeline.backfill(start, end)
        except RangeError as exc:
            raise UsageError(flag_wording(exc)) from None
        report = backfill_report(outcomes)
        if not report["written"] and not report["failed"]:
            report["note"] = (f"nothing to do: every window of [{format_timestamp(start)}, {format_timestamp(end)}) "
                              "is already committed (or skipped) in this data directory's ledger")
        print(json.dumps(report, indent=2))
        return EXIT_FAILURE if report["failed"] else EXIT_OK


def backfill_report(outcomes: list[Outcome]) -> dict[str, Any]:
    """Per stream, every batch written (baseline company windows included), with its first and last id."""
    written: dict[str, dict[str, Any]] = {}
    skipped: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.status == "committed":
            entry = written.setdefault(outcome.stream, {"batches": 0, "records": 0, "corrupted": 0,
                                                        "first": outcome.window.batch_id})
            entry["batches"] += 1
            entry["records"] += outcome.record_count
            entry["corrupted"] += outcome.corrupted_count
            entry["last"] = outcome.window.batch_id
        elif outcome.status == "skipped":
            skipped[outcome.stream] = skipped.get(outcome.stream, 0) + 1
    failed = [o.as_dict() for o in outcomes if o.status == "failed"]
    return {"written": written, "skipped_ranges": skipped, "failed": failed}


def flag_wording(exc: RangeError) -> str:
    """A range problem in the words of `backfill`'s options."""
    if exc.problem == "empty":
        return f"--to ({exc.end}) must be after --from ({exc.start})"
    return (f"the {exc.stream} ledger ends at {exc.ledger_end}, before --from {exc.start}: backfill continues a "
            "ledger, it cannot leave a gap. Use --from at or before that time, or a fresh --data-dir")


def cmd_status(args: argparse.Namespace) -> int:
    from app.store import Store

    config, _ = load(args)
    if config.database.url is None and not (config.output.local_dir / "manifests" / "generator.db").exists():
        # read-only means creating nothing either: no store yet is an answer, not a reason to make one
        print(json.dumps({"data_dir": str(config.output.data_dir), "ledger": {}, "paused": False,
                          "note": "no metadata store yet: nothing was generated in this data directory"}, indent=2))
        return EXIT_OK
    # Read-only, beside a running service: never migrates (a writer of this version does that).
    store = Store(config.database_url, auto_migrate=False, busy_timeout_ms=config.database.busy_timeout_ms)
    try:
        ledger = store.stream_totals()
        for by_status in ledger.values():
            for totals in by_status.values():
                for key in ("last_interval_end", "last_finished_at"):
                    if totals.get(key) is not None:
                        totals[key] = format_timestamp(datetime.fromtimestamp(totals[key], UTC))
        print(json.dumps({"data_dir": str(config.output.data_dir), "ledger": ledger,
                          "paused": bool(store.get_state("paused", False))}, indent=2))
        return EXIT_OK
    finally:
        store.close()


def cmd_clean(args: argparse.Namespace) -> int:
    from app.service.lifecycle import clean_offline

    config, _ = load(args)
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("clean removes all generated data; pass --yes to confirm")
        answer = input(f"Remove everything fleetgen wrote under {config.output.data_dir}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("aborted")
            return EXIT_OK
    with DataDirLock(config.output.local_dir, "clean", url=config.output.url):
        print(json.dumps(clean_offline(config), indent=2))
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from app.api.server import run_service

    config, mode_source = load(args)
    updates = {}
    if args.port is not None:
        updates["port"] = args.port
    if args.host is not None:
        updates["host"] = args.host
    if updates:
        config = config.model_copy(update={"api": config.api.model_copy(update=updates)})
    pipeline = None
    if args.with_pipeline:  # the same config, data directory and mode as the service
        problem = pipeline_cli.pipeline_problem(config)
        if problem:
            raise UsageError(f"--with-pipeline: {problem}")
        pipeline = ["--config", str(Path(args.config).resolve()), "--data-dir", str(config.output.data_dir),
                    "--mode", config.generation_mode]
    return run_service(config, mode_source, pipeline)


def cmd_bench(args: argparse.Namespace) -> int:
    from app.bench.runner import run_benchmarks

    writable_file(args.output, "--output")  # before minutes of benchmarks, not after
    return run_benchmarks(args.output, quick=args.quick, only=args.only)


COMMANDS = {
    "init": cmd_init, "validate": cmd_validate, "generate": cmd_generate, "backfill": cmd_backfill,
    "status": cmd_status, "clean": cmd_clean, "run": cmd_run, "bench": cmd_bench, "schema": cmd_schema,
    "expect": cmd_expect, "verify": cmd_verify, "pipeline": lambda args: pipeline_cli.cmd_pipeline(args, load),
}
