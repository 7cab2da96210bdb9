"""Config → ledger → bronze, with real SQLite and real files."""

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest

from app.cli import main
from app.core import bronze
from app.core.timeline import Window
from app.service.pipeline import Pipeline
from app.store import Store
from tests.conftest import utc


def digests(data_dir: Path, pattern: str) -> dict[str, str]:
    return {str(p.relative_to(data_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(data_dir.glob(pattern))}


def pipeline_for(config) -> Pipeline:
    return Pipeline(config, Store(config.database_url))


QUALITY = {"enabled": True, "error_rate": 0.2}


def test_backfill_twice_gives_identical_files(tmp_path, write_config):
    dirs = [tmp_path / "a", tmp_path / "b"]
    for data_dir in dirs:
        path = write_config({"number_of_companies": 20, "quality_injection": QUALITY}, data_dir=data_dir)
        assert main(["backfill", "--config", str(path), "--from", "2026-11-25T00:00:00Z",
                     "--to", "2026-11-25T03:00:00Z"]) == 0
    for pattern in ("raw/*/*/*.jsonl",):
        first, second = digests(dirs[0], pattern), digests(dirs[1], pattern)
        assert first == second
        assert sum(name.endswith("events.jsonl") for name in first) == 12
        assert sum(name.endswith("companies.jsonl") for name in first) == 4  # baseline + 3 hours


def test_backfill_is_idempotent_and_resumable(tmp_path, write_config, capsys):
    path = write_config({"number_of_companies": 5}, data_dir=tmp_path / "d")
    args = ["backfill", "--config", str(path), "--from", "2026-11-25T00:00:00Z"]
    assert main([*args, "--to", "2026-11-25T01:00:00Z"]) == 0
    before = digests(tmp_path / "d", "raw/*/*/*.jsonl")
    assert main([*args, "--to", "2026-11-25T01:00:00Z"]) == 0
    assert digests(tmp_path / "d", "raw/*/*/*.jsonl") == before
    assert main([*args, "--to", "2026-11-25T02:00:00Z"]) == 0  # resumes after the first hour
    after = digests(tmp_path / "d", "raw/*/*/*.jsonl")
    assert {k: after[k] for k in before} == before and len(after) > len(before)


def test_generate_and_backfill_write_the_same_interval(tmp_path, write_config, capsys):
    gen = write_config({"number_of_companies": 30, "quality_injection": QUALITY}, data_dir=tmp_path / "gen")
    back = write_config({"number_of_companies": 30, "quality_injection": QUALITY}, data_dir=tmp_path / "back")
    assert main(["generate", "--config", str(gen), "--stream", "events", "--at", "2026-11-25T10:15:07Z"]) == 0
    assert main(["backfill", "--config", str(back), "--from", "2026-11-25T10:00:00Z",
                 "--to", "2026-11-25T10:15:00Z"]) == 0
    produced = digests(tmp_path / "gen", "raw/*/*/*.jsonl")
    assert "raw/events/20261125T100000Z/events.jsonl" in produced
    assert produced == digests(tmp_path / "back", "raw/*/*/*.jsonl")


def test_interval_without_events_still_gets_a_batch(make_config):
    config = make_config(event_rate_per_driver=0.0)
    pipeline = pipeline_for(config)
    outcomes = pipeline.catch_up("events", utc(2026, 11, 25, 10, 0, 1))
    committed = [o for o in outcomes if o.status == "committed"]
    assert [o.stream for o in committed] == ["events"]
    batch_dir = config.output.local_dir / "raw/events/20261125T094500Z"
    meta = json.loads((batch_dir / "_batch_meta.json").read_text())
    assert meta["record_count"] == 0 and (batch_dir / "events.jsonl").read_bytes() == b""
    assert (batch_dir / "_SUCCESS").exists()
    # the baseline company window closes where the first driver window starts
    assert (config.output.local_dir / "raw/companies/20261125T084500Z").exists() is False
    assert (config.output.local_dir / "raw/companies/20261125T080000Z/_SUCCESS").exists()


def test_driver_batch_references_only_companies_onboarded_before_it(make_config):
    config = make_config(emulated_mode={"enabled": True}, companies={"active_probability": 0.5})
    pipeline = pipeline_for(config)
    for second in range(20, 120, 10):
        now = utc(2026, 11, 25, 10) + timedelta(seconds=second)
        pipeline.catch_up("companies", now)
        pipeline.catch_up("events", now)
    data = config.output.local_dir
    onboarded = {}
    for path in data.glob("raw/companies/*/companies.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            onboarded[record["company_id"]] = (record["onboarded_at"], record["active"])
    checked = 0
    for path in data.glob("raw/events/*/events.jsonl"):
        start = json.loads((path.parent / "_batch_meta.json").read_text())["interval_start"]
        for line in path.read_text().splitlines():
            record = json.loads(line)
            when, active = onboarded[record["company_id"]]
            assert when < start and active
            checked += 1
    assert checked > 50


def test_failure_between_staging_and_commit_leaves_nothing_and_retry_produces(make_config, monkeypatch):
    config = make_config(number_of_companies=10)
    pipeline = pipeline_for(config)
    real_move = bronze.move_into_place

    def broken(staging, final):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bronze, "move_into_place", broken)
    outcomes = pipeline.catch_up("companies", utc(2026, 11, 25, 10, 0, 1))
    assert [o.status for o in outcomes] == ["failed"]
    assert "No space left" in outcomes[0].reason
    data = config.output.local_dir
    assert list(data.glob("raw/companies/*")) == []
    assert list((data / ".staging").iterdir()) == []
    assert pipeline.store.find("companies", outcomes[0].window).status == "failed"

    monkeypatch.setattr(bronze, "move_into_place", real_move)
    retried = pipeline.catch_up("companies", utc(2026, 11, 25, 10, 0, 1))
    assert [o.status for o in retried] == ["committed"]
    row = pipeline.store.find("companies", outcomes[0].window)
    assert row.status == "committed" and row.attempts == 2
    assert bronze.verify_batch(data / "raw/companies/20261125T090000Z") == []


def test_crash_after_rename_before_commit_adopts_the_identical_batch(make_config, monkeypatch):
    config = make_config(number_of_companies=10)
    pipeline = pipeline_for(config)

    def crash(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(pipeline.store, "commit", crash)
    assert pipeline.catch_up("companies", utc(2026, 11, 25, 10, 0, 1))[0].status == "failed"
    monkeypatch.undo()
    outcome = pipeline.catch_up("companies", utc(2026, 11, 25, 10, 0, 1))[0]
    assert outcome.status == "committed" and outcome.adopted
    assert pipeline.store.roster_size() == 10


def test_manifest_and_descriptor(make_config):
    config = make_config(number_of_companies=4)
    pipeline = pipeline_for(config)
    pipeline.catch_up("events", utc(2026, 11, 25, 10, 0, 1))
    manifest = json.loads((config.output.local_dir / "manifests/batch_manifest.json").read_text())
    assert manifest["streams"]["companies"]["committed_batches"] == 1
    assert manifest["streams"]["companies"]["records"] == 4
    assert manifest["streams"]["events"]["committed_batches"] == 1
    descriptor = (config.output.local_dir / "manifests/dataset.md").read_text()
    assert "seed: 42" in descriptor and "number_of_companies: 4" in descriptor


@pytest.mark.parametrize("args, message", [
    (["--from", "yesterday", "--to", "2026-11-25T00:00:00Z"], "--from: 'yesterday'"),
    (["--from", "2026-11-25T02:00:00Z", "--to", "2026-11-25T01:00:00Z"], "must be after --from"),
])
def test_backfill_bad_arguments_exit_2(write_config, capsys, args, message):
    path = write_config({})
    assert main(["backfill", "--config", str(path), *args]) == 2
    assert message in capsys.readouterr().err


def test_duplicate_company_lines_onboard_each_company_once(make_config):
    config = make_config(number_of_companies=60, quality_injection={
        "enabled": True, "error_rate": 0.5, "duplicate_probability": 1.0, "inject_in_driver_events": False})
    pipeline = pipeline_for(config)
    outcomes = pipeline.catch_up("events", utc(2026, 11, 25, 10, 0, 1))
    assert [o.status for o in outcomes] == ["committed"]
    data = config.output.local_dir
    lines = [json.loads(line) for path in data.glob("raw/companies/*/companies.jsonl")
             for line in path.read_text().splitlines()]
    distinct = {record["company_id"] for record in lines}
    assert len(lines) == 60 and len(distinct) < 60  # some lines are repeats
    assert pipeline.store.roster_size() == len(distinct)
    referenced = {json.loads(line)["company_id"] for path in data.glob("raw/events/*/events.jsonl")
                  for line in path.read_text().splitlines()}
    assert referenced and referenced <= distinct


def test_generate_explains_when_nothing_is_due_and_status_reads_well(write_config, tmp_path, capsys):
    path = write_config({"number_of_companies": 2}, data_dir=tmp_path / "d")
    assert main(["generate", "--config", str(path), "--stream", "events", "--at", "2026-11-25T10:00:01Z"]) == 0
    capsys.readouterr()
    assert main(["generate", "--config", str(path), "--stream", "events", "--at", "2026-11-25T10:00:05Z"]) == 0
    assert "window 20261125T094500Z, the last one closed at --at, is already committed" in capsys.readouterr().out
    assert main(["generate", "--config", str(path), "--stream", "events", "--at", "2026-01-01T00:00:00Z"]) == 0
    assert "ledger starts at 20261125T094500Z" in capsys.readouterr().out
    assert main(["status", "--config", str(path)]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["ledger"]["events"]["committed"]["last_interval_end"] == "2026-11-25T10:00:00.000Z"


def test_an_events_window_is_prepared_ahead_only_on_a_complete_roster(make_config):
    config = make_config(number_of_companies=6)
    pipeline = pipeline_for(config)
    pipeline.catch_up("events", utc(2026, 11, 25, 10, 0, 1))  # events through 10:00, companies through 09:00
    next_window = Window(utc(2026, 11, 25, 10), utc(2026, 11, 25, 10, 15))
    companies_before = [r.batch_id for r in pipeline.store.all_batches("companies")]
    assert not pipeline.prepare_ahead("events", next_window)  # its roster needs the 09:00-10:00 companies
    assert [r.batch_id for r in pipeline.store.all_batches("companies")] == companies_before  # none made
    assert not pipeline.prepare_ahead("events", Window(utc(2026, 11, 25, 10, 15), utc(2026, 11, 25, 10, 30)))

    pipeline.catch_up("companies", utc(2026, 11, 25, 10, 0, 1))
    assert pipeline.prepare_ahead("events", next_window)
    assert len(list(pipeline.layout.staging.iterdir())) == 1
    outcome = pipeline.catch_up("events", utc(2026, 11, 25, 10, 15, 1))[-1]
    assert outcome.status == "committed" and outcome.window == next_window
    assert list(pipeline.layout.staging.iterdir()) == []
    meta = json.loads((config.output.local_dir / "raw/events/20261125T100000Z/_batch_meta.json").read_text())
    assert meta["record_count"] == outcome.record_count > 0
    assert bronze.verify_batch(config.output.local_dir / "raw/events/20261125T100000Z") == []
    # the company window closing at 11:00 is not part of the 10:15 window's roster: it is prepared without it
    assert pipeline.prepare_ahead("events", Window(utc(2026, 11, 25, 10, 15), utc(2026, 11, 25, 10, 30)))
    assert [r.batch_id for r in pipeline.store.all_batches("companies")][-1] == "20261125T090000Z"
