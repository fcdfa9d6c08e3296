"""A GADF data store: the HDU index and the observation index, and selections on them.

The store is a local directory or a URL (``https://...``, ``s3://bucket/prefix``, any fsspec URL; see
:mod:`gpcube.io.location`): every file is read whole, from disk or with fsspec.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Iterator, Mapping

import numpy as np

from gpcube.errors import GpcubeError
from gpcube.io.fitsfile import FitsFile
from gpcube.io.location import Location, as_location, is_url, join, read_bytes
from gpcube.io.observation import HduRef, Observation

__all__ = ["DataStore"]

_INDEX_NAMES = {
    "hdu": ("hdu-index.fits.gz", "hdu-index.fits"),
    "obs": ("obs-index.fits.gz", "obs-index.fits"),
}
_HDU_COLUMNS = ("OBS_ID", "HDU_TYPE", "HDU_CLASS", "FILE_DIR", "FILE_NAME", "HDU_NAME")


def _read_index(directory: Location, kind: str, storage_options: Mapping | None) -> FitsFile:
    """The first index file of ``kind`` ("hdu" or "obs") that the store has, read."""
    for name in _INDEX_NAMES[kind]:
        path = join(directory, name)
        data = read_bytes(path, storage_options, missing_ok=True)
        if data is not None:
            return FitsFile(path, data=data)
    raise GpcubeError(
        f"no {kind}-index file ({' or '.join(_INDEX_NAMES[kind])}) in the data store", path=directory
    )


class IndexTable:
    """The columns of an index table as numpy arrays, with a ``meta`` dict.

    What the data store needs of a table (columns by name, rows by mask, the column names), without
    astropy.table, which takes ~0.5 s to import: every gpcube command opens a data store.
    :meth:`to_table` gives the astropy :class:`~astropy.table.Table`.
    """

    def __init__(self, columns: dict[str, np.ndarray], meta: dict | None = None):
        self.columns = columns
        self.meta = dict(meta or {})

    @property
    def colnames(self) -> list[str]:
        return list(self.columns)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def __getitem__(self, key):
        """A column by name, or the rows selected by a boolean mask or index array."""
        if isinstance(key, str):
            return self.columns[key]
        return IndexTable({name: column[key] for name, column in self.columns.items()}, self.meta)

    def row(self, index: int) -> dict:
        """The scalar values of row ``index``, as Python values, by column name."""
        return {name: column[index].item() for name, column in self.columns.items() if column.ndim == 1}

    def to_table(self):
        """An astropy :class:`~astropy.table.Table` of a copy of the columns, with ``meta``."""
        from astropy.table import Table

        table = Table({name: column.copy() for name, column in self.columns.items()})
        table.meta.update(self.meta)
        return table


def _read_table(fitsfile: FitsFile) -> tuple[IndexTable, dict]:
    """First binary table of an index file, strings stripped; and its header as a dict."""
    if len(fitsfile.hdu_names) < 2:
        raise GpcubeError("no table in the index file", path=fitsfile.path)
    hdu = fitsfile.table(1)
    columns = {}
    for name, column in hdu.data.items():
        column = np.asarray(column)
        if column.dtype.kind in "SU":
            column = np.char.strip(column.astype(str))
        columns[name] = column
    return IndexTable(columns), hdu.header


def _hdu_refs(
    table: IndexTable, header: dict, directory: Location, index_path: Location
) -> dict[int, dict[str, HduRef]]:
    missing = [c for c in _HDU_COLUMNS if c not in table.colnames]
    if missing:
        raise GpcubeError(f"HDU index lacks column(s) {missing}", path=index_path)
    base = join(directory, str(header.get("BASE_DIR", "")).strip() or ".")
    refs: dict[int, dict[str, HduRef]] = {}
    paths: dict[tuple[str, str], Location] = {}  # an observation's HDUs share a few files
    columns = [
        table[c].tolist() for c in ("OBS_ID", "HDU_TYPE", "HDU_CLASS", "FILE_DIR", "FILE_NAME", "HDU_NAME")
    ]
    for obs_id, hdu_type, hdu_class, file_dir, file_name, hdu_name in zip(*columns, strict=True):
        obs_id, hdu_type = int(obs_id), str(hdu_type).lower()
        key = (str(file_dir), str(file_name))
        path = paths.get(key)
        if path is None:
            path = paths[key] = join(base, *key)
        ref = HduRef(obs_id, hdu_type, str(hdu_class).lower(), path, str(hdu_name))
        if hdu_type in refs.get(obs_id, {}):
            raise GpcubeError(
                f"observation {obs_id} has two {hdu_type!r} rows in the HDU index", path=index_path
            )
        refs.setdefault(obs_id, {})[hdu_type] = ref
    return refs


def _to_met(value, mjdref: float) -> float:
    """A time (astropy Time, ISO string or MET seconds) as seconds since ``mjdref`` (TT)."""
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    from astropy.time import Time  # ~0.4 s to import: only for a time selection

    time = value if isinstance(value, Time) else Time(value, scale="tt")
    return float((time.tt.mjd - mjdref) * 86400.0)


class DataStore:
    """A GADF DL3 data store (an HDU index and an observation index).

    Open one with :meth:`from_dir`; narrow it with :meth:`select` (each selection returns a new
    store); get an :class:`~gpcube.io.observation.Observation` with :meth:`observation`.

    See Also
    --------
    gpcube.Observation : One observation of the store.
    gpcube.data.example_data_dir : A small store shipped with gpcube.

    Examples
    --------
    >>> import gpcube
    >>> from gpcube.data import example_data_dir
    >>> store = gpcube.DataStore.from_dir(example_data_dir())
    >>> len(store), store.obs_ids
    (4, [23523, 23526, 23559, 23592])
    >>> table = store.obs_table  # the observation index, an astropy Table
    >>> table["TARGET_NAME"].tolist(), round(float(table["LIVETIME"].sum()) / 3600, 2)  # hours
    (['Crab', 'Crab', 'Crab', 'Crab'], 1.75)
    >>> store.observation(23523)
    Observation(obs_id=23523, aeff=aeff_2d, bkg=bkg_3d, edisp=edisp_2d, events=events, gti=gti,
                psf=psf_table)
    """

    def __init__(
        self,
        obs_table: IndexTable,
        hdu_refs: dict[int, dict[str, HduRef]],
        *,
        path: Location | None = None,
        storage_options: Mapping | None = None,
    ):
        self._obs_table = obs_table
        self._hdu_refs = hdu_refs
        self.path = path
        self.storage_options = dict(storage_options or {})

    @classmethod
    def from_dir(cls, path: str | os.PathLike, storage_options: Mapping | None = None) -> DataStore:
        """Open the data store in directory or at URL ``path`` (``hdu-index`` and ``obs-index``,
        ``.fits[.gz]``).

        Parameters
        ----------
        path : str or path-like
            A local directory, or a URL: ``https://host/store``, ``s3://bucket/prefix`` or any URL
            that fsspec reads (``pip install "gpcube[remote]"`` for http and S3). The index's
            ``BASE_DIR`` and ``FILE_DIR`` are taken relative to it.
        storage_options : mapping, optional
            For a URL, options of its fsspec filesystem, such as ``{"anon": True}`` or
            ``{"key": ..., "secret": ..., "endpoint_url": "https://s3.example.org"}`` for S3
            (:class:`s3fs.S3FileSystem`). The observations keep them, to read their files in any
            process.

        Returns
        -------
        DataStore

        Raises
        ------
        GpcubeError
            Naming the directory, URL or index file: not found, unreadable, not an index.

        Examples
        --------
        >>> from gpcube.data import example_data_dir
        >>> DataStore.from_dir(example_data_dir()).obs_ids
        [23523, 23526, 23559, 23592]

        A copy of it on an S3-compatible server::

            store = DataStore.from_dir(
                "s3://gpcube-test/hess-dl3-dr1",
                storage_options={"endpoint_url": "http://localhost:9000", "anon": True},
            )
        """
        directory = as_location(path)
        if storage_options and not is_url(directory):
            raise GpcubeError("storage_options are for a store at a URL, not a local directory", path=path)
        if not is_url(directory) and not directory.is_dir():
            raise GpcubeError("data store directory not found", path=directory)
        hdu_file = _read_index(directory, "hdu", storage_options)
        obs_file = _read_index(directory, "obs", storage_options)
        hdu_path, obs_path = hdu_file.path, obs_file.path
        hdu_table, hdu_header = _read_table(hdu_file)
        obs_table, obs_header = _read_table(obs_file)
        if "OBS_ID" not in obs_table.colnames:
            raise GpcubeError("observation index lacks column OBS_ID", path=obs_path)
        obs_table.meta.update(
            {k: obs_header[k] for k in ("MJDREFI", "MJDREFF", "TIMESYS") if k in obs_header}
        )
        obs_table.meta["path"] = str(obs_path)
        refs = _hdu_refs(hdu_table, hdu_header, directory, hdu_path)
        unknown = sorted(set(int(i) for i in obs_table["OBS_ID"]) - set(refs))
        if unknown:
            raise GpcubeError(
                f"observations {unknown[:10]} are in the obs index but not in the HDU index", path=hdu_path
            )
        return cls(obs_table, refs, path=directory, storage_options=storage_options)

    def __len__(self) -> int:
        return len(self._obs_table)

    def __repr__(self) -> str:
        return f"DataStore({str(self.path)!r}, {len(self)} observations)"

    @property
    def obs_ids(self) -> list[int]:
        """Observation ids in the (selected) store, in index order."""
        return [int(i) for i in self._obs_table["OBS_ID"]]

    @property
    def obs_table(self):
        """The (selected) rows of the observation index, strings stripped, as an astropy
        :class:`~astropy.table.Table` (a copy)."""
        return self._obs_table.to_table()

    def _obs_info(self, obs_id: int) -> dict:
        rows = np.flatnonzero(self._obs_table["OBS_ID"] == obs_id)
        if len(rows) == 0:
            return {}
        return {c.lower().replace("-", "_"): v for c, v in self._obs_table.row(int(rows[0])).items()}

    def observation(self, obs_id: int) -> Observation:
        """The observation ``obs_id`` (nothing is read until a part is accessed).

        Raises
        ------
        GpcubeError
            If ``obs_id`` is not in the (selected) store.

        Examples
        --------
        >>> import gpcube
        >>> from gpcube.data import example_data_dir
        >>> obs = gpcube.DataStore.from_dir(example_data_dir()).observation(23526)
        >>> obs.obs_id, obs.events.sizes["event"]
        (23526, 7581)
        """
        obs_id = int(obs_id)
        if obs_id not in self._hdu_refs or obs_id not in self.obs_ids:
            raise GpcubeError(f"observation {obs_id} is not in the data store", path=self.path)
        return Observation(obs_id, self._hdu_refs[obs_id], self._obs_info(obs_id), self.storage_options)

    def observations(self, obs_ids: Iterable[int] | None = None) -> Iterator[Observation]:
        """Iterate over observations (all in the store, or ``obs_ids``)."""
        for obs_id in self.obs_ids if obs_ids is None else obs_ids:
            yield self.observation(obs_id)

    def _subset(self, mask: np.ndarray) -> DataStore:
        return DataStore(
            self._obs_table[mask], self._hdu_refs, path=self.path, storage_options=self.storage_options
        )

    def _column(self, name: str) -> np.ndarray:
        if name not in self._obs_table.colnames:
            raise GpcubeError(f"observation index lacks column {name}", path=self._obs_table.meta.get("path"))
        return np.asarray(self._obs_table[name])

    def select(
        self,
        obs_ids: Iterable[int] | None = None,
        cone: Mapping | tuple | None = None,
        time: tuple | None = None,
        target: str | None = None,
    ) -> DataStore:
        """A new store with the observations that pass every given criterion.

        Parameters
        ----------
        obs_ids : iterable of int, optional
            Keep these observations; an id not in the store is an error.
        cone : mapping or tuple, optional
            ``{"lon", "lat", "radius", "frame"}`` (deg; frame ``icrs`` by default) or
            ``(lon, lat, radius[, frame])``: pointings within ``radius`` of the centre.
        time : tuple, optional
            ``(start, stop)`` as :class:`~astropy.time.Time`, ISO strings (TT) or seconds since the
            index's MJDREF: observations whose ``[TSTART, TSTOP]`` overlaps the range.
        target : str, optional
            Case-insensitive shell pattern (``"MSH 15-5*"``) matched against ``OBJECT`` and
            ``TARGET_NAME``.

        Returns
        -------
        DataStore
            The selected rows of the observation index; the HDU index is shared.

        Raises
        ------
        GpcubeError
            For an observation id not in the store, or a column the selection needs that the
            observation index lacks (naming it).

        Examples
        --------
        The whole H.E.S.S. DL3 DR1 release (``hess_dir``), by target, by pointing and by date:

        >>> import gpcube
        >>> store = gpcube.DataStore.from_dir(hess_dir)
        >>> len(store)
        105
        >>> store.select(target="msh 15-5*")
        DataStore('.../hess-dl3-dr1', 20 observations)
        >>> store.select(cone={"lon": 83.633, "lat": 22.014, "radius": 2.0}).obs_ids
        [23523, 23526, 23559, 23592]
        >>> store.select(time=("2004-12-01", "2004-12-31"), cone=(83.633, 22.014, 2.0)).obs_ids
        [23523, 23526, 23559, 23592]
        """
        mask = np.ones(len(self), dtype=bool)
        if obs_ids is not None:
            wanted = [int(i) for i in obs_ids]
            missing = sorted(set(wanted) - set(self.obs_ids))
            if missing:
                raise GpcubeError(f"observations {missing[:10]} are not in the data store", path=self.path)
            mask &= np.isin(self._column("OBS_ID"), wanted)
        if cone is not None:
            mask &= self._cone_mask(cone)
        if time is not None:
            mask &= self._time_mask(*time)
        if target is not None:
            mask &= self._target_mask(target)
        return self._subset(mask)

    def _cone_mask(self, cone) -> np.ndarray:
        if isinstance(cone, Mapping):
            unknown = set(cone) - {"lon", "lat", "radius", "frame"}
            if unknown:
                raise GpcubeError(f"cone: unknown key(s) {sorted(unknown)}; expected lon, lat, radius, frame")
            lon, lat, radius, frame = cone["lon"], cone["lat"], cone["radius"], cone.get("frame", "icrs")
        else:
            lon, lat, radius, *rest = cone
            frame = rest[0] if rest else "icrs"
        from astropy.coordinates import SkyCoord  # ~0.6 s to import: only for a cone selection

        center = SkyCoord(lon, lat, unit="deg", frame=frame)
        pointings = SkyCoord(self._column("RA_PNT"), self._column("DEC_PNT"), unit="deg", frame="icrs")
        return np.asarray(pointings.separation(center).deg <= float(radius))

    def _time_mask(self, start, stop) -> np.ndarray:
        meta = self._obs_table.meta
        mjdref = float(meta.get("MJDREFI", 0)) + float(meta.get("MJDREFF", 0.0))
        tmin, tmax = _to_met(start, mjdref), _to_met(stop, mjdref)
        return (self._column("TSTOP") >= tmin) & (self._column("TSTART") <= tmax)

    def _target_mask(self, pattern: str) -> np.ndarray:
        pattern = " ".join(pattern.lower().split())
        mask = np.zeros(len(self), dtype=bool)
        for column in ("OBJECT", "TARGET_NAME"):
            if column in self._obs_table.colnames:
                names = [" ".join(str(n).lower().split()) for n in self._obs_table[column]]
                mask |= np.array([fnmatch.fnmatchcase(n, pattern) for n in names], dtype=bool)
        if not any(c in self._obs_table.colnames for c in ("OBJECT", "TARGET_NAME")):
            self._column("OBJECT")
        return mask
