"""World coordinates of a sky grid as lazy xarray coordinates, with an index that selects by degrees.

A sky product has pixel dims ``(y, x)`` whose coordinates are integer pixel indices in the parent
(mosaic) grid. :func:`world_coords` adds ``lon`` and ``lat`` (deg, in the grid's frame) as 2-D
coordinates over ``(y, x)``, computed from the grid (:class:`~gpcube.geom.SkyGeom`) only for the pixels
that are read, and indexed by :class:`SkyWorldIndex`, an :class:`xarray.indexes.CoordinateTransformIndex`
built on :meth:`SkyGeom.pix_to_world` / :meth:`SkyGeom.world_to_pix` (CAR and TAN, icrs and galactic):

- ``da.sel(lon=83.633, lat=22.014, method="nearest")`` selects the pixel containing the point, as
  :meth:`SkyGeom.coord_to_idx`; DataArray labels select points (vectorised, like xarray's point-wise
  indexing); ``tolerance`` (deg) bounds the distance between the point and the chosen pixel's centre.
- a selection that cannot be honoured raises :class:`WorldSelectionError` (a ``KeyError``): a point
  outside the grid, ``lon`` without ``lat``, no ``method="nearest"``.
- ``isel`` with slices keeps a (shifted) index, so a sub-region still selects by degrees.
- products on different extents of one parent grid (a cutout and the mosaic) align: the index joins
  and reindexes by pixel, as the ``x``/``y`` pixel-index coordinates do.

The coarse IRF grid has dims ``(irf_y, irf_x)`` and coordinates ``irf_lon``/``irf_lat`` (its own
names, so that both grids' products fit in one Dataset or DataTree).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import xarray as xr
from xarray.core.indexing import IndexSelResult
from xarray.indexes import CoordinateTransform, CoordinateTransformIndex

from gpcube.errors import GpcubeError
from gpcube.geom.sky import SkyGeom

__all__ = [
    "WorldVariable",
    "SkyTransform",
    "SkyWorldIndex",
    "WorldSelectionError",
    "attach_world_coords",
    "coordinates_with_world",
    "world_coords",
]

_LONG_NAMES = {
    "galactic": ("Galactic longitude", "Galactic latitude"),
    "icrs": ("Right ascension", "Declination"),
}


class WorldSelectionError(GpcubeError, KeyError):
    """A selection by world coordinates that cannot be honoured (a :class:`KeyError`, as xarray's)."""

    __str__ = Exception.__str__  # the message, not KeyError's repr of it


def _sky_grid(geom: SkyGeom) -> SkyGeom:
    """The 2-D grid of ``geom``: energy axes dropped (they do not change the pixels)."""
    return geom.with_axes() if geom.axes else geom


class SkyTransform(CoordinateTransform):
    """Pixel ``(y, x)`` <-> world ``(lon, lat)`` of a :class:`~gpcube.geom.SkyGeom` (deg, its frame).

    Parameters
    ----------
    geom : SkyGeom
        The grid of the array (a cutout keeps its ``origin`` in the parent); energy axes are ignored.

    Notes
    -----
    ``lon`` is continuous over the grid: the reference longitude (``crval``) is in [0, 360) and the
    other longitudes within 180 deg of it, so a grid across longitude 0 (the Galactic centre) has
    negative longitudes (or above 360) on one side rather than a jump of 360 deg in the middle.
    Selection takes any longitude (modulo 360).
    """

    def __init__(self, geom: SkyGeom) -> None:
        self.geom = _sky_grid(geom)
        (ydim, xdim), (ny, nx) = self.geom.dims, self.geom.shape
        super().__init__(self.geom.world_names, {ydim: ny, xdim: nx}, dtype=np.dtype(np.float64))

    def forward(self, dim_positions: dict[str, Any]) -> dict[Hashable, Any]:
        """World coordinates (deg) of 0-based pixel positions along ``(y, x)``."""
        y, x = np.broadcast_arrays(dim_positions[self.dims[0]], dim_positions[self.dims[1]])
        lon, lat = self.geom.pix_to_world(x, y)
        lon0 = self.geom.crval[0]
        lon = lon0 + (lon - lon0 + 180.0) % 360.0 - 180.0
        return {self.coord_names[0]: lon, self.coord_names[1]: lat}

    def reverse(self, coord_labels: dict[Hashable, Any]) -> dict[str, Any]:
        """Fractional 0-based pixel positions along ``(y, x)`` of world coordinates (NaN: no projection)."""
        x, y = self.geom.world_to_pix(coord_labels[self.coord_names[0]], coord_labels[self.coord_names[1]])
        return {self.dims[0]: y, self.dims[1]: x}

    def equals(self, other: CoordinateTransform, exclude: frozenset | None = None) -> bool:
        """Same grid (pixels, frame, projection, extent) and names."""
        return (
            isinstance(other, SkyTransform)
            and self.geom == other.geom
            and self.dims == other.dims
            and self.coord_names == other.coord_names
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.geom!r})"


