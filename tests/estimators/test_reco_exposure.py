"""The flux folded through the stacked edisp kernels: known answers on synthetic mosaics, grids, laziness."""

from __future__ import annotations

import dask
import numpy as np
import pytest
import xarray as xr

import gpcube
from gpcube.errors import GpcubeError
from gpcube.estimators import estimate_excess_map
from gpcube.estimators.reco_exposure import coarse_pixel_index, power_law_true_weights
from tests.estimators.test_excess import (
    N_DISC,
    RADIUS,
    RECO,
    TRUE,
    _centre,
    _geom,
    _lazy,
    _mosaic,
    _raise_on_compute,
)

#: The coarse grid of the kernels: 0.25 deg, 5 x 5 fine pixels each (8 x 6 coarse pixels).
BINSZ_IRF = 0.25


def _edisp(geom, kernel) -> xr.DataArray:
    """Kernels ``(energy_true, energy_reco, irf_y, irf_x)`` on ``geom.to_binsz(BINSZ_IRF)``: ``kernel``
    is ``(true, reco)`` (the same everywhere) or ``(true, reco, irf_y, irf_x)``."""
    coarse = geom.to_binsz(BINSZ_IRF)
    shape = (geom.axis("energy_true").nbins, geom.axis("energy_reco").nbins, *coarse.shape)
    data = np.broadcast_to(kernel if np.ndim(kernel) == 4 else np.asarray(kernel)[:, :, None, None], shape)
    coords = {k: v for k, v in coarse.to_coords().items() if set(v.dims) <= {"energy_true", "energy_reco"}}
    coords.update(irf_y=np.arange(coarse.shape[0]), irf_x=np.arange(coarse.shape[1]))
    return xr.DataArray(data.astype(np.float32), dims=("energy_true", "energy_reco", "irf_y", "irf_x"),
                        coords=coords, attrs={"units": "", "geom": coarse.to_attrs()})  # fmt: skip


def _diagonal(share=None) -> np.ndarray:
    """The kernel of E_reco = E_true: true bins 2k, 2k + 1 go to reco bin k (times ``share[k]``)."""
    kernel = np.zeros((len(TRUE) - 1, len(RECO) - 1))
    for k in range(len(RECO) - 1):
        kernel[2 * k : 2 * k + 2, k] = 1.0 if share is None else share[k]
    return kernel


def test_a_diagonal_kernel_gives_the_flux_without_kernels():
    """Reco edges are true edges: folding through the identity is the power-law weighted exposure."""
    geom = _geom()
    centres = np.sqrt(TRUE[:-1] * TRUE[1:])
    exposure = np.broadcast_to(1e8 * centres[:, None, None], geom.data_shape("energy_true"))
    mosaic = _mosaic(geom, exposure=exposure)
    plain = estimate_excess_map(mosaic, RADIUS, spectral_index=2.5)
    folded = estimate_excess_map(mosaic, RADIUS, spectral_index=2.5, edisp=_edisp(geom, _diagonal()))
    np.testing.assert_allclose(folded["flux"].values, plain["flux"].values, rtol=1e-6)
    assert folded.attrs["flux_edisp"] and not plain.attrs["flux_edisp"]
    np.testing.assert_array_equal(folded["excess"].values, plain["excess"].values)


def test_an_observation_counts_its_exposure_only_in_the_bins_it_counts():
    """Two observations of equal exposure, one unsafe in the lowest reco bin: the stacked kernel of that
    bin is 1/2 (the safe one's share), so the flux is the excess over the exposure that counts there."""
    geom = _geom()
    share = np.array([0.5, 1.0, 1.0, 1.0])
    counts = np.array([1, 2, 2, 2])[:, None, None]  # the bin holds half the other's per-flux counts
    mosaic = _mosaic(geom, counts=counts, background=0.0, exposure=2e9)
    out = estimate_excess_map(mosaic, RADIUS, spectral_index=2.0, edisp=_edisp(geom, _diagonal(share)))
    flux_share = (1 / RECO[:-1] - 1 / RECO[1:]) / (1 / 0.5 - 1 / 50)  # each bin's part of the band's flux
    expected = 7 * N_DISC / (2e9 * 1e4 * np.sum(share * flux_share))
    np.testing.assert_allclose(_centre(out, "flux"), expected, rtol=1e-6)
    without = estimate_excess_map(mosaic, RADIUS, spectral_index=2.0)  # counts all the exposure everywhere
    assert _centre(without, "flux") < 0.9 * _centre(out, "flux")


def test_migration_across_the_band_edge_is_counted():
    """Half of each true bin's events land one reco bin higher: the band [1.58, 50] TeV receives flux from
    below it, which a reco = true exposure ignores."""
    geom = _geom()
    kernel = 0.5 * _diagonal()
    kernel[:, 1:] += 0.5 * _diagonal()[:, :-1]
    mosaic = _mosaic(geom, exposure=1e9)
    out = estimate_excess_map(mosaic, RADIUS, spectral_index=2.0, energy_edges=[0.5, RECO[1], 50],
                              edisp=_edisp(geom, kernel))  # fmt: skip
    weights = power_law_true_weights(TRUE, RECO[1], 50, 2.0)
    predicted = 1e9 * np.sum(weights[:, None] * kernel[:, 1:])  # per unit band flux, reco bins 1-3
    np.testing.assert_allclose(out["flux"].values[1, 15, 20], 3 * 0.5 * N_DISC / (predicted * 1e4), rtol=1e-6)
    np.testing.assert_allclose(weights, (1 / TRUE[:-1] - 1 / TRUE[1:]) / (1 / RECO[1] - 1 / 50), rtol=1e-12)


