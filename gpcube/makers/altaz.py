"""How an ALTAZ-aligned field of view turns on the sky during an observation.

A telescope tracking a source keeps it at the camera centre while the horizontal frame turns
around it (the parallactic angle changes). For each of a few instants this module gives the 2 x 2
matrix taking offsets along (east, north) to offsets along (+az, +alt), found by astropy's
AltAz transformation of two points next to the pointing, and the weights that average over the
observation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gpcube.errors import GpcubeError
from gpcube.io import Observation
from gpcube.makers.fov import offset_frame_vectors

if TYPE_CHECKING:  # astropy.coordinates takes ~0.6 s to import: only when a field turns
    from astropy.coordinates import EarthLocation
    from astropy.time import Time

__all__ = ["fov_rotations", "observation_location", "observation_start", "radec_to_altaz_matrices"]

#: Sampling interval (s) used to measure how fast the field turns.
_PROBE_STEP = 30.0
#: Distance (deg) of the probe points from the pointing.
_DELTA = 1e-3


def observation_location(observation: Observation) -> EarthLocation:
    """The observatory location from the events header (GEOLON, GEOLAT, ALTITUDE)."""
    attrs = observation.events.attrs
    missing = [k.upper() for k in ("geolon", "geolat") if attrs.get(k) is None]
    if missing:
        raise GpcubeError(
            f"ALTAZ-aligned background needs the observatory location: header keywords {missing} missing",
            path=attrs.get("file"),
            hdu=attrs.get("hdu"),
        )
    from astropy.coordinates import EarthLocation

    return EarthLocation.from_geodetic(attrs["geolon"], attrs["geolat"], attrs.get("altitude") or 0.0)


def observation_start(observation: Observation) -> Time:
    """Start of the observation (TSTART after MJDREF, in the header's time system)."""
    attrs = observation.events.attrs
    if attrs.get("tstart") is None or attrs.get("mjdrefi") is None:
        raise GpcubeError(
            "ALTAZ-aligned background needs TSTART and MJDREFI/MJDREFF in the events header",
            path=attrs.get("file"),
            hdu=attrs.get("hdu"),
        )
    from astropy import units as u
    from astropy.time import Time

    scale = str(attrs.get("timesys") or "tt").lower()
    reference = Time(attrs["mjdrefi"], attrs.get("mjdreff") or 0.0, format="mjd", scale=scale)
    return reference + attrs["tstart"] * u.s


def radec_to_altaz_matrices(ra: float, dec: float, times: Time, location: EarthLocation) -> np.ndarray:
    """``(n_times, 2, 2)`` orthogonal matrices: (east, north) offsets -> (+az, +alt) offsets."""
    from astropy import units as u
    from astropy.coordinates import AltAz, SkyCoord

    frame = AltAz(obstime=times, location=location)
    altaz = SkyCoord(ra, dec, unit="deg", frame="icrs").transform_to(frame)
    az, alt = altaz.az.deg, altaz.alt.deg
    probes = [(az + _DELTA / np.cos(np.deg2rad(alt)), alt), (az, alt + _DELTA)]
    rows = []
    for probe_az, probe_alt in probes:
        icrs = SkyCoord(az=probe_az * u.deg, alt=probe_alt * u.deg, frame=frame).icrs
        _, east, north = offset_frame_vectors(icrs.ra.deg, icrs.dec.deg, ra, dec)
        norm = np.hypot(east, north)
        rows.append(np.stack([east / norm, north / norm], axis=-1))
    return np.stack(rows, axis=1)


def fov_rotations(observation: Observation, step: float = 1.0) -> tuple[list[np.ndarray], np.ndarray]:
    """Matrices at equally spaced instants turning by at most ``step`` deg, and trapezoid weights.

    Returns the list of ``(2, 2)`` matrices and their weights (summing to 1) for averaging the
    background rate over the observation's on-time.
    """
    from astropy import units as u

    ra, dec = observation.pointing.ra, observation.pointing.dec
    location, start = observation_location(observation), observation_start(observation)
    ontime = observation.ontime
    probe = start + np.linspace(0.0, ontime, max(2, int(np.ceil(ontime / _PROBE_STEP)) + 1)) * u.s
    matrices = radec_to_altaz_matrices(ra, dec, probe, location)
    angle = np.unwrap(np.arctan2(matrices[:, 1, 0], matrices[:, 1, 1]))
    n_steps = max(1, int(np.ceil(np.sum(np.abs(np.diff(angle))) / np.deg2rad(step))))
    times = start + np.linspace(0.0, ontime, n_steps + 1) * u.s
    weights = np.full(n_steps + 1, 1.0 / n_steps)
    weights[[0, -1]] /= 2
    return list(radec_to_altaz_matrices(ra, dec, times, location)), weights
