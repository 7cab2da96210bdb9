"""The `fleetgen` command line (the top layer: it may import every other one)."""

from app.cli.main import main

__all__ = ["main"]
