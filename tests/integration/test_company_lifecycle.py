"""Company churn (issue #13, optional): companies leave and change their driver count over time, each
change a new company record (an SCD-2 history in silver), the events following it; and with churn the
number of active companies reaches the steady state the README's formula gives."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pyarrow.parquet as pq
import pytest

from app.cli import main
from app.core.errors import ConfigError
from app.core.generation.lifecycle import MONTH_S, Churn, lives
from tests.conftest import backfill, utc
from tests.integration.test_driver_story import SHIFT_GAP_S, rule_violations, seconds

START, END = utc(2026, 11, 20), utc(2026, 11, 26)
CHURN = {"monthly_rate": 0.99, "driver_changes_per_month": 10.0}


@pytest.fixture(scope="module")
def churned(tmp_path_factory):
    from app.core.config import Config

    config = Config.model_validate({
        "seed": 42, "output": {"data_dir": str(tmp_path_factory.mktemp("churn") / "data")},
        "number_of_companies": 20, "drivers_per_company": 6, "company_onboarding_interval": "P1D",
        "companies": {"active_probability": 1.0, "churn": CHURN}})
    return backfill(config, START, END)


def company_records(data_dir):
    for batch in sorted((data_dir / "raw/companies").iterdir()):
        meta = json.loads((batch / "_batch_meta.json").read_text())
        for line in (batch / "companies.jsonl").read_text().splitlines():
            yield meta, json.loads(line)


def test_every_change_is_a_new_record_of_the_same_company(churned):
    history = defaultdict(list)
    for meta, record in company_records(churned):
        assert meta["interval_start"] <= record["updated_at"] < meta["interval_end"]
        history[record["company_id"]].append(record)
    changes = leaves = 0
    for records in history.values():
        first = records[0]
        assert first["updated_at"] == first["onboarded_at"]  # the onboarding record comes first
        for before, after in zip(records, records[1:], strict=False):
            assert before["active"]  # nothing follows a company's leaving
            assert after["updated_at"] > before["updated_at"]
            assert {k: after[k] for k in ("company_name", "geography", "onboarded_at")} == \
                {k: first[k] for k in ("company_name", "geography", "onboarded_at")}
            assert after["drivers_count"] != before["drivers_count"] or not after["active"]
            changes += 1
            leaves += not after["active"]
    assert leaves > 20 and changes - leaves > 20


def test_events_follow_the_company_history_and_keep_the_rules(churned):
    """No event at or after a company's leaving, none from a driver number above the count in force, and
    every driver still follows the rules (a shift cut by a change ends STOPPED)."""
    history = defaultdict(list)
    for _, record in company_records(churned):
        history[record["company_id"]].append((seconds(record["updated_at"]), record["active"],
                                               record["drivers_count"]))
    late = 0
    for batch in (churned / "raw/events").iterdir():
        for line in (batch / "events.jsonl").read_text().splitlines():
            event = json.loads(line)
            at = seconds(event["event_timestamp"])
            in_force = [h for h in history[event["company_id"]] if h[0] <= at]
            assert in_force, event
            _, active, drivers = in_force[-1]
            assert active, f"{event['event_id']} after its company left"
            late += int(event["driver_id"][-4:]) > drivers
    assert late == 0
    violations, drivers, _ = rule_violations(churned, SHIFT_GAP_S, END.timestamp())
    assert not violations, "\n".join(violations[:20])
    assert len(drivers) > 100


def test_expect_keeps_the_history_of_each_company(churned, tmp_path):
    assert main(["expect", "--data-dir", str(churned), "--out", str(tmp_path / "e")]) == 0
    silver = pq.read_table(tmp_path / "e/silver/companies.parquet")
    records = list(company_records(churned))
    assert silver.num_rows == len(records) > len({r["company_id"] for _, r in records})
    keys = list(zip(silver["company_id"].to_pylist(), silver["updated_at"].to_pylist(), strict=True))
    assert len(set(keys)) == len(keys)


def test_active_companies_reach_the_steady_state_of_the_formula():
    """Onboarding N companies per window of I seconds, each leaving at hazard λ = −ln(1 − rate) / 30 d:
    after time T the active count is N / I × (1 − e^(−λT)) / λ, tending to N / I / λ."""
    rng = np.random.default_rng(1)
    per_window, interval_s, windows = 50, 3600, 24 * 365
    since = np.repeat(np.arange(1, windows + 1) * interval_s, per_window).astype(np.int64)
    uuids = rng.integers(0, 256, (len(since), 16), dtype=np.uint8)
    for rate in (0.05, 0.3):
        life = lives(7, Churn(rate, 0.0), uuids, since, np.full(len(since), 10, np.int32))
        hazard = -np.log1p(-rate) / MONTH_S
        horizon = windows * interval_s
        expected = per_window / interval_s * (1 - np.exp(-hazard * horizon)) / hazard
        active = int((life.leave_s > horizon + interval_s).sum())
        assert abs(active - expected) / expected < 0.03, (rate, active, expected)


def test_churn_is_refused_in_emulated_mode(make_config):
    with pytest.raises(Exception) as info:
        make_config(companies={"churn": CHURN}, emulated_mode={"enabled": True})
    assert "companies.churn applies to production mode" in str(info.value)
    assert isinstance(info.value, (ConfigError, ValueError))

