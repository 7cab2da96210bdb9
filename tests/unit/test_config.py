import subprocess
import sys
from datetime import timedelta

import pytest

from app.cli import main
from app.core.config import ConfigError, load_config, parse_config, resolve_mode
from tests.conftest import ROOT


@pytest.mark.parametrize("preset", sorted((ROOT / "conf").glob("*.yaml")), ids=lambda p: p.name)
def test_every_preset_loads(preset):
    config = load_config(preset)
    assert config.active_company_interval >= timedelta(seconds=1)


def test_user_config_from_the_spec_keeps_loading():
    config = parse_config(
        """
seed: 42
number_of_companies: 100
drivers_per_company: 10
event_rate_per_driver: 3.5
company_onboarding_interval: PT1H
driver_event_interval: PT15M
quality_injection: {enabled: false, error_rate: 0.0, missing_field_probability: 0.3,
  null_value_probability: 0.3, malformed_timestamp_probability: 0.2, invalid_enum_probability: 0.1,
  duplicate_probability: 0.05, boundary_violation_probability: 0.05, inject_in_driver_events: true,
  inject_in_companies: true, log_injected_issues: true}
emulated_mode: {enabled: false, company_batch_interval: PT10S, driver_batch_interval: PT10S,
  companies_per_batch: 10, events_per_batch_min: 5, events_per_batch_max: 20}
"""
    )
    assert config.generation_mode == "production"
    assert config.active_company_interval == timedelta(hours=1)
    assert config.active_driver_interval == timedelta(minutes=15)
    assert config.active_company_count == 100


def test_active_properties_follow_the_mode():
    config = parse_config("emulated_mode: {enabled: true, company_batch_interval: PT5S, "
                          "driver_batch_interval: PT7S, companies_per_batch: 3}")
    assert config.active_company_interval == timedelta(seconds=5)
    assert config.active_driver_interval == timedelta(seconds=7)
    assert config.active_company_count == 3
    production = config.with_mode("production")
    assert production.active_company_interval == timedelta(hours=1)
    assert production.active_company_count == 100


@pytest.mark.parametrize("text", ["PT1H30M", "PT10S", "P1D", "PT1S"])
def test_durations_accepted(text):
    config = parse_config(f"driver_event_interval: {text}\nevent_rate_per_driver: 0.1")
    assert config.driver_event_interval.total_seconds() >= 1


