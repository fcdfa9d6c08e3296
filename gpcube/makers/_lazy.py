"""The thin dask/xarray layer of the makers: numpy block functions -> lazy DataArrays.

A product of one observation is a dask graph with one *load* task (read what the product needs from
the observation and prepare it for the blocks: e.g. project the events onto the cutout grid once) and
one task per lon/lat block of the cutout, each calling a pure numpy function on the loaded data and
the block's sub-geometry. Building the graph reads no file and computes nothing.

The graph is written out directly (a dict of tasks in one layer) rather than through
``dask.delayed`` and ``da.block``, and the coordinates of a grid are built once and shared by the
products on it: an observation makes about ten products, and that machinery cost more than their
arithmetic.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable, Sequence

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask.highlevelgraph import HighLevelGraph

from gpcube.geom import SkyGeom

try:  # dask >= 2024.12: explicit tasks, which dask does not have to parse
    from dask._task_spec import Task, TaskRef
except ImportError:  # pragma: no cover - older dask: tuple tasks
    Task = TaskRef = None

__all__ = ["DEFAULT_CHUNK", "block_slices", "blockwise_map", "lazy_cube"]

#: Default lon/lat block size in pixels: 256 x 256 x 20 energies is 10 MiB of float64.
DEFAULT_CHUNK = 256


def block_slices(n: int, chunk: int) -> list[slice]:
    """Consecutive slices of at most ``chunk`` covering ``range(n)``."""
    return [slice(start, min(start + chunk, n)) for start in range(0, n, chunk)]


def _task(key, func: Callable, *args, **kwargs):
    """A graph task ``func(*args, **kwargs)``; ``args`` may hold :func:`_ref` of other keys."""
    if Task is None:  # pragma: no cover
        return (functools.partial(func, **kwargs), *args) if kwargs else (func, *args)
    return Task(key, func, *args, **kwargs)


def _ref(key):
    """A reference to the result of the task ``key``, as an argument of another task."""
    return key if TaskRef is None else TaskRef(key)


def _leading_axes(geom: SkyGeom, axis_name, extra_axes: dict) -> tuple[tuple, tuple]:
    """Names and sizes of the dims in front of ``(lat, lon)``."""
    names = () if axis_name is None else (axis_name,) if isinstance(axis_name, str) else tuple(axis_name)
    sizes = tuple(len(extra_axes[d][d]) if d in extra_axes else geom.axis(d).nbins for d in names)
    return names, sizes


def _coords(geom: SkyGeom, names: tuple[str, ...], extra_axes: dict) -> dict[str, xr.Variable]:
    """The coordinates of a ``(*names, lat, lon)`` product on ``geom`` (fresh copies)."""
    coords = {k: v for k, v in geom.to_coords().items() if set(v.dims) <= {"lat", "lon"}}
    for dim in names:
        coords.update(extra_axes[dim] if dim in extra_axes else geom.axis(dim).to_coords())
    return {k: v.copy(deep=True) for k, v in coords.items()}


def _extra_key(extra_axes: dict) -> tuple:
    """A hashable stand-in for ``extra_axes``: dims, names, values and attrs of its coordinates."""
    return tuple(
        (
            dim,
            tuple(
                (k, v.dims, v.dtype.str, v.values.tobytes(), repr(sorted(v.attrs.items())))
                for k, v in c.items()
            ),
        )
        for dim, c in extra_axes.items()
    )


_TEMPLATES: collections.OrderedDict = collections.OrderedDict()
_MAX_TEMPLATES = 32


def _template(geom: SkyGeom, names: tuple[str, ...], extra_axes: dict) -> xr.DataArray:
    """A DataArray with the ``(*names, lat, lon)`` coordinates of ``geom``, to copy products from.

    Building coordinates and their indexes costs more than the rest of a lazy product; the products of
    one grid share them (read-only) through shallow copies of this template, kept for the last few
    grids. Its data is a broadcast scalar, which takes no memory.
    """
    key = (geom, names, _extra_key(extra_axes))
    template = _TEMPLATES.get(key)
    if template is None:
        sizes = _leading_axes(geom, names, extra_axes)[1]
        data = np.broadcast_to(np.zeros((), dtype=np.int8), (*sizes, *geom.shape))
        template = xr.DataArray(data, dims=(*names, "lat", "lon"), coords=_coords(geom, names, extra_axes))
        for name in template.coords:  # shared by the products made from it: nobody may change them
            values = template.coords[name].variable.values
            if isinstance(values, np.ndarray):
                values.setflags(write=False)
        _TEMPLATES[key] = template
        while len(_TEMPLATES) > _MAX_TEMPLATES:
            _TEMPLATES.popitem(last=False)
    return template


def _array(name: str, graph: dict, chunks: tuple, dtype, dependencies: Sequence = ()) -> da.Array:
    layer = HighLevelGraph.from_collections(name, graph, dependencies=dependencies)
    return da.Array(layer, name, chunks, dtype=dtype)


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
    names, sizes = _leading_axes(geom, axis_name, extra_axes)
    token = dask.base.tokenize(
        load, load_args, block, geom, names, block_kwargs, chunk,
        {dim: {k: v.values for k, v in c.items()} for dim, c in extra_axes.items()},
    )  # fmt: skip
    rows, cols = block_slices(geom.shape[0], chunk), block_slices(geom.shape[1], chunk)
    chunks = (*((n,) for n in sizes), *(tuple(s.stop - s.start for s in ss) for ss in (rows, cols)))
    if not rows or not cols or 0 in sizes:
        array = da.zeros(tuple(sum(c) for c in chunks), dtype=dtype)
    else:
        load_key, array_name = f"{name}-load-{token}", f"{name}-{token}"
        graph = {load_key: _task(load_key, load, *load_args)}
        lead = (0,) * len(names)
        for i, sy in enumerate(rows):
            for j, sx in enumerate(cols):
                key = (array_name, *lead, i, j)
                graph[key] = _task(key, block, _ref(load_key), geom.slice((sy, sx)), **block_kwargs)
        array = _array(array_name, graph, chunks, dtype)
    out = _template(geom, names, extra_axes).copy(deep=False, data=array)
    out.name, out.attrs = name, {**attrs, "geom": geom.to_attrs()}
    return out


def blockwise_map(func: Callable, *arrays: da.Array, dtype, name: str) -> da.Array:
    """``func(*blocks)`` for each block of dask arrays chunked alike along their last two axes.

    Each array has one chunk along its leading axes (as :func:`lazy_cube` makes them); the result
    has the chunks of ``arrays[0]``. One task per block, without the generality (and the cost) of
    :func:`dask.array.blockwise`.
    """
    first = arrays[0]
    for array in arrays:
        if array.chunks[-2:] != first.chunks[-2:] or any(len(c) != 1 for c in array.chunks[:-2]):
            raise ValueError("blockwise_map needs one leading chunk and the same lat/lon chunks")
    out_name = f"{name}-{dask.base.tokenize(func, name, *(a.name for a in arrays))}"
    graph = {}
    for i in range(len(first.chunks[-2])):
        for j in range(len(first.chunks[-1])):
            refs = [_ref((a.name, *(0,) * (a.ndim - 2), i, j)) for a in arrays]
            key = (out_name, *(0,) * (first.ndim - 2), i, j)
            graph[key] = _task(key, func, *refs)
    return _array(out_name, graph, first.chunks, dtype, dependencies=arrays)
