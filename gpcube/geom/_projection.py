"""Spherical projections CAR and TAN in plain numpy (FITS WCS paper II, Calabretta & Greisen 2002).

Everything works on unit vectors. The *native* frame of a projection has its z axis on the native pole;
a rotation matrix turns native vectors into celestial ones. Intermediate world coordinates ``(xi, eta)``
are in degrees: ``xi = CDELT1 * (p1 - CRPIX1)``, ``eta = CDELT2 * (p2 - CRPIX2)`` with 1-based ``p``.

These functions are pure, vectorised and thread-safe (astropy.wcs objects are not safe to share between
threads). The defaults for LONPOLE and LATPOLE are those of the FITS standard, as applied by wcslib, so
the results agree with :class:`astropy.wcs.WCS` (checked in the tests).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "angular_distance",
    "intermediate_to_native",
    "lonlat_to_vec",
    "native_pole",
    "native_to_intermediate",
    "rotation_matrix",
    "solid_angle_car",
    "solid_angle_tan",
    "vec_to_lonlat",
]

_R0 = 180.0 / np.pi  # "radius" of the sphere in degrees, as in the FITS standard


def lonlat_to_vec(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors of (lon, lat) in degrees; NaN where the latitude is outside [-90, 90]."""
    lon = np.deg2rad(np.asarray(lon, dtype=float))
    lat = np.asarray(lat, dtype=float)
    lat = np.deg2rad(np.where(np.abs(lat) <= 90.0, lat, np.nan))
    cos_lat = np.cos(lat)
    return cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat) + 0.0 * lon


