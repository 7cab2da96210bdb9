"""`fleetgen bench` runs end to end (quick mode) and writes what the README says it writes.

Figures are not asserted here (shared machines are noisy); only that the run is complete and
sound: no request failed, the service stopped cleanly, every figure is present.
"""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def _quick_results(tmp_path, *names: str) -> dict:
    """`fleetgen bench --quick` of ``names`` in a process of its own; the results it wrote."""
    output = tmp_path / "bench.json"
    only = [arg for name in names for arg in ("--only", name)]
    done = subprocess.run([sys.executable, "-m", "app", "bench", "--quick", *only, "--output", str(output)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(output.read_text())["results"]


def test_quick_health_benchmark_writes_complete_results(tmp_path):
    output = tmp_path / "bench.json"
    output.write_text(json.dumps({"results": {"earlier": {"kept": True}}}))
    done = subprocess.run([sys.executable, "-m", "app", "bench", "--quick", "--only", "health_latency",
                           "--output", str(output)], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(output.read_text())["results"]
    assert results["earlier"] == {"kept": True}  # --only merges into the existing file
    health = results["health_latency"]
    assert health["service_exit_code"] == 0
    polling, saturation = health["polling_20_clients_every_100ms"], health["saturation_20_clients"]
    assert polling["errors"] == 0 and saturation["errors"] == 0
    assert polling["requests"] == sum(r["requests"] for r in polling["rounds"]) > 0
    for figures in (polling["latency_ms"], saturation["latency_ms"], *(r["latency_ms"] for r in polling["rounds"])):
        assert 0 < figures["p50"] <= figures["p99"] <= figures["max"]
    assert "latencies" not in saturation and all("latencies" not in r for r in polling["rounds"])
    assert "health_latency" in done.stdout


def test_quick_lateness_and_roster_benchmarks_are_complete_and_sound(tmp_path):
    results = _quick_results(tmp_path, "publish_lateness", "emulated_roster_scaling")
    lateness = results["publish_lateness"]
    assert lateness["service_exit_code"] == 0
    for stream in ("events", "companies"):
        figures = lateness[stream]
        assert figures["windows"] >= 10  # about one a second for 15 s
        assert 0 < figures["lateness_ms"]["p50"] <= figures["lateness_ms"]["p99"] <= figures["lateness_ms"]["max"]
        watched = figures["seen_by_watcher_ms"]  # the outside view saw the same windows appear
        assert watched["windows"] >= figures["windows"] - 2
        assert 0 < watched["p50"] <= watched["p99"] <= watched["max"]
    scaling = results["emulated_roster_scaling"]
    assert scaling["roster_3m"]["companies"] == 3_000_000 and scaling["roster_10k"]["companies"] == 10_000
    for case in ("roster_10k", "roster_3m"):
        low, high = scaling[case]["records_per_batch"]
        assert 5 <= low <= high <= 20  # emulated bounds hold whatever the roster's size
    assert scaling["ratio_median_3m_over_10k"] > 0 and scaling["peak_rss_mb_with_3m"] > 0


def test_quick_generation_benchmarks_are_complete_and_sound(tmp_path):
    results = _quick_results(tmp_path, "generation_defects", "generation_large_window")
    batch = results["generation_defects"]
    assert batch["events_per_batch"] > 0 and len(batch["seconds"]) == 3
    assert set(batch["stages_s"]) >= {f"{stage}_s" for stage in ("generate", "render", "hash", "write", "fsync")}
    assert all(0 < h for h in batch["headline_end_to_end_over_min_in_memory_disk"])
    assert "dd_oflag_direct_mb_per_s" in batch or "dd_oflag_direct" in batch
    windows = results["generation_large_window"]
    made = {label: windows[label]["made"] for label in ("clean", "defects_15pct", "largest_held_defects_15pct")}
    assert made["clean"] == "in parts"
    assert made["largest_held_defects_15pct"] == "in one piece"
    assert windows["largest_held_defects_15pct"]["events"] <= windows["held_events"]
    for label in made:
        figures = windows[label]
        assert figures["events"] > 0 and figures["bytes"] > 0
        assert figures["peak_rss_mb"] >= figures["peak_rss_mb_before_the_window"] > 0


def test_quick_expect_benchmark_runs_expect_in_its_own_process(tmp_path):
    figures = _quick_results(tmp_path, "expect_verify")["expect_verify"]
    assert figures["verify_equal"] and figures["verify_rows"] == 100_000
    large = figures["expect_large_range"]
    assert 0 < large["rows"]["silver/events"] < large["records_regenerated"]  # 15 % of the lines are defects
    assert all(rows > 0 for rows in large["rows"].values())
    assert large["peak_rss_mb"] > 0 and large["seconds_whole_process"] > 0
