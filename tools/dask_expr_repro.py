"""Minimal reproductions of the dask array-expression (query planning) gaps that gpcube works around.

Run ``DASK_ARRAY__QUERY_PLANNING=True python tools/dask_expr_repro.py``: each case prints ``ok`` or
the exception; with query planning off (the default) every case passes. Seen with dask 2026.8.0 and
2026.11.0, numpy 2, xarray 2026.9.0. Not filed upstream from here (no network to GitHub); the text
below is the report to file at https://github.com/dask/dask/issues.

1. *Element-wise operation of arrays chunked differently.* ``a / b`` with ``a`` in chunks of 2 rows
   and ``b`` of 4 raises ``NotImplementedError`` at compute: ``Blockwise._lower`` unifies the chunks
   and rebuilds an ``Elemwise`` with ``(array, index)`` pairs as operands, whose dtype inference then
   calls ``truediv`` with 4 arguments ("truediv expected 2 arguments, got 4"), turned into
   ``NotImplementedError``. Expected: ``a / b`` computed after a rechunk, as without query planning.
2. *No ``__array__``.* ``numpy.asarray(x)`` of a dask-expr array is an object array of 0-d dask
   arrays (numpy falls back to the sequence protocol), so xarray's ``.values`` of a lazy DataArray is
   wrong without an error. Expected: the computed values (as ``Array.__array__`` does without query
   planning).
3. *No ``__array_function__``.* ``numpy.where(cond, x, y)`` and the numpy functions xarray calls in
   ``DataArray.sum``/``where``/``xr.concat`` raise ``NotImplementedError``; ``dask.array.where`` says
   "Function where is not implemented for dask-expr".
4. *Indexing with an integer array.* ``x[:, np.array([1, 2, 3, 7])]`` across chunks fails with
   ``AttributeError: 'Shuffle' object has no attribute '_token'``. xarray does this whenever it aligns
   two arrays of different extents (``mosaic["counts"] - obs["counts"]``, an inner join on the pixel
   coordinates), so arithmetic of a cutout with its mosaic fails with query planning on.
"""

from __future__ import annotations

import numpy as np


def _case(name: str, func) -> None:
    try:
        func()
    except Exception as error:  # noqa: BLE001 -- a report of what fails, whatever it is
        print(f"{name}: {type(error).__name__}: {error}")
    else:
        print(f"{name}: ok")


def elementwise_of_different_chunks() -> None:
    import dask.array as da

    a = da.ones((4, 6), chunks=(2, 6))
    b = da.ones((4, 6), chunks=(4, 6))
    assert float((a / b).sum().compute()) == 24.0


def asarray_computes() -> None:
    import dask.array as da

    values = np.asarray(da.ones((2, 3), chunks=1))
    assert values.dtype == np.float64, f"numpy.asarray gave dtype {values.dtype}"


def where_is_implemented() -> None:
    import dask.array as da

    x = da.arange(6, chunks=3)
    assert da.where(x > 2, x, 0).sum().compute() == 12


def integer_array_indexing() -> None:
    import dask.array as da

    x = da.ones((4, 10), chunks=(2, 5))
    assert float(x[:, np.array([1, 2, 3, 7])].sum().compute()) == 16.0


def main() -> None:
    import dask

    planning = dask.config.get("array.query-planning", None)
    print(f"dask {dask.__version__}, array.query-planning={planning}")
    _case("1. a / b, chunked differently", elementwise_of_different_chunks)
    _case("2. numpy.asarray(dask array)", asarray_computes)
    _case("3. dask.array.where", where_is_implemented)
    _case("4. integer-array indexing", integer_array_indexing)


if __name__ == "__main__":
    main()
