"""The thin dask/xarray layer of the makers: numpy block functions -> lazy DataArrays.

A product of one observation is a dask graph with one *load* task (read what the product needs from
the observation and prepare it for the blocks: e.g. project the events onto the cutout grid once) and
one task per lon/lat block of the cutout, each calling a pure numpy function on the loaded data and
the block's sub-geometry. Building the graph reads no file and computes nothing.

The graph is written out directly (a dict of tasks in one layer) rather than through
``dask.delayed`` and ``da.block``, and the coordinates of a grid are built once and shared by the
products on it: an observation makes about ten products, and that machinery cost more than their
arithmetic.

Inside :func:`computed_at_once` (what the archive's reduce task uses where it can), a product that
is a single block is computed there and then instead: the load and the block function run at once
and the DataArray holds numpy. Same functions, same numbers, without building, tokenising and
running a graph (~30 ms of an observation's ~180 ms). dask is imported only to build a graph.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from gpcube.geom import SkyGeom

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["DEFAULT_CHUNK", "block_slices", "blockwise_map", "computed_at_once", "lazy_cube"]

#: Default lon/lat block size in pixels: 256 x 256 x 20 energies is 10 MiB of float64.
DEFAULT_CHUNK = 256


def block_slices(n: int, chunk: int) -> list[slice]:
    """Consecutive slices of at most ``chunk`` covering ``range(n)``."""
    return [slice(start, min(start + chunk, n)) for start in range(0, n, chunk)]


_AT_ONCE: contextvars.ContextVar[bool] = contextvars.ContextVar("gpcube_at_once", default=False)


@contextlib.contextmanager
def computed_at_once() -> Iterator[None]:
    """Products of a single block made inside are computed at once and hold numpy (see the module
    docstring); larger ones stay lazy. For callers that compute the products right away anyway."""
    token = _AT_ONCE.set(True)
    try:
        yield
    finally:
        _AT_ONCE.reset(token)


@functools.cache
def _task_classes() -> tuple:
    """dask's explicit task classes (dask >= 2024.12, which dask does not have to parse), or Nones."""
    try:
        from dask._task_spec import Task, TaskRef
    except ImportError:  # pragma: no cover - older dask: tuple tasks
        return None, None
    return Task, TaskRef


def _task(key, func: Callable, *args, **kwargs):
    """A graph task ``func(*args, **kwargs)``; ``args`` may hold :func:`_ref` of other keys."""
    task = _task_classes()[0]
    if task is None:  # pragma: no cover
        return (functools.partial(func, **kwargs), *args) if kwargs else (func, *args)
    return task(key, func, *args, **kwargs)


def _ref(key):
    """A reference to the result of the task ``key``, as an argument of another task."""
    ref = _task_classes()[1]
    return key if ref is None else ref(key)


def _tokenize(*args) -> str:
    from dask.base import tokenize

    return tokenize(*args)


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
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

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
    rows, cols = block_slices(geom.shape[0], chunk), block_slices(geom.shape[1], chunk)
    chunks = (*((n,) for n in sizes), *(tuple(s.stop - s.start for s in ss) for ss in (rows, cols)))
    empty = not rows or not cols or 0 in sizes
    if _AT_ONCE.get() and (empty or len(rows) == len(cols) == 1):
        if empty:
            array = np.zeros(tuple(sum(c) for c in chunks), dtype=dtype)
        else:  # the graph's two tasks, run here
            array = block(load(*load_args), geom.slice((rows[0], cols[0])), **block_kwargs)
    elif empty:
        import dask.array as da

        array = da.zeros(tuple(sum(c) for c in chunks), dtype=dtype)
    else:
        token = _tokenize(
            load, load_args, block, geom, names, block_kwargs, chunk,
            {dim: {k: v.values for k, v in c.items()} for dim, c in extra_axes.items()},
        )  # fmt: skip
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


def blockwise_map(func: Callable, *arrays: da.Array | np.ndarray, dtype, name: str) -> da.Array | np.ndarray:
    """``func(*blocks)`` for each block of dask arrays chunked alike along their last two axes.

    Each array has one chunk along its leading axes (as :func:`lazy_cube` makes them); the result
    has the chunks of ``arrays[0]``. One task per block, without the generality (and the cost) of
    :func:`dask.array.blockwise`. Numpy arrays (products computed at once, see
    :func:`computed_at_once`: a single block each) give ``func(*arrays)``.
    """
    if not any(hasattr(a, "__dask_graph__") for a in arrays):
        return func(*arrays)
    first = arrays[0]
    for array in arrays:
        if array.chunks[-2:] != first.chunks[-2:] or any(len(c) != 1 for c in array.chunks[:-2]):
            raise ValueError("blockwise_map needs one leading chunk and the same lat/lon chunks")
    out_name = f"{name}-{_tokenize(func, name, *(a.name for a in arrays))}"
    graph = {}
    for i in range(len(first.chunks[-2])):
        for j in range(len(first.chunks[-1])):
            refs = [_ref((a.name, *(0,) * (a.ndim - 2), i, j)) for a in arrays]
            key = (out_name, *(0,) * (first.ndim - 2), i, j)
            graph[key] = _task(key, func, *refs)
    return _array(out_name, graph, first.chunks, dtype, dependencies=arrays)
