"""`fleetgen pipeline` (DuckDB engine): silver and gold equal `fleetgen expect`, each batch once."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from app.cli.main import main
from app.medallion import runner
from tests.conftest import backfill, utc
from tests.pipeline_equality import assert_equal_to_expect


def run_pipeline(config_path: Path, *extra: str) -> dict:
    """`fleetgen pipeline --once` in this process; its JSON summary."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["pipeline", "--config", str(config_path), "--once", *extra])
    summary = json.loads(out.getvalue())
    summary["exit_code"] = code
    return summary


def issue_log(data: Path) -> list[tuple]:
    """(stream, batch_id, line, record_id, reason) of every non-duplicate defect, from the ground truth."""
    rows = []
    for stream in ("companies", "events"):
        for batch in sorted((data / "raw" / stream).iterdir()):
            issues = batch / "_issues.ndjson"
            if issues.exists():
                for line in issues.read_text().splitlines():
                    issue = json.loads(line)
                    if issue["defect_type"] != "duplicate":
                        rows.append((stream, batch.name, issue["line"], issue["record_id"], issue["reason_code"]))
    return sorted(rows)


@pytest.fixture
def production(make_config, write_config, tmp_path):
    """The production preset at 20 companies, 15 % defects and 5 % late arrivals up to 30 minutes."""
    overrides = {"number_of_companies": 20, "quality_injection": {"enabled": True, "error_rate": 0.15},
                 "late_arrival": {"probability": 0.05, "max_delay": "PT30M"}}
    return make_config(**overrides), write_config(overrides)


def test_production_backfill_with_defects_equals_expect(production, tmp_path):
    config, path = production
    data = backfill(config, utc(2026, 11, 25, 6), utc(2026, 11, 25, 8))
    summary = run_pipeline(path)
    assert summary["exit_code"] == 0 and summary["check"]["state"] == "equal"
    assert summary["batches"] == 3 + 8  # the baseline company window, two more, eight driver windows
    report = assert_equal_to_expect(config, config.output.local_dir, tmp_path / "expected")
    assert report["tables"]["silver/events"]["expected_rows"] > 1000
    # the quarantine holds exactly the defective lines, with the ground truth's line and reason
    quarantined = duckdb.sql(f"SELECT stream, batch_id, line, record_id, reason FROM "
                             f"read_parquet('{data}/silver/quarantine/*.parquet') ORDER BY ALL").fetchall()
    assert quarantined == issue_log(data) and len(quarantined) > 100
    # every record line is in silver, in quarantine or a dropped copy: nothing lost, nothing twice
    status = json.loads((data / "pipeline" / "status.json").read_text())
    for stream in ("companies", "events"):
        metas = [json.loads((b / "_batch_meta.json").read_text()) for b in (data / "raw" / stream).iterdir()]
        silver = status["layers"]["silver"][stream]
        assert status["layers"]["bronze"][stream]["records"] == sum(m["record_count"] for m in metas)
        assert silver["rows"] == sum(m["valid_count"] for m in metas)
        assert silver["duplicates_dropped"] == sum(m["issue_counts"].get("duplicate", 0) for m in metas)


def test_batch_by_batch_equals_one_pass(production, tmp_path, monkeypatch):
    """One bronze batch per micro-batch, over two backfills: gold built increment by increment (late
    events landing in earlier windows and in trips already counted) ends equal to expect."""
    config, path = production
    monkeypatch.setattr(runner, "MAX_MICRO_BATCH_FILES", 1)
    backfill(config, utc(2026, 11, 25, 6), utc(2026, 11, 25, 7))
    first = run_pipeline(path)
    assert first["micro_batches"] == first["batches"] == 2 + 4
    backfill(config, utc(2026, 11, 25, 7), utc(2026, 11, 25, 9))
    second = run_pipeline(path)
    assert second["micro_batches"] == 2 + 8 and second["check"]["state"] == "equal"
    assert run_pipeline(path)["batches"] == 0  # nothing twice
    assert_equal_to_expect(config, config.output.local_dir, tmp_path / "expected")


