"""`python -m tests.held_upload MARKER N <fleetgen args>`: fleetgen, held forever right after the record file
of the N-th events batch reached object storage (its folder named in MARKER), so a test can kill -9 it there."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from app.cli import main
from app.core.remote_bronze import RemoteBronze


def hold_after(marker: Path, nth: int) -> None:
    upload = RemoteBronze.upload_file
    seen = 0

    def held(self: RemoteBronze, source: Path, destination: str) -> None:
        nonlocal seen
        upload(self, source, destination)
        if source.name == "events.jsonl":
            seen += 1
            if seen == nth:
                folder = destination.removeprefix(self.store.root + "/").rsplit("/", 1)[0]
                marker.write_text(folder)
                while True:
                    time.sleep(1)

    RemoteBronze.upload_file = held  # type: ignore[method-assign]


if __name__ == "__main__":
    hold_after(Path(sys.argv[1]), int(sys.argv[2]))
    sys.exit(main(sys.argv[3:]))
