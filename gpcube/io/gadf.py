"""What gpcube accepts from GADF DL3 files: the one place where format variants are written down.

GADF quirks accepted (and nothing else is guessed):

* **Energy axis columns** are ``ENERG_LO/HI`` or ``ETRUE_LO/HI``. In an effective area, energy
  dispersion or PSF the energy is true energy (``energy_true``); in a background or ``RAD_MAX`` table it
  is reconstructed energy (``energy_reco``), where ``ETRUE`` is refused.
* **Background data column** is ``BKG`` or ``BGD``.
* **Units** are parsed by astropy (FITS format, then generic). A unit written as a chain of divisions,
  such as ``1/s/MeV/sr``, is read as ``s-1 MeV-1 sr-1``. Values are converted to gpcube's units
  (TeV, deg, m2, sr-1, s-1 TeV-1 sr-1). A column that needs a unit and has none, or has a unit of the
  wrong kind, is an error. ``MIGRA`` and the PSF amplitudes are dimensionless and may have no unit.
  The triple-Gauss ``SCALE`` may have no unit, as GADF lists it and as Gammapy's writer and the CTA 1DC
  IRFs write it (else its unit must convert to sr-1); it is read but not used, since the profile is
  normalised from its widths and amplitudes (see :func:`gpcube.irf.psf_3gauss_profile`).
  The units that DL3 files commonly write have their factors in :data:`KNOWN_FACTORS` (astropy's,
  checked in the tests), so that reading such files does not import astropy.units.
* **Axis order** comes from the header: the ``CREFn`` keyword of the data column where present, else the
  order of the ``*_LO`` columns in the table. Both list the FITS axes fastest first (the ``TDIMn``
  order), so numpy's order is the reverse. A data column whose shape disagrees is an error.
* **Node axes**: an axis whose ``_LO`` and ``_HI`` columns are equal (H.E.S.S. ``THETA``) holds sample
  points, not bins. Its centres are those values and its edges the mid-points between them, the outer
  edges half a step beyond the first and last node (in log for energy), as the reference does.
* **Background alignment**: ``FOVALIGN`` is ``RADEC`` (the default when the keyword is missing) or
  ``ALTAZ``; ``DETX`` is ``fov_lon`` and ``DETY`` is ``fov_lat``.
* **Index strings** (``HDU_TYPE``, ``HDU_CLASS``, ``FILE_DIR``...) are space-padded in FITS: they are
  stripped and compared in lower case. ``BASE_DIR`` in the HDU-index header is the root of
  ``FILE_DIR``; a relative ``BASE_DIR`` or ``FILE_DIR`` is taken relative to the index file.
* **IRF tables** hold one row; the axes and data are array cells of that row.
* **Point-like IRFs** (``HDUCLAS3 = POINT-LIKE``, with a ``RAD_MAX`` HDU or keyword) are read like the
  others, but the makers of full-enclosure sky products (exposure, energy-dispersion and PSF maps) refuse
  them (:func:`require_full_enclosure`): such an effective area holds only the events within the
  direction cut around a source, so it gives no response per sky pixel. Counts and the background
  (a rate per solid angle) are still made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from gpcube.errors import GpcubeError
from gpcube.io.fitsfile import BinTable, native

if TYPE_CHECKING:  # astropy.units takes ~0.35 s to import: only for units outside KNOWN_FACTORS
    import astropy.units as u

__all__ = [
    "IrfSpec",
    "IRF_SPECS",
    "KNOWN_FACTORS",
    "column_factor",
    "parse_unit",
    "read_irf_table",
    "axis_from_lo_hi",
    "is_point_like",
    "require_full_enclosure",
]

_TO_BKG_RATE = {  # to s-1 TeV-1 sr-1
    **dict.fromkeys(("s-1 TeV-1 sr-1", "TeV-1 s-1 sr-1", "1/s/TeV/sr", "1 / (TeV s sr)"), 1.0),
    **dict.fromkeys(
        ("s-1 MeV-1 sr-1", "MeV-1 s-1 sr-1", "1/s/MeV/sr", "s^-1 MeV^-1 sr^-1", "1 / (MeV s sr)"), 1e6
    ),
}

#: ``{gpcube unit: {unit as a file writes it: factor}}`` for the units met in DL3 files (H.E.S.S.,
#: gammapy, gpcube's simulations): the factors astropy gives (every entry is compared with astropy's
#: in the tests). Columns in other units are converted by astropy.
KNOWN_FACTORS: dict[str, dict[str, float]] = {
    "": {"": 1.0},
    "TeV": {"TeV": 1.0, "GeV": 0.001, "MeV": 1e-06, "keV": 1e-09, "eV": 1e-12},
    "deg": {
        "deg": 1.0,
        "rad": 57.29577951308232,
        "arcmin": 0.016666666666666666,
        "arcsec": 0.0002777777777777778,
    },
    "m2": {"m2": 1.0, "m^2": 1.0, "m**2": 1.0, "cm2": 0.0001, "cm^2": 0.0001, "cm**2": 0.0001},
    "s": {"s": 1.0},
    "sr-1": {
        "sr-1": 1.0,
        "sr^-1": 1.0,
        "sr**-1": 1.0,
        "1/sr": 1.0,
        "1 / sr": 1.0,
        "deg-2": 3282.8063500117437,
    },
    "s-1 TeV-1 sr-1": _TO_BKG_RATE,
}

#: Axis column prefix -> gpcube dim. ``ENERG``/``ETRUE`` resolve to the IRF's energy dim.
AXIS_PREFIXES = {
    "ENERG": "energy",
    "ETRUE": "energy",
    "THETA": "offset",
    "MIGRA": "migra",
    "RAD": "rad",
    "DETX": "fov_lon",
    "DETY": "fov_lat",
}
#: gpcube unit of each axis dim.
AXIS_UNITS = {
    "energy_true": "TeV",
    "energy_reco": "TeV",
    "offset": "deg",
    "migra": "",
    "rad": "deg",
    "fov_lon": "deg",
    "fov_lat": "deg",
}
#: Header keywords copied into an IRF's attrs when present.
KEPT_KEYWORDS = (
    "OBS_ID", "TELESCOP", "INSTRUME", "HDUCLAS1", "HDUCLAS2", "HDUCLAS3", "HDUCLAS4",
    "LO_THRES", "HI_THRES", "EV_CLASS", "FOVALIGN", "RAD_MAX",
)  # fmt: skip


@dataclass(frozen=True)
class IrfSpec:
    """How one GADF IRF class maps to an xarray Dataset."""

    irf_class: str
    energy_dim: str
    dims: tuple[str, ...]
    #: output variable -> (accepted column names, gpcube unit)
    variables: dict[str, tuple[tuple[str, ...], str]] = field(default_factory=dict)
    #: variables a file may write without a unit (read as they are, with ``units`` "")
    unit_optional: tuple[str, ...] = ()


IRF_SPECS: dict[str, IrfSpec] = {
    spec.irf_class: spec
    for spec in [
        IrfSpec("aeff_2d", "energy_true", ("energy_true", "offset"), {"aeff": (("EFFAREA",), "m2")}),
        IrfSpec(
            "edisp_2d", "energy_true", ("energy_true", "migra", "offset"), {"migration": (("MATRIX",), "")}
        ),
        IrfSpec("psf_table", "energy_true", ("energy_true", "offset", "rad"), {"rpsf": (("RPSF",), "sr-1")}),
        IrfSpec(
            "psf_3gauss",
            "energy_true",
            ("energy_true", "offset"),
            {
                "scale": (("SCALE",), "sr-1"),
                "sigma_1": (("SIGMA_1",), "deg"),
                "ampl_2": (("AMPL_2",), ""),
                "sigma_2": (("SIGMA_2",), "deg"),
                "ampl_3": (("AMPL_3",), ""),
                "sigma_3": (("SIGMA_3",), "deg"),
            },
            unit_optional=("scale",),
        ),
        IrfSpec(
            "psf_king",
            "energy_true",
            ("energy_true", "offset"),
            {"gamma": (("GAMMA",), ""), "sigma": (("SIGMA",), "deg")},
        ),
        IrfSpec(
            "bkg_2d", "energy_reco", ("energy_reco", "offset"), {"bkg": (("BKG", "BGD"), "s-1 TeV-1 sr-1")}
        ),
        IrfSpec(
            "bkg_3d",
            "energy_reco",
            ("energy_reco", "fov_lat", "fov_lon"),
            {"bkg": (("BKG", "BGD"), "s-1 TeV-1 sr-1")},
        ),
        IrfSpec("rad_max_2d", "energy_reco", ("energy_reco", "offset"), {"rad_max": (("RAD_MAX",), "deg")}),
    ]
}

_DIVISION_CHAIN = re.compile(r"^\s*([^/]+)((?:/[^/]+)+)\s*$")


def parse_unit(text: str | None, *, path=None, hdu=None, column: str = "") -> u.UnitBase:
    """Parse a FITS unit string, accepting the variants listed in this module's docstring."""
    import astropy.units as u

    text = (text or "").strip()
    if not text:
        return u.dimensionless_unscaled
    for fmt in ("fits", "generic"):
        try:
            return u.Unit(text, format=fmt)
        except ValueError:
            pass
    match = _DIVISION_CHAIN.match(text)
    if match:
        numerator = "" if match.group(1).strip() == "1" else match.group(1).strip()
        denominators = [f"{part.strip()}-1" for part in match.group(2).split("/")[1:]]
        try:
            return u.Unit(" ".join([numerator, *denominators]).strip(), format="fits")
        except ValueError:
            pass
    raise GpcubeError(f"column {column}: cannot parse unit {text!r}", path=path, hdu=hdu)


