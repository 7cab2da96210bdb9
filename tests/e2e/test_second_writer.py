"""A second writer on a data directory a service is using exits 2 at once; read-only commands still work."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.slow


def fleetgen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_second_writer_refused_while_a_service_runs_and_free_after_kill_9(service_process):
    process = service_process({}).start()
    process.wait_http()
    config = str(process.config_path)
    pid = process.proc.pid
    for command in (["run", "--config", config, "--port", str(free_port())],
                    ["generate", "--config", config, "--stream", "events"],
                    ["backfill", "--config", config, "--from", "2026-11-25T00:00:00Z", "--to", "2026-11-25T00:01:00Z"],
                    ["clean", "--config", config, "--yes"]):
        refused = fleetgen(*command)
        assert refused.returncode == 2, (command, refused.stderr)
        assert f"is in use by fleetgen run (pid {pid}, since " in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    assert fleetgen("status", "--config", config).returncode == 0  # read-only: allowed
    assert fleetgen("validate", config).returncode == 0
    process.kill9()  # the kernel drops the lock with the process: nothing to clean up by hand
    freed = fleetgen("generate", "--config", config, "--stream", "events")
    assert freed.returncode == 0, freed.stderr
