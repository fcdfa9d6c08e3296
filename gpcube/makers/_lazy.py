"""The thin dask/xarray layer of the makers: numpy block functions -> lazy DataArrays.

A product of one observation is a dask array with one *load* task (read what the product needs from
the observation and prepare it for the blocks: e.g. project the events onto the cutout grid once) and
one task per y/x block of the cutout, each calling a pure numpy function on the loaded data and
the block's sub-geometry. Building the graph reads no file and computes nothing.

Both are made with dask's public array API, which also works with dask's array query planning
(``array.query-planning``): the load is a 0-d :func:`dask.array.blockwise` array whose one block is
the loaded object, the blocks a :func:`dask.array.map_blocks` over it (the block's position comes from
``block_id``). A product of one block (most cutouts) is a single task that loads and runs the block
function: a :func:`dask.array.blockwise` without inputs, which costs dask less to build and run.

The coordinates of a grid are built once and shared by the products on it: an observation makes
about ten products, and that machinery cost more than their arithmetic.

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
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from gpcube.geom import SkyGeom, pixel_dims
from gpcube.geom.world import coordinates_with_world

if TYPE_CHECKING:
    import dask.array as da

__all__ = [
    "DEFAULT_CHUNK",
    "block_slices",
    "blockwise_map",
    "chunked_like",
    "computed_at_once",
    "lazy_cube",
    "masked_sum",
]

#: Default y/x block size in pixels: 256 x 256 x 20 energies is 10 MiB of float64.
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


def _tokenize(*args) -> str:
    from dask.base import tokenize

    return tokenize(*args)


def _leading_axes(geom: SkyGeom, axis_name, extra_axes: dict) -> tuple[tuple, tuple]:
    """Names and sizes of the dims in front of the pixel dims ``(y, x)``."""
    names = () if axis_name is None else (axis_name,) if isinstance(axis_name, str) else tuple(axis_name)
    sizes = tuple(len(extra_axes[d][d]) if d in extra_axes else geom.axis(d).nbins for d in names)
    return names, sizes


def _coords(geom: SkyGeom, names: tuple[str, ...], extra_axes: dict) -> dict[str, xr.Variable]:
    """The coordinates of a ``(*names, y, x)`` product on ``geom`` (fresh copies)."""
    coords = {k: v for k, v in geom.to_coords().items() if set(v.dims) <= set(geom.dims)}
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
    """A DataArray with the ``(*names, y, x)`` coordinates of ``geom``, to copy products from, and its
    world coordinates (lazy ``lon``/``lat``, :func:`gpcube.geom.world.world_coords`).

    Building coordinates and their indexes costs more than the rest of a lazy product; the products of
    one grid share them (read-only) through shallow copies of this template, kept for the last few
    grids. Its data is a broadcast scalar, which takes no memory.
    """
    key = (geom, names, _extra_key(extra_axes))
    template = _TEMPLATES.get(key)
    if template is None:
        sizes = _leading_axes(geom, names, extra_axes)[1]
        data = np.broadcast_to(np.zeros((), dtype=np.int8), (*sizes, *geom.shape))
        coords = coordinates_with_world(geom, _coords(geom, names, extra_axes))
        template = xr.DataArray(data, dims=(*names, *geom.dims), coords=coords)
        for name in set(template.coords) - set(geom.world_names):  # shared: nobody may change them
            values = template.coords[name].variable.values  # (the world coordinates are read-only)
            if isinstance(values, np.ndarray):
                values.setflags(write=False)
        _TEMPLATES[key] = template
        while len(_TEMPLATES) > _MAX_TEMPLATES:
            _TEMPLATES.popitem(last=False)
    return template


def _loaded(load: Callable, load_args: tuple, name: str):
    """``load(*load_args)`` in a task of its own, as an input of :func:`dask.array.map_blocks`.

    Without query planning, a :func:`dask.delayed`: dask's blockwise optimisation would fuse a
    blockwise load into each block task (and run it once per block). With query planning, which does
    not take delayed inputs (nor fuse), a 0-d :func:`dask.array.blockwise` array whose one block is
    the loaded object. The arguments are bound into the function, so that dask neither wraps large
    or long ones in tasks of their own nor hashes them again.
    """
    import dask
    import dask.array as da

    func = functools.partial(load, *load_args)
    if da.array_expr_enabled():
        return da.blockwise(func, (), dtype=object, meta=np.empty((), dtype=object), name=name)
    return dask.delayed(func, name=f"{name}-func")(dask_key_name=name)


def _load_block(load: Callable, load_args: tuple, block: Callable, geom: SkyGeom, block_kwargs: dict):
    """``block`` on the whole of ``geom``, loading first: the one task of a product of one block."""
    return block(load(*load_args), geom, **block_kwargs)


def _block_at(loaded, *, block: Callable, geom: SkyGeom, chunk: int, kwargs: dict, block_id):
    """``block`` on the block ``block_id`` (its last two entries: y/x block indices) of ``geom``."""
    (i, j), (ny, nx) = block_id[-2:], geom.shape
    rows = slice(i * chunk, min((i + 1) * chunk, ny))
    cols = slice(j * chunk, min((j + 1) * chunk, nx))
    return block(loaded, geom.slice((rows, cols)), **kwargs)


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
    """A lazy ``(*axis_name, y, x)`` DataArray over ``geom`` (``geom.dims``: ``irf_y, irf_x`` on
    the coarse IRF grid), with the lazy world coordinates ``lon``/``lat`` of the grid.

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
        The dims in front of ``(y, x)``: energy axes of ``geom`` or keys of ``extra_axes``.
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
        import dask.array as da

        token = _tokenize(
            load, load_args, block, geom, names, block_kwargs, chunk,
            {dim: {k: v.values for k, v in c.items()} for dim, c in extra_axes.items()},
        )  # fmt: skip
        meta = np.empty((0,) * len(chunks), dtype=dtype)
        if len(rows) == len(cols) == 1:  # one task: load and block
            whole = geom.slice((rows[0], cols[0]))
            func = functools.partial(_load_block, load, load_args, block, whole, block_kwargs)
            new_axes = dict(enumerate(chunks))
            array = da.blockwise(
                func, tuple(new_axes), new_axes=new_axes, dtype=dtype, meta=meta, name=f"{name}-{token}"
            )
        else:
            loaded = _loaded(load, load_args, f"{name}-load-{token}")
            func = functools.partial(_block_at, block=block, geom=geom, chunk=chunk, kwargs=block_kwargs)
            array = da.map_blocks(func, loaded, chunks=chunks, dtype=dtype, meta=meta, name=f"{name}-{token}")
    out = _template(geom, names, extra_axes).copy(deep=False, data=array)
    out.name, out.attrs = name, {**attrs, "geom": geom.to_attrs()}
    return out