def vec_to_lonlat(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Longitude in [0, 360) and latitude in degrees of (not necessarily unit) vectors."""
    lon = np.rad2deg(np.arctan2(y, x)) % 360.0
    lon = np.where(lon >= 360.0, 0.0, lon)  # a tiny negative angle wraps to exactly 360.0
    lat = np.rad2deg(np.arctan2(z, np.hypot(x, y)))
    return lon, np.asarray(lat)


def _celestial_of_native(phi: float, theta: float, lon_p: float, lat_p: float, phi_p: float) -> np.ndarray:
    """Celestial unit vector of one native point (paper II, eq. 2), angles in degrees."""
    phi, theta, lon_p, lat_p, phi_p = np.deg2rad([phi, theta, lon_p, lat_p, phi_p])
    dphi = phi - phi_p
    lon = lon_p + np.arctan2(
        -np.cos(theta) * np.sin(dphi),
        np.sin(theta) * np.cos(lat_p) - np.cos(theta) * np.sin(lat_p) * np.cos(dphi),
    )
    sin_lat = np.sin(theta) * np.sin(lat_p) + np.cos(theta) * np.cos(lat_p) * np.cos(dphi)
    lat = np.arcsin(np.clip(sin_lat, -1.0, 1.0))
    return np.array([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


def native_pole(projection: str, crval: tuple[float, float]) -> tuple[float, float, float]:
    """Celestial longitude and latitude of the native pole and its native longitude (LONPOLE), deg.

    LONPOLE defaults to 0 if ``crval[1] >= theta_0`` and 180 otherwise (``theta_0`` is 90 for TAN,
    0 for CAR). For TAN the native pole is the reference point; for CAR it lies at celestial latitude
    ``90 - |crval[1]|`` (the LATPOLE = +90 branch), which is the LATPOLE that wcslib writes.
    """
    lon0, lat0 = crval
    if projection == "TAN":
        return lon0, lat0, (0.0 if lat0 >= 90.0 else 180.0)
    if lat0 >= 90.0:  # degenerate: wcslib's choice of the native pole's longitude
        return lon0, 0.0, 0.0
    if lat0 >= 0.0:
        return lon0 + 180.0, 90.0 - lat0, 0.0
    return lon0, 90.0 + lat0, 180.0


def rotation_matrix(projection: str, crval: tuple[float, float]) -> np.ndarray:
    """3x3 matrix turning native unit vectors into celestial ones.

    Parameters
    ----------
    projection : {"CAR", "TAN"}
        The native reference point is (0, 0) for CAR and (0, 90) for TAN.
    crval : tuple of float
        Celestial coordinates (deg) of the reference point.

    Returns
    -------
    numpy.ndarray
        Columns are the celestial unit vectors of the native x, y and z axes (native pole as
        :func:`native_pole`).
    """
    lon_p, lat_p, phi_p = native_pole(projection, crval)
    axes = [(0.0, 0.0), (90.0, 0.0), (0.0, 90.0)]
    return np.stack([_celestial_of_native(phi, theta, lon_p, lat_p, phi_p) for phi, theta in axes], axis=1)


def intermediate_to_native(
    projection: str, xi: np.ndarray, eta: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Native unit vectors of intermediate coordinates (deg); NaN outside the projection's domain."""
    xi, eta = np.asarray(xi, dtype=float), np.asarray(eta, dtype=float)
    if projection == "TAN":
        norm = np.sqrt(xi**2 + eta**2 + _R0**2)
        return tuple(np.broadcast_arrays(-eta / norm, xi / norm, _R0 / norm))
    # CAR is separable: the trigonometry runs on xi and eta as given (a row and a column of a grid),
    # and only the products are full-size
    phi = np.deg2rad(np.where(np.abs(xi) <= 180.0, xi, np.nan))
    theta = np.deg2rad(np.where(np.abs(eta) <= 90.0, eta, np.nan))
    cos_theta, cos_phi = np.cos(theta), np.cos(phi)
    nz = np.sin(theta) + 0.0 * cos_phi  # NaN where xi is outside the domain too
    return tuple(np.broadcast_arrays(cos_theta * cos_phi, cos_theta * np.sin(phi), nz))


def native_to_intermediate(
    projection: str, nx: np.ndarray, ny: np.ndarray, nz: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Intermediate coordinates (deg) of native vectors; NaN where TAN does not project (``theta <= 0``)."""
    if projection == "TAN":
        front = np.where(nz > 0.0, nz, np.nan)
        return _R0 * ny / front, -_R0 * nx / front
    return np.rad2deg(np.arctan2(ny, nx)), np.rad2deg(np.arctan2(nz, np.hypot(nx, ny)))


def angular_distance(a: tuple[np.ndarray, ...], b: tuple[float, float, float]) -> np.ndarray:
    """Angle in degrees between unit vectors ``a`` (arrays) and ``b`` (one vector).

    Uses ``atan2(|a x b|, a . b)``, accurate at all angles (the Vincenty form on the unit sphere).
    """
    ax, ay, az = a
    bx, by, bz = b
    cross = np.sqrt((ay * bz - az * by) ** 2 + (az * bx - ax * bz) ** 2 + (ax * by - ay * bx) ** 2)
    return np.rad2deg(np.arctan2(cross, ax * bx + ay * by + az * bz))


def solid_angle_car(xi_edges: np.ndarray, eta_edges: np.ndarray) -> np.ndarray:
    """Exact pixel solid angles (sr) of a CAR grid from its pixel-edge intermediate coordinates (deg).

    A CAR pixel is a native longitude-latitude rectangle, whose area is ``dphi * (sin t2 - sin t1)``
    (rotations preserve area). Parts beyond the native poles or the 180 deg seam have no area.
    """
    xi = np.deg2rad(np.clip(xi_edges, -180.0, 180.0))
    eta = np.deg2rad(np.clip(eta_edges, -90.0, 90.0))
    width = np.abs(np.diff(xi))
    # sin(b) - sin(a) = 2 cos((a + b) / 2) sin((b - a) / 2), accurate for thin rows
    height = np.abs(2.0 * np.cos(0.5 * (eta[1:] + eta[:-1])) * np.sin(0.5 * np.diff(eta)))
    return height[:, None] * width[None, :]


def solid_angle_tan(xi_edges: np.ndarray, eta_edges: np.ndarray) -> np.ndarray:
    """Exact pixel solid angles (sr) of a TAN grid from its pixel-edge intermediate coordinates (deg).

    In the tangent plane (unit sphere) ``dOmega = dx dy / (1 + x^2 + y^2)^(3/2)``, whose primitive is
    ``F(x, y) = atan(x y / sqrt(1 + x^2 + y^2))``; a rectangle's area is F's alternating corner sum.
    """
    x = np.deg2rad(np.asarray(xi_edges, dtype=float))[None, :]
    y = np.deg2rad(np.asarray(eta_edges, dtype=float))[:, None]
    f = np.arctan(x * y / np.sqrt(1.0 + x**2 + y**2))
    return np.abs(f[1:, 1:] - f[1:, :-1] - f[:-1, 1:] + f[:-1, :-1])
