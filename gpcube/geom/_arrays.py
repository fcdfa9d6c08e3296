"""Operations on DataArrays that hold numpy or dask arrays, built on numpy and dask's public array API.

xarray's own ``where``, reductions, ``concat`` and ``apply_ufunc`` of a lazy array call numpy functions
on the dask array (``np.where``, ``np.zeros_like``, ``np.transpose``) and rely on dask's
``__array_function__`` to take them over. The arrays of dask's array query planning
(``array.query-planning``, dask 2026.8 to 2026.11) have no ``__array_function__`` and no
``__array__``: those xarray operations raise, and ``.values`` of a lazy DataArray gives an object
array of dask arrays. The estimators, the ring stage, the export and the ``.sky`` accessor use these
functions instead: each runs numpy on numpy arrays, or the same numpy function block by block
(:func:`dask.array.blockwise`, :func:`dask.array.map_blocks`) on dask arrays, so the numbers are the
same either way. dask is imported only for a dask input.

It sits in the geometry package, the lowest layer of the data model (dims, coordinates, energy
axes), so that the layers above (the accessor, makers, estimators, export, workflow) may all use it.

The DataArrays keep their coordinates and attributes (the result is ``template.copy(data=...)``):
world coordinates and the geometry in the attrs go along.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["band_reduce", "elementwise", "is_lazy", "numpy_values", "stack", "where"]


def is_lazy(data: Any) -> bool:
    """Whether ``data`` (an array or a DataArray) is a dask collection."""
    if isinstance(data, xr.DataArray | xr.Variable):
        data = data.data
    return hasattr(data, "__dask_graph__")


def numpy_values(array: xr.DataArray) -> np.ndarray:
    """The values of ``array`` as numpy, computed if lazy (``.values`` is wrong under query planning)."""
    return np.asarray(array.compute().data if is_lazy(array) else array.data)


def _aligned(array: Any, dims: tuple[str, ...]) -> Any:
    """``array``'s data with its dims in the order of ``dims`` and a length-1 axis for each it lacks."""
    if not isinstance(array, xr.DataArray):
        return array
    extra = [d for d in array.dims if d not in dims]
    if extra:
        raise ValueError(f"{array.name!r} has dims {extra} that the result {dims} does not")
    own = [d for d in dims if d in array.dims]
    data = array.data
    order = [array.dims.index(d) for d in own]
    if order != sorted(order):
        data = data.transpose(order)
    if len(own) < len(dims):
        data = data[tuple(slice(None) if d in array.dims else None for d in dims)]
    return data


def elementwise(func: Callable, *args: Any, dtype: Any, like: int = 0) -> xr.DataArray:
    """``func(*blocks)`` of DataArrays (and scalars) broadcast by dim name, lazily on dask inputs.

    The result has the coordinates and attributes of the argument ``like`` (an index into ``args``)
    if it has every dim of the result, else of the first that has them (at least one must).
    ``func`` is a numpy function that broadcasts its inputs (a ufunc, ``numpy.where``, ...). On dask
    arrays it runs block by block (:func:`dask.array.blockwise`), in the blocks of that argument.

    Examples
    --------
    >>> import numpy as np
    >>> import xarray as xr
    >>> cube = xr.DataArray(np.arange(6.0).reshape(2, 3), dims=("energy", "x"))
    >>> mask = xr.DataArray([True, False, True], dims="x")
    >>> elementwise(np.where, mask, cube, 0.0, dtype=np.float64).values
    array([[0., 0., 2.],
           [3., 0., 5.]])
    """
    arrays = [a for a in args if isinstance(a, xr.DataArray)]
    dims = tuple(dict.fromkeys(d for a in arrays for d in a.dims))
    preferred = [args[like]] if isinstance(args[like], xr.DataArray) else []
    template = next((a for a in preferred + arrays if set(a.dims) == set(dims)), None)
    if template is None:
        raise ValueError(f"no argument has all the dims {dims} of the result")
    dims = template.dims
    data = [_aligned(a, dims) for a in args]
    if any(is_lazy(d) for d in data):
        out = _blockwise(func, data, dtype, template.data)
    else:
        out = np.asarray(func(*data)).astype(dtype, copy=False)
    return template.copy(data=out)


def _blockwise(func: Callable, data: list, dtype: Any, template: Any) -> Any:
    """``func`` block by block over broadcastable arrays and scalars (:func:`dask.array.blockwise`).

    Arrays are chunked as ``template`` (a lazy one's chunks, else dask's default), so the result's
    blocks are the template's, not the finer intersection of everyone's.
    """
    import dask.array as da

    index = tuple(range(template.ndim))
    lazy_template = template if is_lazy(template) else da.asarray(template)
    pairs = []
    for d in data:
        if not is_lazy(d) and np.ndim(d) == 0:
            pairs += [d, None]
            continue
        d = d if is_lazy(d) else da.asarray(d)
        sizes = zip(d.chunks, d.shape, lazy_template.shape, lazy_template.chunks, strict=True)
        chunks = tuple(own if size != full else wanted for own, size, full, wanted in sizes)
        pairs += [d if chunks == d.chunks else d.rechunk(chunks), index]
    return da.blockwise(func, index, *pairs, dtype=dtype, meta=np.array((), dtype=dtype))


