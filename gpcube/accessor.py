"""The ``sky`` accessor: geometry, WCS, world coordinates, interpolation and plots of sky products.

Importing this module registers ``DataArray.sky`` and ``Dataset.sky``. A product's pixel dims are
``(y, x)`` (``(irf_y, irf_x)`` on the coarse IRF grid), whose coordinates are pixel indices in the
parent grid; ``attrs["geom"]`` holds the grid of the array, so after ``isel``/``sel`` along the pixel
dims the accessor slices the stored geometry to match. The world coordinates ``lon``/``lat`` are
coordinates of the products themselves (:mod:`gpcube.geom.world`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from gpcube.errors import GpcubeError
from gpcube.geom import BAND_DIM, ENERGY_AXIS_NAMES, EnergyAxis, SkyGeom, pixel_dims
from gpcube.geom._arrays import band_reduce
from gpcube.geom.world import attach_world_coords

if TYPE_CHECKING:
    from astropy.wcs import WCS

__all__ = ["SkyDataArrayAccessor", "SkyDatasetAccessor"]

_LABELS = {"galactic": ("Galactic longitude", "Galactic latitude"), "icrs": ("RA (ICRS)", "Dec (ICRS)")}


def _geom_attrs(obj: xr.DataArray | xr.Dataset) -> Any:
    """``attrs["geom"]`` of the object, or of the first data variable with pixel dims that has one."""
    if "geom" in obj.attrs:
        return obj.attrs["geom"]
    if isinstance(obj, xr.Dataset):
        for var in obj.data_vars.values():
            if "geom" in var.attrs and pixel_dims(var) is not None:
                return var.attrs["geom"]
    raise GpcubeError(f"no 'geom' in the attrs of {getattr(obj, 'name', None) or type(obj).__name__}")


def _pixel_slice(obj: xr.DataArray | xr.Dataset, dim: str, origin: int, n_geom: int) -> slice:
    """The slice of the stored grid along ``dim`` that the object's ``dim`` coordinate covers."""
    if dim not in obj.dims:
        raise GpcubeError(f"the sky accessor needs a {dim!r} dimension, got dims {tuple(obj.dims)}")
    if dim not in obj.coords:  # no pixel-index coordinate: only the whole grid can be assumed
        if obj.sizes[dim] != n_geom:
            raise GpcubeError(f"no {dim!r} coord and {obj.sizes[dim]} pixels, not the geom's {n_geom}")
        return slice(0, n_geom)
    index = np.asarray(obj[dim].to_numpy())  # to_numpy: computes a lazy coordinate, also a dask-expr one
    if index.size == 0:
        return slice(0, 0)
    start, stop = int(index[0]) - origin, int(index[0]) - origin + index.size
    if not np.array_equal(index, index[0] + np.arange(index.size)) or start < 0 or stop > n_geom:
        raise GpcubeError(
            f"the {dim!r} pixel indices are not a contiguous increasing sub-range of the geometry's "
            f"[{origin}, {origin + n_geom}); reselect with a slice (e.g. isel({dim}=slice(a, b)))"
        )
    return slice(start, stop)


def _edges(obj: xr.DataArray | xr.Dataset, dim: str, axis: EnergyAxis | None) -> tuple[Any, Any]:
    """Lower and upper bin edges (TeV) along ``dim``: its ``<dim>_lo/_hi`` coords, else ``axis``."""
    if f"{dim}_lo" in obj.coords and f"{dim}_hi" in obj.coords:
        return np.atleast_1d(obj[f"{dim}_lo"].to_numpy()), np.atleast_1d(obj[f"{dim}_hi"].to_numpy())
    if axis is not None and axis.nbins == obj.sizes.get(dim):
        return axis.lo, axis.hi
    raise GpcubeError(f"no bin edges for {dim!r}: no {dim}_lo/{dim}_hi coords, no matching geometry axis")


def _sum_over(obj: xr.DataArray, dim: str) -> xr.DataArray:
    """``obj.sum(dim, keep_attrs=True)`` (NaNs skipped), lazily on dask arrays, those of dask's array
    query planning too (xarray's reductions of them are not implemented, dask 2026.8)."""
    return band_reduce(obj, dim, [slice(None)], "nansum").isel({dim: 0}, drop=True)


def _energy_axes(obj: xr.DataArray | xr.Dataset, geom: SkyGeom) -> tuple[EnergyAxis, ...]:
    """The geometry's energy axes restricted to the object's energy bins (axes without a dim are dropped)."""
    axes = []
    for axis in geom.axes:
        if axis.name not in obj.dims or obj.sizes[axis.name] == 0:
            continue
        lo, hi = _edges(obj, axis.name, axis)
        if not np.array_equal(lo[1:], hi[:-1]):
            raise GpcubeError(f"the {axis.name!r} bins are not contiguous: select them with a slice")
        axes.append(EnergyAxis(axis.name, np.append(lo, hi[-1])))
    return tuple(axes)


