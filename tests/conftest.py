from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from app.core.config import Config

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def wait_until(probe: Callable[[], T], timeout: float = 10.0, what: str = "the condition", poll: float = 0.02) -> T:
    """Poll ``probe`` until it returns something truthy (returned), or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture
def make_config(tmp_path):
    """Build a validated Config whose data directory lives in the test's tmp_path."""

    def factory(**overrides: Any) -> Config:
        base = {"seed": 42, "output": {"data_dir": str(tmp_path / "data")}}
        return Config.model_validate(_merge(base, overrides))

    return factory


@pytest.fixture
def write_config(tmp_path):
    """Write a YAML config (dict or raw text) and return its path."""
    counter = iter(range(10_000))

    def factory(content: dict[str, Any] | str | bytes, data_dir: Path | None = None) -> Path:
        path = tmp_path / f"config-{next(counter)}.yaml"
        if isinstance(content, dict):
            content = _merge({"output": {"data_dir": str(data_dir or tmp_path / "data")}}, content)
            path.write_text(yaml.safe_dump(content))
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path

    return factory


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def backfill(config: Config, start: datetime, end: datetime) -> Path:
    """Every window of both streams in [start, end) into the config's data directory (its own store)."""
    from app.service.pipeline import Pipeline
    from app.store import Store

    store = Store.for_config(config)
    try:
        Pipeline(config, store).backfill(start, end)
    finally:
        store.close()
    return config.output.local_dir


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory):
    """A real S3 HTTP API on a free loopback port (moto's server in a process of its own), for the session."""
    import os
    import shutil
    import socket
    import subprocess
    import sys
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    assert server, "moto_server not found: pip install 'moto[server]'"
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    process = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    endpoint = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).read()
            return True
        except OSError:
            assert process.poll() is None, f"moto_server exited {process.returncode}"
            return False

    wait_until(answers, timeout=30, what="moto_server to answer", poll=0.1)
    yield endpoint
    process.terminate()
    process.wait(timeout=10)
    log.close()


@pytest.fixture
def s3_bucket(moto_endpoint, monkeypatch, tmp_path):
    """An empty bucket on the local S3 server, with the standard AWS environment pointing at it (inherited by
    child processes); returns the bucket's name. Work dirs of s3:// data directories go under tmp_path."""
    import uuid

    import boto3

    for name, value in {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                        "XDG_STATE_HOME": str(tmp_path / "state")}.items():
        monkeypatch.setenv(name, value)
    bucket = f"bronze-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
    return bucket