def column_factor(table: BinTable, column: str, target: str, path, hdu) -> float:
    """Factor converting ``column`` to the unit ``target``.

    A column without a unit is an error unless ``target`` is dimensionless; so is a unit of another kind.
    """
    raw = table.units.get(column, "")
    known = KNOWN_FACTORS.get(target, {}).get((raw or "").strip())
    if known is not None:
        return known
    import astropy.units as u

    unit = parse_unit(raw, path=path, hdu=hdu, column=column)
    target_unit = u.Unit(target) if target else u.dimensionless_unscaled
    if not (raw or "").strip() and target_unit != u.dimensionless_unscaled:
        raise GpcubeError(f"column {column} has no unit (expected {target_unit})", path=path, hdu=hdu)
    try:
        return float(unit.to(target_unit))
    except u.UnitConversionError:
        raise GpcubeError(
            f"column {column} has unit {raw!r}, which does not convert to {target_unit}", path=path, hdu=hdu
        ) from None


def axis_from_lo_hi(dim: str, lo: np.ndarray, hi: np.ndarray) -> dict[str, tuple]:
    """Coordinates ``dim`` (centres), ``dim_lo`` and ``dim_hi`` from GADF LO/HI columns.

    Energies get log centres. Equal LO and HI columns are node axes (see the module docstring).
    """
    lo = np.asarray(lo, dtype=float)
    hi = np.asarray(hi, dtype=float)
    is_energy = dim.startswith("energy")
    nodes = np.array_equal(lo, hi)
    if nodes:
        centre = lo
        scaled = np.log(lo) if is_energy else lo
        if len(scaled) > 1:
            mid = 0.5 * (scaled[1:] + scaled[:-1])
            first = scaled[0] - (mid[0] - scaled[0])
            last = scaled[-1] + (scaled[-1] - mid[-1])
            edges = np.concatenate([[first], mid, [last]])
        else:
            edges = np.array([scaled[0], scaled[0]])
        edges = np.exp(edges) if is_energy else edges
        lo, hi = edges[:-1], edges[1:]
    else:
        centre = np.sqrt(lo * hi) if is_energy else 0.5 * (lo + hi)
    unit = AXIS_UNITS[dim]
    attrs = {"units": unit, "edges_from_nodes": int(nodes)}
    return {
        dim: (dim, centre, attrs),
        f"{dim}_lo": (dim, lo, {"units": unit}),
        f"{dim}_hi": (dim, hi, {"units": unit}),
    }


