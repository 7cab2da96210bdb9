""""silver = expected": the published silver and gold tables against `fleetgen expect`'s, for exactly
the bronze batches the pipeline has processed.

The expectation is derived from the generator's ground truth (``app.service.expectations``), never by
re-reading bronze, and compared by key with ``fleetgen verify``'s code, so a row the pipeline lost,
invented or changed in a published file turns the check red.
"""

from __future__ import annotations

import time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from app.core.config import Config
from app.core.errors import FleetgenError
from app.medallion.publish import Tables
from app.service.expectations import TABLES, derive
from app.service.verification import compare, read_table
from app.store import Store


def check(config: Config, tables: Tables, processed: dict[str, set[str]]) -> dict[str, Any]:
    """{state: equal | different | error, tables: {name: {missing, extra, changed, …}}, batches, seconds}."""
    began = time.perf_counter()
    result: dict[str, Any] = {"batches": {stream: len(ids) for stream, ids in processed.items()}}
    try:
        store = Store(config.database_url, auto_migrate=False, busy_timeout_ms=config.database.busy_timeout_ms)
        try:
            expected = derive(config, store, batches=processed)
        finally:
            store.close()
        report = {}
        for name, spec in TABLES.items():
            layer, short = name.split("/", 1)
            folder = (tables.silver if layer == "silver" else tables.gold) / short
            actual = read_table(folder) if folder.is_dir() and any(folder.glob("*.parquet")) else None
            if actual is None:
                actual = expected.tables[name].schema.empty_table()
            elif layer == "silver":
                ids = pa.array(sorted(processed.get(short, set())), pa.string())
                actual = actual.filter(pc.is_in(actual["batch_id"], value_set=ids))
            diff = compare(name, expected.tables[name], actual, spec["key"])
            report[name] = {k: v for k, v in diff.as_dict().items() if k != "compared_columns"}
        result["tables"] = report
        result["state"] = "equal" if all(t["equal"] for t in report.values()) else "different"
    except FleetgenError as exc:
        result.update(state="error", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - a check that cannot run is shown, never fatal to the pipeline
        result.update(state="error", error=f"{type(exc).__name__}: {exc}")
    result["seconds"] = round(time.perf_counter() - began, 3)
    return result
