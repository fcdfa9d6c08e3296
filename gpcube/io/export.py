"""Export a mosaic to the FITS file layout that gammapy's ``MapDataset.read`` loads.

The layout (one image HDU per map, each followed by a ``<NAME>_BANDS`` table that describes its
non-spatial axes) follows what gammapy 2.1's ``MapDataset.write`` produces:

* the image header holds the 2-D celestial WCS (``WCSAXES = 2``), ``WCSSHAPE`` (``(nx,ny,n3[,n4])``),
  ``BANDSHDU``, ``BUNIT``, ``META`` and, for each non-spatial axis ``i`` in FITS order (NAXIS3, then
  NAXIS4), ``AXCOLSi`` (the bands columns holding its bin edges) and ``INTERPi`` (``log`` or ``lin``);
* the bands table has a ``CHANNEL`` column (the first non-spatial FITS axis varying fastest) and, per
  axis, the bin centre and edges: ``ENERGY``/``E_MIN``/``E_MAX`` (reconstructed energy, TeV),
  ``ENERGY_TRUE``/``ENERGY_TRUE_MIN``/``ENERGY_TRUE_MAX`` (TeV), ``RAD``/``RAD_MIN``/``RAD_MAX`` (deg).

Only the maps gammapy's ``MapDataset`` knows are written; other variables are skipped. Given the
observations (:class:`ObservationMeta`), the file also gets gammapy's ``GTI`` table (the union of their
good time intervals), its ``META_TABLE`` (obs_id, telescope and pointing of each) and the live time in
the exposure's ``META``. :func:`write_map_dataset_onoff` writes a ``MapDatasetOnOff`` (the ring
background's ON and OFF counts and acceptances) in the same way.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import xarray as xr

from gpcube.errors import GpcubeError
from gpcube.geom import BAND_DIM, IRF_DIMS, SKY_DIMS, SkyGeom
from gpcube.geom._arrays import band_reduce
from gpcube.geom.axes import rename_energy_dim
from gpcube.io.dataset_meta import ObservationMeta, gti_hdu, livetime_meta, meta_table_hdu
from gpcube.makers.registry import PRODUCTS

if TYPE_CHECKING:
    from astropy.io import fits

__all__ = ["ObservationMeta", "write_map_dataset", "write_map_dataset_onoff", "write_maps"]

_ENERGY_RECO = ("energy_reco", *SKY_DIMS)
_PIXEL_DIMS = {"sky": SKY_DIMS, "irf": IRF_DIMS}


def _product(name: str, extname: str, kind: str) -> tuple[str, tuple[str, ...], str, str]:
    """``(EXTNAME, dims, default unit, kind)`` of a product of :data:`gpcube.makers.registry.PRODUCTS`:
    its dims and units as the registry has them, on its grid's pixel dims."""
    product = PRODUCTS[name]
    return extname, (*product.axes, *_PIXEL_DIMS[product.grid]), product.units, kind