class WorldVariable(xr.Variable):
    """A world coordinate that dask tokenises by its grid, not by its values.

    xarray tokenises a variable by its data (``Variable.__dask_tokenize__`` reads ``.data``), which
    for a lazy world coordinate means computing ``lon`` and ``lat`` on every pixel: each
    ``dask.compute(product)``, ``dask.delayed`` or ``xarray.map_blocks`` of a product would pay for
    it (25 ms for a 250 x 250 cutout, seconds for a survey mosaic). The values are a function of the
    grid, the coordinate's name and its dims, so those are the token. Once indexed or computed (no
    longer the transform's own lazy array), the variable is tokenised as any other.
    """

    __slots__ = ()

    def __dask_tokenize__(self) -> object:
        from dask.base import normalize_token

        data = self._data
        transform = getattr(data, "_transform", None)
        if not isinstance(transform, SkyTransform):
            return super().__dask_tokenize__()
        key = (transform.geom.to_attrs(), data._coord_name, data._dims)
        return normalize_token((type(self), self._dims, key, self._attrs or None))


def _parent_box(geom: SkyGeom) -> tuple[int, int, int, int]:
    """``(x0, x1, y0, y1)``: the pixels of ``geom`` in its parent grid."""
    (x0, y0), (nx, ny) = geom.origin, geom.npix
    return x0, x0 + nx, y0, y0 + ny


def _same_parent(a: SkyGeom, b: SkyGeom) -> bool:
    """Whether two grids are extents of one parent grid (same pixels where they overlap)."""
    return _parent_key(a) == _parent_key(b)


def _parent_key(g: SkyGeom) -> tuple:
    """What extents of one parent grid share: all but the extent (and the parent's crpix in place of
    the extent's)."""
    parent_crpix = (g.crpix[0] + g.origin[0], g.crpix[1] + g.origin[1])
    return g.frame, g.projection, g.crval, g.binsz, parent_crpix, g.dims


def _with_box(geom: SkyGeom, box: tuple[int, int, int, int]) -> SkyGeom:
    """The extent ``box`` (``(x0, x1, y0, y1)`` in the parent) of the parent grid of ``geom``."""
    x0, x1, y0, y1 = box
    nx, ny = max(x1 - x0, 0), max(y1 - y0, 0)
    crpix = (geom.crpix[0] + geom.origin[0] - x0, geom.crpix[1] + geom.origin[1] - y0)
    return dataclasses.replace(geom, npix=(nx, ny), crpix=crpix, origin=(x0, y0))


def _scalar_slice(indexer: Any, size: int) -> tuple[int, int] | None:
    """``(start, stop)`` of an ``isel`` indexer that is a slice of step 1; None otherwise."""
    if not isinstance(indexer, slice):
        return None
    start, stop, step = indexer.indices(size)
    return (start, max(stop, start)) if step == 1 else None


