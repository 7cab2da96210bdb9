"""`fleetgen` as a script for `spark-submit` (``spark-submit … app/cli/spark_main.py backfill --engine spark …``):
the Spark session then takes its master and settings from spark-submit."""

from __future__ import annotations

import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