class _SkyAccessor:
    """Methods shared by the DataArray and Dataset accessors."""

    def __init__(self, obj: xr.DataArray | xr.Dataset) -> None:
        self._obj = obj

    @property
    def geom(self) -> SkyGeom:
        """The :class:`~gpcube.geom.SkyGeom` of the object's actual pixels and energy bins.

        Raises
        ------
        GpcubeError
            No ``geom`` attrs, not the grid's pixel dims (``y``/``x``, or ``irf_y``/``irf_x``), or a
            non-contiguous pixel or energy selection.
        """
        geom = SkyGeom.from_attrs(_geom_attrs(self._obj))
        sy = _pixel_slice(self._obj, geom.dims[0], geom.origin[1], geom.npix[1])
        sx = _pixel_slice(self._obj, geom.dims[1], geom.origin[0], geom.npix[0])
        return geom.slice((sy, sx)).with_axes(*_energy_axes(self._obj, geom))

    @property
    def wcs(self) -> WCS:
        """The 2-D celestial :class:`astropy.wcs.WCS` of :attr:`geom`."""
        return self.geom.wcs

    def world_coords(self) -> tuple[xr.DataArray, xr.DataArray]:
        """World coordinates of the pixel centres.

        Returns
        -------
        lon, lat : xarray.DataArray
            The object's ``lon`` and ``lat`` coordinates (``irf_lon``/``irf_lat`` on the coarse IRF
            grid): 2-D over the pixel dims, in deg in the geometry's frame (``attrs["frame"]``), lazy
            (computed when read), NaN where the projection is undefined. See :mod:`gpcube.geom.world`.
        """
        obj = self.with_world_coords()
        lon, lat = self.geom.world_names
        return obj[lon], obj[lat]

    def with_world_coords(self) -> xr.DataArray | xr.Dataset:
        """The object with the lazy world coordinates ``lon``/``lat`` of its grid and their index.

        Products of the makers and of :func:`gpcube.open_archive` already have them: this is for
        arrays built by hand (with ``attrs["geom"]``), or whose world coordinates were dropped.
        Until the pixel dims were renamed ``y``/``x`` (archive format 4), this added ``lon_world``/
        ``lat_world``: they are ``lon``/``lat`` now.
        """
        geom = self.geom
        if geom.world_names[0] in self._obj.coords:
            return self._obj
        return attach_world_coords(self._obj, geom)

    def interp_world(self, lon: Any, lat: Any, method: str = "linear", **kwargs: Any) -> Any:
        """Values at world coordinates, interpolated between pixel centres.

        The points go through the grid's reverse transform (:meth:`SkyGeom.world_to_pix`) to fractional
        pixel positions, where :meth:`xarray.DataArray.interp` interpolates along the pixel dims:
        interpolation in the projection plane, exact at pixel centres.

        Parameters
        ----------
        lon, lat : float or xarray.DataArray
            Degrees in the geometry's frame: scalars, or DataArrays of the same dims (one value per
            point; the result has those dims in place of the pixel dims).
        method : str
            :meth:`xarray.DataArray.interp` method (``"linear"``, ``"nearest"``, ``"cubic"``...).
        **kwargs
            Passed to :meth:`xarray.DataArray.interp` (e.g. ``kwargs={"fill_value": None}``).

        Returns
        -------
        xarray.DataArray or xarray.Dataset
            With scalar (or per-point) ``lon``/``lat`` coordinates holding the requested points; NaN
            for points outside the grid.
        """
        geom = self.geom
        (ydim, xdim), (lon_name, lat_name) = geom.dims, geom.world_names
        points = isinstance(lon, xr.DataArray)
        if points != isinstance(lat, xr.DataArray):
            raise GpcubeError("interp_world: give lon and lat both as floats or both as DataArrays")
        if points:
            x, y = geom.world_to_pix(lon.to_numpy(), lat.to_numpy())
        else:
            x, y = geom.world_to_pix(float(lon), float(lat))
        x, y = x + geom.origin[0], y + geom.origin[1]  # the pixel dims' coordinates are parent indices
        if points:
            x, y = xr.DataArray(x, dims=lon.dims), xr.DataArray(y, dims=lat.dims)
        else:
            x, y = float(x), float(y)
        obj = self._obj.drop_vars([n for n in (lon_name, lat_name) if n in self._obj.coords])
        if ydim not in obj.coords or xdim not in obj.coords:
            obj = obj.assign_coords(geom.to_coords())
        out = obj.interp({ydim: y, xdim: x}, method=method, **kwargs)
        world = (lon.variable, lat.variable) if points else (float(lon), float(lat))
        return out.assign_coords({lon_name: world[0], lat_name: world[1]})