class SkyWorldIndex(CoordinateTransformIndex):
    """The index of a sky grid's world coordinates: selection by degrees, slicing, alignment.

    Build it with :func:`world_coords`. See the module docstring for
    what ``sel``, ``isel`` and alignment do.
    """

    transform: SkyTransform

    def __init__(self, transform: SkyTransform) -> None:
        if not isinstance(transform, SkyTransform):
            raise TypeError(f"SkyWorldIndex wraps a SkyTransform, got {type(transform).__name__}")
        super().__init__(transform)

    @classmethod
    def from_geom(cls, geom: SkyGeom) -> SkyWorldIndex:
        """The index of ``geom``'s pixels."""
        return cls(SkyTransform(geom))

    @property
    def geom(self) -> SkyGeom:
        """The 2-D grid (no energy axes) that the index covers."""
        return self.transform.geom

    def _renamed(self, geom: SkyGeom) -> SkyWorldIndex:
        """An index of ``geom`` keeping this index's (possibly renamed) dims and coordinate names."""
        transform = SkyTransform(geom)
        transform.coord_names = self.transform.coord_names
        transform.dims = self.transform.dims
        transform.dim_size = dict(zip(transform.dims, geom.shape, strict=True))
        return type(self)(transform)

    # ---------------------------------------------------------------------------- variables
    def create_variables(self, variables: Mapping[Any, xr.Variable] | None = None) -> dict:
        """The lazy ``lon``/``lat`` variables, with units, frame and long name unless given."""
        out = super().create_variables(variables)
        names = _LONG_NAMES[self.geom.frame]
        for name, long_name in zip(self.transform.coord_names, names, strict=True):
            var = out[name]
            attrs = var.attrs or {"units": "deg", "frame": self.geom.frame, "long_name": long_name}
            out[name] = WorldVariable(var.dims, var._data, attrs=attrs)
        return out

    # ---------------------------------------------------------------------------- selection
    def isel(self, indexers: Mapping[Any, Any]) -> SkyWorldIndex | None:
        """A shifted index for slices of step 1 along the pixel dims; None (index dropped, the
        coordinates kept as plain values) for anything else (an integer, a list, a stepped slice)."""
        ydim, xdim = self.transform.dims
        (ny, nx) = self.geom.shape
        rows = _scalar_slice(indexers.get(ydim, slice(None)), ny)
        cols = _scalar_slice(indexers.get(xdim, slice(None)), nx)
        if rows is None or cols is None:
            return None
        return self._renamed(self.geom.slice((slice(*rows), slice(*cols))))

    def sel(self, labels: dict[Any, Any], method: str | None = None, tolerance: Any = None) -> IndexSelResult:
        """The pixel containing each point ``(lon, lat)`` (deg, in the grid's frame).

        Parameters
        ----------
        labels : dict
            ``{lon_name: ..., lat_name: ...}``: both, scalars or DataArrays of the same dims
            (point-wise selection along those dims).
        method : {"nearest"}
            Required: world coordinates are never exactly equal to a pixel centre.
        tolerance : float, optional
            Largest angular distance (deg) from a point to the centre of its pixel.

        Raises
        ------
        WorldSelectionError
            A coordinate missing, another method, a point outside the grid or beyond ``tolerance``.
        """
        lon_name, lat_name = self.transform.coord_names
        where = f"selection by {lon_name!r}/{lat_name!r}"
        missing = [name for name in (lon_name, lat_name) if name not in labels]
        if missing:
            raise WorldSelectionError(f"{where} needs both coordinates: {missing[0]!r} is missing")
        if method != "nearest":
            raise WorldSelectionError(
                f"{where} selects the pixel containing a point: pass method='nearest' (got method={method!r})"
            )
        lon, lat, dims = _labels(labels[lon_name], labels[lat_name], where)
        positions = self.transform.reverse({lon_name: lon, lat_name: lat})
        out = {}
        for dim, size in zip(self.transform.dims, self.geom.shape, strict=True):
            pos = np.floor(np.asarray(positions[dim], dtype=float) + 0.5)
            bad = ~((pos >= 0) & (pos < size))
            if bad.any():
                first = np.flatnonzero(np.ravel(bad))[0]
                point = (float(np.ravel(lon)[first]), float(np.ravel(lat)[first]))
                raise WorldSelectionError(
                    f"{where}: the point {point} (deg, {self.geom.frame}) is outside the grid {self.geom!r}"
                )
            out[dim] = pos.astype(np.int64)
        if tolerance is not None:
            _check_tolerance(self.geom, out, lon, lat, float(tolerance), where, self.transform.dims)
        if dims is None:
            return IndexSelResult({dim: int(pos) for dim, pos in out.items()})
        return IndexSelResult({dim: xr.Variable(dims, pos) for dim, pos in out.items()})

    # ---------------------------------------------------------------------------- alignment
    def equals(self, other: Any, *, exclude: frozenset | None = None) -> bool:
        return isinstance(other, SkyWorldIndex) and self.transform.equals(other.transform)

    def join(self, other: SkyWorldIndex, how: str = "inner") -> SkyWorldIndex:
        """The intersection (``inner``) or union (``outer``) of two extents of one parent grid."""
        if not isinstance(other, SkyWorldIndex) or not _same_parent(self.geom, other.geom):
            raise GpcubeError(
                f"cannot align sky products on different pixel grids: {self.geom!r} and "
                f"{getattr(other, 'geom', other)!r} (only extents of one parent grid align)"
            )
        a, b = _parent_box(self.geom), _parent_box(other.geom)
        if how == "inner":
            box = (max(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), min(a[3], b[3]))
        elif how == "outer":
            box = (min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3]))
        else:
            raise GpcubeError(f"join {how!r} is not supported by sky world coordinates ('inner' or 'outer')")
        return self._renamed(_with_box(self.geom, box))

    def reindex_like(self, other: SkyWorldIndex, method: Any = None, tolerance: Any = None) -> dict:
        """Positions in this extent of the pixels of ``other`` (-1 where this extent has none)."""
        if not isinstance(other, SkyWorldIndex) or not _same_parent(self.geom, other.geom):
            raise GpcubeError(f"cannot reindex {self.geom!r} like {getattr(other, 'geom', other)!r}")
        out = {}
        for dim, i in zip(self.transform.dims, (1, 0), strict=True):
            pos = other.geom.origin[i] + np.arange(other.geom.npix[i]) - self.geom.origin[i]
            out[dim] = np.where((pos >= 0) & (pos < self.geom.npix[i]), pos, -1)
        return out

    def _repr_inline_(self, max_width: int) -> str:
        g = self.geom
        return f"SkyWorldIndex ({g.frame} {g.projection}, {g.binsz:g} deg, origin {g.origin})"


