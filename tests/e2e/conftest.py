"""Helpers to run `fleetgen run` as a real process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServiceProcess:
    def __init__(self, config_path: Path, port: int, log_path: Path):
        self.config_path, self.port, self.log_path = config_path, port, log_path
        self.proc: subprocess.Popen | None = None

    def start(self, *extra_args: str) -> ServiceProcess:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "run", "--config", str(self.config_path), "--port", str(self.port),
             *extra_args],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_http(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"service exited {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.url("/api/health"), timeout=1).read()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("service did not answer in time")

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 5.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)


@pytest.fixture
def service_process(tmp_path):
    started: list[ServiceProcess] = []

    def factory(overrides: dict) -> ServiceProcess:
        config = {"seed": 7, "output": {"data_dir": str(tmp_path / "data")},
                  "emulated_mode": {"enabled": True, "company_batch_interval": "PT1S",
                                    "driver_batch_interval": "PT1S", "companies_per_batch": 3}}
        for key, value in overrides.items():
            config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
        path = tmp_path / "service.yaml"
        path.write_text(yaml.safe_dump(config))
        process = ServiceProcess(path, free_port(), tmp_path / "service.log")
        started.append(process)
        return process

    yield factory
    for process in started:
        if process.proc and process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait(timeout=10)


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (apt-get install chromium; .ci/run does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
                  "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()