@xr.register_dataarray_accessor("sky")
class SkyDataArrayAccessor(_SkyAccessor):
    """``DataArray.sky``: geometry, WCS, world coordinates, images and plots of a sky product."""

    def to_image(self, energy: int | float | str | Any | None = None) -> xr.DataArray:
        """The 2-D ``(y, x)`` image that :meth:`plot` draws (lazy if the array is).

        Parameters
        ----------
        energy : int, float, astropy.units.Quantity or "sum", optional
            For an array with an energy dim: a bin index (int), the bin containing an energy (float in
            TeV or a Quantity; bins are ``[lo, hi)``), or ``"sum"`` over the energy dim (the default).

        Returns
        -------
        xarray.DataArray
            ``(y, x)``, attrs kept, with scalar ``<dim>_lo``/``<dim>_hi`` coords of the energy range.
        """
        da = self._obj
        pixel = SkyGeom.from_attrs(_geom_attrs(da)).dims
        energy_dims = [d for d in da.dims if d in ENERGY_AXIS_NAMES]
        extra = [d for d in da.dims if d not in (*pixel, *energy_dims[:1])]
        if extra:
            raise GpcubeError(f"reduce the dims {extra} first (e.g. .isel() or .sum()) to get an image")
        if not energy_dims:
            if not (energy is None or isinstance(energy, str) and energy == "sum"):
                raise GpcubeError(f"energy={energy!r} given but the array has no energy dim")
            return da.transpose(*pixel)
        dim = energy_dims[0]
        axis = next((a for a in SkyGeom.from_attrs(_geom_attrs(da)).axes if a.name == dim), None)
        lo, hi = _edges(da, dim, axis)
        if energy is None or isinstance(energy, str) and energy == "sum":
            image, lo, hi = _sum_over(da, dim), lo[0], hi[-1]
        else:
            index = _energy_index(energy, lo, hi, dim)
            image, lo, hi = da.isel({dim: index}), lo[index], hi[index]
        return image.assign_coords({f"{dim}_lo": lo, f"{dim}_hi": hi}).transpose(*pixel)

    def plot(
        self,
        ax: Any = None,
        *,
        energy: int | float | str | Any | None = None,
        stretch: str = "linear",
        cmap: Any = "viridis",
        vmin: float | None = None,
        vmax: float | None = None,
        add_colorbar: bool = True,
        **kwargs: Any,
    ) -> Any:
        """Draw :meth:`to_image` on WCS axes (computed once if lazy).

        Parameters
        ----------
        ax : astropy.visualization.wcsaxes.WCSAxes, optional
            Axes on the same WCS (or on the WCS of the same parent grid: the image is placed by pixel
            offset); default a new ``plt.subplot(projection=self.wcs)``.
        energy : int, float, Quantity or "sum", optional
            See :meth:`to_image`.
        stretch : {"linear", "sqrt", "log"}
            Colour scale; ``"log"`` defaults ``vmin`` to the smallest positive pixel.
        cmap, vmin, vmax, **kwargs
            Passed to :meth:`matplotlib.axes.Axes.imshow`.
        add_colorbar : bool
            Add a colourbar labelled with the name and ``attrs["units"]``.

        Returns
        -------
        matplotlib.image.AxesImage
        """
        plt, colors, WCSAxes = _import_matplotlib()
        if stretch not in ("linear", "sqrt", "log"):
            raise GpcubeError(f"stretch must be 'linear', 'sqrt' or 'log', got {stretch!r}")
        if ax is not None and not isinstance(ax, WCSAxes):
            raise GpcubeError("ax must be WCSAxes, e.g. plt.subplot(projection=da.sky.wcs)")
        image = self.to_image(energy)
        geom = image.sky.geom
        ax = plt.subplot(projection=geom.wcs) if ax is None else ax
        dx, dy = _pixel_offset(ax.wcs, geom.wcs)
        data = np.asarray(image.to_numpy(), dtype=float)  # the one compute of a lazy array
        finite = data[np.isfinite(data)]
        if vmin is None and stretch != "linear":  # sqrt: from max(min, 0); log: from the smallest value > 0
            finite = finite[finite > 0] if stretch == "log" else np.maximum(finite, 0.0)
            vmin = float(finite.min()) if finite.size else None
        norm = {"linear": colors.Normalize, "log": colors.LogNorm}.get(stretch)
        norm = norm(vmin, vmax) if norm else colors.PowerNorm(0.5, vmin, vmax)
        extent = (dx - 0.5, dx + geom.npix[0] - 0.5, dy - 0.5, dy + geom.npix[1] - 0.5)
        im = ax.imshow(data, origin="lower", cmap=cmap, norm=norm, extent=extent, **kwargs)
        ax.coords[0].set_axislabel(_LABELS[geom.frame][0])
        ax.coords[1].set_axislabel(_LABELS[geom.frame][1])
        ax.set_title(_title(image))
        if add_colorbar:
            ax.figure.colorbar(im, ax=ax, label=_units_label(image))
        return im