#: Mosaic variables written, in gammapy's HDU order: name -> (EXTNAME, dims, default unit, kind).
_SKY_MAPS = {
    "counts": _product("counts", "COUNTS", "counts"),
    "exposure": _product("exposure", "EXPOSURE", "float"),
    "background": _product("background", "BACKGROUND", "float"),
}
_MASKS = {
    "mask_safe": _product("mask_safe", "MASK_SAFE", "mask"),
    "mask_fit": ("MASK_FIT", _ENERGY_RECO, "", "mask"),
}
#: The OFF maps of a ``MapDatasetOnOff``, written after its GTI and META_TABLE.
_OFF_MAPS = {
    "counts_off": ("COUNTS_OFF", _ENERGY_RECO, "", "counts"),
    "acceptance": ("ACCEPTANCE", _ENERGY_RECO, "", "float"),
    "acceptance_off": ("ACCEPTANCE_OFF", _ENERGY_RECO, "", "float"),
}
#: IRF variables written: name -> (EXTNAME, dims, default unit, axis squashed in its exposure HDU: the
#: one after true energy).
_IRF_MAPS = {
    name: (*_product(name, extname, "float")[:3], PRODUCTS[name].axes[1])
    for name, extname in (("edisp", "EDISP"), ("psf", "PSF"))
}
#: The weight each IRF map is written with (its ``<EXTNAME>_EXPOSURE`` HDU, which gammapy uses to stack
#: it further; :attr:`gpcube.makers.registry.Product.weight`); ``exposure_irf`` for a map whose own
#: weight is missing.
_IRF_EXPOSURE = {name: PRODUCTS[name].weight for name in _IRF_MAPS}
#: Non-spatial axes: dim -> (FITS column names: centre, min, max), interpolation, unit.
_AXES = {
    "energy_reco": (("ENERGY", "E_MIN", "E_MAX"), "log", "TeV"),
    "energy_true": (("ENERGY_TRUE", "ENERGY_TRUE_MIN", "ENERGY_TRUE_MAX"), "log", "TeV"),
    "rad": (("RAD", "RAD_MIN", "RAD_MAX"), "lin", "deg"),
}
#: Largest count that float32 holds exactly; above it counts are written as float64.
_FLOAT32_EXACT = 2**24


class _Axis(NamedTuple):
    """A non-spatial axis: its dim name and bin edges (in the unit of ``_AXES``)."""

    dim: str
    edges: np.ndarray

    @property
    def centers(self) -> np.ndarray:
        lo, hi = self.edges[:-1], self.edges[1:]
        return np.sqrt(lo * hi) if _AXES[self.dim][1] == "log" else 0.5 * (lo + hi)

    def squash(self) -> _Axis:
        """One bin spanning the whole axis."""
        return _Axis(self.dim, self.edges[[0, -1]])


class _MapSpec(NamedTuple):
    """One map HDU to write: ``data`` is transposed to numpy order, ``axes`` are in FITS order."""

    extname: str
    data: xr.DataArray
    geom: SkyGeom
    axes: tuple[_Axis, ...]
    unit: str
    kind: str  # "counts", "float", "mask" or "squashed" (an IRF exposure with a length-1 axis)
    meta: str = "{}"  # the header's META (JSON): the exposure's live time