def _labels(lon: Any, lat: Any, where: str) -> tuple[np.ndarray, np.ndarray, tuple | None]:
    """The points as arrays and the dims of the result (None: scalars)."""
    array_like = [isinstance(v, xr.DataArray | xr.Variable) for v in (lon, lat)]
    if any(array_like):
        if not all(array_like) or lon.dims != lat.dims or lon.shape != lat.shape:
            raise WorldSelectionError(f"{where}: give both as DataArrays of the same dims (point-wise)")
        lon_values, lat_values = lon.to_numpy().astype(float), lat.to_numpy().astype(float)
        return lon_values, lat_values, tuple(lon.dims)
    if np.ndim(lon) or np.ndim(lat):
        raise WorldSelectionError(
            f"{where}: give scalars, or DataArrays for several points, e.g. "
            "lon=xr.DataArray([...], dims='points'), lat=xr.DataArray([...], dims='points')"
        )
    try:
        return np.asarray(float(lon)), np.asarray(float(lat)), None
    except (TypeError, ValueError):
        raise WorldSelectionError(f"{where}: labels must be numbers in deg, got {lon!r}, {lat!r}") from None


def _check_tolerance(
    geom: SkyGeom, pixels: dict, lon: Any, lat: Any, tolerance: float, where: str, dims: tuple
) -> None:
    """Raise if a point is farther than ``tolerance`` deg from the centre of the pixel selected for it."""
    from gpcube.geom import _projection as proj

    x, y = pixels[dims[1]], pixels[dims[0]]
    centre = np.stack(proj.lonlat_to_vec(*geom.pix_to_world(x, y)))
    point = np.stack(proj.lonlat_to_vec(lon, lat))
    distance = np.degrees(np.arctan2(np.linalg.norm(np.cross(centre, point, axis=0), axis=0),
                                     np.sum(centre * point, axis=0)))  # fmt: skip
    if np.any(distance > tolerance):
        raise WorldSelectionError(
            f"{where}: a point is {float(np.max(distance)):.4g} deg from the centre of its pixel, more than "
            f"tolerance={tolerance:g}"
        )


