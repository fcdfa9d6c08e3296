"""Tests that fail with dask's array query planning on (``DASK_ARRAY__QUERY_PLANNING=True``), for
want of support in dask 2026.8's array expressions or in xarray on top of them (docs/makers.rst,
"Dask's array query planning"). With query planning on, ``tests/conftest.py`` marks them
``xfail(strict=True)``: one that starts to pass fails the run, to be taken off this list.
Measured with ``python tools/ci_variants.py query-planning`` (a name covers its parametrisations).
"""

from __future__ import annotations

#: ``{(test file, why): test names}``. Empty: the whole array test set passes with query planning on
#: (the estimators and the IRF masking on dask's public API, see docs/makers.rst); keep the mechanism
#: for the next gap of dask's array expressions.
GAPS: dict[tuple[str, str], tuple[str, ...]] = {
}


def gap_reason(nodeid: str) -> str | None:
    """Why the test ``nodeid`` is expected to fail with query planning, or None."""
    path, _, name = nodeid.partition("::")
    name = name.split("[")[0]
    for (file, why), names in GAPS.items():
        if path == file and name in names:
            return why
    return None
