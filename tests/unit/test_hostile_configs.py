"""Property tests: any YAML document is either a valid config or a clean exit 2 naming the problem."""

from __future__ import annotations

import re
import string

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.cli import main

SECTIONS = {
    "quality_injection": ["enabled", "error_rate", "missing_field_probability", "null_value_probability",
                          "malformed_timestamp_probability", "invalid_enum_probability", "duplicate_probability",
                          "boundary_violation_probability", "inject_in_driver_events", "inject_in_companies",
                          "log_injected_issues"],
    "emulated_mode": ["enabled", "company_batch_interval", "driver_batch_interval", "companies_per_batch",
                      "events_per_batch_min", "events_per_batch_max"],
    "companies": ["geography_weights", "active_probability"],
    "events": ["event_type_weights", "trucks_per_driver"],
    "output": ["data_dir", "format"],
    "database": ["url", "busy_timeout_ms"],
    "api": ["host", "port", "token", "cors_origins", "allowed_hosts", "protect_reads", "allow_unauthenticated"],
    "scheduling": ["max_catch_up_windows", "max_retries"],  # max_retries: not a key (must be refused)
}
TOP = ["seed", "number_of_companies", "drivers_per_company", "event_rate_per_driver",
       "company_onboarding_interval", "driver_event_interval"]
DURATIONS = ["PT10S", "PT0.5S", "P1M", "P1Y", "PT0S", "-PT5S", "PT1.5S", "P1DT2H", "PT99999999H", "10",
             "PT", "P", "xx", "PT1S", "P1W", "PT1H30M", "", " PT10S "]

scalars = (st.none() | st.booleans() | st.integers(min_value=-10**40, max_value=10**40)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40)
           | st.sampled_from(DURATIONS) | st.integers(min_value=-5, max_value=120)
           | st.floats(min_value=-1, max_value=2))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=12), inner, max_size=3), max_leaves=12)
odd_keys = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=24) | st.text(max_size=8)


@st.composite
def config_documents(draw):
    document = {}
    for key in draw(st.lists(st.sampled_from(TOP), max_size=4, unique=True)):
        document[key] = draw(values)
    for section in draw(st.lists(st.sampled_from(sorted(SECTIONS)), max_size=4, unique=True)):
        if draw(st.integers(0, 9)) == 0:
            document[section] = draw(values)  # wrong type for a whole section
            continue
        fields = draw(st.lists(st.sampled_from(SECTIONS[section]), max_size=4, unique=True))
        document[section] = {field: draw(values) for field in fields}
        if draw(st.booleans()):
            document[section][draw(odd_keys)] = draw(values)
    if draw(st.integers(0, 4)) == 0:
        document[draw(odd_keys)] = draw(values)
    return document


KEY = r"""([A-Za-z_]\w*|\d+|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|<top level>)"""
PATH = rf"^{KEY}(\.{KEY})*: "


def check(path, capsys) -> str:
    code = main(["validate", str(path)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "internal error" not in captured.err, captured.err
    assert code in (0, 2), (code, captured.err)
    if code == 2:
        assert captured.err.startswith("fleetgen: invalid configuration"), captured.err
        problems = [line[4:] for line in captured.err.splitlines() if line.startswith("  - ")]
        assert problems, captured.err
        for problem in problems:
            # a field path ("a.b: ...") or a statement about the whole document
            assert re.match(PATH, problem) or problem.startswith(
                ("not valid YAML", "the top level", "not a readable", "the YAML document", "config file is empty",
                 "duplicate key")), problem
    return "valid" if code == 0 else "invalid"


def fuzz(examples: int):
    return settings(max_examples=examples, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@fuzz(1000)
@given(document=config_documents())
def test_structured_documents(document, tmp_path, capsys):
    path = tmp_path / "hostile.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    check(path, capsys)


@fuzz(300)
@given(text=st.text(max_size=300))  # no lone surrogates by default: every text has a UTF-8 encoding
def test_arbitrary_text(text, tmp_path, capsys):
    path = tmp_path / "text.yaml"
    path.write_text(text, encoding="utf-8")
    check(path, capsys)


@fuzz(200)
@given(blob=st.binary(max_size=400))
def test_arbitrary_bytes(blob, tmp_path, capsys):
    path = tmp_path / "binary.yaml"
    path.write_bytes(blob)
    check(path, capsys)


def test_pathological_documents(tmp_path, capsys):
    cases = {
        "deep": "a: " + "[" * 20_000 + "]" * 20_000,
        "deep-valid-key": "emulated_mode: " + "{a: " * 3000 + "1" + "}" * 3000,
        "alias bomb": "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                      "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                      "seed: [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
        "huge int": "seed: " + "9" * 5000,
        "unicode keys": "séed: 1\n種子: 2\n",
        "empty": "",
        "only comment": "# nothing\n",
        "tabs": "seed:\t42\n",
        "null section": "emulated_mode: null\n",
        "list section": "emulated_mode: [1, 2]\n",
        "duplicate keys": "seed: 1\nseed: 2\n",
        "empty mapping": "{}\n",
    }
    outcomes = {}
    for name, text in cases.items():
        path = tmp_path / f"{len(outcomes)}.yaml"
        path.write_text(text)
        outcomes[name] = check(path, capsys)
    # an empty document is a mistake more often than a choice: `{}` says "every default" on purpose
    assert outcomes["empty"] == outcomes["only comment"] == outcomes["duplicate keys"] == "invalid"
    assert outcomes["empty mapping"] == "valid"
    assert outcomes["deep"] == outcomes["alias bomb"] == outcomes["huge int"] == "invalid"


def test_run_with_a_bad_config_starts_nothing(tmp_path, capsys):
    data_dir = tmp_path / "data"
    path = tmp_path / "bad.yaml"
    path.write_text(f"output: {{data_dir: {data_dir}}}\nemulated_mode: {{companies_per_batch: 0}}\n")
    assert main(["run", "--config", str(path)]) == 2
    assert "emulated_mode.companies_per_batch" in capsys.readouterr().err
    assert not data_dir.exists()