def _axis_order(table: BinTable, data_column: str, path, hdu) -> list[str]:
    """GADF axis column prefixes in FITS order (fastest first), read from the header."""
    names = table.names
    index = names.index(data_column) + 1
    cref = table.header.get(f"CREF{index}")
    if cref:
        parts = cref.strip().strip("()").split(",")
        prefixes = [part.split(":")[0].strip().upper() for part in parts]
        prefixes = [p[:-3] if p.endswith("_LO") else p for p in prefixes]
    else:
        prefixes = [n[:-3].upper() for n in names if n.upper().endswith("_LO")]
    unknown = [p for p in prefixes if p not in AXIS_PREFIXES]
    if unknown:
        raise GpcubeError(f"unknown axis column(s) {unknown} for column {data_column}", path=path, hdu=hdu)
    return prefixes


def _find_column(table: BinTable, accepted: tuple[str, ...], path, hdu) -> str:
    upper = {n.upper(): n for n in table.names}
    for name in accepted:
        if name in upper:
            return upper[name]
    raise GpcubeError(f"no column {' or '.join(accepted)} (columns: {list(upper)})", path=path, hdu=hdu)


def _read_axes(table, spec: IrfSpec, prefixes: list[str], path, hdu) -> dict[str, tuple]:
    coords: dict[str, tuple] = {}
    upper = {n.upper(): n for n in table.names}
    for prefix in prefixes:
        dim = AXIS_PREFIXES[prefix]
        if dim == "energy":
            if prefix == "ETRUE" and spec.energy_dim != "energy_true":
                raise GpcubeError(f"ETRUE axis in a reco-energy IRF ({spec.irf_class})", path=path, hdu=hdu)
            dim = spec.energy_dim
        lo_name, hi_name = f"{prefix}_LO", f"{prefix}_HI"
        if lo_name not in upper or hi_name not in upper:
            raise GpcubeError(f"missing axis columns {lo_name}/{hi_name}", path=path, hdu=hdu)
        factor = column_factor(table, upper[lo_name], AXIS_UNITS[dim], path, hdu)
        lo = native(table.data[upper[lo_name]][0]).astype(float).ravel() * factor
        hi = native(table.data[upper[hi_name]][0]).astype(float).ravel() * factor
        coords.update(axis_from_lo_hi(dim, lo, hi))
    return coords


