"""The thin dask/xarray layer of the makers: numpy block functions -> lazy DataArrays.

A product of one observation is a dask graph with one *load* task (read what the product needs from
the observation and prepare it for the blocks: e.g. project the events onto the cutout grid once) and
one task per lon/lat block of the cutout, each calling a pure numpy function on the loaded data and
the block's sub-geometry. Building the graph reads no file and computes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import dask
import dask.array as da
import xarray as xr

from gpcube.geom import SkyGeom

__all__ = ["DEFAULT_CHUNK", "block_slices", "lazy_cube"]

#: Default lon/lat block size in pixels: 256 x 256 x 20 energies is 10 MiB of float64.
DEFAULT_CHUNK = 256


def block_slices(n: int, chunk: int) -> list[slice]:
    """Consecutive slices of at most ``chunk`` covering ``range(n)``."""
    return [slice(start, min(start + chunk, n)) for start in range(0, n, chunk)]


def _leading_axes(geom: SkyGeom, axis_name, extra_axes: dict) -> tuple[tuple, tuple, dict]:
    """Names, sizes and coordinates of the dims in front of ``(lat, lon)``."""
    names = () if axis_name is None else (axis_name,) if isinstance(axis_name, str) else tuple(axis_name)
    sizes, coords = [], {}
    for dim in names:
        if dim in extra_axes:
            dim_coords = extra_axes[dim]
            sizes.append(len(dim_coords[dim]))
        else:
            dim_coords = geom.axis(dim).to_coords()
            sizes.append(geom.axis(dim).nbins)
        coords.update(dim_coords)
    return names, tuple(sizes), coords


def lazy_cube(
    load: Callable,
    load_args: tuple,
    block: Callable,
    geom: SkyGeom,
    axis_name: str | tuple[str, ...] | None,
    *,
    name: str,
    dtype,
    attrs: dict,
    chunk: int = DEFAULT_CHUNK,
    block_kwargs: dict | None = None,
    extra_axes: dict | None = None,
) -> xr.DataArray:
    """A lazy ``(*axis_name, lat, lon)`` DataArray over ``geom``.

    Parameters
    ----------
    load : callable
        ``load(*load_args)``, run once per product in its own task.
    block : callable
        ``block(loaded, block_geom, **block_kwargs)`` returning the numpy block for ``block_geom``
        (a :meth:`SkyGeom.slice` of ``geom``), of shape ``(*leading sizes, ny, nx)``.
    geom : SkyGeom
        The grid of the product (usually an observation's cutout of the mosaic geometry).
    axis_name : str, tuple of str or None
        The dims in front of ``(lat, lon)``: energy axes of ``geom`` or keys of ``extra_axes``.
    name : str
        Name of the DataArray and prefix of the dask keys.
    extra_axes : dict, optional
        ``{dim: coords}`` for leading dims that are not energy axes of ``geom`` (e.g. ``rad``);
        ``coords`` maps coordinate names to :class:`xarray.Variable` along ``dim``, and must hold
        ``coords[dim]``.
    """
    block_kwargs = block_kwargs or {}
    extra_axes = extra_axes or {}
    names, sizes, axis_coords = _leading_axes(geom, axis_name, extra_axes)
    token = dask.base.tokenize(
        load, load_args, block, geom.to_attrs(), names, block_kwargs, chunk,
        {dim: {k: v.values for k, v in c.items()} for dim, c in extra_axes.items()},
    )  # fmt: skip
    loaded = dask.delayed(load, pure=True)(*load_args, dask_key_name=f"{name}-load-{token}")
    dims = (*names, "lat", "lon")
    rows = []
    for sy in block_slices(geom.shape[0], chunk) or [slice(0, 0)]:
        row = []
        for sx in block_slices(geom.shape[1], chunk) or [slice(0, 0)]:
            sub = geom.slice((sy, sx))
            shape = (*sizes, *sub.shape)
            if 0 in shape:
                row.append(da.zeros(shape, dtype=dtype))
                continue
            key = f"{name}-{token}-{sy.start}-{sx.start}"
            task = dask.delayed(block, pure=True)(loaded, sub, dask_key_name=key, **block_kwargs)
            row.append(da.from_delayed(task, shape=shape, dtype=dtype, name=key + "-array"))
        rows.append(row)
    nested = rows
    for _ in names:
        nested = [nested]
    array = da.block(nested)
    attrs = {**attrs, "geom": geom.to_attrs()}
    coords = {k: v for k, v in geom.to_coords().items() if set(v.dims) <= {"lat", "lon"}}
    coords.update(axis_coords)
    return xr.DataArray(array, dims=dims, coords=coords, name=name, attrs=attrs)
