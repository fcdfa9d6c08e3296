"""GADF event lists and GTI tables as xarray Datasets."""

from __future__ import annotations

import numpy as np
import xarray as xr

from gpcube.errors import GpcubeError
from gpcube.io.fitsfile import BinTable, native
from gpcube.io.gadf import column_factor

__all__ = ["read_events", "read_gti", "header_metadata"]

#: Required event columns and the unit gpcube stores them in.
EVENT_UNITS = {"RA": "deg", "DEC": "deg", "ENERGY": "TeV", "TIME": "s"}

#: Observation metadata copied from an events header (lower-cased keys in the attrs).
OBS_KEYWORDS = (
    "OBS_ID", "TELESCOP", "INSTRUME", "OBJECT", "RA_OBJ", "DEC_OBJ", "RA_PNT", "DEC_PNT", "ALT_PNT", "AZ_PNT",
    "OBS_MODE", "TSTART", "TSTOP", "ONTIME", "LIVETIME", "DEADC", "MJDREFI", "MJDREFF", "TIMESYS", "TIMEREF",
    "TIMEUNIT", "EV_CLASS", "N_TELS", "TELLIST", "GEOLAT", "GEOLON", "ALTITUDE", "DATE-OBS", "TIME-OBS",
    "DATE-END", "TIME-END", "EQUINOX", "RADECSYS", "CREATOR", "HDUVERS",
)  # fmt: skip


def header_metadata(header: dict, keywords=OBS_KEYWORDS) -> dict:
    """Plain-Python (JSON-able) copies of ``keywords`` present in ``header``, keys lower-cased."""
    meta = {}
    for key in keywords:
        if key in header:
            value = header[key]
            if isinstance(value, str):
                value = value.strip()
            elif isinstance(value, (bool, np.bool_)):
                value = bool(value)
            elif isinstance(value, (int, np.integer)):
                value = int(value)
            elif isinstance(value, (float, np.floating)):
                value = float(value)
            else:
                continue
            meta[key.lower().replace("-", "_")] = value
    return meta


def _column_variable(table: BinTable, name: str, path, hdu) -> xr.Variable:
    unit_text = table.units.get(name, "")
    values = native(table.data[name])
    upper = name.upper()
    if upper in EVENT_UNITS:
        factor = column_factor(table, name, EVENT_UNITS[upper], path, hdu)
        values = values.astype(np.float64) * factor
        attrs = {"units": EVENT_UNITS[upper]}
    else:
        attrs = {"units": unit_text}
    dims = ("event",) + tuple(f"{name.lower()}_dim_{i}" for i in range(values.ndim - 1))
    return xr.Variable(dims, values, attrs)


def read_events(table: BinTable, *, path=None, hdu=None) -> xr.Dataset:
    """Event list as an :class:`xarray.Dataset` with dim ``event``.

    Every column becomes a variable with a lower-case name; ``ra``, ``dec`` (deg), ``energy``
    (reconstructed, TeV) and ``time`` (s since the MJDREF in the attrs) are required. The
    observation metadata of the header are in the attrs.

    Parameters
    ----------
    table : BinTable
        The EVENTS table (:meth:`FitsFile.table <gpcube.io.fitsfile.FitsFile.table>`).
    path, hdu : optional
        The file and HDU, named in errors and kept in the attrs.

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    GpcubeError
        For a missing required column or a unit that does not convert.

    See Also
    --------
    gpcube.Observation.events : The same, of an observation of a data store.

    Examples
    --------
    >>> from gpcube.data import example_data_dir
    >>> from gpcube.io.events import read_events
    >>> from gpcube.io.fitsfile import open_fits
    >>> path = example_data_dir() / "data" / "hess_dl3_dr1_obs_id_023523.fits.gz"
    >>> events = read_events(open_fits(path).table("EVENTS"), path=path, hdu="EVENTS")
    >>> events.sizes["event"], events["ra"].attrs["units"], events.attrs["obs_id"]
    (7613, 'deg', 23523)
    >>> round(float(events["energy"].min()), 3)  # TeV
    0.244
    """
    names = {n.upper(): n for n in table.names}
    missing = [c for c in EVENT_UNITS if c not in names]
    if missing:
        raise GpcubeError(f"missing event column(s) {missing}", path=path, hdu=hdu)
    data_vars = {n.lower(): _column_variable(table, n, path, hdu) for n in table.names}
    attrs = header_metadata(table.header)
    attrs.update(file=str(path), hdu=str(hdu), energy_type="reco")
    data_vars["energy"].attrs["energy_type"] = "reco"
    return xr.Dataset(data_vars, attrs=attrs)


def read_gti(table: BinTable, *, path=None, hdu=None) -> xr.Dataset:
    """Good time intervals: variables ``start``, ``stop`` (s since MJDREF) along dim ``gti``."""
    names = {n.upper(): n for n in table.names}
    if "START" not in names or "STOP" not in names:
        raise GpcubeError("GTI table needs START and STOP columns", path=path, hdu=hdu)
    data_vars = {}
    for key in ("START", "STOP"):
        factor = column_factor(table, names[key], "s", path, hdu)
        values = native(table.data[names[key]]).astype(np.float64) * factor
        data_vars[key.lower()] = xr.Variable(("gti",), values, {"units": "s"})
    attrs = header_metadata(table.header, ("MJDREFI", "MJDREFF", "TIMESYS", "TIMEREF", "TSTART", "TSTOP"))
    attrs.update(file=str(path), hdu=str(hdu))
    return xr.Dataset(data_vars, attrs=attrs)