@xr.register_dataset_accessor("sky")
class SkyDatasetAccessor(_SkyAccessor):
    """``Dataset.sky``: geometry, WCS and world coordinates of a set of sky products; plots of one."""

    def _var(self, name: str) -> xr.DataArray:
        da = self._obj[name]
        return da if "geom" in da.attrs else da.assign_attrs(geom=_geom_attrs(self._obj))

    def to_image(self, name: str, energy: Any = None) -> xr.DataArray:
        """:meth:`SkyDataArrayAccessor.to_image` of variable ``name``."""
        return self._var(name).sky.to_image(energy)

    def plot(self, name: str, ax: Any = None, **kwargs: Any) -> Any:
        """:meth:`SkyDataArrayAccessor.plot` of variable ``name``."""
        return self._var(name).sky.plot(ax, **kwargs)


def _import_matplotlib() -> tuple[Any, Any, Any]:
    try:
        import matplotlib.colors as colors
        import matplotlib.pyplot as plt
        from astropy.visualization.wcsaxes import WCSAxes
    except ImportError as exc:
        raise ImportError("plotting needs matplotlib: pip install gpcube[plot]") from exc
    return plt, colors, WCSAxes


def _energy_index(energy: Any, lo: np.ndarray, hi: np.ndarray, dim: str) -> int:
    """Index of the bin selected by an int index, an energy in TeV or a Quantity."""
    if isinstance(energy, int | np.integer) and not isinstance(energy, bool):
        if not -lo.size <= energy < lo.size:
            raise GpcubeError(f"energy bin index {energy} out of range for {lo.size} {dim!r} bins")
        return int(energy)
    if not isinstance(energy, float | np.floating) and not hasattr(energy, "unit"):
        raise GpcubeError(f"energy must be an int index, a float in TeV, a Quantity or 'sum', got {energy!r}")
    value = float(energy.to_value("TeV")) if hasattr(energy, "unit") else float(energy)
    inside = np.flatnonzero((lo <= value) & (value < hi))
    if inside.size == 0:
        raise GpcubeError(f"energy {value:g} TeV outside the {dim!r} bins [{lo[0]:g}, {hi[-1]:g}) TeV")
    return int(inside[0])


def _pixel_offset(ax_wcs: WCS, wcs: WCS) -> tuple[float, float]:
    """Pixel position in ``ax_wcs`` of pixel (0, 0) of ``wcs``; both must be on the same pixel grid."""
    a, b = ax_wcs.wcs, wcs.wcs
    shift = np.asarray(a.crpix) - np.asarray(b.crpix)
    same = list(a.ctype) == list(b.ctype) and all(
        np.allclose(getattr(a, key), getattr(b, key), rtol=0, atol=1e-10) for key in ("crval", "cdelt", "pc")
    )
    if not same or not np.allclose(shift, np.round(shift), rtol=0, atol=1e-9):
        raise GpcubeError("ax has a WCS on another pixel grid: use plt.subplot(projection=da.sky.wcs)")
    return float(np.round(shift[0])), float(np.round(shift[1]))


def _title(image: xr.DataArray) -> str:
    """Name and energy range (from the scalar ``energy_*_lo/_hi`` coords) of an image."""
    parts = [str(image.name)] if image.name is not None else []
    for dim in ENERGY_AXIS_NAMES:
        if f"{dim}_lo" in image.coords and image[f"{dim}_lo"].ndim == 0:
            lo, hi = float(image[f"{dim}_lo"]), float(image[f"{dim}_hi"])
            label = "energy band" if dim == BAND_DIM else f"{dim.removeprefix('energy_')} energy"
            parts.append(f"{label} {lo:.3g}-{hi:.3g} TeV")
    return ", ".join(parts)


def _units_label(image: xr.DataArray) -> str:
    units = str(image.attrs.get("units", "")).strip()
    name = str(image.name) if image.name is not None else ""
    return f"{name} [{units}]".strip() if units else name
