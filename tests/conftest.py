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