def read_irf_table(table: BinTable, irf_class: str, *, path=None, hdu=None) -> xr.Dataset:
    """Convert a GADF IRF binary table into an :class:`xarray.Dataset` with gpcube's named dims.

    Parameters
    ----------
    table : BinTable
        The IRF table, one row (:meth:`FitsFile.table <gpcube.io.fitsfile.FitsFile.table>`).
    irf_class : str
        Its HDU class: ``aeff_2d``, ``edisp_2d``, ``psf_table``, ``psf_3gauss``, ``psf_king``,
        ``bkg_2d``, ``bkg_3d`` or ``rad_max_2d``.
    path, hdu : optional
        The file and HDU, named in errors and kept in the attrs.

    Returns
    -------
    xarray.Dataset
        The IRF's variables over its dims (``docs/datamodel.rst``), with ``<dim>_lo`` / ``<dim>_hi``
        edge coordinates; values in gpcube's units (``attrs["units"]`` of each variable).

    Raises
    ------
    GpcubeError
        For an unknown class, missing columns, axes that do not match the class or bad units.

    See Also
    --------
    gpcube.irf.evaluate : The IRF at any point.
    gpcube.Observation.aeff : The same, of an observation of a data store.

    Examples
    --------
    >>> from gpcube.data import example_data_dir
    >>> from gpcube.io.fitsfile import open_fits
    >>> from gpcube.io.gadf import read_irf_table
    >>> fits = open_fits(example_data_dir() / "data" / "hess_dl3_dr1_obs_id_023523.fits.gz")
    >>> aeff = read_irf_table(fits.table("AEFF"), "aeff_2d")
    >>> dict(aeff.sizes), aeff["aeff"].attrs["units"]
    ({'energy_true': 96, 'offset': 6}, 'm2')
    >>> aeff["offset"].values  # deg
    array([0. , 0.5, 1. , 1.5, 2. , 2.5])
    """
    if irf_class not in IRF_SPECS:
        raise GpcubeError(f"unknown IRF class {irf_class!r} (known: {sorted(IRF_SPECS)})", path=path, hdu=hdu)
    spec = IRF_SPECS[irf_class]
    if len(table) != 1:
        raise GpcubeError(f"expected one table row, found {len(table)}", path=path, hdu=hdu)
    columns = {var: _find_column(table, names, path, hdu) for var, (names, _) in spec.variables.items()}
    first = next(iter(columns.values()))
    prefixes = _axis_order(table, first, path, hdu)
    coords = _read_axes(table, spec, prefixes, path, hdu)
    fits_dims = [c for c in coords if c in AXIS_UNITS]
    if sorted(fits_dims) != sorted(spec.dims):
        raise GpcubeError(f"axes {fits_dims} do not match {spec.irf_class} {spec.dims}", path=path, hdu=hdu)
    numpy_dims = fits_dims[::-1]
    shape = tuple(len(coords[d][1]) for d in numpy_dims)
    data_vars = {}
    for var, column in columns.items():
        stored = native(table.data[column][0])
        values = stored.astype(float)
        if values.shape != shape:
            raise GpcubeError(
                f"column {column} has shape {values.shape}, but the axes {numpy_dims} "
                f"(from the header) need {shape}",
                path=path,
                hdu=hdu,
            )
        unit = spec.variables[var][1]
        if var in spec.unit_optional and not table.units.get(column, "").strip():
            unit = ""
        factor = column_factor(table, column, unit, path, hdu)
        array = xr.DataArray(values * factor, dims=numpy_dims).transpose(*spec.dims)
        array.attrs["units"] = unit
        # smallest normal number of the stored type, in gpcube's unit: the floor for log interpolation
        floor_dtype = stored.dtype if np.issubdtype(stored.dtype, np.floating) else np.float32
        array.attrs["log_floor"] = float(np.finfo(floor_dtype).tiny * factor)
        data_vars[var] = array
    attrs = {k.lower(): table.header[k] for k in KEPT_KEYWORDS if k in table.header}
    attrs.update(irf_class=irf_class, energy_type=spec.energy_dim.split("_")[1], file=str(path), hdu=str(hdu))
    if irf_class == "bkg_3d":
        align = str(table.header.get("FOVALIGN", "RADEC")).strip().upper()
        if align not in ("RADEC", "ALTAZ"):
            raise GpcubeError(f"FOVALIGN must be RADEC or ALTAZ, got {align!r}", path=path, hdu=hdu)
        attrs["fov_alignment"] = align
    attrs.pop("fovalign", None)
    return xr.Dataset(data_vars, coords=coords, attrs=attrs).transpose(*spec.dims)