def test_each_pixel_takes_the_kernel_of_its_coarse_pixel():
    """Kernels scaled by a different factor in each coarse pixel: the per-pixel exposure (radius below a
    pixel) is the exposure times its coarse pixel's factor."""
    geom = _geom()
    coarse = geom.to_binsz(BINSZ_IRF)
    factor = 1.0 + np.arange(np.prod(coarse.shape)).reshape(coarse.shape)
    kernel = _diagonal()[:, :, None, None] * factor
    out = estimate_excess_map(_mosaic(geom), 0.01, edisp=_edisp(geom, kernel))
    plain = estimate_excess_map(_mosaic(geom), 0.01)
    ratio = plain["flux"].values[0] / out["flux"].values[0]
    iy, ix = coarse_pixel_index(geom, coarse, 1), coarse_pixel_index(geom, coarse, 0)
    np.testing.assert_allclose(ratio, factor[iy[:, None], ix[None, :]], rtol=1e-6)


@pytest.mark.parametrize(("frame", "projection", "center"), [("icrs", "CAR", (83.6, 22.0)),
                                                              ("galactic", "TAN", (330.0, -1.0)),
                                                              ("icrs", "CAR", (10.0, 70.0))])  # fmt: skip
def test_coarse_pixel_index_holds_the_fine_pixel_centre(frame, projection, center):
    fine = gpcube.SkyGeom.create(center, 0.02, npix=(157, 93), frame=frame, projection=projection)
    coarse = fine.to_binsz(0.2)
    iy, ix = coarse_pixel_index(fine, coarse, 1), coarse_pixel_index(fine, coarse, 0)
    y, x = np.mgrid[0 : fine.npix[1], 0 : fine.npix[0]]
    cx, cy = coarse.world_to_pix(*fine.pix_to_world(x, y))
    # the coarse width is rounded to whole pixels: fine pixels beyond it take the edge pixel
    cx, cy = np.clip(cx, -0.5, coarse.npix[0] - 0.5), np.clip(cy, -0.5, coarse.npix[1] - 0.5)
    assert np.abs(cx - ix[None, :]).max() <= 0.5 + 1e-9 and np.abs(cy - iy[:, None]).max() <= 0.5 + 1e-9
    assert ix.min() == 0 and ix.max() == coarse.npix[0] - 1 and iy.max() == coarse.npix[1] - 1
    other = gpcube.SkyGeom.create((center[0] + 1, center[1]), 0.2, npix=(16, 10), frame=frame,
                                  projection=projection)  # fmt: skip
    with pytest.raises(GpcubeError, match="not a coarse grid"):
        coarse_pixel_index(fine, other, 0)


def test_lazy_equals_in_memory_and_builds_without_computing():
    geom = _geom()
    rng = np.random.default_rng(1)
    mosaic = _mosaic(geom, counts=rng.poisson(3, geom.data_shape("energy_reco")),
                     exposure=rng.uniform(1e8, 1e9, geom.data_shape("energy_true")))  # fmt: skip
    coarse = geom.to_binsz(BINSZ_IRF)
    kernel = rng.uniform(0, 0.3, (len(TRUE) - 1, len(RECO) - 1, *coarse.shape))
    edisp = _edisp(geom, kernel)
    expected = estimate_excess_map(mosaic, RADIUS, spectral_index=2.7, edisp=edisp)
    with dask.config.set(scheduler=_raise_on_compute):
        lazy = estimate_excess_map(_lazy(mosaic, chunk=7), RADIUS, spectral_index=2.7, edisp=edisp)
    assert len(lazy["flux"].chunks[1]) > 1  # several blocks, each with its own coarse pixels
    np.testing.assert_allclose(lazy["flux"].compute(scheduler="sync").values, expected["flux"].values,
                               rtol=1e-12)  # fmt: skip


def test_kernels_on_other_energy_bins_are_refused():
    geom = _geom()
    other = _geom(true=np.geomspace(0.5, 50, 5))
    with pytest.raises(GpcubeError, match="energy_true bins differ"):
        estimate_excess_map(_mosaic(geom), RADIUS, edisp=_edisp(other, np.ones((4, 4))))
    other = _geom(reco=np.geomspace(0.5, 50, 3))
    with pytest.raises(GpcubeError, match="energy_reco bins differ"):
        estimate_excess_map(_mosaic(geom), RADIUS, edisp=_edisp(other, np.ones((8, 2))))


def test_counts_on_runs_of_the_kernels_bins_take_their_summed_kernels():
    """A mosaic on bands of two reco bins each (as a ring background's): the kernels of each band's bins
    are summed, and the flux is that of the per-bin mosaic over the same bands."""
    rng = np.random.default_rng(3)
    geom = _geom()
    coarse = geom.to_binsz(BINSZ_IRF)
    kernel = rng.uniform(0, 0.3, (len(TRUE) - 1, len(RECO) - 1, *coarse.shape))
    counts = rng.poisson(3, geom.data_shape("energy_reco"))
    exposure = rng.uniform(1e8, 1e9, geom.data_shape("energy_true"))
    per_bin = estimate_excess_map(_mosaic(geom, counts=counts, exposure=exposure), RADIUS,
                                  energy_edges=[0.5, RECO[2], 50], edisp=_edisp(geom, kernel))  # fmt: skip
    bands = _geom(reco=RECO[::2])
    merged = _mosaic(bands, counts=counts[0::2] + counts[1::2], background=3.0, exposure=exposure)
    out = estimate_excess_map(merged, RADIUS, energy_edges=[0.5, RECO[2], 50], edisp=_edisp(geom, kernel))
    np.testing.assert_allclose(out["flux"].values, per_bin["flux"].values, rtol=1e-6)
