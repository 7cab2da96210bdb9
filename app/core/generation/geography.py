"""Regions companies operate in: bounding boxes for locations and Faker locales for names."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Region:
    code: str
    lat_range: tuple[float, float]
    lon_range: tuple[float, float]
    locales: tuple[str, ...]


REGIONS = (
    Region("US", (25.0, 49.0), (-124.0, -67.0), ("en_US",)),
    Region("EU", (36.0, 60.0), (-9.0, 30.0), ("de_DE", "fr_FR", "it_IT", "es_ES", "nl_NL", "pl_PL")),
    Region("SA", (-55.0, 12.0), (-81.0, -35.0), ("es_AR", "pt_BR", "es_CO", "es_CL")),
    Region("AUS", (-43.0, -11.0), (113.0, 153.0), ("en_AU",)),
)
CODES = tuple(r.code for r in REGIONS)
LAT_MIN = np.array([r.lat_range[0] for r in REGIONS])
LAT_MAX = np.array([r.lat_range[1] for r in REGIONS])
LON_MIN = np.array([r.lon_range[0] for r in REGIONS])
LON_MAX = np.array([r.lon_range[1] for r in REGIONS])
COORD_DECIMALS = 5  # positions are written, and emulated state kept, in fixed point at this precision
COORD_SCALE = 10**COORD_DECIMALS
