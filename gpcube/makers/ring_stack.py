"""Stacking ring products over observations: the mosaic's per-pixel sums and its alpha.

Each observation contributes, per pixel, ``counts_off``, ``alpha * counts_off`` and ``acceptance``,
zero outside its ring ``mask_safe`` (:func:`ring_stack_terms`). From the sums over observations,
the stacked alpha is the OFF-count weighted mean of the observations' alphas; pixels without OFF
counts get the average alpha of the whole stacked map (all pixels and energies), and the stacked
OFF acceptance is ``acceptance / alpha`` (:func:`combine_ring_sums`). This is how the reference
stacks on-off map datasets. A chunked mosaic needs two passes: the two totals of
:func:`average_alpha` over the whole mosaic first, then :func:`combine_ring_sums` per chunk.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["average_alpha", "combine_ring_sums", "ring_stack_terms"]


def average_alpha(sum_alpha_counts_off, sum_counts_off) -> float:
    """``Σ alpha counts_off / Σ counts_off`` over whole stacked maps (NaN if there are no OFF counts).

    The reference's alpha for stacked pixels without OFF counts. For a chunked mosaic, pass the
    totals of the per-chunk sums (a first pass) and give the result to :func:`combine_ring_sums`.
    """
    total_off = float(np.sum(sum_counts_off))
    return float(np.sum(sum_alpha_counts_off)) / total_off if total_off > 0 else float("nan")


def combine_ring_sums(
    counts_off: np.ndarray,
    alpha_counts_off: np.ndarray,
    acceptance: np.ndarray,
    average_alpha_value: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Stacked alpha and OFF acceptance from per-pixel sums over observations.

    Parameters
    ----------
    counts_off, alpha_counts_off, acceptance : numpy.ndarray
        Per pixel, over observations, ``Σ m counts_off``, ``Σ m alpha counts_off`` and
        ``Σ m acceptance`` with ``m`` each observation's ring ``mask_safe`` (:func:`ring_stack_terms`).
    average_alpha_value : float, optional
        Alpha for pixels without OFF counts; default :func:`average_alpha` of these arrays (all
        pixels and energies, as the reference does). A chunked mosaic computes it over the whole
        mosaic first and passes it to every chunk.

    Returns
    -------
    alpha, acceptance_off : numpy.ndarray
        ``alpha = Σ alpha counts_off / Σ counts_off`` where there are OFF counts (the OFF-count
        weighted mean of the observations' alphas), the average alpha where there are none but
        acceptance is positive, 0 elsewhere; ``acceptance_off = acceptance / alpha``, 0 where alpha
        is 0 (the reference leaves inf or NaN there).

    Examples
    --------
    Three pixels: with OFF counts, with acceptance but no OFF counts, with neither:

    >>> import numpy as np
    >>> from gpcube.makers import combine_ring_sums
    >>> counts_off, alpha_counts_off = np.array([100.0, 0.0, 0.0]), np.array([10.0, 0.0, 0.0])
    >>> acceptance = np.array([5.0, 2.0, 0.0])
    >>> alpha, acceptance_off = combine_ring_sums(counts_off, alpha_counts_off, acceptance)
    >>> alpha, acceptance_off
    (array([0.1, 0.1, 0. ]), array([50., 20.,  0.]))
    >>> combine_ring_sums(counts_off, alpha_counts_off, acceptance, average_alpha_value=0.2)[0]
    array([0.1, 0.2, 0. ])
    """
    counts_off = np.asarray(counts_off)
    if average_alpha_value is None:
        average_alpha_value = average_alpha(alpha_counts_off, counts_off)
    has_off = counts_off > 0
    alpha = np.divide(alpha_counts_off, counts_off, out=np.zeros(counts_off.shape), where=has_off)
    if np.isfinite(average_alpha_value):
        no_off = np.greater(acceptance, 0)
        no_off &= ~has_off
        np.copyto(alpha, average_alpha_value, where=no_off)
    acceptance_off = np.divide(acceptance, alpha, out=np.zeros(counts_off.shape), where=alpha > 0)
    return alpha, acceptance_off


def ring_stack_terms(ring: xr.Dataset) -> xr.Dataset:
    """The per-observation summands of the mosaic, lazy: ``counts_off``, ``alpha_counts_off``, ``acceptance``.

    Each is zero outside the ring product's ``mask_safe`` (``counts_off`` stays an integer). Sum
    them over observations per pixel, then call :func:`combine_ring_sums`.
    """
    mask = ring["mask_safe"]
    return xr.Dataset(
        {
            "counts_off": _zero_outside(ring["counts_off"], mask, 0),
            "alpha_counts_off": _zero_outside(ring["alpha"] * ring["counts_off"], mask, 0.0),
            "acceptance": _zero_outside(ring["acceptance"], mask, 0.0),
        },
        attrs=dict(ring.attrs),
    )


def _where(mask, data, zero):
    """``numpy.where(mask, data, zero)``, block by block on dask arrays (chunked alike)."""
    if hasattr(data, "__dask_graph__") or hasattr(mask, "__dask_graph__"):
        import dask.array as da

        return da.map_blocks(np.where, mask, data, zero, dtype=np.result_type(data.dtype, type(zero)))
    return np.where(mask, data, zero)


def _zero_outside(array: xr.DataArray, mask: xr.DataArray, zero) -> xr.DataArray:
    """``array.where(mask, zero)`` for a mask with the dims of ``array``, by :func:`dask.array.map_blocks`
    on lazy arrays: dask's array query planning has no ``where`` (which xarray's calls)."""
    if set(mask.dims) != set(array.dims):
        raise ValueError(f"mask_safe dims {mask.dims} differ from {array.dims}")
    mask = mask.transpose(*array.dims)
    if hasattr(array.data, "__dask_graph__"):  # chunked alike, for map_blocks
        mask = mask.chunk(dict(zip(array.dims, array.chunks, strict=True)))
    elif hasattr(mask.data, "__dask_graph__"):
        array = array.chunk(dict(zip(mask.dims, mask.chunks, strict=True)))
    return array.copy(data=_where(mask.data, array.data, zero))
