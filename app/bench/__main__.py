import sys

from app.core.memory import tune_malloc

tune_malloc()  # first, as `fleetgen` does, before an import starts a thread: the figures of a real run

from app.bench.runner import run_child  # noqa: E402 - after the arena cap

run_child(sys.argv[1:])
