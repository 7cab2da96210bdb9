"""Per-batch random sources derived from the seed, the stream and the window alone."""

from __future__ import annotations

import numpy as np

from app.core.timeline import Window

STREAM_CODES = {"companies": 1, "events": 2}


def batch_rng(seed: int, stream: str, window: Window) -> np.random.Generator:
    """The generator for one batch; never depends on process state or earlier batches."""
    if window.start_s < 0:
        raise ValueError(f"window {window.batch_id} starts before 1970-01-01, which is not supported")
    entropy = [seed, STREAM_CODES[stream], window.start_s, window.end_s - window.start_s]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))
