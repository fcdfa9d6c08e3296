"""Significance of a counts excess: Li & Ma (ON/OFF) and Cash (known background), on numpy arrays.

Both return ``sqrt(TS)`` signed by the excess, where TS is twice the log-likelihood ratio of the best
signal (which may be negative) to no signal; the background is profiled (Li & Ma) or known (Cash).
Counts may be non-integer (correlated maps are sums of counts, still Poisson-like). The formulas'
limits are used where a count is zero, so the only NaNs are where the statistic is undefined:
negative or non-finite counts, and (Li & Ma) ``alpha`` not positive and finite.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["cash_significance", "li_ma_significance"]


def _xlogy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``x * log(y)`` with the limit 0 where ``x == 0`` (whatever ``y``)."""
    safe = np.where(x > 0, y, 1.0)
    with np.errstate(divide="ignore"):
        return np.where(x > 0, x * np.log(safe), 0.0)


def _signed_sqrt(ts: np.ndarray, excess: np.ndarray) -> np.ndarray:
    """``sign(excess) * sqrt(ts)``, with TS rounding below zero clipped (it is >= 0 in exact arithmetic)."""
    return np.sign(excess) * np.sqrt(np.maximum(ts, 0.0))


def li_ma_significance(n_on: ArrayLike, n_off: ArrayLike, alpha: ArrayLike) -> np.ndarray:
    """Li & Ma (1983) eq. 17: the ON/OFF significance with the background profiled.

    ``S = sign(n_on - alpha n_off) * sqrt(2 [n_on ln((1 + alpha) / alpha * n_on / (n_on + n_off))
    + n_off ln((1 + alpha) n_off / (n_on + n_off))])``. This is ``sqrt(TS)`` of the WStat likelihood
    (Poisson ON and OFF counts, background rate profiled, signal free to be negative).

    Parameters
    ----------
    n_on, n_off : array_like
        Counts in the ON and OFF regions (non-negative; need not be integers). Broadcast together.
    alpha : array_like
        ON/OFF exposure ratio (ON acceptance over OFF acceptance), positive.

    Returns
    -------
    numpy.ndarray
        Float64 significance. Limits: ``n_on = 0`` gives ``-sqrt(2 n_off ln(1 + alpha))``,
        ``n_off = 0`` gives ``+sqrt(2 n_on ln((1 + alpha) / alpha))``, both zero gives 0. NaN where
        ``alpha <= 0`` or is not finite, or a count is negative or not finite.

    See Also
    --------
    cash_significance : The significance over a known background.
    gpcube.estimators.estimate_excess_map : Significance maps of a mosaic.

    References
    ----------
    Li, T.-P. & Ma, Y.-Q. 1983, ApJ 272, 317.

    Examples
    --------
    30 ON counts and 100 OFF counts with an OFF region 10 times larger (expected background 10):

    >>> from gpcube.estimators import li_ma_significance
    >>> float(li_ma_significance(30, 100, alpha=0.1))
    4.74158995566502

    Arrays broadcast; a deficit is negative, and no ON counts is the formula's limit:

    >>> li_ma_significance(n_on=[10, 100, 0], n_off=[50, 500, 10], alpha=0.1)
    array([ 1.84975089,  5.84942593, -1.38065332])
    >>> li_ma_significance(10, 50, alpha=0.0)  # undefined
    array(nan)
    """
    n_on, n_off, alpha = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (n_on, n_off, alpha)))
    valid = (
        np.isfinite(n_on) & np.isfinite(n_off) & np.isfinite(alpha) & (n_on >= 0) & (n_off >= 0) & (alpha > 0)
    )
    n_on, n_off = np.where(valid, n_on, 0.0), np.where(valid, n_off, 0.0)
    alpha = np.where(valid, alpha, 1.0)
    total = np.where(n_on + n_off > 0, n_on + n_off, 1.0)
    ts = 2.0 * (
        _xlogy(n_on, (1.0 + alpha) / alpha * (n_on / total)) + _xlogy(n_off, (1.0 + alpha) * (n_off / total))
    )
    return np.where(valid, _signed_sqrt(ts, n_on - alpha * n_off), np.nan)


def cash_significance(n_on: ArrayLike, mu_bkg: ArrayLike) -> np.ndarray:
    """Significance of ``n_on`` Poisson counts over a known background expectation ``mu_bkg``.

    ``S = sign(n_on - mu_bkg) * sqrt(2 [n_on ln(n_on / mu_bkg) - (n_on - mu_bkg)])``: ``sqrt(TS)`` of
    the Cash statistic with the signal ``n_on - mu_bkg`` free to be negative.

    Parameters
    ----------
    n_on : array_like
        Counts (non-negative; need not be integers).
    mu_bkg : array_like
        Expected background counts (non-negative). Broadcast with ``n_on``.

    Returns
    -------
    numpy.ndarray
        Float64 significance. Limits: ``n_on = 0`` gives ``-sqrt(2 mu_bkg)``; ``mu_bkg = 0`` gives
        ``+inf`` for ``n_on > 0`` (0 if both are 0). NaN where an input is negative or not finite.

    See Also
    --------
    li_ma_significance : The significance with the background measured in an OFF region.
    gpcube.estimators.estimate_excess_map : Significance maps of a mosaic.

    References
    ----------
    Cash, W. 1979, ApJ 228, 939.

    Examples
    --------
    >>> from gpcube.estimators import cash_significance
    >>> cash_significance([10, 25, 0], mu_bkg=10)
    array([ 0.        ,  3.9767495 , -4.47213595])

    With a perfectly known background the same counts are more significant than with Li & Ma:

    >>> from gpcube.estimators import li_ma_significance
    >>> bool(cash_significance(30, 10) > li_ma_significance(30, 100, alpha=0.1))
    True
    """
    n_on, mu = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (n_on, mu_bkg)))
    valid = np.isfinite(n_on) & np.isfinite(mu) & (n_on >= 0) & (mu >= 0)
    n_on, mu = np.where(valid, n_on, 0.0), np.where(valid, mu, 0.0)
    infinite = (mu == 0) & (n_on > 0)
    ratio = np.where(mu > 0, n_on / np.where(mu > 0, mu, 1.0), 1.0)
    ts = 2.0 * (_xlogy(n_on, ratio) - (n_on - mu))
    out = np.where(infinite, np.inf, _signed_sqrt(ts, n_on - mu))
    return np.where(valid, out, np.nan)
