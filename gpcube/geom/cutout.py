"""Cutouts: the sub-grid of a geometry around a circle, on the same pixels as the parent.

This module does not import :mod:`gpcube.geom.sky` (which imports it for :meth:`SkyGeom.cutout`): what
it uses of a geometry is spelled out in :class:`Grid`, which :class:`~gpcube.geom.SkyGeom` satisfies.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, TypeVar

import numpy as np

from gpcube.errors import GpcubeError
from gpcube.geom._util import _pair, skycoord_to_lonlat

__all__ = ["Grid", "cutout"]

G = TypeVar("G", bound="Grid")


class Grid(Protocol):
    """What :func:`cutout` uses of a sky grid (:class:`~gpcube.geom.SkyGeom` has it all)."""

    frame: str
    projection: str
    binsz: float
    crpix: tuple[float, float]

    @property
    def shape(self) -> tuple[int, int]: ...

    def slice(self: G, slices: tuple[slice, slice]) -> G: ...

    def _to_native(self, lon: Any, lat: Any) -> tuple[np.ndarray, ...]: ...

    def _native_to_pix(self, n: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]: ...

    def _intermediate(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]: ...

    def _offset_pix(self, center_vec: tuple[float, ...], x: np.ndarray, y: np.ndarray) -> np.ndarray: ...


_N_CIRCLE = 720  # points sampled on the circle to bound a TAN cutout
_R0 = 180.0 / math.pi

Box = tuple[int, int, int, int]  # (iy0, iy1, ix0, ix1), half-open


def cutout(geom: G, center: Any, max_offset: float) -> tuple[G, tuple[slice, slice]]:
    """The sub-grid of ``geom`` holding every pixel whose centre is within ``max_offset`` of ``center``.

    Parameters
    ----------
    geom : SkyGeom
        The parent grid (itself possibly a cutout).
    center : tuple of float or astropy.coordinates.SkyCoord
        (lon, lat) in deg in the frame of ``geom``, or a scalar SkyCoord in any frame.
    max_offset : float
        Radius in deg, in [0, 180].

    Returns
    -------
    cutout_geom : SkyGeom
        ``geom.slice(slices)``: the same pixels as the parent, with a one-pixel margin around the pixels
        within the circle, clipped at the parent's border. Its ``origin`` locates it in the top parent.
    slices : tuple of slice
        ``(slice(iy0, iy1), slice(ix0, ix1))`` so that ``parent_array[..., slices[0], slices[1]]`` is the
        cutout. When no pixel centre lies within the circle, ``(slice(0, 0), slice(0, 0))`` and a
        cutout of npix (0, 0).

    Notes
    -----
    A pixel belongs to the circle when the angular distance of its centre is ``<= max_offset``. The work
    is O(rows + columns) of a bounding box of the circle (analytic for CAR, from 720 projected points plus a
    margin for TAN): along one row or column the distance has a single minimum, so four pixels per row
    and per column decide whether it holds a pixel of the circle. The result is exactly the brute-force one.
    A CAR circle that crosses the 180 deg seam (the native longitude opposite ``crval``) or holds a
    native pole spans the whole width: a rectangle cannot wrap around. A TAN circle that reaches the
    hemisphere TAN cannot project is bounded by the whole grid.

    See Also
    --------
    SkyGeom.slice : The sub-grid of given slices.
    SkyGeom.separation : The distance of every pixel from a point.

    Examples
    --------
    The pixels within 1 deg of a pointing 0.5 deg from the centre of a 5 x 5 deg grid:

    >>> from gpcube.geom import SkyGeom, cutout
    >>> geom = SkyGeom.create((83.633, 22.014), binsz=0.02, width=5.0)
    >>> sub, slices = cutout(geom, (83.633, 22.514), max_offset=1.0)
    >>> sub.npix, sub.origin
    ((102, 102), (74, 99))
    >>> slices
    (slice(99, 201, None), slice(74, 176, None))

    Its pixels are the parent's: ``parent_array[..., slices[0], slices[1]]`` is the cutout's array.

    >>> sub.pix_to_world(0, 0) == geom.pix_to_world(74, 99)
    True
    """
    lon, lat = _center_lonlat(geom, center)
    if not (isinstance(max_offset, int | float | np.number) and 0 <= max_offset <= 180):
        raise GpcubeError(f"max_offset must be a number of deg in [0, 180], got {max_offset!r}")
    if abs(lat) > 90:
        raise GpcubeError(f"center latitude must be within [-90, 90] deg, got {lat!r}")
    vec = tuple(float(v) for v in geom._to_native(lon, lat))
    box = _bounding_box(geom, vec, float(max_offset))
    hit = _scan(geom, vec, float(max_offset), box) if box is not None else None
    if hit is None:
        slices = (slice(0, 0), slice(0, 0))
    else:
        (iy0, iy1, ix0, ix1), (ny, nx) = hit, geom.shape
        slices = (slice(max(iy0 - 1, 0), min(iy1 + 1, ny)), slice(max(ix0 - 1, 0), min(ix1 + 1, nx)))
    return geom.slice(slices), slices


def _center_lonlat(geom: Grid, center: Any) -> tuple[float, float]:
    if hasattr(center, "transform_to"):
        if not center.isscalar:
            raise GpcubeError("center must be a scalar SkyCoord")
        return tuple(float(v) for v in skycoord_to_lonlat(center, geom.frame))
    return _pair(center, "center")


def _clip_box(geom: Grid, y_lo: float, y_hi: float, x_lo: float, x_hi: float) -> Box | None:
    """Integer box of the pixel centres in the float ranges, one pixel wider, clipped; None if empty."""
    ny, nx = geom.shape
    iy0, iy1 = max(math.floor(y_lo) - 1, 0), min(math.ceil(y_hi) + 2, ny)
    ix0, ix1 = max(math.floor(x_lo) - 1, 0), min(math.ceil(x_hi) + 2, nx)
    return (iy0, iy1, ix0, ix1) if iy0 < iy1 and ix0 < ix1 else None


def _bounding_box(geom: Grid, vec: tuple[float, ...], radius: float) -> Box | None:
    """A box of pixels surely holding every pixel centre within ``radius`` of the native vector."""
    ny, nx = geom.shape
    if nx == 0 or ny == 0:
        return None
    if geom.projection == "CAR":
        return _bounding_box_car(geom, vec, radius)
    return _bounding_box_tan(geom, vec, radius)


def _bounding_box_car(geom: Grid, vec: tuple[float, ...], radius: float) -> Box | None:
    # In CAR pixel space the native latitude is linear in y and the native longitude in x.
    phi = math.degrees(math.atan2(vec[1], vec[0]))
    theta = math.degrees(math.atan2(vec[2], math.hypot(vec[0], vec[1])))
    theta_lo, theta_hi = max(theta - radius, -90.0), min(theta + radius, 90.0)
    if theta + radius >= 90.0 or theta - radius <= -90.0:
        phi_lo, phi_hi = -180.0, 180.0  # the circle holds a native pole
    else:
        ratio = math.sin(math.radians(radius)) / math.cos(math.radians(theta))
        half = math.degrees(math.asin(min(ratio, 1.0)))
        phi_lo, phi_hi = phi - half, phi + half
        if phi_lo < -180.0 or phi_hi > 180.0:
            phi_lo, phi_hi = -180.0, 180.0  # crosses the seam: both ends of the grid
    (x_lo, x_hi), (y_lo, y_hi) = _native_range_to_pix(geom, (phi_hi, phi_lo), (theta_lo, theta_hi))
    return _clip_box(geom, y_lo, y_hi, x_lo, x_hi)


def _native_range_to_pix(geom: Grid, phis: tuple[float, float], thetas: tuple[float, float]) -> tuple:
    x = [geom.crpix[0] - 1.0 - p / geom.binsz for p in phis]
    y = [geom.crpix[1] - 1.0 + t / geom.binsz for t in thetas]
    return (min(x), max(x)), (min(y), max(y))


def _circle(vec: tuple[float, ...], radius: float, npts: int) -> tuple[np.ndarray, ...]:
    """Native unit vectors of ``npts`` points at ``radius`` deg from the unit vector ``vec``."""
    c = np.asarray(vec)
    helper = np.array([0.0, 0.0, 1.0]) if abs(c[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(c, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(c, e1)
    t = np.linspace(0.0, 2.0 * np.pi, npts, endpoint=False)
    r = math.radians(radius)
    pts = math.cos(r) * c[:, None] + math.sin(r) * (np.cos(t) * e1[:, None] + np.sin(t) * e2[:, None])
    return pts[0], pts[1], pts[2]


def _bounding_box_tan(geom: Grid, vec: tuple[float, ...], radius: float) -> Box | None:
    ny, nx = geom.shape
    pts = _circle(vec, radius, _N_CIRCLE)
    if vec[2] <= 0.0 or np.any(pts[2] <= 0.0):
        return (0, ny, 0, nx)  # part of the circle does not project: scan everything
    x, y = geom._native_to_pix(pts)
    x, y = np.append(x, x[0]), np.append(y, y[0])
    margin = 1.0 + float(np.max(np.hypot(np.diff(x), np.diff(y))))  # an arc strays less than its chord
    return _clip_box(geom, y.min() - margin, y.max() + margin, x.min() - margin, x.max() + margin)


def _row_minimiser_x(geom: Grid, vec: tuple[float, ...], rows: np.ndarray) -> np.ndarray:
    """Per row, the x where the distance to ``vec`` along the row is smallest (NaN: at an end of the row).

    A CAR row is a native parallel (nearest point at the centre's native longitude); a TAN row is a
    straight line of the tangent plane, i.e. a great circle, whose nearest point is the centre's
    projection onto the circle's plane (NaN when that lies on the hemisphere TAN does not show).
    """
    if geom.projection == "CAR":
        return np.full(rows.shape, geom._native_to_pix(vec)[0], dtype=float)
    _, eta = geom._intermediate(0.0, rows)
    denom = _R0 * vec[2] - eta * vec[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = np.where(denom > 0, vec[1] * (eta**2 + _R0**2) / denom, np.nan)
    return geom.crpix[0] - 1.0 - xi / geom.binsz


def _col_minimiser_y(geom: Grid, vec: tuple[float, ...], cols: np.ndarray) -> np.ndarray:
    """Per column, the y where the distance to ``vec`` along the column is smallest (NaN: at an end)."""
    xi, _ = geom._intermediate(cols, 0.0)
    if geom.projection == "CAR":  # a native meridian (half great circle)
        # nearest native latitude: atan2(sin(theta_c), cos(theta_c) cos(phi - phi_c))
        cos_part = vec[0] * np.cos(np.radians(xi)) + vec[1] * np.sin(np.radians(xi))
        theta = np.clip(np.degrees(np.arctan2(vec[2], cos_part)), -90.0, 90.0)
        return geom.crpix[1] - 1.0 + theta / geom.binsz
    denom = xi * vec[1] + _R0 * vec[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.where(denom > 0, -vec[0] * (xi**2 + _R0**2) / denom, np.nan)
    return geom.crpix[1] - 1.0 + eta / geom.binsz


def _candidates(best: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """(n, 4) pixel indices in [lo, hi): both neighbours of ``best`` and both ends.

    Along a row or column the distance to the centre has a single minimum (and maximum), so the nearest
    pixel centre is one of these four.
    """
    best = np.where(np.isfinite(best), best, lo)
    cand = np.stack([np.floor(best), np.ceil(best), np.full(best.shape, lo), np.full(best.shape, hi - 1)], -1)
    return np.clip(cand, lo, hi - 1)


def _scan(geom: Grid, vec: tuple[float, ...], radius: float, box: Box) -> Box | None:
    """Tight box of the pixel centres within ``radius`` inside ``box``, in O(rows + columns)."""
    iy0, iy1, ix0, ix1 = box
    rows, cols = np.arange(iy0, iy1), np.arange(ix0, ix1)
    row_x = _candidates(_row_minimiser_x(geom, vec, rows), ix0, ix1)
    col_y = _candidates(_col_minimiser_y(geom, vec, cols), iy0, iy1)
    row_in = np.flatnonzero((geom._offset_pix(vec, row_x, rows[:, None]) <= radius).any(axis=1))
    col_in = np.flatnonzero((geom._offset_pix(vec, cols[:, None], col_y) <= radius).any(axis=1))
    if row_in.size == 0 or col_in.size == 0:
        return None
    return iy0 + int(row_in[0]), iy0 + int(row_in[-1]) + 1, ix0 + int(col_in[0]), ix0 + int(col_in[-1]) + 1