def test_emulated_run_with_defects_and_late_arrivals_equals_expect(make_config, write_config, tmp_path):
    overrides = {"seed": 5, "emulated_mode": {"enabled": True, "company_batch_interval": "PT5S",
                                              "driver_batch_interval": "PT1S"},
                 "quality_injection": {"enabled": True, "error_rate": 0.2},
                 "late_arrival": {"probability": 0.1, "max_delay": "PT10S"}}
    config, path = make_config(**overrides), write_config(overrides)
    backfill(config, utc(2026, 11, 25, 20), utc(2026, 11, 25, 20, 2))
    summary = run_pipeline(path)
    assert summary["batches"] == 1 + 24 + 120  # the baseline company window, then two minutes
    assert summary["check"]["state"] == "equal"
    assert_equal_to_expect(config, config.output.local_dir, tmp_path / "expected")


DIES_AFTER_THE_COMMIT = """
import os, sys, threading
from pathlib import Path
from app.core.config import load_config
from app.medallion import runner

real, calls = runner.publish_pending, []

def dies(state, tables):  # the first call publishes leftovers on opening; the second follows a commit
    calls.append(1)
    if len(calls) == 2:
        os._exit(9)  # like kill -9: no cleanup, no flush
    return real(state, tables)

runner.publish_pending = dies
sink = runner.Sink(load_config(Path(sys.argv[1])), runner.Options(check_every_s=None)).open()
runner.run_duckdb(sink, once=True, stop=threading.Event())
"""


