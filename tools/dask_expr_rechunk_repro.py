"""Minimal reproduction of a dask array-expression bug, for a report upstream (dask/dask).

Not filed from here (no network access to GitHub): the text below is the issue, ready to paste.
Run it with dask's array query planning on and off::

    DASK_ARRAY__QUERY_PLANNING=True python tools/dask_expr_rechunk_repro.py   # fails (exit 1)
    DASK_ARRAY__QUERY_PLANNING=False python tools/dask_expr_rechunk_repro.py  # works (exit 0)

Seen with dask 2026.8.0 (numpy 2, Python 3.11). gpcube met it as
``AttributeError: 'Rechunk' object has no attribute 'npartitions'`` in a job with the FoV background
and the IRF products (``exposure_irf = blockwise(exposure, mask_safe & fov_norm_ok)``, where
``fov_norm_ok`` is computed from rechunked maps); it works around it in
:func:`gpcube.makers._lazy.blockwise_map` by giving ``dask.array.blockwise`` a ``token=`` (a key
prefix) instead of a ``name=``.

Issue text
----------
**Title**: array-expr: ``da.blockwise(..., name=...)`` stops the lowering of its inputs
(``'Rechunk' object has no attribute 'npartitions'``)

With array query planning on (``array.query-planning: True``), a ``dask.array.blockwise`` given an
explicit ``name=`` cannot be computed when one of its inputs needs lowering, e.g. contains a
``rechunk``::

    import dask.array as da
    import numpy as np

    x = da.ones((4, 6), chunks=(2, 3)).rechunk((4, 6))
    y = da.blockwise(np.negative, "ij", x, "ij", dtype=float, name="negative-1")
    y.compute()
    # AttributeError: 'Rechunk' object has no attribute 'npartitions'
    # This often means that you are attempting to use an unsupported API function..

The same without ``name=`` (or with ``token=``), or ``map_blocks(..., name=...)`` (which passes its
name on as ``token``), or with query planning off, computes ``-24.0`` for ``y.sum()``.

Cause, as far as we can tell: ``Blockwise._name`` is the ``name`` operand verbatim, so it does not
depend on the operands. ``Expr.lower_once`` lowers the operands (``Rechunk`` -> ``TasksRechunk``)
and rebuilds the node with ``type(out)(*new_operands)``, but ``SingletonExpr.__new__`` deduplicates
by ``_name`` and returns the existing instance, whose operands are the unlowered ones; and
``lower_completely`` sees no change of name and stops. The ``Rechunk`` then reaches
``__dask_graph__`` unlowered. Every expression below a named ``Blockwise`` is affected, not only
rechunks. Possible fixes: make the name of a named ``Blockwise`` a prefix (as ``map_blocks`` does),
or keep the explicit name out of the singleton cache key.
"""

from __future__ import annotations

import sys

import dask
import dask.array as da
import numpy as np


def main() -> int:
    """Compute a named blockwise of a rechunked array; 0 if it works, 1 if it fails."""
    print(f"dask {dask.__version__}, array query planning: {da.array_expr_enabled()}")
    x = da.ones((4, 6), chunks=(2, 3)).rechunk((4, 6))
    y = da.blockwise(np.negative, "ij", x, "ij", dtype=float, name="negative-1")
    try:
        total = float(y.sum().compute())
    except AttributeError as error:
        print(f"fails: {type(error).__name__}: {str(error).splitlines()[0]}")
        return 1
    print(f"works: sum = {total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
