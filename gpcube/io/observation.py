"""One observation of a GADF data store, its parts loaded lazily and cached once loaded."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import xarray as xr

from gpcube.errors import GpcubeError
from gpcube.io.events import read_events, read_gti
from gpcube.io.fitsfile import BinTable, FitsFile, open_fits
from gpcube.io.gadf import IRF_SPECS, read_irf_table
from gpcube.io.location import Location, is_url

if TYPE_CHECKING:  # astropy.coordinates takes ~0.6 s to import
    from astropy.coordinates import SkyCoord

__all__ = ["HduRef", "Observation", "Pointing"]

#: IRF parts of an observation: attribute name -> (HDU_TYPE in the index, accepted HDU_CLASSes)
IRF_PARTS = {
    "aeff": ("aeff", ("aeff_2d",)),
    "edisp": ("edisp", ("edisp_2d",)),
    "psf": ("psf", ("psf_table", "psf_3gauss", "psf_king")),
    "bkg": ("bkg", ("bkg_2d", "bkg_3d")),
    "rad_max": ("rad_max", ("rad_max_2d",)),
}


@dataclass(frozen=True)
class HduRef:
    """Where an HDU lives: one row of the HDU index. ``path`` is a local :class:`~pathlib.Path` or a URL
    (``str``)."""

    obs_id: int
    hdu_type: str
    hdu_class: str
    path: Location
    hdu_name: str


@dataclass(frozen=True)
class Pointing:
    """Nominal pointing of an observation (deg). ``alt``/``az`` are None when the file has none.

    Examples
    --------
    >>> import gpcube
    >>> from gpcube.data import example_data_dir
    >>> pointing = gpcube.DataStore.from_dir(example_data_dir()).observation(23523).pointing
    >>> round(pointing.ra, 3), round(pointing.dec, 3), pointing.mode  # 0.5 deg wobble in Dec
    (83.633, 21.514, 'WOBBLE')
    >>> print(pointing.radec.galactic.to_string(precision=2))
    184.98 -6.05
    """

    ra: float
    dec: float
    alt: float | None = None
    az: float | None = None
    mode: str | None = None

    @property
    def radec(self) -> SkyCoord:
        """The pointing as an ICRS :class:`~astropy.coordinates.SkyCoord`."""
        from astropy.coordinates import SkyCoord  # ~0.6 s to import: only when asked for

        return SkyCoord(self.ra, self.dec, unit="deg", frame="icrs")


class Observation:
    """An observation: events, GTI, pointing, times and IRFs, each read on first access.

    All HDUs of one file are parsed from a single decompression of it. IRFs are read once and
    cached, so the makers can ask for them as often as they like. Pickling drops the open files
    but keeps whatever was loaded already, the files' locations and ``storage_options``: another
    process (a dask worker) reads the same files, at the same URLs.

    Parameters
    ----------
    obs_id : int
        The observation id.
    hdus : dict of str to HduRef
        Its HDUs by HDU type (the HDU index's rows).
    obs_info : dict, optional
        Its row of the observation index (lower-case keys).
    storage_options : mapping, optional
        Options of the filesystem of files given by URL (see :meth:`DataStore.from_dir
        <gpcube.io.datastore.DataStore.from_dir>`).

    See Also
    --------
    gpcube.DataStore.observation : How observations are made.
    gpcube.makers.make_map_counts : A maker: observation and geometry in, lazy cube out.

    Examples
    --------
    >>> import gpcube
    >>> from gpcube.data import example_data_dir
    >>> obs = gpcube.DataStore.from_dir(example_data_dir()).observation(23523)
    >>> obs.events.sizes["event"], list(obs.events.data_vars)
    (7613, ['event_id', 'time', 'ra', 'dec', 'energy'])
    >>> obs.events["energy"].attrs["units"], obs.events.attrs["object"]
    ('TeV', 'Crab Nebula')
    >>> round(obs.livetime, 1), round(obs.deadc, 4)  # s
    (1581.7, 0.9376)

    The IRFs, with named dims, in gpcube's units:

    >>> dict(obs.aeff.sizes), obs.aeff["aeff"].attrs["units"]
    ({'energy_true': 96, 'offset': 6}, 'm2')
    >>> obs.psf.attrs["irf_class"], obs.bkg.attrs["irf_class"], obs.rad_max is None
    ('psf_table', 'bkg_3d', True)
    """

    def __init__(
        self,
        obs_id: int,
        hdus: dict[str, HduRef],
        obs_info: dict | None = None,
        storage_options: Mapping | None = None,
    ):
        self.obs_id = int(obs_id)
        self.hdus = dict(hdus)
        self.obs_info = dict(obs_info or {})
        self.storage_options = dict(storage_options or {})
        self._files: dict[Location, FitsFile] = {}

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}={v.hdu_class}" for k, v in self.hdus.items())
        return f"Observation(obs_id={self.obs_id}, {parts})"

    def __dask_tokenize__(self):
        """Identity for dask: the observation id and where its HDUs are (not what is loaded)."""
        refs = tuple(sorted((k, str(v.path), v.hdu_name, v.hdu_class) for k, v in self.hdus.items()))
        return ("gpcube.Observation", self.obs_id, refs)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_files"] = {}
        return state

    def _hdu(self, hdu_type: str) -> tuple[BinTable, HduRef]:
        if hdu_type not in self.hdus:
            raise GpcubeError(
                f"observation {self.obs_id} has no {hdu_type!r} HDU in the HDU index "
                f"(it has {sorted(self.hdus)})"
            )
        ref = self.hdus[hdu_type]
        return self._file(ref.path, ref.hdu_name).table(ref.hdu_name), ref

    def _file(self, path: Location, hdu_name: str | None = None) -> FitsFile:
        """The file at ``path``, read on first use; a failure names ``hdu_name``, the HDU wanted."""
        if path not in self._files:
            try:
                self._files[path] = open_fits(path, self.storage_options)
            except GpcubeError as exc:
                if exc.hdu is not None or hdu_name is None:
                    raise
                # a file-level failure (missing, unreadable, bad gzip): name the HDU that was asked for
                reason = str(exc).removeprefix(f"file {path}: ")
                raise GpcubeError(reason, path=path, hdu=hdu_name) from None
        return self._files[path]

    def file_checksums(self) -> list[dict]:
        """``[{"path", "size", "sha256"}]`` of the observation's distinct files, sorted by path.

        Of the bytes as stored (before gunzip): a URL read already is not fetched again; a file not read
        yet is read now. ``path`` is the URL, or the resolved local path.
        """
        sums = {}
        for path in {ref.path for ref in self.hdus.values()}:
            name = path if is_url(path) else str(Path(path).resolve())
            if name not in sums:
                sums[name] = {"path": name, **self._file(path).checksum()}
        return [sums[name] for name in sorted(sums)]

    def close(self) -> None:
        """Forget the parsed files (loaded parts stay cached)."""
        self._files.clear()

    def load(self) -> Observation:
        """Read every part present (events, GTI and IRFs), then close the files; returns ``self``.

        Examples
        --------
        Loaded, the observation pickles with its parts (to a worker that cannot read the files):

        >>> import pickle
        >>> import gpcube
        >>> from gpcube.data import example_data_dir
        >>> obs = gpcube.DataStore.from_dir(example_data_dir()).observation(23523).load()
        >>> copy = pickle.loads(pickle.dumps(obs))
        >>> "aeff" in copy.__dict__, copy.aeff.identical(obs.aeff)
        (True, True)
        """
        _ = self.events, self.gti
        for name, (hdu_type, _classes) in IRF_PARTS.items():
            if hdu_type in self.hdus:
                getattr(self, name)
        self.close()
        return self

    @cached_property
    def events(self) -> xr.Dataset:
        """Event list (dim ``event``), see :func:`gpcube.io.events.read_events`."""
        table, ref = self._hdu("events")
        events = read_events(table, path=ref.path, hdu=ref.hdu_name)
        events.attrs.setdefault("obs_id", self.obs_id)
        return events

    @cached_property
    def gti(self) -> xr.Dataset:
        """Good time intervals (dim ``gti``)."""
        table, ref = self._hdu("gti")
        return read_gti(table, path=ref.path, hdu=ref.hdu_name)

    def _meta(self, key: str, required: bool = True):
        """Observation metadata: the events header first, the observation index second."""
        value = self.events.attrs.get(key, self.obs_info.get(key))
        if value is None and required:
            raise GpcubeError(
                f"observation {self.obs_id}: no {key.upper()} in the events header or the obs index",
                path=self.hdus["events"].path,
                hdu=self.hdus["events"].hdu_name,
            )
        return value

    @cached_property
    def pointing(self) -> Pointing:
        """Nominal pointing (RA/Dec, and Alt/Az where given)."""
        alt, az = self._meta("alt_pnt", False), self._meta("az_pnt", False)
        return Pointing(
            ra=float(self._meta("ra_pnt")),
            dec=float(self._meta("dec_pnt")),
            alt=None if alt is None else float(alt),
            az=None if az is None else float(az),
            mode=self._meta("obs_mode", False),
        )

    @property
    def livetime(self) -> float:
        """Live time in s (``LIVETIME``)."""
        return float(self._meta("livetime"))

    @property
    def ontime(self) -> float:
        """On time in s (``ONTIME``; else the summed GTI)."""
        value = self._meta("ontime", False)
        if value is None:
            return float((self.gti.stop - self.gti.start).sum())
        return float(value)

    @property
    def deadc(self) -> float:
        """Dead-time correction factor (``DEADC``; else livetime / ontime)."""
        value = self._meta("deadc", False)
        return float(value) if value is not None else self.livetime / self.ontime

    def _irf(self, name: str) -> xr.Dataset:
        hdu_type, accepted = IRF_PARTS[name]
        table, ref = self._hdu(hdu_type)
        if ref.hdu_class not in accepted:
            known = "unknown" if ref.hdu_class not in IRF_SPECS else "wrong"
            raise GpcubeError(
                f"{known} HDU class {ref.hdu_class!r} for {hdu_type} (expected one of {list(accepted)})",
                path=ref.path,
                hdu=ref.hdu_name,
            )
        irf = read_irf_table(table, ref.hdu_class, path=ref.path, hdu=ref.hdu_name)
        irf.attrs.setdefault("obs_id", self.obs_id)
        return irf

    @cached_property
    def aeff(self) -> xr.Dataset:
        """Effective area ``aeff(energy_true, offset)`` in m2."""
        return self._irf("aeff")

    @cached_property
    def edisp(self) -> xr.Dataset:
        """Energy dispersion ``migration(energy_true, migra, offset)``: probability per unit migra."""
        return self._irf("edisp")

    @cached_property
    def psf(self) -> xr.Dataset:
        """PSF: a table ``rpsf(energy_true, offset, rad)`` or 3gauss/king parameters."""
        return self._irf("psf")

    @cached_property
    def bkg(self) -> xr.Dataset:
        """Background rate ``bkg`` in s-1 TeV-1 sr-1 over ``(energy_reco, fov_lat, fov_lon)`` or offset."""
        return self._irf("bkg")

    @cached_property
    def rad_max(self) -> xr.Dataset | None:
        """Direction-cut radius ``rad_max(energy_reco, offset)``, or None when the store has none."""
        return self._irf("rad_max") if "rad_max" in self.hdus else None
