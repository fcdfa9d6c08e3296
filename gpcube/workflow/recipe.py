"""The lazy products of one observation that a job asks for, as they go into the archive.

Two grids: the sky products (``counts``, ``exposure``, ``background``, ``mask_safe``) on the
observation's cutout of the mosaic geometry, and the IRF maps (``psf``, ``edisp`` and their weights
``exposure_irf`` and ``exposure_psf``) on its cutout of the coarse grid ``geom.to_binsz(irf.binsz)``.

``mask_safe`` is what the mosaic applies: the safe-mask methods of the config, and, for the FoV
background, the energy groups whose normalisation failed (their norm is NaN) are masked too, so
such bins drop out of the mosaic instead of spoiling it.

The IRF maps are stored as they enter the stack (docs: "What the stacked products mean"):

* ``exposure_irf``: the true-energy exposure on the coarse grid where any reco bin is safe there
  (what the mosaic's ``exposure`` sums on the fine grid); the weight of the energy dispersion;
* ``edisp``: the kernels with the reco bins that are not safe at the pixel set to 0, so that
  ``exposure_irf * edisp`` is exactly what the observation predicts in each safe reco bin;
* ``exposure_psf``: ``exposure_irf`` times the kernel summed over reco bins, the exposure that
  ends in safe reco bins; the weight of the PSF (``exposure_irf`` when there is no ``edisp``).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import xarray as xr

from gpcube import makers
from gpcube.geom import SkyGeom
from gpcube.io import Observation
from gpcube.makers._lazy import blockwise_map
from gpcube.makers.registry import BACKGROUND_METHODS, PRODUCTS, products_on, stored_dtypes
from gpcube.workflow.config import JobConfig
from gpcube.workflow.ring import observation_ring

__all__ = [
    "IRF_PRODUCTS",
    "SKY_PRODUCTS",
    "STORED_DTYPES",
    "Products",
    "at_once",
    "import_makers",
    "observation_products",
]

#: Sky products on the mosaic grid, in the order they are written (:mod:`gpcube.makers.registry`).
SKY_PRODUCTS = products_on("sky")
#: IRF maps on the coarse grid.
IRF_PRODUCTS = products_on("irf")
#: Storage types (:attr:`gpcube.makers.registry.Product.dtype`): counts stay integers; float products
#: as float32 (the makers' float64 results agree with the reference far better than float32 resolves,
#: and the mosaic sums in float64). The cast happens as the blocks are written.
STORED_DTYPES = stored_dtypes()


def _maker_modules(method: str) -> tuple[str, ...]:
    """The maker modules a job uses: those of every product (each job makes a safe mask, and the
    background also for the ring methods' acceptance) and those ``background.method`` adds."""
    modules = dict.fromkeys(p.maker_module for p in PRODUCTS.values())
    return (*modules, *BACKGROUND_METHODS[method].makers)


def at_once(config: JobConfig) -> bool:
    """Whether the reduce task makes the products with :func:`gpcube.makers._lazy.computed_at_once`:
    with the model background (the FoV and ring methods combine products as graphs)."""
    return config.background.method == "model"


def import_makers(config: JobConfig) -> None:
    """Import the makers of ``config``'s products, so that the workers the embedded cluster forks
    from this process start with them (dask.array, which every reduce task needs, comes with
    :mod:`gpcube.workflow.pipeline`)."""
    for module in _maker_modules(config.background.method):
        importlib.import_module(module)


def _safe_mask(observation: Observation, geom: SkyGeom, config: JobConfig, chunk: int) -> xr.DataArray:
    return makers.make_safe_mask(observation, geom, chunk=chunk, **config.safe_mask_kwargs())


def _background(observation, geom, config: JobConfig, mask_safe, counts, chunk) -> xr.DataArray:
    bkg = config.background
    model = makers.make_map_background(
        observation, geom, max_offset=config.max_offset, chunk=chunk, **bkg.maker_kwargs()
    )
    if bkg.method != "fov":  # model, and the acceptance of the ring methods
        return model
    return makers.make_map_background_fov_norm(
        observation, geom, mask_safe=mask_safe, counts=counts, background=model,
        max_offset=config.max_offset, chunk=chunk, **bkg.fov_norm_kwargs(geom),
    )  # fmt: skip


def _sky_products(
    observation: Observation, geom: SkyGeom, config: JobConfig
) -> tuple[dict[str, xr.DataArray], dict[str, xr.DataArray], xr.DataArray | None]:
    """The sky products, the ring products for the ring methods (else an empty dict) and the FoV
    background's ``fov_norm_ok`` (None for the other methods)."""
    chunk = config.chunks.obs
    wanted = set(config.products)
    mask = _safe_mask(observation, geom, config, chunk)
    out: dict[str, xr.DataArray] = {}
    counts = fov_norm_ok = None
    ring_method = BACKGROUND_METHODS[config.background.method].ring
    if "counts" in wanted or config.background.method == "fov" or ring_method:
        counts = makers.make_map_counts(observation, geom, max_offset=config.max_offset, chunk=chunk)
    if "counts" in wanted:
        out["counts"] = counts
    if "exposure" in wanted:
        out["exposure"] = makers.make_map_exposure_true_energy(
            observation, geom, max_offset=config.max_offset, chunk=chunk
        )
    ring = {}
    if "background" in wanted or ring_method:
        background = _background(observation, geom, config, mask, counts, chunk)
        if "background" in wanted:
            out["background"] = background
        if "fov_norm_ok" in background.coords:
            fov_norm_ok = background.coords["fov_norm_ok"].reset_coords(drop=True)
            mask = (mask & background.coords["fov_norm_ok"]).assign_attrs(mask.attrs)
            mask.attrs["fov_norm_ok_applied"] = True
        if ring_method and counts.size:
            ring = observation_ring(counts, background, mask, config.background, geom)
    out["mask_safe"] = mask
    return out, ring, fov_norm_ok


def _irf_products(
    observation: Observation, geom: SkyGeom, config: JobConfig, fov_norm_ok=None
) -> dict[str, xr.DataArray]:
    """The IRF maps on the coarse grid, as they enter the stack (see the module docstring).

    ``fov_norm_ok`` (per reco bin, from the FoV background) masks the reco bins whose normalisation
    failed, as the sky products' ``mask_safe`` does.
    """
    wanted = set(config.products) & set(IRF_PRODUCTS)
    if not wanted:
        return {}
    binsz, offset, chunk = config.irf.binsz, config.max_offset, config.chunks.obs
    coarse = geom.to_binsz(binsz)
    exposure = makers.make_map_exposure_true_energy(observation, coarse, max_offset=offset, chunk=chunk)
    safe = _safe_mask(observation, coarse, config, chunk)
    if fov_norm_ok is not None:
        safe = (safe & fov_norm_ok).assign_attrs(safe.attrs)
    dtype = STORED_DTYPES["exposure_irf"]
    data = blockwise_map(_masked_exposure, exposure.data, safe.data, dtype=dtype, name="exposure_irf")
    weight = exposure.copy(deep=False, data=data).rename("exposure_irf")
    weight.attrs = {**exposure.attrs, "product": "exposure_irf", "masked_by": "mask_safe (any reco bin)"}
    out: dict[str, xr.DataArray] = {}
    if "psf" in wanted:
        rad = config.irf.rad.edges()
        out["psf"] = makers.make_psf_map(observation, geom, binsz_irf=binsz, rad=rad, max_offset=offset)
    if "edisp" in wanted:
        kernels = makers.make_edisp_kernel_map(
            observation, geom, binsz_irf=binsz, max_offset=offset, chunk=chunk
        )
        data = blockwise_map(_masked_kernels, kernels.data, safe.data, dtype=kernels.dtype, name="edisp")
        out["edisp"] = kernels.copy(deep=False, data=data)
        out["edisp"].attrs["masked_by"] = "mask_safe (per reco bin)"
    out["exposure_irf"] = weight
    if "psf" in wanted and "edisp" in wanted:
        data = blockwise_map(_psf_weight, weight.data, out["edisp"].data, dtype=dtype, name="exposure_psf")
        out["exposure_psf"] = weight.copy(deep=False, data=data).rename("exposure_psf")
        out["exposure_psf"].attrs.update(
            product="exposure_psf", masked_by="exposure_irf times the safe fraction of the edisp kernel"
        )
    return out


def _masked_exposure(exposure: np.ndarray, safe: np.ndarray) -> np.ndarray:
    """The exposure where any reco bin is safe, 0 elsewhere, as stored."""
    return (exposure * safe.any(axis=0)).astype(STORED_DTYPES["exposure_irf"])


def _masked_kernels(kernels: np.ndarray, safe: np.ndarray) -> np.ndarray:
    """Kernels ``(true, reco, irf_y, irf_x)`` set to 0 in the reco bins that are not safe at the pixel."""
    return kernels * safe[None]


def _psf_weight(exposure: np.ndarray, kernels: np.ndarray) -> np.ndarray:
    """The true-energy exposure that ends up in safe reco bins: ``exposure_irf`` times the summed
    (masked) kernel, the weight that makes the stacked PSF exact for counts summed over reco energy."""
    return (exposure * kernels.sum(axis=1)).astype(STORED_DTYPES["exposure_psf"])


class Products(NamedTuple):
    """An observation's lazy products, one mapping per archive group (empty if not asked for)."""

    sky: dict[str, xr.DataArray]
    irf: dict[str, xr.DataArray]
    ring: Mapping[str, xr.DataArray]  # the Dataset of observation_ring


def observation_products(observation: Observation, geom: SkyGeom, config: JobConfig) -> Products:
    """The lazy sky products, IRF maps and ring products of one observation for ``config``.

    Returns
    -------
    Products
        ``sky`` and ``irf`` as the makers make them (they are stored as :data:`STORED_DTYPES`: pass
        ``dtypes=STORED_DTYPES`` to :func:`gpcube.storage.groups.write_dataarrays`, which casts
        block by block as it writes), ``ring`` cast to :data:`gpcube.workflow.ring.RING_DTYPES`;
        ``irf`` is empty when neither ``psf`` nor ``edisp`` is asked for, ``ring`` unless
        ``background.method`` is ``ring`` or ``adaptive_ring``.
    """
    sky, ring, fov_norm_ok = _sky_products(observation, geom, config)
    irf = _irf_products(observation, geom, config, fov_norm_ok)
    return Products(sky, irf, ring)
