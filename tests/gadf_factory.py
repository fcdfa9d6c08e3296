"""Write small synthetic GADF DL3 data stores with astropy, for tests with known answers.

The files are written from the GADF specification (https://gamma-astro-data-formats.readthedocs.io),
not from gpcube's reader, so a test compares the reader with an independent writer.

Conventions of this module:

* IRF values are given in gpcube's units (TeV, deg, m2, sr-1, s-1 TeV-1 sr-1) and in gpcube's dim
  order (``IRF_DIMS``); they are converted to the unit written in the file (``units=``) and
  transposed to the FITS layout on writing.
* ``fits_axes`` is the FITS axis order of the data cells, fastest first (the ``TDIM`` and ``CREF``
  order); the numpy array of a cell has the reverse order. ``column_axes`` is the order of the
  ``*_LO``/``*_HI`` columns in the table (by default the same).
* Values may be arrays or callables of the bin centres: ``f(energy_true=..., offset=...)`` is called
  with broadcastable grids in gpcube dim order.

Typical use::

    obs = ObsSpec(1, irfs=[aeff_2d(values=lambda energy_true, offset: 1e5 + 0 * offset)])
    store = write_store(tmp_path, [obs])
    DataStore.from_dir(store.root)
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits

__all__ = [
    "IRF_DIMS", "AXIS_COLUMN", "Axis", "IrfHdu", "ObsSpec", "Store", "MJDREFI", "MJDREFF",
    "energy_axis", "linear_axis", "make_irf", "aeff_2d", "edisp_2d", "psf_table", "psf_3gauss",
    "psf_king", "bkg_2d", "bkg_3d", "rad_max_2d", "default_irfs", "write_store", "write_obs_file",
    "rewrite_hdu", "drop_column", "unit_factor",
]  # fmt: skip

#: Reference time of the synthetic stores (that of the H.E.S.S. DL3 DR1 release).
MJDREFI, MJDREFF = 51910, 7.428703703703703e-4

#: gpcube dim order of each IRF class (the design's dims).
IRF_DIMS = {
    "aeff_2d": ("energy_true", "offset"),
    "edisp_2d": ("energy_true", "migra", "offset"),
    "psf_table": ("energy_true", "offset", "rad"),
    "psf_3gauss": ("energy_true", "offset"),
    "psf_king": ("energy_true", "offset"),
    "bkg_2d": ("energy_reco", "offset"),
    "bkg_3d": ("energy_reco", "fov_lat", "fov_lon"),
    "rad_max_2d": ("energy_reco", "offset"),
}

#: GADF axis column prefix of each dim.
AXIS_COLUMN = {
    "energy_true": "ENERG",
    "energy_reco": "ENERG",
    "offset": "THETA",
    "migra": "MIGRA",
    "rad": "RAD",
    "fov_lon": "DETX",
    "fov_lat": "DETY",
}
#: Unit of each axis in gpcube (and the default unit written).
AXIS_UNIT = {"energy_true": "TeV", "energy_reco": "TeV", "offset": "deg", "migra": "", "rad": "deg",
             "fov_lon": "deg", "fov_lat": "deg"}  # fmt: skip


@dataclass(frozen=True)
class _GadfClass:
    hdu_type: str
    extname: str
    hduclas2: str
    #: data column -> (gpcube unit of the values given, unit written by default per GADF)
    columns: dict[str, tuple[str, str]]
    #: default FITS axis order (fastest first), as in GADF / the H.E.S.S. files
    fits_axes: tuple[str, ...]


_BKG_UNITS = ("s-1 TeV-1 sr-1", "s-1 MeV-1 sr-1")
GADF_CLASSES = {
    "aeff_2d": _GadfClass("aeff", "EFFECTIVE AREA", "EFF_AREA", {"EFFAREA": ("m2", "m2")},
                          ("energy_true", "offset")),
    "edisp_2d": _GadfClass("edisp", "ENERGY DISPERSION", "EDISP", {"MATRIX": ("", "")},
                           ("energy_true", "migra", "offset")),
    "psf_table": _GadfClass("psf", "PSF", "RPSF", {"RPSF": ("sr-1", "sr-1")},
                            ("energy_true", "offset", "rad")),
    "psf_3gauss": _GadfClass("psf", "PSF", "PSF", {
        "SCALE": ("sr-1", "sr-1"), "SIGMA_1": ("deg", "deg"), "AMPL_2": ("", ""), "SIGMA_2": ("deg", "deg"),
        "AMPL_3": ("", ""), "SIGMA_3": ("deg", "deg")}, ("energy_true", "offset")),
    "psf_king": _GadfClass("psf", "PSF", "PSF", {"GAMMA": ("", ""), "SIGMA": ("deg", "deg")},
                           ("energy_true", "offset")),
    "bkg_2d": _GadfClass("bkg", "BACKGROUND", "BKG", {"BKG": _BKG_UNITS}, ("energy_reco", "offset")),
    "bkg_3d": _GadfClass("bkg", "BACKGROUND", "BKG", {"BKG": _BKG_UNITS},
                         ("fov_lon", "fov_lat", "energy_reco")),
    "rad_max_2d": _GadfClass("rad_max", "RAD_MAX", "RAD_MAX", {"RAD_MAX": ("deg", "deg")},
                             ("energy_reco", "offset")),
}  # fmt: skip


def unit_factor(from_unit: str, to_unit: str) -> float:
    """Factor converting a value in ``from_unit`` to ``to_unit``; ``to_unit`` may be a ``1/s/MeV/sr`` chain.

    Raises ``astropy.units.UnitConversionError`` when the units are of different kinds.
    """

    def parse(text: str) -> u.UnitBase:
        text = text.strip()
        if not text:
            return u.dimensionless_unscaled
        if "/" in text:
            first, *rest = text.split("/")
            start = u.dimensionless_unscaled if first.strip() == "1" else u.Unit(first.strip())
            return functools.reduce(operator.truediv, [u.Unit(p.strip()) for p in rest], start)
        return u.Unit(text)

    return float(parse(from_unit).to(parse(to_unit)))


@dataclass(frozen=True)
class Axis:
    """One IRF axis in gpcube units: ``lo``/``hi`` per bin (equal for a node axis)."""

    dim: str
    lo: np.ndarray
    hi: np.ndarray

    @classmethod
    def from_edges(cls, dim: str, edges) -> Axis:
        edges = np.asarray(edges, dtype=float)
        return cls(dim, edges[:-1], edges[1:])

    @classmethod
    def from_nodes(cls, dim: str, nodes) -> Axis:
        """A node axis: ``LO == HI`` (as H.E.S.S. writes ``THETA``)."""
        nodes = np.asarray(nodes, dtype=float)
        return cls(dim, nodes, nodes.copy())

    @property
    def is_energy(self) -> bool:
        return self.dim.startswith("energy")

    @property
    def centres(self) -> np.ndarray:
        """Bin centres (log centres for energy); the nodes of a node axis."""
        if self.is_energy:
            return np.sqrt(self.lo * self.hi)
        return 0.5 * (self.lo + self.hi)

    def __len__(self) -> int:
        return len(self.lo)


def energy_axis(dim: str, emin: float, emax: float, nbins: int) -> Axis:
    """Log-spaced energy bins in TeV."""
    return Axis.from_edges(dim, np.geomspace(emin, emax, nbins + 1))


def linear_axis(dim: str, start: float, stop: float, nbins: int) -> Axis:
    """Linearly spaced bins."""
    return Axis.from_edges(dim, np.linspace(start, stop, nbins + 1))


Values = np.ndarray | Callable[..., np.ndarray] | float


@dataclass
class IrfHdu:
    """One GADF IRF table (one row of array cells).

    Parameters
    ----------
    irf_class : str
        GADF ``HDU_CLASS`` (``aeff_2d``, ``bkg_3d``...).
    axes : dict
        dim -> :class:`Axis`.
    values : dict
        GADF data column name -> values (gpcube units and dim order), or callable of the centres.
    fits_axes, column_axes : tuple of dims, optional
        FITS axis order of the cells (fastest first) and order of the axis columns in the table.
    cref : bool or str
        Write ``CREFn`` for each data column (from ``fits_axes``); a string is written verbatim.
    energy_column : str
        ``ENERG`` or ``ETRUE``.
    units : dict
        Unit written per data column or axis dim; values are converted to it when possible (else
        written unconverted, for bad-unit files). ``""`` writes no unit.
    rename : dict
        Data column name in the file (``{"BKG": "BGD"}``).
    header : dict
        Extra header keywords; a value None removes a default keyword (``FOVALIGN``).
    check_shape : bool
        Refuse values whose shape disagrees with the axes (turn off to write a bad file).
    """

    irf_class: str
    axes: dict[str, Axis]
    values: dict[str, Values]
    fits_axes: tuple[str, ...] | None = None
    column_axes: tuple[str, ...] | None = None
    cref: bool | str = True
    energy_column: str = "ENERG"
    units: dict[str, str] = field(default_factory=dict)
    rename: dict[str, str] = field(default_factory=dict)
    header: dict = field(default_factory=dict)
    extname: str | None = None
    dtype: str = ">f8"
    check_shape: bool = True

    @property
    def gadf(self) -> _GadfClass:
        return GADF_CLASSES[self.irf_class]

    @property
    def hdu_type(self) -> str:
        return self.gadf.hdu_type

    @property
    def hdu_name(self) -> str:
        return self.extname or self.gadf.extname

    @property
    def dims(self) -> tuple[str, ...]:
        return IRF_DIMS[self.irf_class]

    def grid(self) -> dict[str, np.ndarray]:
        """Bin centres per dim, shaped to broadcast in gpcube dim order."""
        ndim = len(self.dims)
        return {
            dim: self.axes[dim].centres.reshape([-1 if i == k else 1 for k in range(ndim)])
            for i, dim in enumerate(self.dims)
        }

    def expected(self, column: str) -> np.ndarray:
        """The values of ``column`` in gpcube units and dim order (what a reader must return)."""
        shape = tuple(len(self.axes[d]) for d in self.dims)
        values = self.values[column]
        if callable(values):
            values = values(**self.grid())
        values = np.asarray(values, dtype=float)
        if values.ndim == 0:
            values = np.full(shape, float(values))
        if self.check_shape:
            values = np.broadcast_to(values, shape)
            assert values.shape == shape, (column, values.shape, shape)
        return np.array(values)

    def _axis_columns(self, dim: str) -> list[fits.Column]:
        axis = self.axes[dim]
        prefix = self.energy_column if dim.startswith("energy") else AXIS_COLUMN[dim]
        unit = self.units.get(dim, AXIS_UNIT[dim])
        factor = _factor_or_one(AXIS_UNIT[dim], unit)
        n = len(axis)
        return [
            fits.Column(f"{prefix}_{end}", format=f"{n}{_tform(self.dtype)}", unit=unit or None,
                        array=(values * factor).astype(self.dtype)[np.newaxis])
            for end, values in (("LO", axis.lo), ("HI", axis.hi))
        ]  # fmt: skip

    def cref_text(self) -> str:
        prefixes = [self.energy_column if d.startswith("energy") else AXIS_COLUMN[d] for d in self.fits_order]
        return "(" + ",".join(f"{p}_LO:{p}_HI" for p in prefixes) + ")"

    @property
    def fits_order(self) -> tuple[str, ...]:
        return tuple(self.fits_axes or self.gadf.fits_axes)

    def to_hdu(self) -> fits.BinTableHDU:
        fits_order = self.fits_order
        assert sorted(fits_order) == sorted(self.dims), fits_order
        columns = []
        for dim in self.column_axes or fits_order:
            columns += self._axis_columns(dim)
        # numpy order of a cell = reverse of the FITS order; transpose gpcube dims to it
        permutation = [self.dims.index(d) for d in fits_order[::-1]]
        for name in self.values:
            gpcube_unit, default_unit = self.gadf.columns[name]
            unit = self.units.get(name, default_unit)
            cell = np.transpose(self.expected(name), permutation) * _factor_or_one(gpcube_unit, unit)
            columns.append(
                fits.Column(
                    self.rename.get(name, name),
                    format=f"{cell.size}{_tform(self.dtype)}",
                    unit=unit or None,
                    dim="(" + ",".join(str(n) for n in cell.shape[::-1]) + ")",
                    array=cell.astype(self.dtype)[np.newaxis],
                )
            )
        hdu = fits.BinTableHDU.from_columns(columns, name=self.hdu_name)
        header = {
            "HDUCLASS": "GADF", "HDUDOC": "https://github.com/open-gamma-ray-astro/gamma-astro-data-formats",
            "HDUVERS": "0.3", "HDUCLAS1": "RESPONSE", "HDUCLAS2": self.gadf.hduclas2,
            "HDUCLAS3": "FULL-ENCLOSURE", "HDUCLAS4": self.irf_class.upper(),
        }  # fmt: skip
        if self.irf_class == "bkg_3d":
            header["FOVALIGN"] = "RADEC"
        header.update(self.header)
        for index, column in enumerate(hdu.columns, start=1):
            if self.cref and column.name in {self.rename.get(n, n) for n in self.values}:
                header[f"CREF{index}"] = self.cref if isinstance(self.cref, str) else self.cref_text()
        for key, value in header.items():
            if value is None:
                hdu.header.remove(key, ignore_missing=True)
            else:
                hdu.header[key] = value
        return hdu


def _tform(dtype: str) -> str:
    return {"f8": "D", "f4": "E"}[np.dtype(dtype).str[1:]]


def _factor_or_one(gpcube_unit: str, file_unit: str) -> float:
    """Conversion factor from gpcube's unit to the file's; 1 when they do not convert (a bad file)."""
    if not file_unit:
        return 1.0
    try:
        return unit_factor(gpcube_unit, file_unit)
    except (u.UnitConversionError, ValueError):
        return 1.0


def make_irf(irf_class: str, axes: Sequence[Axis], values: dict[str, Values] | Values, **options) -> IrfHdu:
    """An :class:`IrfHdu`; a single ``values`` goes to the class's only data column."""
    if not isinstance(values, dict):
        (column,) = GADF_CLASSES[irf_class].columns
        values = {column: values}
    return IrfHdu(irf_class, {a.dim: a for a in axes}, values, **options)


