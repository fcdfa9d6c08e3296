"""An observation's cutout of the mosaic geometry, found without reading its files."""

from __future__ import annotations

from astropy.coordinates import SkyCoord

from gpcube.geom import SkyGeom
from gpcube.io import Observation

__all__ = ["observation_cutout", "pointing_radec"]


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