def blockwise_map(func: Callable, *arrays: da.Array | np.ndarray, dtype, name: str) -> da.Array | np.ndarray:
    """``func(*blocks)`` for each block of dask arrays chunked alike along their last two axes.

    Each array has one chunk along its leading axes (as :func:`lazy_cube` makes them), which may
    differ from array to array; the result has the chunks of ``arrays[0]``: a
    :func:`dask.array.blockwise` that pairs the arrays' y/x blocks only. Numpy arrays (products
    computed at once, see :func:`computed_at_once`: a single block each) give ``func(*arrays)``.

    ``name`` is the key prefix (``token``), not the full key (``name``): with dask's array query
    planning (dask 2026.8), a blockwise given a full name is never rebuilt on lowered inputs, so a
    rechunk below it reaches the graph unlowered (``'Rechunk' object has no attribute
    'npartitions'``; ``tools/dask_expr_rechunk_repro.py``).
    """
    if not any(hasattr(a, "__dask_graph__") for a in arrays):
        return func(*arrays)
    import dask.array as da

    first = arrays[0]
    for array in arrays:
        if array.chunks[-2:] != first.chunks[-2:] or any(len(c) != 1 for c in array.chunks[:-2]):
            raise ValueError("blockwise_map needs one leading chunk and the same y/x chunks")
    # integer indices: -2, -1 for y, x (shared); the leading axes of array k its own, 10 k, 10 k + 1...
    pairs = []
    for k, array in enumerate(arrays):
        pairs += [array, (*(10 * k + n for n in range(array.ndim - 2)), -2, -1)]
    meta = np.empty((0,) * first.ndim, dtype=dtype)
    return da.blockwise(func, pairs[1], *pairs, dtype=dtype, meta=meta, token=name, concatenate=True)


def chunked_like(array: xr.DataArray, like: xr.DataArray) -> xr.DataArray:
    """``array`` in the chunks of ``like`` along their common dims, if ``like`` is lazy.

    For an operation on both: dask's array query planning (dask 2026.8) fails to compute an
    element-wise operation on arrays chunked differently (``dtype`` inference of the rechunked
    operation raises ``NotImplementedError``); chunked alike, there is nothing to unify.
    """
    if not _is_lazy(like.data):
        return array
    return array.chunk({dim: like.chunks[like.get_axis_num(dim)] for dim in array.dims if dim in like.dims})


def _zero_outside(mask: np.ndarray, block: np.ndarray) -> np.ndarray:
    return np.where(mask, block, 0)


def masked_sum(array: xr.DataArray, mask: xr.DataArray) -> np.ndarray | da.Array:
    """The sum over the pixel dims of ``array`` where ``mask`` (NaNs skipped), per leading index.

    ``mask`` has the pixel dims of ``array`` (``y``, ``x`` or ``irf_y``, ``irf_x``: the same pixels and
    blocks) and maybe some of its leading ones. What ``array.where(mask, 0).sum(("y", "x")).data``
    gives, made of
    :func:`dask.array.map_blocks` and :func:`dask.array.nansum` on dask arrays, which dask's array query
    planning also has (there xarray's ``where`` and reductions of lazy arrays are not implemented).
    """
    dims = pixel_dims(array)
    if dims is None:
        raise ValueError(f"no pixel dims (y, x or irf_y, irf_x) in {array.dims}")
    array = array.transpose(..., *dims)
    mask = mask.transpose(*[d for d in array.dims if d in mask.dims])
    if mask.dims != array.dims[array.ndim - mask.ndim :]:
        raise ValueError(f"mask dims {mask.dims} are not the trailing dims of {array.dims}")
    axes = (array.ndim - 2, array.ndim - 1)
    add = np.nansum if array.dtype.kind in "fc" else np.sum
    if not _is_lazy(array.data) and not _is_lazy(mask.data):
        return add(np.where(mask.data, array.data, 0), axis=axes)
    import dask.array as da

    data = array.data if _is_lazy(array.data) else da.from_array(array.data, chunks=-1)
    chunks = data.chunks[data.ndim - mask.ndim :]
    flags = mask.data.rechunk(chunks) if _is_lazy(mask.data) else da.from_array(mask.data, chunks)
    kept = da.map_blocks(_zero_outside, flags, data, dtype=data.dtype)
    return (da.nansum if add is np.nansum else da.sum)(kept, axis=axes)


def _is_lazy(data) -> bool:
    return hasattr(data, "__dask_graph__")