def _energy(dim: str, energy: Axis | None) -> Axis:
    return energy if energy is not None else energy_axis(dim, 0.1, 100.0, 6)


def aeff_2d(
    values: Values = 1e5, energy: Axis | None = None, offset: Axis | None = None, **options
) -> IrfHdu:
    """Effective area in m2 over ``(energy_true, offset)``."""
    offset = offset or linear_axis("offset", 0.0, 2.5, 5)
    return make_irf("aeff_2d", [_energy("energy_true", energy), offset], values, **options)


def _gauss_migra(energy_true, migra, offset, sigma=0.1):
    return (
        np.exp(-0.5 * ((migra - 1) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
        + 0 * energy_true
        + 0 * offset
    )


def edisp_2d(values: Values = _gauss_migra, energy=None, migra=None, offset=None, **options) -> IrfHdu:
    """Energy dispersion (probability per unit migra) over ``(energy_true, migra, offset)``."""
    migra = migra or linear_axis("migra", 0.2, 3.0, 14)
    offset = offset or linear_axis("offset", 0.0, 2.5, 5)
    return make_irf("edisp_2d", [_energy("energy_true", energy), migra, offset], values, **options)


def _gauss_rpsf(energy_true, offset, rad, sigma=0.1):
    sigma_sr = np.deg2rad(sigma) ** 2
    return np.exp(-0.5 * (rad / sigma) ** 2) / (2 * np.pi * sigma_sr) + 0 * energy_true + 0 * offset


def psf_table(values: Values = _gauss_rpsf, energy=None, offset=None, rad=None, **options) -> IrfHdu:
    """Radial PSF table in sr-1 over ``(energy_true, offset, rad)``."""
    offset = offset or linear_axis("offset", 0.0, 2.5, 5)
    rad = rad or linear_axis("rad", 0.0, 1.0, 20)
    return make_irf("psf_table", [_energy("energy_true", energy), offset, rad], values, **options)


def psf_3gauss(values: dict[str, Values] | None = None, energy=None, offset=None, **options) -> IrfHdu:
    """Triple-Gaussian PSF parameters over ``(energy_true, offset)``; normalised by default."""
    if values is None:
        sigmas, ampl = (0.05, 0.1, 0.2), (1.0, 0.5, 0.25)
        integral = 2 * np.pi * sum(a * np.deg2rad(s) ** 2 for a, s in zip(ampl, sigmas, strict=True))
        values = {"SCALE": 1 / integral, "SIGMA_1": sigmas[0], "AMPL_2": ampl[1], "SIGMA_2": sigmas[1],
                  "AMPL_3": ampl[2], "SIGMA_3": sigmas[2]}  # fmt: skip
    offset = offset or linear_axis("offset", 0.0, 2.5, 5)
    return make_irf("psf_3gauss", [_energy("energy_true", energy), offset], values, **options)


def psf_king(values: dict[str, Values] | None = None, energy=None, offset=None, **options) -> IrfHdu:
    """King PSF parameters (``GAMMA``, ``SIGMA`` in deg) over ``(energy_true, offset)``."""
    values = values or {"GAMMA": 2.5, "SIGMA": 0.08}
    offset = offset or linear_axis("offset", 0.0, 2.5, 5)
    return make_irf("psf_king", [_energy("energy_true", energy), offset], values, **options)


def bkg_2d(values: Values = 1e-4, energy=None, offset=None, **options) -> IrfHdu:
    """Background rate in s-1 TeV-1 sr-1 over ``(energy_reco, offset)`` (written in MeV-1 by default)."""
    offset = offset or linear_axis("offset", 0.0, 2.5, 5)
    return make_irf("bkg_2d", [_energy("energy_reco", energy), offset], values, **options)


def bkg_3d(values: Values = 1e-4, energy=None, fov_lat=None, fov_lon=None, **options) -> IrfHdu:
    """Background rate over ``(energy_reco, fov_lat, fov_lon)``; 6 x 4 FoV bins by default."""
    fov_lat = fov_lat or linear_axis("fov_lat", -2.0, 2.0, 4)
    fov_lon = fov_lon or linear_axis("fov_lon", -3.0, 3.0, 6)
    return make_irf("bkg_3d", [_energy("energy_reco", energy), fov_lat, fov_lon], values, **options)


def rad_max_2d(values: Values = 0.1, energy=None, offset=None, **options) -> IrfHdu:
    """Direction cut radius in deg over ``(energy_reco, offset)``."""
    offset = offset or linear_axis("offset", 0.0, 2.5, 5)
    return make_irf("rad_max_2d", [_energy("energy_reco", energy), offset], values, **options)


def default_irfs() -> list[IrfHdu]:
    """A full set: aeff_2d, edisp_2d, psf_table, bkg_3d, rad_max_2d (simple known values)."""
    return [aeff_2d(), edisp_2d(), psf_table(), bkg_3d(), rad_max_2d()]


@dataclass
class ObsSpec:
    """One synthetic observation: metadata, random events, a GTI and IRFs.

    Times are seconds since ``MJDREFI + MJDREFF`` (TT). ``index`` overrides HDU-index values per
    HDU type (``{"aeff": {"HDU_CLASS": "aeff_3d"}}``), ``extra_index_rows`` adds rows.
    """

    obs_id: int
    ra_pnt: float = 83.633
    dec_pnt: float = 22.0145
    alt_pnt: float = 55.0
    az_pnt: float = 180.0
    object: str = "Crab Nebula"
    tstart: float = 1.0e8
    ontime: float = 1800.0
    deadc: float = 0.9
    n_events: int = 50
    irfs: list[IrfHdu] = field(default_factory=default_irfs)
    event_units: dict[str, str] = field(default_factory=dict)
    index: dict[str, dict] = field(default_factory=dict)
    extra_index_rows: list[dict] = field(default_factory=list)
    seed: int = 0
    extra_header: dict = field(default_factory=dict)

    @property
    def tstop(self) -> float:
        return self.tstart + self.ontime

    @property
    def livetime(self) -> float:
        return self.ontime * self.deadc

    def events(self) -> dict[str, np.ndarray]:
        """Event columns in gpcube units (deterministic for the seed)."""
        rng = np.random.default_rng(self.seed + self.obs_id)
        n = self.n_events
        return {
            "EVENT_ID": np.arange(1, n + 1, dtype=np.int64),
            "TIME": np.sort(rng.uniform(self.tstart, self.tstop, n)),
            "RA": self.ra_pnt + rng.uniform(-2, 2, n),
            "DEC": self.dec_pnt + rng.uniform(-2, 2, n),
            "ENERGY": np.exp(rng.uniform(np.log(0.1), np.log(100.0), n)),
        }

    def header(self) -> dict:
        return {
            "OBS_ID": self.obs_id, "RA_PNT": self.ra_pnt, "DEC_PNT": self.dec_pnt, "ALT_PNT": self.alt_pnt,
            "AZ_PNT": self.az_pnt, "OBJECT": self.object, "LIVETIME": self.livetime, "ONTIME": self.ontime,
            "DEADC": self.deadc, "TSTART": self.tstart, "TSTOP": self.tstop, "MJDREFI": MJDREFI,
            "MJDREFF": MJDREFF, "TIMESYS": "TT", "TIMEREF": "LOCAL", "TIMEUNIT": "s", **self.extra_header,
        }  # fmt: skip

    def events_hdu(self) -> fits.BinTableHDU:
        units = {"EVENT_ID": "", "TIME": "s", "RA": "deg", "DEC": "deg", "ENERGY": "TeV", **self.event_units}
        gpcube_units = {"EVENT_ID": "", "TIME": "s", "RA": "deg", "DEC": "deg", "ENERGY": "TeV"}
        formats = {"EVENT_ID": "K", "TIME": "D", "RA": "E", "DEC": "E", "ENERGY": "E"}
        columns = [
            fits.Column(name, format=formats[name], unit=units[name] or None,
                        array=values * _factor_or_one(gpcube_units[name], units[name]) if formats[name] != "K"
                        else values)
            for name, values in self.events().items()
        ]  # fmt: skip
        hdu = fits.BinTableHDU.from_columns(columns, name="EVENTS")
        hdu.header.update(self.header())
        hdu.header.update({"HDUCLASS": "GADF", "HDUCLAS1": "EVENTS"})
        return hdu

    def gti_hdu(self) -> fits.BinTableHDU:
        columns = [
            fits.Column("START", format="D", unit="s", array=[self.tstart]),
            fits.Column("STOP", format="D", unit="s", array=[self.tstop]),
        ]
        hdu = fits.BinTableHDU.from_columns(columns, name="GTI")
        hdu.header.update({"MJDREFI": MJDREFI, "MJDREFF": MJDREFF, "TIMESYS": "TT", "HDUCLAS1": "GTI"})
        return hdu


def write_obs_file(obs: ObsSpec, path: Path) -> Path:
    """Write the events, GTI and IRFs of ``obs`` into one FITS file (gzipped if ``path`` ends in .gz)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    hdus = [fits.PrimaryHDU(), obs.events_hdu(), obs.gti_hdu(), *[irf.to_hdu() for irf in obs.irfs]]
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


@dataclass
class Store:
    """Paths of a written store."""

    root: Path
    hdu_index: Path
    obs_index: Path
    files: dict[int, Path]
    observations: dict[int, ObsSpec]


def _string_column(name: str, values: Sequence[str], pad: int = 3) -> fits.Column:
    """A fixed-width string column with explicit trailing blanks (FITS pads strings with spaces)."""
    width = max(len(v) for v in values) + pad
    return fits.Column(name, format=f"{width}A", array=np.array([v.ljust(width) for v in values]))


def _hdu_index_hdu(rows: list[dict], base_dir: str | None) -> fits.BinTableHDU:
    strings = ("HDU_TYPE", "HDU_CLASS", "FILE_DIR", "FILE_NAME", "HDU_NAME")
    columns = [fits.Column("OBS_ID", format="K", array=[r["OBS_ID"] for r in rows])]
    columns += [_string_column(name, [str(r[name]) for r in rows]) for name in strings]
    hdu = fits.BinTableHDU.from_columns(columns, name="HDU_INDEX")
    hdu.header.update({"HDUCLASS": "GADF", "HDUCLAS1": "INDEX", "HDUCLAS2": "HDU"})
    if base_dir is not None:
        hdu.header["BASE_DIR"] = base_dir
    return hdu


def _obs_index_hdu(observations: Sequence[ObsSpec]) -> fits.BinTableHDU:
    columns = [fits.Column("OBS_ID", format="K", array=[o.obs_id for o in observations])]
    for name in ("RA_PNT", "DEC_PNT", "ALT_PNT", "AZ_PNT"):
        columns.append(
            fits.Column(name, format="D", unit="deg", array=[getattr(o, name.lower()) for o in observations])
        )
    columns.append(_string_column("OBJECT", [o.object for o in observations]))
    for name in ("TSTART", "TSTOP", "ONTIME", "LIVETIME"):
        columns.append(
            fits.Column(name, format="D", unit="s", array=[getattr(o, name.lower()) for o in observations])
        )
    columns.append(fits.Column("DEADC", format="D", array=[o.deadc for o in observations]))
    hdu = fits.BinTableHDU.from_columns(columns, name="OBS_INDEX")
    hdu.header.update({"HDUCLASS": "GADF", "HDUCLAS1": "INDEX", "HDUCLAS2": "OBS", "MJDREFI": MJDREFI,
                       "MJDREFF": MJDREFF, "TIMESYS": "TT", "TIMEUNIT": "s"})  # fmt: skip
    return hdu


def write_store(
    root: str | Path,
    observations: Sequence[ObsSpec],
    *,
    file_dir: str = "data",
    base_dir: str | Path | None = None,
    gzip: bool = True,
    index_gzip: bool = True,
) -> Store:
    """Write a data store: ``hdu-index`` and ``obs-index`` in ``root``, one file per observation.

    The observation files go to ``BASE_DIR / FILE_DIR``: ``base_dir`` None writes no ``BASE_DIR``
    keyword (files relative to ``root``); an absolute or relative (to ``root``) ``base_dir`` is
    written as given.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    data_root = root if base_dir is None else (root / base_dir)
    suffix = ".fits.gz" if gzip else ".fits"
    rows, files = [], {}
    for obs in observations:
        name = f"obs_{obs.obs_id:06d}{suffix}"
        files[obs.obs_id] = write_obs_file(obs, data_root / file_dir / name)
        hdus = [("events", "events", "EVENTS"), ("gti", "gti", "GTI")]
        hdus += [(irf.hdu_type, irf.irf_class, irf.hdu_name) for irf in obs.irfs]
        for hdu_type, hdu_class, hdu_name in hdus:
            row = {"OBS_ID": obs.obs_id, "HDU_TYPE": hdu_type, "HDU_CLASS": hdu_class, "FILE_DIR": file_dir,
                   "FILE_NAME": name, "HDU_NAME": hdu_name}  # fmt: skip
            row.update(obs.index.get(hdu_type, {}))
            rows.append(row)
        rows += [{"OBS_ID": obs.obs_id, **extra} for extra in obs.extra_index_rows]
    index_suffix = ".fits.gz" if index_gzip else ".fits"
    hdu_index = root / f"hdu-index{index_suffix}"
    obs_index = root / f"obs-index{index_suffix}"
    base = None if base_dir is None else str(base_dir)
    fits.HDUList([fits.PrimaryHDU(), _hdu_index_hdu(rows, base)]).writeto(hdu_index, overwrite=True)
    fits.HDUList([fits.PrimaryHDU(), _obs_index_hdu(observations)]).writeto(obs_index, overwrite=True)
    return Store(root, hdu_index, obs_index, files, {o.obs_id: o for o in observations})


def rewrite_hdu(
    path: Path, hdu_name: str, edit: Callable[[fits.BinTableHDU], fits.BinTableHDU | None]
) -> None:
    """Apply ``edit`` to HDU ``hdu_name`` of ``path`` and write the file back (to corrupt it on purpose).

    ``edit`` changes the HDU in place (returns None) or returns a replacement HDU.
    """
    with fits.open(path) as hdulist:
        hdulist = fits.HDUList([hdu.copy() for hdu in hdulist])
    index = [h.name for h in hdulist].index(hdu_name.upper())
    replacement = edit(hdulist[index])
    if replacement is not None:
        hdulist[index] = replacement
    hdulist.writeto(path, overwrite=True)


_COLUMN_KEYWORD = re.compile(r"^(TTYPE|TFORM|TUNIT|TDIM|TZERO|TSCAL|TNULL|TDISP|CREF)\d+$")


def drop_column(hdu: fits.BinTableHDU, name: str) -> fits.BinTableHDU:
    """A copy of ``hdu`` without column ``name`` (other keywords kept); for :func:`rewrite_hdu`."""
    columns = [c for c in hdu.columns if c.name != name]
    new = fits.BinTableHDU.from_columns(columns, name=hdu.name)
    for card in hdu.header.cards:
        if card.keyword not in new.header and not _COLUMN_KEYWORD.match(card.keyword):
            new.header[card.keyword] = card.value
    return new
