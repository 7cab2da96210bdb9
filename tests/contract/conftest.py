"""A started service with its Flask test client, for the API contract tests."""

from __future__ import annotations

import pytest

from app.api import create_app
from app.service.service import Service


@pytest.fixture
def served(make_config):
    """``served(emulated_mode=…, api=…)`` → (service, test client); every service is stopped after."""
    services = []

    def build(**overrides):
        config = make_config(**overrides)
        service = Service(config)
        service.start(catch_up_in_background=False)
        services.append(service)
        return service, create_app(config, service, {"TESTING": True}).test_client()

    yield build
    for service in services:
        service.stop(timeout=5)
        service.store.close()


@pytest.fixture(scope="session")
def bronze(tmp_path_factory):
    """Bronze the reader tests share: an emulated run of five minutes of 10 s windows (30 a stream)
    with 30 % defects and 5 % late arrivals and without either, and a 2-hour backfill of the production
    preset with 15 % defects and 5 % late arrivals (up to 30 minutes late)."""
    from datetime import UTC, datetime, timedelta

    from app.core.config import Config, LateArrivalConfig, QualityInjectionConfig, load_config
    from tests.conftest import ROOT, backfill

    made = {}
    for name, rate in (("defects", 0.3), ("clean", 0.0)):
        config = Config.model_validate({
            "seed": 11, "output": {"data_dir": str(tmp_path_factory.mktemp(name) / "data")},
            "quality_injection": {"enabled": rate > 0, "error_rate": rate},
            "late_arrival": {"probability": 0.05 if rate else 0.0, "max_delay": "PT30S"},
            "emulated_mode": {"enabled": True, "company_batch_interval": "PT10S", "driver_batch_interval": "PT10S"}})
        made[name] = backfill(config, datetime(2026, 11, 25, 20, tzinfo=UTC),
                               datetime(2026, 11, 25, 20, 5, tzinfo=UTC))
    preset = load_config(ROOT / "conf" / "production.yaml")
    config = preset.with_data_dir(tmp_path_factory.mktemp("production") / "data").model_copy(
        update={"quality_injection": QualityInjectionConfig(enabled=True, error_rate=0.15),
                "late_arrival": LateArrivalConfig(probability=0.05, max_delay=timedelta(minutes=30))})
    made["production"] = backfill(config, datetime(2026, 11, 25, 6, tzinfo=UTC), datetime(2026, 11, 25, 8, tzinfo=UTC))
    return made


def expected_rows(data_dir, stream) -> int:
    """sum(record_count) over the stream's committed batches: what every record read must return."""
    import json

    return sum(json.loads((b / "_batch_meta.json").read_text())["record_count"]
               for b in (data_dir / "raw" / stream).iterdir() if (b / "_SUCCESS").exists())


@pytest.fixture(scope="session")
def spark():
    """One local[2] Spark session (Java 17) for every reader test: the JVM starts once."""
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("fleetgen-tests")
               .config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.shuffle.partitions", "2").config("spark.driver.memory", "1g")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
