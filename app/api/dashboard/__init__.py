"""The dashboard: one static page served by the same process, reading /api (no build step)."""

from pathlib import Path

from flask import Blueprint, send_from_directory

STATIC = Path(__file__).parent / "static"
bp = Blueprint("dashboard", __name__)


@bp.get("/")
def index():
    return send_from_directory(STATIC, "index.html", max_age=0)


@bp.get("/static/<path:name>")
def static(name: str):
    return send_from_directory(STATIC, name, max_age=0)
