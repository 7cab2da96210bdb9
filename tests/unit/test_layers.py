"""The architecture holds: the core imports no web server, database or scheduler."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

HEAVY = ("flask", "werkzeug", "sqlalchemy", "alembic", "apscheduler", "waitress")


def test_importing_the_whole_core_loads_no_web_database_or_scheduler():
    script = (
        "import pkgutil, sys, app.core\n"
        "names = [m.name for m in pkgutil.walk_packages(app.core.__path__, 'app.core.')]\n"
        "for name in names: __import__(name)\n"
        f"print(len(names), sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    count, loaded = result.stdout.strip().split(" ", 1)
    assert int(count) >= 10  # every core module was imported, not just the package
    assert loaded == "[]"


def test_plain_import_of_the_core_package_is_pure_too():
    script = f"import sys, app.core; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
