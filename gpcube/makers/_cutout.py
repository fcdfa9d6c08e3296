"""An observation's cutout of the mosaic geometry, found without reading its files."""

from __future__ import annotations

import functools
from collections.abc import Callable

import xarray as xr

from gpcube.geom import SkyGeom
from gpcube.geom.frames import convert_frame
from gpcube.io import Observation
from gpcube.makers._lazy import lazy_cube

__all__ = ["observation_cube", "observation_cutout", "pointing_radec"]


def pointing_radec(observation: Observation) -> tuple[float, float]:
    """Pointing RA/Dec in deg: from the observation index when it has them (no file read), else the file."""
    info = observation.obs_info
    if info.get("ra_pnt") is not None and info.get("dec_pnt") is not None:
        return float(info["ra_pnt"]), float(info["dec_pnt"])
    return observation.pointing.ra, observation.pointing.dec


@functools.lru_cache(maxsize=16)
def _cutout(geom: SkyGeom, ra: float, dec: float, max_offset: float) -> SkyGeom:
    # Our own frame rotation: astropy's SkyCoord transform costs ~2.5 ms per call.
    lon, lat = convert_frame(ra, dec, "icrs", geom.frame)
    return geom.cutout((float(lon), float(lat)), max_offset)[0]


def observation_cutout(observation: Observation, geom: SkyGeom, max_offset: float | None) -> SkyGeom:
    """The cutout of ``geom`` within ``max_offset`` deg of the pointing (all of ``geom`` for None).

    Remembered for the last few (geometry, pointing, radius): the products of one observation share it.
    """
    if max_offset is None:
        return geom
    ra, dec = pointing_radec(observation)
    return _cutout(geom, float(ra), float(dec), float(max_offset))


def observation_cube(
    observation: Observation,
    geom: SkyGeom,
    *,
    product: str,
    axis_name: str | tuple[str, ...],
    units: str,
    load: Callable,
    block: Callable,
    dtype,
    max_offset: float | None,
    chunk: int,
    attrs: dict | None = None,
    extra_axes: dict | None = None,
) -> xr.DataArray:
    """The lazy ``product(*axis_name, y, x)`` of one observation over its cutout of ``geom``.

    ``load(observation, cutout_geom, *axes)`` runs once, with ``axes`` the energy axes of ``geom``
    named in ``axis_name`` (in order); ``block(loaded, block_geom)`` runs per block. Leading dims that
    are not energy axes of ``geom`` come from ``extra_axes`` (see :func:`lazy_cube`). ``attrs`` adds
    to (or overrides) the common ones: ``units``, ``energy_type`` (of the first energy axis),
    ``obs_id`` and ``product``.
    """
    names = (axis_name,) if isinstance(axis_name, str) else tuple(axis_name)
    axes = [geom.axis(name) for name in names if name not in (extra_axes or {})]
    cutout_geom = observation_cutout(observation, geom, max_offset)
    common = {
        "units": units,
        "energy_type": axes[0].energy_type,
        "obs_id": observation.obs_id,
        "product": product,
    }
    return lazy_cube(
        load, (observation, cutout_geom, *axes), block, cutout_geom, names,
        name=product, dtype=dtype, attrs={**common, **(attrs or {})}, chunk=chunk, extra_axes=extra_axes,
    )  # fmt: skip