def test_a_crash_between_commit_and_publish_is_finished_on_restart(production, tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    config, path = production
    data = backfill(config, utc(2026, 11, 25, 6), utc(2026, 11, 25, 7))
    died = subprocess.run([sys.executable, "-c", DIES_AFTER_THE_COMMIT, str(path)], cwd=ROOT, capture_output=True)
    assert died.returncode == 9, died.stderr.decode()[-2000:]
    assert not (data / "silver" / "events").exists()  # committed in the state, not yet published
    # a kill in the middle of publishing leaves a half-written file beside a table: gone on restart
    half_written = data / "gold" / "driver_day" / ".part-2026-11-25.parquet.1a2b3c4d.tmp"
    half_written.parent.mkdir(parents=True)
    half_written.write_bytes(b"PAR1 cut short")
    users_own = data / "gold" / "driver_day" / ".notes.tmp"  # hidden, but not a name the pipeline writes: kept
    users_own.write_text("mine")
    summary = run_pipeline(path)
    assert not half_written.exists() and users_own.read_text() == "mine"
    assert summary["batches"] == 0  # nothing processed twice: the files were published from the state
    assert summary["check"]["state"] == "equal"
    assert_equal_to_expect(config, config.output.local_dir, tmp_path / "expected")


def test_bronze_cleaned_under_the_pipeline_starts_it_over(production, tmp_path, make_config, write_config):
    config, path = production
    backfill(config, utc(2026, 11, 25, 6), utc(2026, 11, 25, 7))
    assert run_pipeline(path)["batches"] == 6
    assert main(["clean", "--config", str(path), "--yes"]) == 0
    # the same windows written again with another seed: same batch ids, other bytes
    other = {"seed": 99, "number_of_companies": 20, "quality_injection": {"enabled": True, "error_rate": 0.15}}
    other_config, other_path = make_config(**other), write_config(other)
    backfill(other_config, utc(2026, 11, 25, 6), utc(2026, 11, 25, 7))
    summary = run_pipeline(other_path)
    assert summary["batches"] == 6 and summary["check"]["state"] == "equal"  # nothing of the old data left
    assert_equal_to_expect(other_config, other_config.output.local_dir, tmp_path / "expected")


def test_one_pipeline_per_output_and_clear_errors(production, capsys):
    config, path = production
    backfill(config, utc(2026, 11, 25, 6), utc(2026, 11, 25, 6, 15))
    holder = runner.DataDirLock(config.output.local_dir, "pipeline", name=runner.LOCK_NAME).acquire()
    try:
        assert main(["pipeline", "--config", str(path), "--once"]) == 2
        assert "in use by fleetgen pipeline" in capsys.readouterr().err
    finally:
        holder.release()
    assert main(["pipeline", "--config", str(path), "--once", "--trigger", "soon"]) == 2
    assert "--trigger 'soon': must be an ISO 8601 duration" in capsys.readouterr().err
    assert main(["pipeline", "--config", str(path), "--once", "--check-every", "PT0S"]) == 2
    assert "--check-every 'PT0S': must be at least 1 second" in capsys.readouterr().err


def test_a_corrupted_silver_file_turns_the_check_red(production):
    config, path = production
    data = backfill(config, utc(2026, 11, 25, 6), utc(2026, 11, 25, 6, 30))
    assert run_pipeline(path)["check"]["state"] == "equal"
    part = sorted((data / "silver" / "events").glob("part-*.parquet"))[-1]
    table = pq.read_table(part)
    pq.write_table(table.slice(1), part)  # one silver row lost
    sink = runner.Sink(config, runner.Options()).open()
    try:
        result = sink.run_check()
    finally:
        sink.close()
    assert result["state"] == "different"
    assert result["tables"]["silver/events"]["missing"] == 1
    status = json.loads((data / "pipeline" / "status.json").read_text())
    assert status["check"]["state"] == "different"


def test_micro_batches_split_a_backlog():
    from app.medallion.rules import BronzeBatch

    def batch(n: int, size: int) -> BronzeBatch:
        return BronzeBatch("events", f"b{n}", Path("x"), 0, 1, 0, 0, "", size)

    sizes = [runner.MAX_MICRO_BATCH_RECORDS - 1, 5, 3 * runner.MAX_MICRO_BATCH_RECORDS, 1]
    groups = runner.micro_batches([batch(i, s) for i, s in enumerate(sizes)])
    assert [[b.batch_id for b in g] for g in groups] == [["b0"], ["b1"], ["b2"], ["b3"]]
    assert len(runner.micro_batches([batch(i, 1) for i in range(runner.MAX_MICRO_BATCH_FILES + 1)])) == 2


@pytest.mark.parametrize("fast_read_from", [0, 10**9], ids=["typed-read", "exact"])
def test_hand_edited_bronze_is_classified_line_by_line(production, monkeypatch, fast_read_from):
    """Lines fleetgen never writes (an array, a string where a number belongs, a number where a string
    belongs, an escaped quote) are quarantined or kept by the rules, through either reading."""
    from app.medallion import state as state_module

    monkeypatch.setattr(state_module, "FAST_READ_MIN_RECORDS", fast_read_from)
    config, path = production
    data = backfill(config, utc(2026, 11, 25, 6), utc(2026, 11, 25, 6, 15))
    batch = sorted((data / "raw" / "events").iterdir())[0]
    records = batch / "events.jsonl"
    lines = records.read_text().splitlines()
    clean = next(json.loads(line) for line in lines if len(json.loads(line)) == 7
                 and "T" in str(json.loads(line).get("event_timestamp")))
    strange = [
        "[]",
        json.dumps({**clean, "event_id": "x-1", "location": {"lat": "45.0", "lon": 1.0}}),
        json.dumps({**clean, "event_id": "x-2", "driver_id": 17}),
        json.dumps({**clean, "event_id": "x-3", "location": "here"}),
        json.dumps({**clean, "event_id": 'x-"4"'}),  # an escaped quote in an id: valid, kept as written
    ]
    records.write_text("\n".join(lines + strange) + "\n")
    sink = runner.Sink(config, runner.Options(check_every_s=None)).open()
    try:
        runner.run_duckdb(sink, once=True, stop=__import__("threading").Event())
    finally:
        sink.close()
    first = len(lines) + 1
    quarantined = {row[0]: row[1:] for row in duckdb.sql(
        f"SELECT line, record_id, reason FROM read_parquet('{data}/silver/quarantine/*.parquet') "
        f"WHERE batch_id = '{batch.name}' AND line >= {first}").fetchall()}
    assert quarantined == {first: (None, "FIELD_REMOVED"), first + 1: ("x-1", "TYPE_MISMATCH"),
                           first + 2: ("x-2", "TYPE_MISMATCH"), first + 3: ("x-3", "TYPE_MISMATCH")}
    kept = duckdb.sql(f"SELECT event_id FROM read_parquet('{data}/silver/events/*.parquet') "
                      "WHERE event_id LIKE 'x-%'").fetchall()
    assert kept == [('x-"4"',)]
