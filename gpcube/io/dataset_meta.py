"""The observation tables of an exported dataset: ``GTI``, ``META_TABLE`` and the exposure's live time.

As gammapy 2.1's ``MapDataset.write`` writes them for a dataset that ``MapDatasetMaker`` made (one
observation) or that ``MapDataset.stack`` stacked (several):

* ``GTI``: columns ``START`` and ``STOP`` (D, s) since the reference time in the header (``MJDREFI``,
  ``MJDREFF``, ``TIMESYS``). Here the union of the observations' intervals (sorted, overlapping or
  touching ones merged, as ``GTI.union``), in s since 2000-01-01 00:00:00 UTC (``MJDREFI = 51544``,
  ``MJDREFF = 0.0``, ``TIMESYS = 'utc'``), the reference of gammapy's stacked datasets.
* ``META_TABLE``: one row. One observation: scalar columns ``TELESCOP``, ``OBS_ID``, ``OBS_MODE``
  (``'POINTING'``: gammapy's pointing mode, not the events header's ``OBS_MODE``), ``RA_PNT`` and
  ``DEC_PNT`` (deg). Several: the same columns holding one vector of all observations each, without
  units (what ``MapDataset.stack`` makes of the tables).
* ``META`` of the ``EXPOSURE`` header: ``{"livetime": "<seconds> s"}``, the summed live time, which
  gammapy's ``info_dict`` reports.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from gpcube.errors import GpcubeError

if TYPE_CHECKING:
    from astropy.io import fits

    from gpcube.io.observation import Observation

__all__ = [
    "GTI_REFERENCE",
    "ObservationMeta",
    "gti_hdu",
    "gti_record",
    "gti_seconds",
    "livetime_meta",
    "meta_table_hdu",
    "observation_telescope",
]

#: The reference time of the GTI table of a stacked dataset that gammapy makes (the default of
#: ``MapDataset.create``): 2000-01-01 00:00:00 UTC, as (MJDREFI, MJDREFF, TIMESYS).
GTI_REFERENCE = (51544, 0.0, "utc")


class ObservationMeta(NamedTuple):
    """What the ``GTI`` and ``META_TABLE`` HDUs and the exposure's live time say of one observation.

    Attributes
    ----------
    obs_id : int
    livetime : float
        Live time in s; the exposure's ``META`` gets the sum over the observations.
    ra_pnt, dec_pnt : float
        Pointing (ICRS, deg).
    telescope : str or None
        ``TELESCOP`` (None: ``"Unknown"``, as gammapy writes it).
    gti : tuple or None
        ``(start, stop, (mjdrefi, mjdreff, timesys))``: the good time intervals in s since the reference
        time ``mjdrefi + mjdreff`` (MJD) in the time scale ``timesys`` (``"tt"``, ``"utc"``, ...). None
        if unknown: then no GTI table is written.
    """

    obs_id: int
    livetime: float
    ra_pnt: float
    dec_pnt: float
    telescope: str | None = None
    gti: tuple | None = None

    @classmethod
    def from_record(
        cls, obs_id: int, livetime: float, pointing: Sequence[float], telescope: str | None, gti: dict | None
    ) -> ObservationMeta:
        """From the values an archive stores: ``pointing`` ``(ra, dec)``, ``gti`` a :func:`gti_record`."""
        times = None
        if gti is not None:
            times = (gti["start"], gti["stop"], (gti["mjdrefi"], gti["mjdreff"], gti["timesys"]))
        ra, dec = pointing
        return cls(int(obs_id), float(livetime), float(ra), float(dec), telescope, times)

    @classmethod
    def from_observation(cls, observation: Observation) -> ObservationMeta:
        """Of an observation of a data store: its ``LIVETIME``, pointing, ``TELESCOP`` and GTI."""
        pointing = (observation.pointing.ra, observation.pointing.dec)
        telescope = observation_telescope(observation)
        return cls.from_record(
            observation.obs_id, observation.livetime, pointing, telescope, gti_record(observation)
        )


def gti_record(observation: Observation) -> dict | None:
    """An observation's good time intervals as plain values (what the archive stores of them).

    Returns
    -------
    dict or None
        ``start`` and ``stop`` (lists, s since the reference time) as in the GTI table (else the events
        header's ``TSTART`` / ``TSTOP``), and the reference time ``mjdrefi``, ``mjdreff`` (MJD) and
        ``timesys`` (lower case; ``"tt"`` if not given) from the GTI header, else the events header.
        None if there is no GTI table and no ``TSTART`` / ``TSTOP``, or no reference time.
    """
    events = observation.events.attrs
    if "gti" in observation.hdus:
        gti = observation.gti
        start, stop, header = gti["start"].values, gti["stop"].values, gti.attrs
    elif "tstart" in events and "tstop" in events:
        start, stop, header = [events["tstart"]], [events["tstop"]], {}
    else:
        return None
    reference = {key: header.get(key, events.get(key)) for key in ("mjdrefi", "mjdreff", "timesys")}
    if reference["mjdrefi"] is None or reference["mjdreff"] is None:
        return None
    return {
        "start": [float(t) for t in start],
        "stop": [float(t) for t in stop],
        "mjdrefi": int(reference["mjdrefi"]),
        "mjdreff": float(reference["mjdreff"]),
        "timesys": str(reference["timesys"] or "TT").lower(),
    }


def observation_telescope(observation: Observation) -> str | None:
    """``TELESCOP`` of the events header, else of the observation index; None if neither has it."""
    value = observation.events.attrs.get("telescop", observation.obs_info.get("TELESCOP"))
    return None if value is None else str(value).strip()


def livetime_meta(observations: Sequence[ObservationMeta]) -> str:
    """The exposure's ``META`` header value: the summed live time as gammapy writes a Quantity."""
    total = float(sum(float(obs.livetime) for obs in observations))
    return json.dumps({"livetime": f"{total!r} s"})


def gti_seconds(observations: Sequence[ObservationMeta]) -> tuple[np.ndarray, np.ndarray]:
    """The union of the observations' good time intervals, in s since :data:`GTI_REFERENCE`.

    Times are converted with :mod:`astropy.time` (leap seconds included); intervals are sorted by start
    and merged where they overlap or touch.

    Raises
    ------
    GpcubeError
        If an observation's time scale is not one astropy knows, naming the observation.
    """
    from astropy import units as u
    from astropy.time import ScaleValueError, Time

    mjdrefi, mjdreff, timesys = GTI_REFERENCE
    reference = Time(mjdrefi, mjdreff, format="mjd", scale=timesys)
    starts, stops = [], []
    for obs in observations:
        start, stop, (obs_mjdrefi, obs_mjdreff, obs_timesys) = obs.gti
        try:
            origin = Time(obs_mjdrefi, obs_mjdreff, format="mjd", scale=str(obs_timesys).lower())
        except (ValueError, ScaleValueError) as exc:
            raise GpcubeError(f"observation {obs.obs_id}: GTI reference time: {exc}") from exc
        starts.append(((origin + np.asarray(start, dtype=float) * u.s) - reference).to_value("s"))
        stops.append(((origin + np.asarray(stop, dtype=float) * u.s) - reference).to_value("s"))
    return _union(np.concatenate(starts), np.concatenate(stops))


def _union(start: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intervals sorted by start, those that overlap or touch merged into one."""
    order = np.argsort(start, kind="stable")
    merged: list[list[float]] = []
    for lo, hi in zip(start[order], stop[order], strict=True):
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    out = np.array(merged, dtype=np.float64).reshape(-1, 2)
    return out[:, 0], out[:, 1]


def gti_hdu(observations: Sequence[ObservationMeta]) -> fits.BinTableHDU | None:
    """The ``GTI`` table of the observations; None if any of them has no known GTI."""
    from astropy.io import fits

    if not observations or any(obs.gti is None for obs in observations):
        return None
    start, stop = gti_seconds(observations)
    mjdrefi, mjdreff, timesys = GTI_REFERENCE
    columns = [fits.Column(n, "D", unit="s", array=t) for n, t in (("START", start), ("STOP", stop))]
    # CREATOR and CREATED (filled in as the file is written) first, in gammapy's order of the cards
    cards = [
        ("CREATOR", ""),
        ("CREATED", ""),
        ("MJDREFI", mjdrefi),
        ("MJDREFF", mjdreff),
        ("TIMESYS", timesys),
    ]
    header = fits.Header(cards)
    return fits.BinTableHDU.from_columns(columns, header=header, name="GTI")


def meta_table_hdu(observations: Sequence[ObservationMeta]) -> fits.BinTableHDU | None:
    """The ``META_TABLE`` of the observations (module docstring); None without observations."""
    from astropy.io import fits
    from astropy.table import Table

    if not observations:
        return None
    columns = {
        "TELESCOP": [obs.telescope or "Unknown" for obs in observations],
        "OBS_ID": np.array([obs.obs_id for obs in observations], dtype=np.int64),
        "OBS_MODE": ["POINTING"] * len(observations),
        "RA_PNT": np.array([obs.ra_pnt for obs in observations], dtype=np.float64),
        "DEC_PNT": np.array([obs.dec_pnt for obs in observations], dtype=np.float64),
    }
    if len(observations) == 1:
        table = Table({name: values[:1] for name, values in columns.items()})
        table["RA_PNT"].unit = table["DEC_PNT"].unit = "deg"
    else:
        table = Table({name: np.array(values)[np.newaxis] for name, values in columns.items()})
    return fits.BinTableHDU(table, name="META_TABLE")
