"""Energy bands of the estimators: which reco bins a band sums, and power-law weights of true bins."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from gpcube.errors import GpcubeError

__all__ = [
    "band_edges_of",
    "band_slices",
    "power_law_band_weights",
    "power_law_integral",
    "power_law_shares",
]

#: Relative tolerance when matching a band edge with a bin edge (edges travel through JSON and zarr).
EDGE_RTOL = 1e-6


def band_edges_of(obj: xr.DataArray | xr.Dataset, dim: str = "energy_reco") -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bin edges (TeV) along ``dim`` from the ``<dim>_lo`` / ``<dim>_hi`` coords."""
    names = (f"{dim}_lo", f"{dim}_hi")
    missing = [n for n in names if n not in obj.coords]
    if dim not in obj.dims or missing:
        raise GpcubeError(f"need a {dim!r} dim with coords {list(names)}; missing {missing or [dim]}")
    return (np.atleast_1d(np.asarray(obj[names[0]].to_numpy(), dtype=float)),
            np.atleast_1d(np.asarray(obj[names[1]].to_numpy(), dtype=float)))  # fmt: skip


def _edge_index(value: float, edges: np.ndarray, what: str) -> int:
    close = np.flatnonzero(np.isclose(edges, value, rtol=EDGE_RTOL, atol=0.0))
    if close.size == 0:
        raise GpcubeError(
            f"the band edge {value:g} TeV ({what}) is not a bin edge of energy_reco; "
            f"available edges: {', '.join(f'{e:.6g}' for e in edges)} TeV"
        )
    return int(close[0])


def band_slices(
    lo: np.ndarray, hi: np.ndarray, band_lo: Sequence[float], band_hi: Sequence[float]
) -> list[slice]:
    """The slice of contiguous bins ``[lo, hi)`` that each band ``[band_lo, band_hi)`` covers exactly.

    Parameters
    ----------
    lo, hi : numpy.ndarray
        Bin edges in TeV; the bins a band covers must be contiguous (``hi[i] == lo[i + 1]``).
    band_lo, band_hi : sequence of float
        Band edges in TeV, each equal (to a relative 1e-6) to a bin edge.

    Returns
    -------
    list of slice
        One non-empty slice into the bins per band.
    """
    out = []
    for b_lo, b_hi in zip(band_lo, band_hi, strict=True):
        if not b_lo < b_hi:
            raise GpcubeError(f"an energy band must have lo < hi, got [{b_lo:g}, {b_hi:g}] TeV")
        start = _edge_index(b_lo, np.asarray(lo), "lower")
        stop = _edge_index(b_hi, np.asarray(hi), "upper") + 1
        if stop <= start:
            raise GpcubeError(f"the band [{b_lo:g}, {b_hi:g}] TeV covers no energy_reco bin")
        if not np.allclose(hi[start : stop - 1], lo[start + 1 : stop], rtol=EDGE_RTOL, atol=0.0):
            raise GpcubeError(f"the energy_reco bins inside the band [{b_lo:g}, {b_hi:g}] TeV have gaps")
        out.append(slice(start, stop))
    return out


def power_law_integral(lo: np.ndarray, hi: np.ndarray, index: float) -> np.ndarray:
    """Integral of ``E**-index`` from ``lo`` to ``hi`` (TeV, broadcast); 0 where ``hi <= lo``."""
    lo = np.asarray(lo, dtype=float)
    hi = np.maximum(np.asarray(hi, dtype=float), lo)
    if index == 1.0:
        return np.log(hi / lo)
    return (hi ** (1.0 - index) - lo ** (1.0 - index)) / (1.0 - index)


def power_law_shares(true_edges: np.ndarray, lo: np.ndarray, hi: np.ndarray, index: float) -> np.ndarray:
    """``s[k, j] = int E**-index dE`` over the overlap of ``[lo[k], hi[k]]`` with true bin ``j``.

    Parameters
    ----------
    true_edges : numpy.ndarray
        Edges of the true-energy bins (TeV); they must cover every interval.
    lo, hi : numpy.ndarray
        Intervals (TeV), e.g. reco bins or bands.
    index : float
        Spectral index (``dN/dE ~ E**-index``), finite.

    Returns
    -------
    numpy.ndarray
        ``(n_intervals, n_true)``; row ``k`` sums to the integral over ``[lo[k], hi[k]]``.
    """
    if isinstance(index, bool) or not isinstance(index, int | float | np.number) or not np.isfinite(index):
        raise GpcubeError(f"spectral_index must be a finite number, got {index!r}")
    edges = np.asarray(true_edges, dtype=float)
    lo, hi = np.atleast_1d(np.asarray(lo, dtype=float)), np.atleast_1d(np.asarray(hi, dtype=float))
    scale = 1 + EDGE_RTOL
    if np.any(lo * scale < edges[0]) or np.any(hi > edges[-1] * scale):
        raise GpcubeError(
            f"the energy_true axis [{edges[0]:g}, {edges[-1]:g}] TeV does not cover the energies "
            f"[{lo.min():g}, {hi.max():g}] TeV: the flux would miss exposure"
        )
    overlap_lo = np.maximum(edges[None, :-1], lo[:, None])
    overlap_hi = np.minimum(edges[None, 1:], hi[:, None])
    return power_law_integral(overlap_lo, overlap_hi, float(index))


def power_law_band_weights(
    true_edges: np.ndarray, band_lo: np.ndarray, band_hi: np.ndarray, index: float
) -> np.ndarray:
    """Weights of the true-energy bins in each band for a power law ``E**-index``.

    ``w[b, j] = int_{bin j & band b} E**-index dE / int_{band b} E**-index dE``: the share of the
    band's power-law flux that falls in true bin ``j`` (:func:`power_law_shares` over the band's
    integral). ``sum_j w[b, j] * exposure_j`` is the exposure averaged over the band with the power law
    as weight, assuming ``E_reco = E_true``.

    Parameters
    ----------
    true_edges : numpy.ndarray
        Edges of the true-energy bins (TeV); they must cover every band.
    band_lo, band_hi : numpy.ndarray
        Band edges (TeV).
    index : float
        Spectral index (``dN/dE ~ E**-index``).

    Returns
    -------
    numpy.ndarray
        ``(n_band, n_true)``, each row summing to 1.
    """
    shares = power_law_shares(true_edges, band_lo, band_hi, index)
    return shares / power_law_integral(band_lo, band_hi, float(index))[:, None]
