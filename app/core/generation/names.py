"""Seeded pools of company names: Faker is slow per call, so it fills small pools once."""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

from app.core.generation.geography import REGIONS
from app.core.generation.render import Matrix, pool

NAMES_PER_REGION = 512
# Only what company() uses: loading every provider of 13 locales cost ~0.5 s more on the first batch,
# for the same names (the seeded random stream does not depend on which providers are loaded).
PROVIDERS = ["faker.providers.company", "faker.providers.person"]


_MAKING = threading.Lock()


def name_pool(seed: int) -> tuple[tuple[str, ...], Matrix]:
    """Names for every region, region-major: row r * NAMES_PER_REGION + i is region r's i-th name. Made
    once per seed: the render threads of a first companies batch all ask at once, and making the pool
    (~0.4 s of Faker, holding the GIL) twice side by side took twice as long."""
    with _MAKING:
        return _name_pool(seed)


@lru_cache(maxsize=8)
def _name_pool(seed: int) -> tuple[tuple[str, ...], Matrix]:
    from faker import Faker  # here, not at import: ~0.12 s that only a process making companies needs

    names: list[str] = []
    for index, region in enumerate(REGIONS):
        fake = Faker(list(region.locales), providers=PROVIDERS)
        fake.seed_instance(seed * 31 + index)
        names.extend(fake.company() for _ in range(NAMES_PER_REGION))
    return tuple(names), pool(names)


def pick_names(rng: np.random.Generator, geography: np.ndarray) -> np.ndarray:
    """Row indices into the name pool, each within the company's region."""
    return geography.astype(np.int64) * NAMES_PER_REGION + rng.integers(0, NAMES_PER_REGION, len(geography))
