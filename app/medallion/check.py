""""silver = expected": the published silver and gold tables against `fleetgen expect`'s, for exactly
the bronze batches the pipeline has processed.

The expectation is derived from the generator's ground truth (``app.service.expectations``), never by
re-reading bronze, and compared by key with ``fleetgen verify``'s code, so a row the pipeline lost,
invented or changed in a published file turns the check red.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds

from app.core.config import Config
from app.core.errors import FleetgenError
from app.medallion.publish import Tables
from app.service.expectations import TABLES, derive_into
from app.service.verification import compare, open_table
from app.store import Store


def check(config: Config, tables: Tables, processed: dict[str, set[str]]) -> dict[str, Any]:
    """{state: equal | different | error, tables: {name: {missing, extra, …}}, batches, seconds}. Out of core,
    like `expect` and `verify`: its memory does not grow with what the pipeline has processed."""
    began = time.perf_counter()
    result: dict[str, Any] = {"batches": {stream: len(ids) for stream, ids in processed.items()}}
    try:
        with tempfile.TemporaryDirectory(prefix="fleetgen-check-") as folder:
            expected_dir = Path(folder)
            store = Store(config.database_url, auto_migrate=False, busy_timeout_ms=config.database.busy_timeout_ms)
            try:
                derive_into(config, store, expected_dir, batches=processed)
            finally:
                store.close()
            report = {}
            for name, spec in TABLES.items():
                layer, short = name.split("/", 1)
                expected = ds.dataset(expected_dir / f"{name}.parquet", format="parquet")
                folder_of_table = (tables.silver if layer == "silver" else tables.gold) / short
                published = folder_of_table.is_dir() and any(folder_of_table.glob("*.parquet"))
                actual = open_table(folder_of_table) if published else expected.schema.empty_table()
                # silver: its rows of the processed batches (later ones are not checked yet)
                batches = sorted(processed.get(short, set())) if published and layer == "silver" else None
                diff = compare(name, expected, actual, spec["key"], only_batches=batches)
                report[name] = {k: v for k, v in diff.as_dict().items() if k != "compared_columns"}
        result["tables"] = report
        result["state"] = "equal" if all(t["equal"] for t in report.values()) else "different"
    except FleetgenError as exc:
        result.update(state="error", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - a check that cannot run is shown, never fatal to the pipeline
        result.update(state="error", error=f"{type(exc).__name__}: {exc}")
    result["seconds"] = round(time.perf_counter() - began, 3)
    return result