def world_coords(geom: SkyGeom) -> xr.Coordinates:
    """Lazy world coordinates of ``geom`` over its pixel dims, indexed by :class:`SkyWorldIndex`."""
    return xr.Coordinates.from_xindex(SkyWorldIndex.from_geom(geom))


def coordinates_with_world(geom: SkyGeom, coords: Mapping[str, xr.Variable]) -> xr.Coordinates:
    """``coords`` (pixel indices, energy bins: default indexes) and the world coordinates of ``geom``,
    as one :class:`xarray.Coordinates` for a new DataArray: half the cost of ``assign_coords`` on it,
    which aligns the two sets."""
    plain = xr.Coordinates(dict(coords))
    index = SkyWorldIndex.from_geom(geom)
    world = index.create_variables()
    return xr.Coordinates(
        {**plain.variables, **world}, indexes={**plain.xindexes, **dict.fromkeys(world, index)}
    )


def attach_world_coords(obj: xr.DataArray | xr.Dataset, geom: SkyGeom | None = None) -> Any:
    """``obj`` with the world coordinates of its sky grid(s) (a new object; the data is not copied).

    Parameters
    ----------
    obj : xarray.DataArray or xarray.Dataset
        Products with pixel dims and ``attrs["geom"]`` (on the object or on its data variables).
    geom : SkyGeom, optional
        The grid of the object's pixel dims; default read from the attrs. A Dataset holding both a
        sky-grid and an IRF-grid product gets the coordinates of both (``lon``/``lat`` and
        ``irf_lon``/``irf_lat``).

    Returns
    -------
    xarray.DataArray or xarray.Dataset
        Unchanged if no grid is found or its coordinates are already there. The grid is cut to the
        object's pixels when its ``y``/``x`` coordinates select a contiguous sub-range.
    """
    grids = [geom] if geom is not None else _grids(obj)
    for grid in grids:
        if grid.world_names[0] in obj.coords or not set(grid.dims) <= set(obj.dims):
            continue
        grid = _fitted(obj, grid)
        if grid is not None:
            obj = obj.assign_coords(world_coords(grid))
    return obj


def _grids(obj: xr.DataArray | xr.Dataset) -> list[SkyGeom]:
    """The grids in the attrs of ``obj`` and of its data variables, one per pair of pixel dims."""
    found: dict[tuple, SkyGeom] = {}
    sources = [obj.attrs] + ([v.attrs for v in obj.data_vars.values()] if isinstance(obj, xr.Dataset) else [])
    for attrs in sources:
        if "geom" not in attrs:
            continue
        try:
            grid = _sky_grid(SkyGeom.from_attrs(attrs["geom"]))
        except GpcubeError:
            continue
        found.setdefault(grid.dims, grid)
    return list(found.values())


def _fitted(obj: xr.DataArray | xr.Dataset, grid: SkyGeom) -> SkyGeom | None:
    """``grid`` cut to the pixels that ``obj``'s pixel-index coordinates hold; None if they are not a
    contiguous increasing range of it (or sizes disagree without coordinates)."""
    slices = []
    for dim, origin, n in zip(grid.dims, grid.origin[::-1], grid.npix[::-1], strict=True):
        size = obj.sizes[dim]
        if dim not in obj.coords:
            if size != n:
                return None
            slices.append(slice(0, n))
            continue
        index = np.asarray(obj[dim].values)
        start = int(index[0]) - origin if index.size else 0
        if index.size and not np.array_equal(index, index[0] + np.arange(index.size)):
            return None
        if start < 0 or start + size > n:
            return None
        slices.append(slice(start, start + size))
    return grid.slice(tuple(slices))
