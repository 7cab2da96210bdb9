"""The bronze contract data engineers code against: file layout, record schema, batch_meta."""

import json
import subprocess
import sys

from app.service.pipeline import Pipeline
from app.store import Store
from tests.conftest import ROOT, utc

EVENT_FIELDS = {"event_id": str, "company_id": str, "driver_id": str, "truck_id": str, "event_type": str,
                "event_timestamp": str, "location": dict}
COMPANY_FIELDS = {"company_id": str, "company_name": str, "geography": str, "active": bool,
                  "drivers_count": int, "onboarded_at": str, "updated_at": str}
META_FIELDS = {"batch_id", "stream", "interval_start", "interval_end", "record_count", "valid_count",
               "corrupted_count", "issue_counts", "seed", "generation_mode", "generated_at", "scheduled_at",
               "duration_s", "schema_version", "files", "interval", "published_at", "lateness_ms", "catch_up"}
LATE_FIELDS = {"late_count", "max_delay", "accepts_from"}  # events batches: what late arrival needs


def test_layout_records_and_meta(make_config):
    config = make_config(number_of_companies=12, quality_injection={"enabled": True, "error_rate": 0.3})
    Pipeline(config, Store(config.database_url)).catch_up("events", utc(2026, 11, 25, 10, 0, 1))
    data = config.output.local_dir
    assert sorted(str(p.relative_to(data)) for p in data.glob("raw/events/*/*")) == [
        "raw/events/20261125T094500Z/_SUCCESS", "raw/events/20261125T094500Z/_batch_meta.json",
        "raw/events/20261125T094500Z/_issues.ndjson", "raw/events/20261125T094500Z/events.jsonl"]
    assert (data / "manifests/generator.db").exists()
    for stream, fields in (("events", EVENT_FIELDS), ("companies", COMPANY_FIELDS)):
        batch_dir = next(data.glob(f"raw/{stream}/*"))
        meta = json.loads((batch_dir / "_batch_meta.json").read_text())
        assert set(meta) == (META_FIELDS | LATE_FIELDS if stream == "events" else META_FIELDS)
        assert meta["valid_count"] + meta["corrupted_count"] == meta["record_count"]
        assert sum(meta["issue_counts"].values()) == meta["corrupted_count"]
        issues = (batch_dir / "_issues.ndjson").read_text().splitlines()
        assert len(issues) == meta["corrupted_count"] == meta["files"]["_issues.ndjson"]["rows"]
        corrupted_lines = {json.loads(line)["line"] for line in issues}
        lines = (batch_dir / f"{stream}.jsonl").read_text().splitlines()
        assert len(lines) == meta["record_count"] == meta["files"][f"{stream}.jsonl"]["rows"]
        for number, line in enumerate(lines, start=1):
            record = json.loads(line)
            if number in corrupted_lines:
                continue
            assert {k: type(v) for k, v in record.items()} == fields
            for key in ("event_timestamp", "onboarded_at", "updated_at"):
                if key in record:
                    assert record[key].endswith("Z") and len(record[key]) == 24


def test_migrations_match_the_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'check.db'}"
    Store(url).close()
    result = subprocess.run([sys.executable, "-m", "alembic", "-x", "unused=1", "check"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "ALEMBIC_URL": url})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr
