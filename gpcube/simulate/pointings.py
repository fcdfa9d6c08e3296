"""Observation plans: pointings of a survey grid or a list, ids and start times."""

from __future__ import annotations

import numpy as np
from astropy.time import Time

from gpcube.geom.frames import convert_frame
from gpcube.simulate.config import PointingsConfig, SimConfig
from gpcube.simulate.observation import MJDREFF, MJDREFI, ObsPlan

__all__ = ["plan_observations", "survey_pointings"]


def survey_pointings(pointings: PointingsConfig) -> tuple[np.ndarray, np.ndarray]:
    """RA and Dec (deg, ICRS) of the pointings, each repeated ``repeat`` times in a row.

    A grid runs along longitude from ``lon[0]`` in steps of ``spacing`` while within ``lon[1]``
    (a 1e-9 deg tolerance), one row per latitude in the order given.

    Examples
    --------
    The 3 x 2 grid of the example simulation, in the Galactic plane:

    >>> from gpcube.data import write_example_sim_config
    >>> from gpcube.simulate import load_sim_config, survey_pointings
    >>> config = load_sim_config(write_example_sim_config("sim.yaml")[0])
    >>> ra, dec = survey_pointings(config.pointings)
    >>> ra.round(2), dec.round(2)
    (array([266.3 , 266.89, 267.48, 265.32, 265.92, 266.51]),
     array([-30.05, -29.2 , -28.34, -29.52, -28.67, -27.82]))
    """
    if pointings.grid is not None:
        grid = pointings.grid
        n = int(np.floor((grid.lon[1] - grid.lon[0]) / grid.spacing + 1e-9)) + 1
        lon = np.tile(grid.lon[0] + grid.spacing * np.arange(n), len(grid.lat))
        lat = np.repeat(np.asarray(grid.lat, dtype=float), n)
        ra, dec = convert_frame(lon, lat, pointings.frame, "icrs")
    else:
        coords = [convert_frame(lon, lat, frame, "icrs") for lon, lat, frame in pointings.list]
        ra, dec = (np.array([c[i] for c in coords], dtype=float) for i in (0, 1))
    return np.repeat(ra, pointings.repeat), np.repeat(dec, pointings.repeat)


def _met(start) -> float:
    """Seconds since MJDREF (TT) of an ISO string, or a number already in seconds."""
    if isinstance(start, str):
        return float((Time(start, scale="tt").mjd - (MJDREFI + MJDREFF)) * 86400.0)
    return float(start)


def _dates(met: np.ndarray) -> tuple[list[str], list[str]]:
    isot = Time(MJDREFI + MJDREFF + met / 86400.0, format="mjd", scale="tt", precision=3).isot
    return [t[:10] for t in np.atleast_1d(isot)], [t[11:] for t in np.atleast_1d(isot)]


def plan_observations(config: SimConfig) -> list[ObsPlan]:
    """One :class:`~gpcube.simulate.observation.ObsPlan` per observation, in order.

    Observation ``i`` has id ``obs_id_start + i`` and starts ``i * (ontime + gap)`` s after
    ``observation.start``.

    See Also
    --------
    survey_pointings : The pointings alone.

    Examples
    --------
    >>> from gpcube.data import write_example_sim_config
    >>> from gpcube.simulate import load_sim_config, plan_observations
    >>> plans = plan_observations(load_sim_config(write_example_sim_config("sim.yaml")[0]))
    >>> len(plans), plans[0].obs_id, round(plans[0].glon, 6), round(plans[0].glat, 6)
    (6, 1, 359.0, -0.5)
    >>> plans[1].date_obs, plans[1].time_obs  # one after the other
    ('2024-01-01', '00:30:00.000')
    """
    obs = config.observation
    ra, dec = survey_pointings(config.pointings)
    glon, glat = convert_frame(ra, dec, "icrs", "galactic")
    tstart = _met(obs.start) + np.arange(len(ra)) * (obs.ontime + obs.gap)
    date_obs, time_obs = _dates(tstart)
    date_end, time_end = _dates(tstart + obs.ontime)
    return [
        ObsPlan(i, obs.obs_id_start + i, float(ra[i]), float(dec[i]), float(glon[i]), float(glat[i]),
                float(tstart[i]), date_obs[i], time_obs[i], date_end[i], time_end[i])
        for i in range(len(ra))
    ]  # fmt: skip
