"""Tests that fail with dask's array query planning on (``DASK_ARRAY__QUERY_PLANNING=True``), for
want of support in dask 2026.8's array expressions or in xarray on top of them (docs/makers.rst,
"Dask's array query planning"). With query planning on, ``tests/conftest.py`` marks them
``xfail(strict=True)``: one that starts to pass fails the run, to be taken off this list.

``{test id prefix: why}``; a prefix ending in ``::name`` covers the test's parametrisations.
"""

from __future__ import annotations

#: xarray's reductions, ``where``, ``concat`` of lazy arrays call numpy functions, which dask-expr
#: arrays do not dispatch (``Array.__array_function__`` raises ``NotImplementedError``).
XARRAY_OPS = "xarray reductions/where/concat of a lazy array: dask-expr has no __array_function__"

GAPS: dict[str, str] = {}


def gap_reason(nodeid: str) -> str | None:
    """Why the test ``nodeid`` is expected to fail with query planning, or None."""
    for prefix, why in GAPS.items():
        if nodeid == prefix or nodeid.startswith(prefix + "["):
            return why
    return None