BAD_CONFIGS = {
    "more events than a shift holds": ("driver_event_interval: PT1S", [
        "event_rate_per_driver: 3.5 events per driver per PT1S", "8-10 hour shift", "at most 0.5"]),
    "unknown key": ("quality_injection: {corruption_rate: 0.1}", ["quality_injection.corruption_rate",
                                                                  "did you mean `error_rate`"]),
    "retired key": ("events: {location_spread_degrees: 1.5}", ["events.location_spread_degrees", "retired",
                                                               "depot"]),
    "more emulated events than milliseconds": (
        "emulated_mode: {driver_batch_interval: PT1S, events_per_batch_max: 1001}",
        ["emulated_mode", "events_per_batch_max (1001) must be at most 1000", "its own millisecond"]),
    "late arrival delay shorter than the interval": (
        "late_arrival: {probability: 0.05, max_delay: PT10M}",
        ["late_arrival.max_delay (PT10M) must be at least the driver interval (driver_event_interval: PT15M)"]),
    "late arrival reaching too far back": (
        "late_arrival: {probability: 0.05, max_delay: P2D}",
        ["late_arrival.max_delay (P2D) spans 192 driver windows of PT15M; at most 96"]),
    "late arrival share above one half": ("late_arrival: {probability: 0.6}",
                                          ["late_arrival.probability", "0.6", "less than or equal to 0.5"]),
    "churn rate of one": ("companies: {churn: {monthly_rate: 1.0}}",
                          ["companies.churn.monthly_rate", "1.0", "less than 1"]),
    "churn in emulated mode": ("companies: {churn: {monthly_rate: 0.05}}\nemulated_mode: {enabled: true}",
                               ["companies.churn applies to production mode"]),
    "unknown top-level key": ("corruption_rate: 0.1", ["corruption_rate", "quality_injection.error_rate"]),
    "sub-second interval": ("emulated_mode: {company_batch_interval: PT0.5S}",
                            ["emulated_mode.company_batch_interval", "'PT0.5S'", "at least 1 second"]),
    "month duration": ("emulated_mode: {driver_batch_interval: P1M}",
                       ["emulated_mode.driver_batch_interval", "'P1M'", "months"]),
    "not a duration": ("driver_event_interval: fifteen minutes",
                       ["driver_event_interval", "ISO 8601 duration"]),
    "max below min": ("emulated_mode: {events_per_batch_min: 10, events_per_batch_max: 5}",
                      ["emulated_mode", "events_per_batch_max (5) must be >= events_per_batch_min (10)"]),
    "companies_per_batch 0": ("emulated_mode: {companies_per_batch: 0}",
                              ["emulated_mode.companies_per_batch", "0", "greater than or equal to 1"]),
    "companies_per_batch 101": ("emulated_mode: {companies_per_batch: 101}",
                                ["emulated_mode.companies_per_batch", "101", "less than or equal to 100"]),
    "negative rate": ("event_rate_per_driver: -1.5",
                      ["event_rate_per_driver", "-1.5", "greater than or equal to 0"]),
    "error rate above 1": ("quality_injection: {error_rate: 1.5}", ["quality_injection.error_rate", "1.5"]),
    "data_dir is the root": ("output: {data_dir: /}", ["output.data_dir", "system or home directory"]),
    "data_dir is /tmp itself": ("output: {data_dir: /tmp/}", ["output.data_dir", "/tmp is a system"]),
    "unsupported scheme": ("output: {data_dir: 'hdfs://nn/bronze'}", ["output.data_dir", "hdfs:// is not supported"]),
    "a URL without a bucket": ("output: {data_dir: 's3:///bronze'}", ["output.data_dir", "no bucket"]),
    "a scheme whose package is missing": ("output: {data_dir: 'gs://lake/bronze'}",
                                          ["output.data_dir", "gcsfs", "fleetgen[gcs]"]),
    "work_dir for a local data_dir": ("output: {data_dir: here, work_dir: there}",
                                      ["output", "work_dir is for an object-storage data_dir"]),
    "storage_options for a local data_dir": ("output: {storage_options: {key: abc}}",
                                             ["output", "storage_options is for an object-storage data_dir"]),
    "an unknown output format": ("output: {format: avro}", ["output.format", "'jsonl' or 'parquet'"]),
    "not YAML": ("seed: [1, 2\nfoo: {", ["not valid YAML", "line"]),
    "a list, not a mapping": ("- 1\n- 2\n", ["top level must be a mapping"]),
    "wrong type": ("seed: forty-two", ["seed", "'forty-two'", "integer"]),
    "no defect type": ("quality_injection: {enabled: true, error_rate: 0.1, missing_field_probability: 0, "
                       "null_value_probability: 0, malformed_timestamp_probability: 0, invalid_enum_probability: 0, "
                       "duplicate_probability: 0, boundary_violation_probability: 0}",
                       ["quality_injection", "at least one *_probability"]),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_bad_config_exits_2_naming_the_field(name, write_config, capsys):
    text, expected = BAD_CONFIGS[name]
    path = write_config(text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    for fragment in expected:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert "Traceback" not in err


def test_every_problem_is_listed_at_once():
    with pytest.raises(ConfigError) as info:
        parse_config("seed: -1\ndrivers_per_company: 0\nemulated_mode: {companies_per_batch: 500}\nfoo: 1")
    paths = [p.split(":")[0] for p in info.value.problems]
    assert paths == ["seed", "drivers_per_company", "emulated_mode.companies_per_batch", "foo"]


def test_missing_file_and_binary_file(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "file not found" in capsys.readouterr().err
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    assert main(["validate", str(binary)]) == 2
    err = capsys.readouterr().err
    assert "invalid configuration" in err and "Traceback" not in err


def test_real_process_prints_no_traceback(write_config):
    path = write_config("emulated_mode: {company_batch_interval: PT0.5S}")
    result = subprocess.run([sys.executable, "-m", "app", "validate", str(path)], capture_output=True,
                            text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2
    assert "emulated_mode.company_batch_interval" in result.stderr
    assert "Traceback" not in result.stderr


def test_mode_override_precedence():
    config = parse_config("emulated_mode: {enabled: false}")
    assert resolve_mode(config, None, {})[1] == "config file (emulated_mode.enabled)"
    env_config, source = resolve_mode(config, None, {"FLEETGEN_MODE": "emulated"})
    assert env_config.generation_mode == "emulated" and source == "FLEETGEN_MODE"
    cli_config, source = resolve_mode(config, "production", {"FLEETGEN_MODE": "emulated"}, "--mode")
    assert cli_config.generation_mode == "production" and source == "--mode"
    with pytest.raises(ConfigError, match="--mode: 'fast'"):
        resolve_mode(config, "fast", {}, "--mode")
    with pytest.raises(ConfigError, match="FLEETGEN_MODE: 'turbo'"):
        resolve_mode(config, None, {"FLEETGEN_MODE": "turbo"})


def test_validate_prints_effective_settings_with_sources(write_config, capsys):
    path = write_config({"emulated_mode": {"enabled": True, "driver_batch_interval": "PT5S"}})
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert '"generation_mode"' in out and '"PT5S"' in out
    assert "config file (emulated_mode.driver_batch_interval)" in out


def test_a_catch_up_bound_of_zero_is_refused():
    with pytest.raises(ConfigError, match=r"scheduling\.max_catch_up_windows: 0 — .*greater than or equal to 1"):
        parse_config("scheduling: {max_catch_up_windows: 0}")


@pytest.mark.parametrize("text", ["", "null\n", "~\n", "# only a comment\n"])
def test_an_empty_document_is_refused_with_the_way_to_accept_defaults(text):
    with pytest.raises(ConfigError, match=r"config file is empty; write \{\} to accept every default"):
        parse_config(text)
    assert parse_config("{}").seed == 42


def test_duplicate_keys_name_the_key_and_both_lines():
    with pytest.raises(ConfigError, match=r"duplicate key 'seed' at lines 1 and 3"):
        parse_config("seed: 1\nnumber_of_companies: 5\nseed: 2\n")
    with pytest.raises(ConfigError, match=r"duplicate key 'enabled' at lines 2 and 4"):
        parse_config("emulated_mode:\n  enabled: true\n  companies_per_batch: 3\n  enabled: false\n")


def test_a_production_window_that_cannot_fit_in_memory_is_refused_naming_the_fields():
    with pytest.raises(ConfigError, match=r"number_of_companies × drivers_per_company × event_rate_per_driver = "
                                          r"1,000,000 × 9,999 × 3\.5 .* GiB"):
        parse_config("number_of_companies: 1000000\ndrivers_per_company: 9999\n")
    emulated = parse_config("number_of_companies: 1000000\ndrivers_per_company: 9999\nemulated_mode: {enabled: true}")
    with pytest.raises(ConfigError, match="in production mode: number_of_companies"):
        resolve_mode(emulated, "production", {}, "--mode")


def test_an_object_storage_data_dir_keeps_its_ledger_in_a_local_work_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    config = parse_config("output: {data_dir: 's3://lake/bronze/fleet/', storage_options: "
                          "{endpoint_url: 'http://minio:9000', key: AKIA, secret: s3cr3t}}")
    assert config.output.url == "s3://lake/bronze/fleet"
    assert config.output.local_dir == tmp_path / "state" / "fleetgen" / "s3" / "lake" / "bronze" / "fleet"
    assert config.database_url.endswith(str(config.output.local_dir / "manifests" / "generator.db"))
    # the snapshot (written into dataset.md, uploaded beside the batches) hides the credentials
    assert config.snapshot()["output"]["storage_options"] == {"endpoint_url": "http://minio:9000", "key": "***",
                                                               "secret": "***"}
    explicit = parse_config(f"output: {{data_dir: 's3://lake/x', work_dir: '{tmp_path / 'w'}'}}")
    assert explicit.output.local_dir == tmp_path / "w"
    local = parse_config(f"output: {{data_dir: 'file://{tmp_path / 'd'}'}}")
    assert local.output.url is None and local.output.local_dir == tmp_path / "d"
