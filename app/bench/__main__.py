import sys

from app.bench.runner import run_child

run_child(sys.argv[1:])
