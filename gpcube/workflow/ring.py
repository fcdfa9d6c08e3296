"""An observation's ring-background products as they go into the archive (``obs/<id>/ring``).

For ``background.method`` ``ring`` or ``adaptive_ring`` each observation gets, on the ring's energy
bands (``background.<method>.energy_edges``; the dim ``energy_band``), the products
(:data:`gpcube.makers.registry.RING_PRODUCTS`) of
:func:`gpcube.makers.make_map_ring_background` (or the adaptive one) with the predicted background
as acceptance and the config's exclusion circles, plus ``counts``: the ON counts summed over each
band's safe bins. Every variable is zero outside the ring product's ``mask_safe`` except ``alpha``
and ``acceptance_off``, which are kept as made. The mosaic sums ``counts``, ``counts_off``,
``alpha * counts_off`` and ``acceptance`` where ``mask_safe`` is True (see
:func:`gpcube.workflow.mosaic.sum.ring_chunk`), and :func:`stacked_ring` turns the sums into the stacked
alpha and OFF acceptance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from gpcube.makers.registry import RING_PRODUCTS
from gpcube.makers.ring_stack import combine_ring_sums

if TYPE_CHECKING:
    import dask.array as da

    from gpcube.geom import SkyGeom
    from gpcube.workflow.config import BackgroundConfig

__all__ = ["RING_DTYPES", "observation_ring", "ring_energy_edges", "stacked_ring"]

#: Storage types of the ring products (OFF and ON counts stay integers), from the registry.
RING_DTYPES = {name: np.dtype(p.dtype) for name, p in RING_PRODUCTS.items()}
#: Ring products set to 0 outside the ring's ``mask_safe`` (the summands of the mosaic).
ZEROED_OUTSIDE_SAFE = tuple(name for name, p in RING_PRODUCTS.items() if p.stack == "sum-ring-safe")


def ring_energy_edges(setting, counts: xr.DataArray) -> list[float] | None:
    """Band edges for the ring makers: None per bin, the whole axis for ``all``, else the list."""
    if setting == "per-bin":
        return None
    if setting == "all":
        return [float(counts["energy_reco_lo"].to_numpy()[0]), float(counts["energy_reco_hi"].to_numpy()[-1])]
    return [float(e) for e in setting]


def observation_ring(
    counts: xr.DataArray,
    background: xr.DataArray,
    mask_safe: xr.DataArray,
    background_config: BackgroundConfig,
    geom: SkyGeom,
) -> xr.Dataset:
    """The lazy ring products of one observation (module docstring), cast to :data:`RING_DTYPES`.

    The zeroing outside ``mask_safe`` and the casts happen in the ring's own band tasks. A Dataset
    of the :data:`RING_DTYPES` variables, in that order (a mapping of name to DataArray, as the
    groups' writer takes it): computed whole (``dask.compute``), it is one collection to tokenise,
    where a dict of six DataArrays is six, each with the same geometry attrs and coordinates.
    """
    # imported here: :func:`stacked_ring` on an in-memory mosaic (``gpcube significance``) needs
    # neither dask nor the makers' FFTs
    from gpcube.makers.ring import fixed_ring_options, pixel_size, ring_products
    from gpcube.makers.ring_adaptive import adaptive_ring_options

    params = background_config.ring_params
    binsz = pixel_size(counts.attrs.get("geom", {}))
    if background_config.method == "ring":
        options = fixed_ring_options(params.r_in, params.width, binsz)
    else:
        options = adaptive_ring_options(
            binsz, r_in=params.r_in, width=params.width, r_out_max=params.r_out_max,
            stepsize=params.stepsize, threshold_alpha=params.threshold_alpha, theta=params.theta,
            method=params.method,
        )  # fmt: skip
    ring = ring_products(
        counts, background, exclusion=background_config.exclusion_circles(geom), mask_safe=mask_safe,
        energy_edges=ring_energy_edges(params.energy_edges, counts), zero_unsafe=ZEROED_OUTSIDE_SAFE,
        dtypes=RING_DTYPES, **options,
    )  # fmt: skip
    return ring[list(RING_DTYPES)]


def _ratio_or_nan(numerator: np.ndarray, total: np.ndarray) -> np.ndarray:
    """``numerator / total``, NaN where ``total`` is not positive."""
    return np.where(total > 0, numerator / np.where(total > 0, total, 1), np.nan)


def _lazy_average_alpha(alpha_counts_off: da.Array, counts_off: da.Array) -> da.Array:
    """:func:`gpcube.makers.average_alpha` as a lazy dask reduction (NaN without OFF counts).

    The two sums are dask reductions and their ratio a 0-d :func:`dask.array.blockwise` (``da.where``
    is not implemented for dask's query-planning arrays).
    """
    import dask.array as da

    total = counts_off.sum(dtype=np.float64)
    weighted = alpha_counts_off.sum(dtype=np.float64)
    return da.blockwise(
        _ratio_or_nan, (), weighted, (), total, (), dtype=np.float64, meta=np.array((), np.float64)
    )


def _combined_block(off, aoff, acc, average) -> np.ndarray:
    """``alpha`` and ``acceptance_off`` of one block, stacked on a new leading axis, as float32."""
    return np.stack(combine_ring_sums(off, aoff, acc, float(average))).astype(np.float32)


def stacked_ring(sums: xr.Dataset) -> xr.Dataset:
    """Add the stacked ``alpha`` and ``acceptance_off`` to the mosaic's ring sums, lazily.

    ``sums`` holds ``counts_off``, ``alpha_counts_off`` and ``acceptance`` summed over observations
    (``mosaic/ring``). Alpha is the OFF-count weighted mean of the observations' alphas; pixels
    without OFF counts take the average alpha of the whole mosaic (a lazy reduction over all of it,
    computed once when the result is), as :func:`gpcube.makers.combine_ring_sums` describes.
    """
    off, aoff, acc = (sums[name].data for name in ("counts_off", "alpha_counts_off", "acceptance"))
    if hasattr(off, "__dask_graph__"):  # a dask array (dask itself is imported only then)
        import dask.array as da

        average = _lazy_average_alpha(aoff, off)
        chunks = ((2,), *off.chunks)
        both = da.map_blocks(
            _combined_block, off, aoff, acc, average, new_axis=0, chunks=chunks, dtype=np.float32,
            meta=np.array((), np.float32),
        )
    else:
        both = np.stack(combine_ring_sums(off, aoff, acc)).astype(np.float32)
    template = sums["counts_off"]
    return sums.assign({
        name: xr.DataArray(both[i], dims=template.dims, coords=template.coords,
                           attrs={**sums["acceptance"].attrs, "product": name, "units": ""})
        for i, name in enumerate(("alpha", "acceptance_off"))
    })  # fmt: skip
