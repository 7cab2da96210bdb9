"""The wheel works outside the checkout: migrations, dashboard files and presets travel inside it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, wait_until
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.slow
SOURCES = ("app", "migrations", "conf", "pyproject.toml", "setup.cfg", "README.md")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv holding only the built wheel; its dependencies come from the dev venv (offline)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"  # setuptools builds in the source tree: a copy keeps the checkout clean
    source.mkdir()
    for name in SOURCES:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                            if (ROOT / name).is_dir() else {}))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(work / "dist"), str(source)], check=True, cwd=work, capture_output=True)
    wheel = next((work / "dist").glob("fleetgen-*.whl"))
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    # Dependencies from this environment, after the venv's own site-packages (so `app` is the wheel's).
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--target", str(site), str(wheel)], check=True, capture_output=True)
    (venv / "bin" / "fleetgen").write_text(f"#!{venv}/bin/python\nfrom app.cli import main\nraise SystemExit(main())\n")
    (venv / "bin" / "fleetgen").chmod(0o755)
    return venv


def fleetgen(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(venv / "bin" / "fleetgen"), *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=120)


def test_the_installed_package_is_the_wheel_not_the_checkout(installed, tmp_path):
    out = subprocess.run([str(installed / "bin" / "python"), "-c", "import app; print(app.__file__)"],
                         cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert str(installed) in out and str(ROOT) not in out


def test_init_validate_backfill_outside_the_checkout(installed, tmp_path):
    made = fleetgen(installed, tmp_path, "init", "--preset", "small", "fleet.yaml")
    assert made.returncode == 0, made.stderr
    assert "number_of_companies: 10" in (tmp_path / "fleet.yaml").read_text()
    assert fleetgen(installed, tmp_path, "validate", "fleet.yaml").returncode == 0
    done = fleetgen(installed, tmp_path, "backfill", "--config", "fleet.yaml", "--data-dir", "out",
                    "--from", "2026-11-25T00:00:00Z", "--to", "2026-11-25T01:00:00Z")
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "out" / "raw" / "events").glob("*/_SUCCESS"))) == 4
    assert fleetgen(installed, tmp_path, "init", "--preset", "nope", "x.yaml").returncode == 2


def test_run_serves_the_dashboard_from_the_wheel(installed, tmp_path):
    assert fleetgen(installed, tmp_path, "init", "--preset", "emulated-5s", "fleet.yaml").returncode == 0
    port = free_port()
    proc = subprocess.Popen([str(installed / "bin" / "fleetgen"), "run", "--config", "fleet.yaml", "--port",
                             str(port)], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def page() -> bytes | None:
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).read()
            except OSError:
                return None

        html = wait_until(page, timeout=30, what="the dashboard page")
        assert b"fleetgen" in html.lower()
        script = urllib.request.urlopen(f"http://127.0.0.1:{port}/static/dashboard.js", timeout=5).read()
        assert len(script) > 1000
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0
