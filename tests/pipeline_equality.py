"""The one check every reference-pipeline test ends with: its silver and gold equal `fleetgen expect`."""

from __future__ import annotations

from pathlib import Path

from app.core.config import Config
from app.service.expectations import derive_into, write_summary
from app.service.verification import verify
from app.store import Store


def assert_equal_to_expect(config: Config, out: Path, expected: Path) -> dict:
    """silver/ and gold/ under ``out`` equal `fleetgen expect` of every committed window of ``config``'s
    data directory (compared by `fleetgen verify`'s code); the report."""
    store = Store.for_config(config)
    try:
        write_summary(derive_into(config, store, expected), expected, {})
    finally:
        store.close()
    report = verify(expected, out / "silver", out / "gold")
    assert report["equal"], {n: {k: t[k] for k in ("missing", "extra", "changed", "examples")}
                             for n, t in report["tables"].items() if not t["equal"]}
    return report
