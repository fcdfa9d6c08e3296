"""The exposure of a mosaic in reconstructed energy: a power law folded through the stacked kernels.

A mosaic's ``exposure (energy_true, y, x)`` is the exposure of the observations that count *any*
reco bin at a pixel, and its IRF maps hold the stacked energy-dispersion kernel ``K(t, r, P)`` on the
coarse grid, already weighted by each observation's safe mask (docs: "What the stacked products
mean"). For a spectrum ``F``, the counts the stack predicts in reco bin ``r`` at pixel ``p`` are
``sum_t F_t E(t, p) K(t, r, P(p))``, with ``P(p)`` the coarse pixel that holds ``p`` and ``F_t`` the
integral of ``F`` over true bin ``t``: each observation's exposure enters only the reco bins it counts,
and events migrate across the band's edges as the kernels say.

:func:`folded_exposure` gives that sum per reco bin for weights ``w_t`` (``F_t`` over the band's flux).
Divided into the excess summed over the same bins it is the integral flux of ``F``'s shape in the band.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from gpcube.errors import GpcubeError
from gpcube.estimators.bands import EDGE_RTOL, band_edges_of, band_slices, power_law_integral
from gpcube.geom import IRF_DIMS, SkyGeom
from gpcube.geom._arrays import is_lazy, numpy_values

__all__ = ["coarse_pixel_index", "folded_exposure", "power_law_true_weights"]

#: Tolerance (deg) when checking that the IRF grid shares the mosaic grid's reference point.
_CRVAL_ATOL = 1e-6
#: Values of the gathered kernels per strip of rows in :func:`_fold_block` (8 MB of float64).
_STRIP_PIXELS = 1 << 20


def power_law_true_weights(
    true_edges: np.ndarray, band_lo: float, band_hi: float, index: float
) -> np.ndarray:
    """``w_t = int_{true bin t} E**-index dE / int_{band} E**-index dE`` over every true bin.

    Parameters
    ----------
    true_edges : numpy.ndarray
        Edges of the true-energy bins (TeV).
    band_lo, band_hi : float
        The reco band (TeV) whose integral flux the weights are relative to.
    index : float
        Spectral index (``dN/dE ~ E**-index``).

    Returns
    -------
    numpy.ndarray
        One weight per true bin; they sum to more or less than 1 as the true axis is wider or narrower
        than the band (the flux outside the band migrates into it through the kernels).
    """
    edges = np.asarray(true_edges, dtype=float)
    return power_law_integral(edges[:-1], edges[1:], index) / power_law_integral(band_lo, band_hi, index)


def coarse_pixel_index(fine: SkyGeom, coarse: SkyGeom, axis: int) -> np.ndarray:
    """The coarse pixel that holds each fine pixel centre along one axis (0: x, 1: y).

    Both grids must share frame, projection and reference point (``coarse = fine.to_binsz(...)``):
    their pixel coordinates are then linear in each other, axis by axis, through the intermediate
    world coordinates ``(pix - crpix) * binsz``. Indices are of the parent grids (``origin`` counted)
    and clipped to the coarse grid.

    Examples
    --------
    >>> from gpcube.geom import SkyGeom
    >>> fine = SkyGeom.create((0.0, 0.0), 0.02, width=(0.4, 0.2), frame="galactic")
    >>> coarse_pixel_index(fine, fine.to_binsz(0.2), axis=0).tolist()
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    """
    same = fine.frame == coarse.frame and fine.projection == coarse.projection
    if not same or not np.allclose(fine.crval, coarse.crval, rtol=0.0, atol=_CRVAL_ATOL):
        raise GpcubeError(
            f"the IRF maps' grid ({coarse.frame} {coarse.projection} at {coarse.crval}) is not a coarse "
            f"grid of the mosaic's ({fine.frame} {fine.projection} at {fine.crval})"
        )
    pix = np.arange(fine.npix[axis]) + fine.origin[axis]  # parent pixel indices, from 0
    intermediate = (pix + 1 - fine.crpix[axis]) * fine.binsz
    coarse_pix = intermediate / coarse.binsz + coarse.crpix[axis] - 1 - coarse.origin[axis]
    index = np.floor(coarse_pix + 0.5).astype(np.intp)
    return np.clip(index, 0, coarse.npix[axis] - 1) + coarse.origin[axis]


def _fold_block(exposure: np.ndarray, iy: np.ndarray, ix: np.ndarray, kernels: np.ndarray) -> np.ndarray:
    """``out[y, x, k] = sum_t exposure[y, x, t] * kernels[k, t, iy[y], ix[x]]`` (``energy_true`` last).

    ``iy`` and ``ix`` come broadcast against the block's ``(y, x)``: the coarse pixel of each fine
    row and column. Rows are done in strips, so the gathered kernels take a few MB at most.
    """
    iy, ix = np.broadcast_to(iy, exposure.shape[:-1]), np.broadcast_to(ix, exposure.shape[:-1])
    out = np.empty((*exposure.shape[:-1], kernels.shape[0]), dtype=np.float64)
    step = max(1, _STRIP_PIXELS // max(1, exposure.shape[1] * exposure.shape[2]))
    for y0 in range(0, exposure.shape[0], step):
        rows = slice(y0, y0 + step)
        for k in range(kernels.shape[0]):
            gathered = kernels[k][:, iy[rows], ix[rows]]  # (true, rows, lon)
            out[rows, :, k] = np.einsum("yxt,tyx->yx", exposure[rows], gathered)
    return out


def _check_edges(name: str, ours: tuple[np.ndarray, np.ndarray], theirs: tuple[np.ndarray, np.ndarray]):
    same = len(ours[0]) == len(theirs[0]) and all(
        np.allclose(a, b, rtol=1e-6, atol=0.0) for a, b in zip(ours, theirs, strict=True)
    )
    if not same:
        raise GpcubeError(f"the edisp kernels' {name} bins differ from the mosaic's: cannot fold them")


def _kernels_on(edisp: xr.DataArray, reco_edges: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The kernels ``(reco, true, irf_y, irf_x)`` in float64 on the counts' reco bins (sums of their own)."""
    kernel = numpy_values(edisp.transpose("energy_reco", "energy_true", *IRF_DIMS)).astype(np.float64)
    own = band_edges_of(edisp, "energy_reco")
    if len(own[0]) == len(reco_edges[0]) and all(
        np.allclose(a, b, rtol=EDGE_RTOL, atol=0.0) for a, b in zip(own, reco_edges, strict=True)
    ):
        return kernel
    try:
        slices = band_slices(*own, *reco_edges)
    except GpcubeError as error:
        raise GpcubeError(f"the edisp kernels' energy_reco bins differ from the mosaic's: {error}") from error
    return np.stack([kernel[s].sum(axis=0) for s in slices])


