"""Exclusion regions: where the counts may not be taken as background (FoV normalisation, ring).

An exclusion is given as a boolean ``(y, x)`` mask on the mosaic geometry (True where pixels may
be used), or as circles ``(lon, lat, radius)`` in deg in the geometry's frame, or ``(SkyCoord,
radius)``. The makers need it on an observation's cutout: a mask is sliced there, circles are drawn
there (skipping those that cannot reach the cutout, and remembering the result per geometry).
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Sequence

import dask.array as da
import numpy as np
import xarray as xr

from gpcube.errors import GpcubeError
from gpcube.geom import SKY_DIMS, SkyGeom
from gpcube.geom._util import skycoord_to_lonlat
from gpcube.geom.frames import convert_frame
from gpcube.geom.world import world_coords

__all__ = [
    "circle_in_frame",
    "circles_mask",
    "exclusion_mask_from_circles",
    "exclusion_on",
    "exclusion_plane",
    "mask_on",
]

#: Circles whose centre is this much (deg) farther than their radius from every pixel are skipped.
_CIRCLE_MARGIN = 1e-6


@functools.lru_cache(maxsize=64)
def _cutout_reach(geom: SkyGeom) -> tuple[tuple[float, float], float]:
    """The cutout's central pixel ``(lon, lat)`` and the largest distance (deg) of a pixel from it
    (NaN if some pixel is outside the projection's domain)."""
    lon, lat = geom.pix_to_world((geom.npix[0] - 1) / 2, (geom.npix[1] - 1) / 2)
    distance = geom.separation(float(lon), float(lat))
    return (float(lon), float(lat)), float(distance.max())


def _angular_distance(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Angle (deg) between two directions ``(lon, lat)`` given in deg (Vincenty's form)."""
    lon1, lat1, lon2, lat2 = np.deg2rad([a[0], a[1], b[0], b[1]])
    dlon = lon2 - lon1
    y = np.hypot(
        np.cos(lat2) * np.sin(dlon), np.cos(lat1) * np.sin(lat2) - np.sin(lat1) * np.cos(lat2) * np.cos(dlon)
    )
    x = np.sin(lat1) * np.sin(lat2) + np.cos(lat1) * np.cos(lat2) * np.cos(dlon)
    return float(np.rad2deg(np.arctan2(y, x)))


@functools.lru_cache(maxsize=64)
def circles_mask(geom: SkyGeom, circles: tuple[tuple[float, float, float], ...]) -> np.ndarray:
    """``(y, x)`` mask of ``geom``, False where a pixel centre is within a circle ``(lon, lat, r)``.

    Circles in ``geom.frame``, deg. A read-only array remembered per geometry; circles farther from
    the cutout's centre than its reach plus their radius cannot hold a pixel and are skipped.
    """
    mask = np.ones(geom.shape, dtype=bool)
    centre, reach = _cutout_reach(geom)
    for lon, lat, radius in circles:
        if np.isfinite(reach) and _angular_distance(centre, (lon, lat)) - reach > radius + _CIRCLE_MARGIN:
            continue
        mask &= geom.separation(lon, lat) > radius
    mask.setflags(write=False)
    return mask


def _sub_slice(parent: xr.DataArray, child: xr.DataArray, dim: str) -> slice | None:
    """The slice of ``parent`` along ``dim`` whose coordinate values are the child's (None: none)."""
    if dim not in parent.coords or dim not in child.coords:
        return None
    outer, inner = parent[dim].values, child[dim].values
    if inner.size == 0 or outer.size == 0 or not np.issubdtype(outer.dtype, np.integer):
        return None
    start = int(inner[0] - outer[0])
    ok = 0 <= start <= outer.size - inner.size and np.array_equal(outer[start : start + inner.size], inner)
    return slice(start, start + inner.size) if ok else None


def exclusion_plane(exclusion, counts: xr.DataArray) -> np.ndarray | da.Array | None:
    """The ``(y, x)`` exclusion mask on the cutout of ``counts`` as an array (None: no exclusion).

    ``exclusion``: a boolean ``(y, x)`` DataArray on the mosaic geometry (or the cutout), or
    circles ``(lon, lat, radius)`` in deg in the geometry's frame, or ``(SkyCoord, radius)``.
    """
    if exclusion is None:
        return None
    if isinstance(exclusion, xr.DataArray):
        at = [_sub_slice(exclusion, counts, dim) for dim in SKY_DIMS]
        if exclusion.dtype == bool and set(exclusion.dims) == set(SKY_DIMS) and None not in at:
            return exclusion.transpose(*SKY_DIMS).data[tuple(at)]
        return exclusion_on(exclusion, counts).transpose(*SKY_DIMS).data
    geom = SkyGeom.from_dataarray(counts)
    return circles_mask(geom.with_axes(), tuple(circle_in_frame(geom.frame, c) for c in exclusion))


def exclusion_mask_from_circles(
    geom: SkyGeom, circles: Sequence[tuple[float, float, float]], frame: str | None = None
) -> xr.DataArray:
    """``(y, x)`` mask of ``geom``: False inside any circle ``(lon, lat, radius)`` (deg), else True.

    ``frame`` is the circles' frame (default: the geometry's). Pixels count as inside when their
    centre is within the radius.

    Parameters
    ----------
    geom : SkyGeom
        The grid of the mask (the mosaic's, or a cutout's).
    circles : sequence of (lon, lat, radius)
        Excluded circles, in deg.
    frame : {"icrs", "galactic"}, optional
        Frame of the circles' centres.

    Returns
    -------
    xarray.DataArray
        Boolean ``exclusion_mask``, True where pixels may be used, with the geometry in attrs.

    See Also
    --------
    make_map_background_fov_norm : Normalises the background outside the excluded regions.
    make_map_ring_background : Takes OFF counts outside them.

    Examples
    --------
    >>> from gpcube.geom import SkyGeom
    >>> from gpcube.makers import exclusion_mask_from_circles
    >>> geom = SkyGeom.create((83.633, 22.014), binsz=0.05, width=4.0)
    >>> mask = exclusion_mask_from_circles(geom, [(83.633, 22.014, 0.3)])
    >>> mask.shape, int((~mask).sum())  # excluded pixels: about pi (0.3 / 0.05) ** 2
    ((80, 80), 112)

    The same circle given in galactic coordinates:

    >>> galactic = exclusion_mask_from_circles(geom, [(184.5575, -5.7843, 0.3)], frame="galactic")
    >>> int((galactic != mask).sum())
    0
    """
    if frame is not None and frame != geom.frame:
        circles = [
            (*(float(v) for v in convert_frame(lon, lat, frame, geom.frame)), r) for lon, lat, r in circles
        ]
    mask = circles_mask(
        geom.with_axes(), tuple((float(lon), float(lat), float(r)) for lon, lat, r in circles)
    )
    coords = {k: v for k, v in geom.to_coords().items() if set(v.dims) <= set(geom.dims)}
    mask = xr.DataArray(mask, dims=geom.dims, coords=coords, name="exclusion_mask",
                        attrs={"geom": geom.to_attrs()})  # fmt: skip
    return mask.assign_coords(world_coords(geom))


def mask_on(mask: xr.DataArray, cube: xr.DataArray) -> xr.DataArray:
    """``mask`` (on the parent grid, indexed by parent pixel indices) on the pixels of ``cube``."""
    try:
        return mask.sel(y=cube["y"], x=cube["x"])
    except KeyError as error:
        raise GpcubeError(
            "the exclusion mask does not cover the observation's cutout: make it on the mosaic geometry "
            "(e.g. with exclusion_mask_from_circles)"
        ) from error


def circle_in_frame(frame: str, circle) -> tuple[float, float, float]:
    """``(lon, lat, radius)`` in ``frame`` of a circle given so, or as ``(SkyCoord, radius)``."""
    centre, radius = circle[:-1], circle[-1]
    if not isinstance(centre[0], numbers.Real):  # a SkyCoord
        centre = skycoord_to_lonlat(centre[0], frame)
    return float(centre[0]), float(centre[1]), float(radius)


def exclusion_on(exclusion, cube: xr.DataArray) -> xr.DataArray:
    """The ``(y, x)`` exclusion mask on the pixels of ``cube`` (an observation's cutout)."""
    if exclusion is None:
        return xr.ones_like(cube.isel(energy_reco=0, drop=True), dtype=bool)
    if isinstance(exclusion, xr.DataArray):
        if set(exclusion.dims) != set(SKY_DIMS) or exclusion.dtype != bool:
            raise GpcubeError("exclusion_mask must be a boolean (y, x) DataArray on the mosaic geometry")
        return mask_on(exclusion, cube)
    cutout = SkyGeom.from_dataarray(cube)
    return exclusion_mask_from_circles(cutout, [circle_in_frame(cutout.frame, c) for c in exclusion])
