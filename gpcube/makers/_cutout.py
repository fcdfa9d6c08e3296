"""An observation's cutout of the mosaic geometry, found without reading its files."""

from __future__ import annotations

from collections.abc import Callable

import xarray as xr
from astropy.coordinates import SkyCoord

from gpcube.geom import SkyGeom
from gpcube.io import Observation
from gpcube.makers._lazy import lazy_cube

__all__ = ["observation_cube", "observation_cutout", "pointing_radec"]


def pointing_radec(observation: Observation) -> tuple[float, float]:
    """Pointing RA/Dec in deg: from the observation index when it has them (no file read), else the file."""
    info = observation.obs_info
    if info.get("ra_pnt") is not None and info.get("dec_pnt") is not None:
        return float(info["ra_pnt"]), float(info["dec_pnt"])
    return observation.pointing.ra, observation.pointing.dec


def observation_cutout(observation: Observation, geom: SkyGeom, max_offset: float | None) -> SkyGeom:
    """The cutout of ``geom`` within ``max_offset`` deg of the pointing (all of ``geom`` for None)."""
    if max_offset is None:
        return geom
    ra, dec = pointing_radec(observation)
    cutout_geom, _ = geom.cutout(SkyCoord(ra, dec, unit="deg", frame="icrs"), max_offset)
    return cutout_geom


def observation_cube(
    observation: Observation,
    geom: SkyGeom,
    *,
    product: str,
    axis_name: str,
    units: str,
    load: Callable,
    block: Callable,
    dtype,
    max_offset: float | None,
    chunk: int,
) -> xr.DataArray:
    """The lazy ``product(axis_name, lat, lon)`` of one observation over its cutout of ``geom``.

    ``load(observation, cutout_geom, axis)`` runs once; ``block(loaded, block_geom)`` per block.
    """
    axis = geom.axis(axis_name)
    cutout_geom = observation_cutout(observation, geom, max_offset)
    attrs = {
        "units": units,
        "energy_type": axis.energy_type,
        "obs_id": observation.obs_id,
        "product": product,
    }
    return lazy_cube(
        load, (observation, cutout_geom, axis), block, cutout_geom, axis_name,
        name=product, dtype=dtype, attrs=attrs, chunk=chunk,
    )  # fmt: skip