# ------------------------------------------------------------------------------------------- public
def write_map_dataset(
    path: str | os.PathLike,
    mosaic: xr.Dataset,
    irf: xr.Dataset | None = None,
    *,
    name: str = "gpcube",
    observations: Sequence[ObservationMeta] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a mosaic (and its IRF maps) as a FITS file that ``gammapy.datasets.MapDataset.read`` loads.

    Parameters
    ----------
    path : str or path-like
        Output file. Its directory is created if needed.
    mosaic : xarray.Dataset
        Sky maps on one grid: any of ``counts(energy_reco, y, x)`` (integers),
        ``exposure(energy_true, y, x)``, ``background(energy_reco, y, x)``,
        ``mask_safe(energy_reco, y, x)`` and ``mask_fit(energy_reco, y, x)`` (bool). Energy bin
        edges come from the ``<dim>_lo`` / ``<dim>_hi`` coordinates (TeV), else from the geometry's
        axes. The geometry is ``mosaic.attrs["geom"]`` or the variables' ``attrs["geom"]``
        (:meth:`gpcube.geom.SkyGeom.to_attrs` output; all must describe the same sky grid). Other
        variables are skipped.
    irf : xarray.Dataset, optional
        IRF maps on the coarse grid: ``psf(energy_true, rad, irf_y, irf_x)`` (``rad_lo`` / ``rad_hi`` in
        deg), ``edisp(energy_true, energy_reco, irf_y, irf_x)`` (kernel: probability per reco bin) and
        ``exposure_irf(energy_true, irf_y, irf_x)`` (the weight of the energy dispersion, written as
        ``EDISP_EXPOSURE``) and ``exposure_psf(energy_true, irf_y, irf_x)`` (the weight of the PSF,
        written as ``PSF_EXPOSURE``; ``exposure_irf`` if missing); the geometry as for ``mosaic``.
    name : str
        Dataset name (``NAME`` in the primary header; gammapy uses it as the dataset's name).
    observations : sequence of ObservationMeta, optional
        The observations the maps hold: they give the ``GTI`` table (the union of their good time
        intervals; left out if one has none), the ``META_TABLE`` and the live time in the ``META`` of
        ``EXPOSURE`` (:mod:`gpcube.io.dataset_meta`). Without them, none of these is written.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    GpcubeError
        If the file exists and ``overwrite`` is false, a geometry is missing or inconsistent, a
        variable has the wrong dims, shape or energy edges. Nothing is written then; on any failure
        while writing, no partial file is left (the file is written next to ``path`` and renamed).

    Notes
    -----
    Maps are stored as float32 (counts as float32 too, as gammapy does, or float64 where a count
    exceeds ``2**24``), masks as uint8. Units go to ``BUNIT`` from each variable's ``attrs["units"]``.

    See Also
    --------
    gpcube.workflow.export.export : Writes an archive's mosaic or observation.
    write_map_dataset_onoff : The ON/OFF dataset.

    Examples
    --------
    The maps of one Crab run, written without an archive (no IRF maps, no GTI here):

    >>> import gpcube
    >>> from gpcube.data import example_data_dir
    >>> from gpcube.geom import EnergyAxis, SkyGeom
    >>> obs = gpcube.DataStore.from_dir(example_data_dir()).observation(23523)
    >>> axes = [EnergyAxis.log(0.5, 50, 4, "energy_reco"), EnergyAxis.log(0.3, 100, 8, "energy_true")]
    >>> geom = SkyGeom.create((83.633, 22.014), binsz=0.05, width=4.0, axes=axes)
    >>> import xarray as xr
    >>> from astropy.io import fits
    >>> from gpcube.io.export import write_map_dataset
    >>> from gpcube.makers import make_map_background, make_map_counts, make_map_exposure_true_energy
    >>> maps = xr.Dataset({"counts": make_map_counts(obs, geom),
    ...                    "exposure": make_map_exposure_true_energy(obs, geom),
    ...                    "background": make_map_background(obs, geom)})
    >>> path = write_map_dataset("crab-23523.fits", maps, name="crab-23523")
    >>> with fits.open(path) as hdus:
    ...     [hdu.name for hdu in hdus], hdus["COUNTS"].data.shape, hdus["COUNTS"].header["CTYPE1"]
    (['PRIMARY', 'COUNTS', 'COUNTS_BANDS', 'EXPOSURE', 'EXPOSURE_BANDS', 'BACKGROUND',
      'BACKGROUND_BANDS'], (4, 80, 80), 'RA---CAR')
    """
    path = Path(path)
    _check_target(path, overwrite)
    hdus = _plan(mosaic, irf, observations, {**_SKY_MAPS, **_MASKS}, {}, "mosaic")
    return _write_atomically(path, hdus, name, overwrite)


def write_map_dataset_onoff(
    path: str | os.PathLike,
    onoff: xr.Dataset,
    irf: xr.Dataset | None = None,
    *,
    name: str = "gpcube",
    observations: Sequence[ObservationMeta] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ON/OFF maps as a FITS file that ``gammapy.datasets.MapDatasetOnOff.read`` loads.

    The layout of :func:`write_map_dataset` without ``BACKGROUND``, and after ``GTI`` and
    ``META_TABLE`` the OFF maps ``COUNTS_OFF``, ``ACCEPTANCE`` and ``ACCEPTANCE_OFF``, as gammapy 2.1
    writes a ``MapDatasetOnOff`` (it derives alpha as ``acceptance / acceptance_off``).

    Parameters
    ----------
    onoff : xarray.Dataset
        ``counts``, ``counts_off`` (integers), ``acceptance`` and ``acceptance_off``, all
        ``(energy_reco, y, x)`` on the same energy bins, or all ``(energy_band, y, x)`` (the ring
        background's bands, written as the dataset's reco energy bins), and
        optionally ``exposure(energy_true, y, x)``, ``mask_safe`` and ``mask_fit``; the geometry
        and energy edges as for :func:`write_map_dataset`.
    irf : xarray.Dataset, optional
        As for :func:`write_map_dataset`. An ``edisp`` kernel whose reco bins are finer than the ON
        maps' bins is summed into them (each of their edges must be a kernel edge): the probability
        to land in a band is the sum over its bins.
    name, observations, overwrite
        As for :func:`write_map_dataset`.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    GpcubeError
        As :func:`write_map_dataset`, and if one of the four ON/OFF maps is missing.

    See Also
    --------
    gpcube.makers.make_map_ring_background : ON/OFF maps of an observation.

    Examples
    --------
    >>> import gpcube
    >>> from gpcube.data import example_data_dir
    >>> from gpcube.geom import EnergyAxis, SkyGeom
    >>> obs = gpcube.DataStore.from_dir(example_data_dir()).observation(23523)
    >>> axes = [EnergyAxis.log(0.5, 50, 4, "energy_reco")]
    >>> geom = SkyGeom.create((83.633, 22.014), binsz=0.05, width=4.0, axes=axes)
    >>> from astropy.io import fits
    >>> from gpcube.io.export import write_map_dataset_onoff
    >>> from gpcube.makers import make_map_background, make_map_counts, make_map_ring_background
    >>> ring = make_map_ring_background(
    ...     make_map_counts(obs, geom), make_map_background(obs, geom), r_in=0.5, width=0.3,
    ...     exclusion=[(83.633, 22.014, 0.3)], energy_edges=[0.5, 5, 50])
    >>> path = write_map_dataset_onoff("crab-onoff.fits", ring)
    >>> with fits.open(path) as hdus:
    ...     [hdu.name for hdu in hdus if not hdu.name.endswith("_BANDS")], hdus["COUNTS_OFF"].shape
    (['PRIMARY', 'COUNTS', 'MASK_SAFE', 'COUNTS_OFF', 'ACCEPTANCE', 'ACCEPTANCE_OFF'], (2, 80, 80))
    """
    path = Path(path)
    _check_target(path, overwrite)
    if not isinstance(onoff, xr.Dataset):
        raise GpcubeError("onoff must be an xarray Dataset")
    missing = [n for n in ("counts", *_OFF_MAPS) if n not in onoff.data_vars]
    if missing:
        raise GpcubeError(f"onoff: a MapDatasetOnOff needs {missing} as well")
    onoff = rename_energy_dim(onoff, BAND_DIM, "energy_reco")  # the bands are the dataset's reco bins
    if irf is not None and "edisp" in irf.data_vars:
        edisp = _kernel_on_bins(irf["edisp"], onoff["counts"])
        if edisp is not irf["edisp"]:  # the reco axis is the ON maps' one now
            irf = irf.drop_dims("energy_reco").assign(edisp=edisp)
    on = {name: _SKY_MAPS[name] for name in ("counts", "exposure")}
    hdus = _plan(onoff, irf, observations, {**on, **_MASKS}, _OFF_MAPS, "onoff")
    return _write_atomically(path, hdus, name, overwrite)


def write_maps(
    path: str | os.PathLike, maps: xr.Dataset, *, name: str = "gpcube", overwrite: bool = False
) -> Path:
    """Write each ``(energy_reco, y, x)`` or ``(energy_band, y, x)`` variable of ``maps`` as a FITS map HDU
    named after it (bands as reco energy bins: columns ``ENERGY``, ``E_MIN``, ``E_MAX``).

    For derived maps such as those of :func:`gpcube.estimators.estimate_excess_map`: ``sqrt_ts``
    becomes HDU ``SQRT_TS`` with its ``SQRT_TS_BANDS`` table, in the same layout as
    :func:`write_map_dataset`, so ``gammapy.maps.Map.read(path, hdu="SQRT_TS")`` (or astropy)
    reads each one. Floats are written as float32. Errors, atomic writing and ``overwrite`` as for
    :func:`write_map_dataset`.
    """
    path = Path(path)
    _check_target(path, overwrite)
    if not isinstance(maps, xr.Dataset):
        raise GpcubeError("maps must be an xarray Dataset")
    maps = rename_energy_dim(maps, BAND_DIM, "energy_reco")  # the bands are the maps' reco bins
    table = {
        var: (str(var).upper(), _ENERGY_RECO, "", "float")
        for var, da in maps.data_vars.items()
        if set(da.dims) == set(_ENERGY_RECO)
    }
    if not table:
        raise GpcubeError(f"nothing to export: no variable with dims {_ENERGY_RECO}")
    specs = _map_specs(maps, table, "maps")
    return _write_atomically(path, specs, name, overwrite)


# ---------------------------------------------------------------------------------------- planning
def _check_target(path: Path, overwrite: bool) -> None:
    if path.is_dir():
        raise GpcubeError("is a directory, not a file", path=str(path))
    if path.exists() and not overwrite:
        raise GpcubeError("file exists (pass overwrite=True to replace it)", path=str(path))


def _plan(
    maps: xr.Dataset,
    irf: xr.Dataset | None,
    observations: Sequence[ObservationMeta] | None,
    table: dict,
    off_table: dict,
    label: str,
) -> list[_MapSpec | fits.BinTableHDU]:
    """Validate the inputs and list the HDUs to write, in gammapy's order: the maps of ``table``
    (masks last), the IRF maps before the masks, then GTI, META_TABLE and the maps of ``off_table``."""
    if not isinstance(maps, xr.Dataset) or not (irf is None or isinstance(irf, xr.Dataset)):
        raise GpcubeError(f"{label} and irf must be xarray Datasets")
    specs = _map_specs(maps, {**table, **off_table}, label)
    irfs = [] if irf is None else _irf_specs(irf)
    if not specs and not irfs:
        raise GpcubeError(f"nothing to export: no variable among {[*table, *off_table, *_IRF_MAPS]}")
    _check_axes_agree(specs + irfs)
    observations = list(observations or ())
    if observations:
        livetime = livetime_meta(observations)
        specs = [s._replace(meta=livetime) if s.extname == "EXPOSURE" else s for s in specs]
    tables = [hdu for hdu in (gti_hdu(observations), meta_table_hdu(observations)) if hdu is not None]
    off = {spec[0] for spec in off_table.values()}
    masks = [s for s in specs if s.kind == "mask"]
    on = [s for s in specs if s.kind != "mask" and s.extname not in off]
    return [*on, *irfs, *masks, *tables, *(s for s in specs if s.extname in off)]


def _kernel_on_bins(edisp: xr.DataArray, counts: xr.DataArray) -> xr.DataArray:
    """The edisp kernel summed over its reco bins within each reco bin of ``counts`` (lazily)."""
    if "energy_reco" not in edisp.dims or "energy_reco" not in counts.dims:
        return edisp  # the checks that follow say what is wrong
    geom = SkyGeom.from_attrs(counts.attrs["geom"]) if "geom" in counts.attrs else None
    bins = _axis(counts, "energy_reco", geom, "onoff['counts']").edges
    fine = _axis(edisp, "energy_reco", geom, "irf['edisp']").edges
    index = np.minimum(np.searchsorted(fine, bins * (1 - 1e-9)), fine.size - 1)
    if not np.allclose(fine[index], bins, rtol=1e-9, atol=0):
        raise GpcubeError(
            f"irf['edisp']: the ON maps' energy_reco edges {bins.tolist()} are not edges of the "
            f"kernel's {fine.tolist()}"
        )
    if index.size == fine.size:
        return edisp
    runs = [slice(i, j) for i, j in itertools.pairwise(index)]
    unit = {"units": _AXES["energy_reco"][2]}
    edges = {
        "energy_reco_lo": ("energy_reco", bins[:-1], unit),
        "energy_reco_hi": ("energy_reco", bins[1:], unit),
    }
    return band_reduce(edisp, "energy_reco", runs).assign_coords(edges).assign_attrs(edisp.attrs)


def _map_specs(ds: xr.Dataset, table: dict, label: str) -> list[_MapSpec]:
    names = [n for n in table if n in ds.data_vars]
    if not names:
        return []
    geom = _dataset_geom(ds, names, label)
    return [_map_spec(ds[var], *table[var], geom, f"{label}[{var!r}]") for var in names]


def _map_spec(
    da: xr.DataArray, extname: str, dims: tuple, unit: str, kind: str, geom: SkyGeom, label: str
) -> _MapSpec:
    """Check one variable's dims, shape and axes; its non-spatial axes come out in FITS order.
    The pixel dims are the grid's own (``y, x`` or, on the coarse IRF grid, ``irf_y, irf_x``)."""
    dims = (*dims[:-2], *geom.dims)
    da = _with_dims(da, dims, label, geom)
    axes = tuple(_axis(da, dim, geom, label) for dim in reversed(dims[:-2]))
    return _MapSpec(extname, da, geom, axes, _fits_unit(da.attrs.get("units", unit), label), kind)


def _irf_specs(irf: xr.Dataset) -> list[_MapSpec]:
    """EDISP, EDISP_EXPOSURE, PSF, PSF_EXPOSURE (those present; exposures only with an IRF map)."""
    maps = [n for n in _IRF_MAPS if n in irf.data_vars]
    if not maps:
        return []
    weights = {n: _IRF_EXPOSURE[n] if _IRF_EXPOSURE[n] in irf.data_vars else "exposure_irf" for n in maps}
    names = [*maps, *{w for w in weights.values() if w in irf.data_vars}]
    geom = _dataset_geom(irf, names, "irf")
    specs = []
    for var in maps:
        extname, dims, unit, squashed_dim = _IRF_MAPS[var]
        spec = _map_spec(irf[var], extname, dims, unit, "float", geom, f"irf[{var!r}]")
        specs.append(spec)
        if weights[var] in irf.data_vars:
            label = f"irf[{weights[var]!r}]"
            _, dims, unit, _ = _product(weights[var], "", "squashed")
            exposure = _map_spec(irf[weights[var]], "", dims, unit, "squashed", geom, label)
            squashed = next(ax for ax in spec.axes if ax.dim == squashed_dim).squash()
            specs.append(exposure._replace(extname=f"{extname}_EXPOSURE", axes=(squashed, *exposure.axes)))
    return specs


def _sky_grid(geom: SkyGeom) -> tuple:
    return geom.frame, geom.projection, geom.crval, geom.crpix, geom.binsz, geom.npix


def _dataset_geom(ds: xr.Dataset, names: list[str], label: str) -> SkyGeom:
    """The grid of ``ds.attrs["geom"]`` and of its variables' ``attrs["geom"]``, which must agree."""
    found = {label: ds.attrs["geom"]} if "geom" in ds.attrs else {}
    found.update({f"{label}[{n!r}]": ds[n].attrs["geom"] for n in names if "geom" in ds[n].attrs})
    if not found:
        raise GpcubeError(
            f"{label}: no geometry; put SkyGeom.to_attrs() in attrs['geom'] of the Dataset or its variables"
        )
    geoms = {}
    for where, attrs in found.items():
        try:
            geoms[where] = SkyGeom.from_attrs(attrs)
        except GpcubeError as exc:
            raise GpcubeError(f"{where}: bad attrs['geom']: {exc}") from exc
    (first, geom), *others = geoms.items()
    for where, other in others:
        if _sky_grid(other) != _sky_grid(geom):
            raise GpcubeError(f"{where}: its geometry {other!r} is not the sky grid of {first}: {geom!r}")
    return geom


def _with_dims(da: xr.DataArray, dims: tuple[str, ...], label: str, geom: SkyGeom) -> xr.DataArray:
    """``da`` transposed to ``dims``, its pixel (y, x) shape checked against ``geom``."""
    if set(da.dims) != set(dims) or len(da.dims) != len(dims):
        raise GpcubeError(f"{label}: dims must be {dims}, got {da.dims}")
    da = da.transpose(*dims)
    if da.shape[-2:] != geom.shape:
        raise GpcubeError(f"{label}: pixel shape {da.shape[-2:]} differs from its grid's {geom.shape}")
    return da


def _axis(da: xr.DataArray, dim: str, geom: SkyGeom, label: str) -> _Axis:
    """Bin edges of ``dim`` from the ``<dim>_lo`` / ``<dim>_hi`` coords, else from ``geom``'s axis."""
    lo, hi = f"{dim}_lo", f"{dim}_hi"
    if lo in da.coords and hi in da.coords:
        unit = _AXES[dim][2]
        lo_values = _coord_values(da.coords[lo], unit, label)
        hi_values = _coord_values(da.coords[hi], unit, label)
        if not np.array_equal(lo_values[1:], hi_values[:-1]) or np.any(hi_values <= lo_values):
            raise GpcubeError(f"{label}: {lo} / {hi} are not contiguous increasing bins")
        edges = np.append(lo_values, hi_values[-1])
    elif dim in (ax.name for ax in geom.axes):
        edges = np.asarray(geom.axis(dim).edges)
    else:
        raise GpcubeError(f"{label}: no {lo} / {hi} coordinates and no {dim!r} axis in the geometry")
    if edges.size != da.sizes[dim] + 1:
        raise GpcubeError(f"{label}: {edges.size - 1} {dim} bins in the edges, {da.sizes[dim]} in the data")
    return _Axis(dim, edges)


def _coord_values(coord: xr.DataArray, unit: str, label: str) -> np.ndarray:
    from astropy import units as u

    try:
        factor = u.Unit(coord.attrs.get("units", unit)).to(unit)
    except (ValueError, u.UnitsError) as exc:
        raise GpcubeError(f"{label}: coordinate {coord.name!r} must be in {unit}: {exc}") from exc
    return np.asarray(coord.to_numpy(), dtype=np.float64).ravel() * factor


def _fits_unit(unit: Any, label: str) -> str:
    from astropy import units as u

    try:
        return u.Unit(unit).to_string("fits") if unit else ""
    except (ValueError, TypeError) as exc:
        raise GpcubeError(f"{label}: units {unit!r} are not a valid unit: {exc}") from exc


def _check_axes_agree(specs: list[_MapSpec]) -> None:
    """All maps share their energy (and rad) bins: gammapy combines them bin by bin."""
    seen: dict[str, tuple[str, np.ndarray]] = {}
    for spec in specs:
        axes = spec.axes[1:] if spec.kind == "squashed" else spec.axes
        for ax in axes:
            first = seen.setdefault(ax.dim, (spec.extname, ax.edges))
            same = first[1].shape == ax.edges.shape and np.allclose(first[1], ax.edges, rtol=1e-9, atol=0)
            if not same:
                raise GpcubeError(f"{spec.extname}: {ax.dim} bins differ from those of {first[0]}")


# ----------------------------------------------------------------------------------------- writing
def _write_atomically(path: Path, specs: list, name: str, overwrite: bool) -> Path:
    """Write the file next to ``path`` and rename it into place: no partial file on any failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its 0600 mode would stay on the renamed file.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        _write_file(tmp, specs, name)
        _check_target(path, overwrite)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def _write_file(path: Path, items: list[_MapSpec | fits.BinTableHDU], name: str) -> None:
    """Write the primary HDU, then each map with its bands table (one map in memory at a time) and
    each table."""
    from astropy.io import fits

    stamp = _creator_cards()
    primary = fits.PrimaryHDU()
    primary.header["NAME"] = name
    primary.header.update(stamp)
    primary.writeto(path)
    for item in items:
        hdus = _map_hdus(item) if isinstance(item, _MapSpec) else [item]
        for hdu in hdus:
            hdu.header.update(stamp)
        with fits.open(path, mode="append") as hdulist:
            hdulist.extend(hdus)
        del hdus


def _creator_cards() -> dict[str, str]:
    import gpcube

    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return {"CREATOR": f"gpcube {gpcube.__version__}", "CREATED": created}


def _map_hdus(spec: _MapSpec) -> list[fits.ImageHDU | fits.BinTableHDU]:
    """The image HDU of one map and its ``<EXTNAME>_BANDS`` table."""
    from astropy.io import fits

    bands = f"{spec.extname}_BANDS"
    header = spec.geom.wcs.to_header()
    header.update(_axes_cards(spec.axes))
    shape = (*spec.geom.npix, *(ax.edges.size - 1 for ax in spec.axes))
    header["WCSSHAPE"] = "(" + ",".join(str(n) for n in shape) + ")"
    header["BANDSHDU"] = bands
    image = fits.ImageHDU(_data(spec), header=header, name=spec.extname)
    image.header["META"] = spec.meta
    image.header["BUNIT"] = spec.unit
    return [image, _bands_hdu(bands, spec.axes)]


def _axes_cards(axes: tuple[_Axis, ...]) -> dict[str, str]:
    cards = {}
    for i, ax in enumerate(axes, start=1):
        (_, col_min, col_max), interp, _ = _AXES[ax.dim]
        cards[f"AXCOLS{i}"] = f"{col_min},{col_max}"
        cards[f"INTERP{i}"] = interp
    return cards


def _bands_hdu(extname: str, axes: tuple[_Axis, ...]) -> fits.BinTableHDU:
    """The bands table: one row per channel, the first axis (NAXIS3) varying fastest."""
    from astropy.io import fits

    grids = np.meshgrid(*[np.arange(ax.edges.size - 1) for ax in reversed(axes)], indexing="ij")
    indices = [g.ravel() for g in reversed(grids)]
    columns = [fits.Column("CHANNEL", "K", array=np.arange(indices[0].size))]
    for ax, idx in zip(axes, indices, strict=True):
        names, _, unit = _AXES[ax.dim]
        values = (ax.centers[idx], ax.edges[:-1][idx], ax.edges[1:][idx])
        columns += [fits.Column(n, "D", unit=unit, array=v) for n, v in zip(names, values, strict=True)]
    return fits.BinTableHDU.from_columns(columns, header=fits.Header(_axes_cards(axes)), name=extname)


def _data(spec: _MapSpec) -> np.ndarray:
    """The map's values in the stored dtype, computed (if dask-backed) straight into that dtype."""
    da = spec.data
    if spec.kind == "mask":
        return da.astype(bool).astype(np.uint8).to_numpy()
    if spec.kind == "counts":
        values = da.to_numpy()
        exact = not np.issubdtype(values.dtype, np.integer) or values.size == 0
        exact = exact or max(int(values.max()), -int(values.min())) <= _FLOAT32_EXACT
        return values.astype(np.float32 if exact else np.float64)
    values = da.astype(np.float32).to_numpy()
    return values[:, None] if spec.kind == "squashed" else values
