"""Fast conversion of many directions between the icrs and galactic frames.

Both frames are fixed orientations of the celestial sphere, so converting between them is one
3 x 3 rotation. The matrix is taken once from astropy (so it is astropy's definition of the
Galactic frame, including the ICRS frame bias) and applied with numpy, which is two orders of
magnitude faster than transforming a SkyCoord of a million events.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from gpcube.errors import GpcubeError
from gpcube.geom.sky import FRAMES

__all__ = ["convert_frame", "rotation_matrix"]


@cache
def rotation_matrix(from_frame: str, to_frame: str) -> np.ndarray:
    """Matrix ``R`` with ``v_to = R @ v_from`` for unit vectors of the two frames."""
    for frame in (from_frame, to_frame):
        if frame not in FRAMES:
            raise GpcubeError(f"frame must be one of {FRAMES}, got {frame!r}")
    if from_frame == to_frame:
        return np.eye(3)
    from astropy.coordinates import CartesianRepresentation, SkyCoord

    basis = SkyCoord(CartesianRepresentation(np.eye(3)), frame=from_frame)
    columns = basis.transform_to(to_frame).cartesian.xyz.value
    matrix = np.asarray(columns, dtype=float)
    matrix.setflags(write=False)
    return matrix


def convert_frame(lon, lat, from_frame: str, to_frame: str) -> tuple[np.ndarray, np.ndarray]:
    """Longitude (in [0, 360)) and latitude in deg of directions converted between frames."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    if from_frame == to_frame:
        rotation_matrix(from_frame, to_frame)  # validates the names
        return np.mod(lon, 360.0), lat
    matrix = rotation_matrix(from_frame, to_frame)
    lon_r, lat_r = np.deg2rad(lon), np.deg2rad(lat)
    cos_lat = np.cos(lat_r)
    vec = (cos_lat * np.cos(lon_r), cos_lat * np.sin(lon_r), np.sin(lat_r))
    x, y, z = (matrix[i, 0] * vec[0] + matrix[i, 1] * vec[1] + matrix[i, 2] * vec[2] for i in range(3))
    out_lon = np.mod(np.rad2deg(np.arctan2(y, x)), 360.0)
    out_lat = np.rad2deg(np.arctan2(z, np.hypot(x, y)))
    return out_lon, out_lat
