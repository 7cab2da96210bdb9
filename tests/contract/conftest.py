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
