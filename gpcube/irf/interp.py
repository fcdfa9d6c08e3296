"""Multilinear interpolation of binned IRF values at arbitrary points.

The rule, shared by every IRF:

* values sit at the bin centres (the nodes);
* along each axis the interpolation is linear in the axis coordinate, or in its logarithm for
  energies;
* between the first (last) node and the first (last) bin edge the value is extrapolated linearly
  from the two outermost nodes;
* beyond the outer bin edges, and at NaN coordinates, the value is 0 (no response);
* an axis with a single node is constant inside its bin;
* results are clipped at 0 (an extrapolation never gives a negative response);
* optionally the values are interpolated in log (background rates, which fall by many decades):
  values below a floor are raised to it first, so a zero neighbour pulls towards 0, and results
  within twice the floor are 0. The floor is the smallest normal number of the type the table is
  stored in, in the unit it is stored in (the reader records it as the variable's ``log_floor``
  attribute): for a float32 table in s-1 MeV-1 sr-1 that is 1.2e-38 s-1 MeV-1 sr-1. The floor
  matters only next to zeros, and there it sets how fast the value falls; this choice reproduces the
  reference, which scales by the stored values.

This is the scheme of the reference implementation (a regular-grid linear interpolator with
extrapolation, then zero outside the edges), so products computed from IRFs agree with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "LOG_FLOOR",
    "axis_weights",
    "interp_nodes",
    "linear_weight_matrix",
    "multilinear",
    "multilinear_rows",
    "zero_outside",
]

#: Default floor for values interpolated in log (the smallest normal float32).
LOG_FLOOR = float(np.finfo(np.float32).tiny)


def axis_weights(nodes: np.ndarray, x: np.ndarray, log: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Lower node index and weight of the upper node for points ``x`` along one axis.

    Weights are not clipped to [0, 1], so points beyond the outer nodes are extrapolated.
    """
    nodes = np.asarray(nodes, dtype=float)
    x = np.asarray(x, dtype=float)
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            nodes, x = np.log(nodes), np.log(x)
    if len(nodes) == 1:
        return np.zeros(x.shape, dtype=np.intp), np.zeros(x.shape)
    index = _lower_node(nodes, x)
    weight = (x - nodes[index]) / (nodes[index + 1] - nodes[index])
    return index, weight


#: Arrays from this size on find their cells arithmetically on evenly spaced nodes.
_MIN_ARITHMETIC = 4096


