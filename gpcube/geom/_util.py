"""Argument checks and frame conversion shared by the geometry modules."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from gpcube.errors import GpcubeError

if TYPE_CHECKING:
    from astropy.coordinates import SkyCoord

__all__ = ["skycoord_to_lonlat"]


def _pair(value: Any, name: str) -> tuple[float, float]:
    """A scalar or a length-2 sequence as two finite floats."""
    arr = np.atleast_1d(np.asarray(value, dtype=object))
    if arr.ndim != 1 or arr.size not in (1, 2):
        raise GpcubeError(f"{name} must be a number or a pair of numbers, got {value!r}")
    try:
        out = tuple(float(v) for v in np.broadcast_to(arr, (2,)))
    except (TypeError, ValueError) as exc:
        raise GpcubeError(f"{name} must be a number or a pair of numbers, got {value!r}") from exc
    if not all(math.isfinite(v) for v in out):
        raise GpcubeError(f"{name} must be finite, got {value!r}")
    return out


def _int_pair(value: Any, name: str, minimum: int | None) -> tuple[int, int]:
    """A scalar or a length-2 sequence as two integers (no floats, no bools), each ``>= minimum``."""
    items = list(value) if isinstance(value, Sequence | np.ndarray) else [value, value]
    ok = len(items) == 2 and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in items)
    if not ok or (minimum is not None and min(items) < minimum):
        limit = "" if minimum is None else f" >= {minimum}"
        raise GpcubeError(f"{name} must be an integer or a pair of integers{limit}, got {value!r}")
    return int(items[0]), int(items[1])


def _wrap360(lon: float) -> float:
    """Longitude in [0, 360) (``-1e-20 % 360`` is 360.0 in floating point)."""
    lon = lon % 360.0 + 0.0
    return 0.0 if lon >= 360.0 else lon


def skycoord_to_lonlat(coord: SkyCoord, frame: str) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude (deg) of ``coord`` transformed to ``frame`` ("icrs" or "galactic")."""
    from astropy.coordinates import UnitSphericalRepresentation

    sph = coord.transform_to(frame).represent_as(UnitSphericalRepresentation)
    return np.asarray(sph.lon.deg, dtype=float), np.asarray(sph.lat.deg, dtype=float)