def folded_exposure(
    exposure: xr.DataArray,
    edisp: xr.DataArray,
    weights: np.ndarray,
    reco: slice,
    reco_edges: tuple[np.ndarray, np.ndarray],
) -> xr.DataArray:
    """``sum_t weights[t] exposure(t, p) K(t, r, P(p))`` for the reco bins ``reco``; lazy if the exposure is.

    Parameters
    ----------
    exposure : xarray.DataArray
        ``(energy_true, y, x)`` on the mosaic grid (geometry in its attrs), with
        ``energy_true_lo/_hi`` coords.
    edisp : xarray.DataArray
        The stacked kernels ``(energy_true, energy_reco, irf_y, irf_x)`` on the coarse grid (geometry in
        its attrs), with the energy coords; read into memory (the coarse grid is small).
    weights : numpy.ndarray
        One weight per true bin (:func:`power_law_true_weights`).
    reco : slice
        The reco bins (of the counts' axis) to fold into.
    reco_edges : tuple of numpy.ndarray
        The counts' reco bin edges ``(lo, hi)``: the kernels' reco bins, or runs of them (e.g. the
        energy bands of a ring background), each counts bin then taking the sum of its kernels.

    Returns
    -------
    xarray.DataArray
        ``(energy_reco, y, x)``, float64, in the exposure's units, without energy coords.
    """
    _check_edges("energy_true", band_edges_of(exposure, "energy_true"), band_edges_of(edisp, "energy_true"))
    fine, coarse = SkyGeom.from_dataarray(exposure), SkyGeom.from_dataarray(edisp)
    kernel = _kernels_on(edisp, reco_edges)[reco]
    kernel = kernel * np.asarray(weights, dtype=np.float64)[None, :, None, None]
    # the kernels' own irf_y/irf_x coords are parent pixel indices: position in the array = index - first
    iy = coarse_pixel_index(fine, coarse, 1) - int(edisp["irf_y"].values[0])
    ix = coarse_pixel_index(fine, coarse, 0) - int(edisp["irf_x"].values[0])
    exposure = exposure.drop_vars([c for c in exposure.coords if "energy_true" in exposure[c].dims])
    rest = tuple(d for d in exposure.dims if d != "energy_true")
    if rest != ("y", "x"):
        raise GpcubeError(f"the exposure must have dims (energy_true, y, x), got {exposure.dims}")
    data = exposure.transpose("energy_true", "y", "x").data
    if is_lazy(data):
        import dask.array as da

        data = data.rechunk({0: -1})
        starts = [np.cumsum((0, *sizes)) for sizes in data.chunks[1:]]
        out = da.map_blocks(
            _fold_lazy_block, data, starts=starts, iy=iy, ix=ix, kernels=kernel, dtype=np.float64,
            chunks=((kernel.shape[0],), *data.chunks[1:]), meta=np.array((), np.float64),
        )  # fmt: skip
    else:
        out = _fold_first(data, iy, ix, kernel)
    template = exposure.isel(energy_true=0, drop=True)
    return xr.DataArray(out, dims=("energy_reco", *rest), coords=template.coords, attrs=template.attrs)


def _fold_first(exposure: np.ndarray, iy: np.ndarray, ix: np.ndarray, kernels: np.ndarray) -> np.ndarray:
    """:func:`_fold_block` of an ``(energy_true, y, x)`` block, as ``(energy_reco, y, x)`` (views)."""
    folded = _fold_block(np.moveaxis(exposure, 0, -1), iy[:, None], ix[None, :], kernels)
    return np.moveaxis(folded, -1, 0)


def _fold_lazy_block(exposure, starts, iy, ix, kernels, block_id=None) -> np.ndarray:
    """:func:`_fold_first` of the dask block ``block_id``: its rows and columns of ``iy`` and ``ix``."""
    _, j, k = block_id
    rows = slice(starts[0][j], starts[0][j + 1])
    columns = slice(starts[1][k], starts[1][k + 1])
    return _fold_first(exposure, iy[rows], ix[columns], kernels)