def _lower_node(nodes: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``searchsorted(nodes, x, side="right") - 1`` clipped to ``[0, n - 2]`` (NaN: ``n - 2``).

    On evenly spaced nodes (IRF axes usually are) the cell is ``floor((x - x0) / step)``, corrected
    by one where rounding put a point next to a node in the neighbouring cell: the same answer as
    the binary search, several times faster for many points.
    """
    n = len(nodes)
    step = (nodes[-1] - nodes[0]) / (n - 1)
    if x.size < _MIN_ARITHMETIC or not step > 0 or np.ptp(np.diff(nodes)) > 1e-9 * step:
        return np.clip(np.searchsorted(nodes, x, side="right") - 1, 0, n - 2)
    with np.errstate(invalid="ignore"):
        guess = np.clip(np.floor((x - nodes[0]) / step), 0, n - 2)
    index = np.nan_to_num(guess, nan=n - 2).astype(np.intp)
    index -= (x < nodes[index]) & (index > 0)
    index += (x >= nodes[index + 1]) & (index < n - 2)
    return index


def linear_weight_matrix(nodes: np.ndarray, edges: tuple[float, float], x: np.ndarray) -> np.ndarray:
    """Weights ``(n_nodes, x.size)`` of the interpolation rule along one linear axis: ``values @ weights``.

    Linear between the nodes, extrapolated up to the outer ``edges``, all-zero columns beyond them
    or at NaN points (the caller clips the product at 0). For tables with a few nodes and many
    points, one matrix product is much faster than gathering the two neighbours of every point for
    every value.
    """
    x = np.ravel(x)
    index, weight = axis_weights(nodes, x)
    upper = np.minimum(index + 1, len(nodes) - 1)
    inside = np.isfinite(x) & (x >= edges[0]) & (x <= edges[1])
    columns = np.arange(x.size)
    weights = np.zeros((len(nodes), x.size))
    flat = weights.reshape(-1)
    # each element is set once per statement, so flat indexing does what np.add.at would, several
    # times faster; the second statement adds (upper == index for a single node)
    flat[index * x.size + columns] = np.where(inside, 1.0 - weight, 0.0)
    flat[upper * x.size + columns] += np.where(inside, weight, 0.0)
    return weights


def multilinear(values: np.ndarray, weights: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Sum over the corners of the node cells: the multilinear combination of ``values``.

    ``values`` has one axis per entry of ``weights`` (the ``(index, weight)`` pairs of
    :func:`axis_weights`, whose points broadcast together), then any trailing axes, which are carried
    along: the result has shape ``(*points, *trailing)``. No edge handling (see :func:`zero_outside`).
    """
    sizes = values.shape[: len(weights)]
    trailing = values.shape[len(weights) :]
    flat_values = values.reshape(-1, *trailing)
    result = 0.0
    for corner in np.ndindex(*(2,) * len(weights)):
        flat, factor = 0, 1.0
        for (index, weight), c, size in zip(weights, corner, sizes, strict=True):
            flat = flat * size + np.minimum(index + c, size - 1)
            factor = factor * (weight if c else 1.0 - weight)
        factor = np.reshape(factor, np.shape(factor) + (1,) * len(trailing))
        result = result + factor * np.take(flat_values, flat, axis=0)
    return result


def multilinear_rows(values: np.ndarray, weights: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """:func:`multilinear` with the carried axis first: ``values`` ``(k, *nodes)``, result ``(k, *points)``.

    Each row of the result is contiguous, which makes this several times faster than
    :func:`multilinear` with a trailing axis when that axis is short and the points are many.
    """
    values = np.asarray(values, dtype=float)
    sizes = values.shape[1:]
    flat_values = values.reshape(values.shape[0], -1)
    result = None
    for corner in np.ndindex(*(2,) * len(weights)):
        flat, factor = 0, 1.0
        for (index, weight), c, size in zip(weights, corner, sizes, strict=True):
            flat = flat * size + np.minimum(index + c, size - 1)
            factor = factor * (weight if c else 1.0 - weight)
        term = np.take(flat_values, flat, axis=1)
        term *= factor
        if result is None:
            result = term
        else:
            result += term
    return result


def interp_nodes(
    values: np.ndarray,
    nodes: Sequence[np.ndarray],
    points: Sequence[np.ndarray],
    *,
    edges: Sequence[tuple[float, float]] | None = None,
    log_axes: Sequence[bool] | None = None,
    log_values: bool = False,
    log_floor: float = LOG_FLOOR,
) -> np.ndarray:
    """Interpolate ``values`` (one axis per entry of ``nodes``) at ``points``.

    Parameters
    ----------
    values : ndarray
        Values at the nodes, shape ``tuple(len(n) for n in nodes)``.
    nodes : sequence of 1-D arrays
        Node coordinates per axis, increasing.
    points : sequence of arrays
        Coordinates per axis; broadcast against each other.
    edges : sequence of (low, high), optional
        Outer bin edges per axis; points outside any are set to 0.
    log_axes : sequence of bool, optional
        Interpolate in the logarithm of this axis's coordinate.
    log_values : bool
        Interpolate the logarithm of the values.
    log_floor : float
        With ``log_values``: values are raised to this floor before the log, and results within
        twice the floor are 0.

    Returns
    -------
    ndarray
        Interpolated values with the broadcast shape of ``points``.

    See Also
    --------
    gpcube.irf.evaluate : An IRF Dataset at any point, by dim name.

    Examples
    --------
    Linear between the nodes, extrapolated linearly up to the outer edges, zero beyond them:

    >>> import numpy as np
    >>> from gpcube.irf import interp_nodes
    >>> nodes = [np.array([0.0, 1.0, 2.0])]
    >>> values = np.array([0.0, 10.0, 20.0])
    >>> interp_nodes(values, nodes, [np.array([0.5, 2.25, 2.75])], edges=[(-0.5, 2.5)])
    array([ 5. , 22.5,  0. ])

    In the log of the coordinate (energies) and of the values (backgrounds), a power law is exact:

    >>> energy = np.array([1.0, 10.0, 100.0])
    >>> interp_nodes(energy**-2.0, [energy], [np.array([3.0])], log_axes=[True], log_values=True)
    array([0.11111111])
    """
    values = np.asarray(values, dtype=float)
    ndim = len(nodes)
    log_axes = log_axes or [False] * ndim
    if log_values:
        values = np.log(np.maximum(values, log_floor))
    weights = [axis_weights(n, p, log) for n, p, log in zip(nodes, points, log_axes, strict=True)]
    result = multilinear(values, weights)
    if log_values:
        result = np.exp(result)
        result = np.where(result <= 2 * log_floor, 0.0, result)
    return zero_outside(result, points, edges)


def zero_outside(
    values: np.ndarray, points: Sequence, edges: Sequence[tuple[float, float]] | None
) -> np.ndarray:
    """The last step of the interpolation rule: clip at 0, and 0 beyond the edges or at NaN points.

    ``points`` (one array per axis) broadcast against the trailing dims of ``values``.
    """
    outside = False
    for axis, p in enumerate(points):
        p = np.asarray(p, dtype=float)
        outside = outside | ~np.isfinite(p)
        if edges is not None:
            low, high = edges[axis]
            outside = outside | (p < low) | (p > high)
    # np.where, not item assignment: with scalar points the values are numpy scalars
    return np.where(outside, 0.0, np.clip(values, 0.0, None))