def is_point_like(irf: xr.Dataset) -> bool:
    """Whether an IRF read by :func:`read_irf_table` is point-like (header ``HDUCLAS3 = POINT-LIKE``)."""
    return str(irf.attrs.get("hduclas3", "")).strip().upper() == "POINT-LIKE"


def require_full_enclosure(irf: xr.Dataset, product: str) -> xr.Dataset:
    """``irf``, unless it is point-like: then a :class:`~gpcube.errors.GpcubeError` naming its file and HDU.

    A point-like effective area (or energy dispersion) describes only the events reconstructed within
    the direction cut ``RAD_MAX`` of a source at a known position; per sky pixel it has no meaning, and
    a cube made from it would hold the cut's efficiency instead of the exposure, without a PSF to fold.
    """
    if is_point_like(irf):
        raise GpcubeError(
            f"the {product} needs a full-enclosure IRF, but this {irf.attrs.get('irf_class')} is point-like "
            "(HDUCLAS3 = POINT-LIKE): it counts only the events within the direction cut (RAD_MAX) around "
            "a source, so it has no response per sky pixel. Sky cubes need full-enclosure IRFs; point-like "
            "IRFs are for an on-region (1D) analysis",
            path=irf.attrs.get("file"),
            hdu=irf.attrs.get("hdu"),
        )
    return irf
