"""`fleetgen backfill` reports every batch it wrote, says when there was nothing to do, refuses the future."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from app.cli import main
from app.core.config import load_config
from app.store import Store


def run(capsys, *args: str) -> tuple[int, dict, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out.strip().startswith("{") else {}), captured.err


def test_every_written_batch_is_reported_baseline_included_and_a_rerun_says_nothing_to_do(write_config, capsys):
    path = str(write_config({"number_of_companies": 100, "drivers_per_company": 2}))
    args = ["backfill", "--config", path, "--from", "2026-11-25T00:00:00Z", "--to", "2026-11-25T02:00:00Z"]
    code, report, _ = run(capsys, *args)
    assert code == 0
    store = Store(load_config(path).database_url)
    try:
        for stream in ("companies", "events"):
            rows = [r for r in store.all_batches(stream) if r.status == "committed"]
            written = report["written"][stream]
            assert written["batches"] == len(rows) and written["records"] == sum(r.record_count for r in rows)
            assert (written["first"], written["last"]) == (rows[0].batch_id, rows[-1].batch_id)
        assert report["written"]["companies"]["batches"] == 3  # the baseline window and the two of the range
        assert report["written"]["companies"]["records"] == 300
    finally:
        store.close()
    code, again, _ = run(capsys, *args)
    assert code == 0 and again["written"] == {} and again["note"].startswith("nothing to do: every window")


def test_a_range_reaching_into_the_future_needs_allow_future(write_config, capsys, tmp_path):
    path = str(write_config({"number_of_companies": 5, "drivers_per_company": 1}))
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    future = (now + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    start = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    code, _, err = run(capsys, "backfill", "--config", path, "--from", start, "--to", future)
    assert code == 2 and "is in the future" in err and "--allow-future" in err
    code, report, _ = run(capsys, "backfill", "--config", path, "--from", start, "--to", future, "--allow-future")
    assert code == 0 and report["written"]["events"]["batches"] == 4 * 49