def _dtype_of(value: Any) -> Any:
    """A DataArray's or an array's dtype; a Python scalar as itself (numpy's weak scalar promotion)."""
    return value.dtype if hasattr(value, "dtype") else value


def where(cond: xr.DataArray, x: Any, other: Any = np.nan) -> xr.DataArray:
    """``x`` where ``cond``, else ``other`` (NaN by default): :meth:`xarray.DataArray.where`, lazily.

    The dtype is numpy's for ``np.where(cond, x, other)`` (a float for NaN). The result has the coords
    and attrs of ``x`` if it has all the result's dims (else of ``cond``, then ``other``).

    Examples
    --------
    >>> import numpy as np
    >>> import xarray as xr
    >>> counts = xr.DataArray(np.array([[1, 2], [3, 4]], dtype=np.int32), dims=("y", "x"))
    >>> where(counts > 1, counts).values
    array([[nan,  2.],
           [ 3.,  4.]])
    >>> where(counts > 1, counts, 0).dtype
    dtype('int32')
    """
    dtype = np.result_type(_dtype_of(x), _dtype_of(other))
    return elementwise(np.where, cond, x, other, dtype=dtype, like=1)


def _band_block(block: np.ndarray, slices: Sequence[slice], how: str) -> np.ndarray:
    """``block`` reduced over each run ``slices`` of its first axis, stacked on that axis."""
    reduce = getattr(np, how)
    return np.stack([reduce(block[s], axis=0) for s in slices])


def band_reduce(array: xr.DataArray, dim: str, slices: Sequence[slice], how: str = "sum") -> xr.DataArray:
    """``array`` reduced over the bins of each band along ``dim``: dims ``(dim, ...)``, one bin per band.

    ``how`` is ``"sum"``, ``"nansum"`` or ``"any"`` (numpy's functions and dtypes). ``dim`` comes
    first in the result, the other dims keep their order and coordinates; the coordinates along
    ``dim`` are dropped. On dask, one task per block of the other dims, with all of ``dim`` in it
    (numpy's numbers exactly).

    Examples
    --------
    >>> import numpy as np
    >>> import xarray as xr
    >>> cube = xr.DataArray(np.arange(8).reshape(4, 2), dims=("energy", "x"))
    >>> band_reduce(cube, "energy", [slice(0, 1), slice(1, 4)]).values
    array([[ 0,  1],
           [12, 15]])
    """
    rest = tuple(d for d in array.dims if d != dim)
    moved = array.transpose(dim, *rest)
    data = moved.data
    dtype = getattr(np, how)(np.zeros((1, 1), moved.dtype), axis=0).dtype
    if is_lazy(data):
        import dask.array as da

        data = data.rechunk({0: -1})
        reduced = da.map_blocks(
            _band_block, data, slices=list(slices), how=how, chunks=((len(slices),), *data.chunks[1:]),
            dtype=dtype, meta=np.array((), dtype),
        )  # fmt: skip
    else:
        reduced = _band_block(data, slices, how)
    template = moved.isel({dim: slice(0, len(slices))})
    template = template.drop_vars([c for c in template.coords if dim in template[c].dims])
    return template.copy(data=reduced)


def stack(arrays: Sequence[xr.DataArray], dim: str) -> xr.DataArray:
    """DataArrays of the same dims and coords stacked along a new first dim ``dim`` (no coordinate).

    :func:`xarray.concat` for the case the estimators need, on numpy or dask data; the result keeps
    the coordinates (world coordinates included) and attributes of ``arrays[0]``.
    """
    first = arrays[0]
    data = [a.transpose(*first.dims).data for a in arrays]
    if any(is_lazy(d) for d in data):
        import dask.array as da

        # one chunk along the new dim, as band_reduce makes it: the estimators' band maps then add
        # and divide block by block (dask's query-planning arrays fail on elementwise operations of
        # arrays chunked differently: case 1 of tools/dask_expr_repro.py, docs/makers.rst)
        stacked = da.stack([d if is_lazy(d) else da.asarray(d) for d in data], axis=0).rechunk({0: -1})
    else:
        stacked = np.stack(data, axis=0)
    dims = (dim, *first.dims)
    return xr.DataArray(stacked, dims=dims, coords=first.coords, attrs=first.attrs, name=first.name)
