"""The stacked IRF maps predict what the observations predict, each with its own safe mask.

For any spectrum ``F(energy_true)``, an observation predicts in reco bin ``r`` at a pixel
``sum_t F(t) exposure(t) edisp(t, r) mask_safe(r)``; the stack predicts ``sum_t F(t) exposure_irf(t)
edisp(t, r)`` with its own maps. The two must be equal in every reco bin, for every spectrum: the
safe thresholds of the Crab runs (aeff-default: 0.87, 0.71, 0.66, 0.87 TeV) fall inside reco bins, so a
kernel averaged over every observation with any safe bin (what the mosaic did before) predicts a bin
that only some runs count with the exposure of all of them. The per-observation maps here are made
again by the makers (kernels unmasked), so the archive's own masking is checked too.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from gpcube import makers
from gpcube.workflow import pipeline
from tests.archive.conftest import job, open_group
from tests.conftest import CRAB_RUNS

#: Reco bins 0.5-0.79-1.26-... TeV: 23526's threshold (0.71 TeV) and 23523's (0.87 TeV) fall in
#: different bins, so the 0.79-1.26 TeV bin is safe for one run and not the other.
OVERRIDES = {
    "geom": {
        "energy_reco": {"min": 0.5, "max": 50, "nbins": 10},
        "energy_true": {"min": 0.3, "max": 100, "nbins": 12},
    },
    "products": ["counts", "exposure", "psf", "edisp"],
    "safe_mask": {"methods": ["offset-max", "aeff-default"], "offset_max": 2.0},
}  # fmt: skip


@pytest.fixture(scope="module")
def stacked(tmp_path_factory):
    """(config, the mosaic's IRF maps, per-observation (exposure_irf, raw kernels, coarse safe mask))."""
    config = job(tmp_path_factory.mktemp("stack") / "stack.zarr", CRAB_RUNS[:2], **OVERRIDES)
    pipeline.run(config, progress=False)
    irf = open_group(config.output, "mosaic/irf").load()
    geom = config.geom()
    coarse = geom.to_binsz(config.irf.binsz)
    store = config.data.open()
    per_obs = []
    for obs_id in CRAB_RUNS[:2]:
        obs = store.observation(obs_id)
        exposure = makers.make_map_exposure_true_energy(obs, coarse, max_offset=config.max_offset)
        irf_kwargs = {"binsz_irf": config.irf.binsz, "max_offset": config.max_offset}
        kernels = makers.make_edisp_kernel_map(obs, geom, **irf_kwargs)
        psf = makers.make_psf_map(obs, geom, rad=config.irf.rad.edges(), **irf_kwargs)
        safe = makers.make_safe_mask(obs, coarse, **config.safe_mask_kwargs())
        # computed before any xarray reduction: those of a lazy array fail with query planning
        exposure, kernels, safe, psf = (m.compute(scheduler="sync") for m in (exposure, kernels, safe, psf))
        per_obs.append((exposure * safe.any("energy_reco"), kernels, safe, psf))
    return config, irf, per_obs


def _placed(da: xr.DataArray, like: xr.DataArray) -> xr.DataArray:
    """``da`` (a cutout: irf_y/irf_x are the parent grid's pixel indices) on the grid of ``like``, 0
    elsewhere."""
    return da.reindex_like(like[["irf_y", "irf_x"]], fill_value=0).astype(np.float64)


def test_thresholds_fall_inside_reco_bins(stacked):
    """The setup does what the test needs: a reco bin that one run counts and the other does not."""
    _, _, per_obs = stacked
    first, second = (safe.any(("irf_y", "irf_x")).values for _, _, safe, _ in per_obs)
    assert (first != second).any()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stacked_predicted_counts_are_the_sum_of_the_observations(stacked, seed):
    """``exposure_irf * edisp`` of the stack equals the sum over observations of their masked products,
    in every reco bin and coarse pixel, for random spectra (float32 storage: rtol 1e-5)."""
    _, irf, per_obs = stacked
    rng = np.random.default_rng(seed)
    flux = xr.DataArray(rng.uniform(0.1, 1.0, irf.sizes["energy_true"]), dims="energy_true")
    flux = flux * irf["energy_true"].values ** -rng.uniform(1.5, 3.5)
    expected = 0.0
    for exposure, kernels, safe, _ in per_obs:
        term = (flux * exposure * kernels.where(safe, 0.0)).sum("energy_true")
        expected = expected + _placed(term, irf)
    got = (flux * irf["exposure_irf"].astype(np.float64) * irf["edisp"]).sum("energy_true")
    expected = expected.transpose(*got.dims)
    assert float(expected.max()) > 0
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * float(expected.max()))


def test_stacked_psf_is_exact_for_counts_summed_over_reco_energy(stacked):
    """``exposure_psf * psf`` of the stack is the sum over observations of the exposure that ends in
    safe reco bins times their own PSF: the spatial distribution of the predicted counts summed over
    reco energy is exact at every true energy."""
    _, irf, per_obs = stacked
    expected = 0.0
    for exposure, kernels, safe, psf in per_obs:
        contributing = exposure * kernels.where(safe, 0.0).sum("energy_reco")
        expected = expected + _placed(contributing * psf, irf)
    got = irf["exposure_psf"].astype(np.float64) * irf["psf"]
    expected = expected.transpose(*got.dims)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * float(expected.max()))


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_the_kernel_of_a_bin_is_averaged_over_the_observations_safe_in_it(stacked, order):
    """Where one run is safe in a reco bin and the other, with exposure there, is not, the stacked
    kernel in that bin is the safe run's kernel times its share of the exposure."""
    _, irf, per_obs = stacked
    (e1, k1, s1, _), (e2, _, s2, _) = (per_obs[i] for i in order)
    dims = irf["edisp"].dims
    assert dims == ("energy_true", "energy_reco", "irf_y", "irf_x")
    first, second = (_placed(s, irf).values > 0 for s in (s1, s2))  # (reco, irf_y, irf_x)
    exposure_first = _placed(e1, irf).transpose("energy_true", "irf_y", "irf_x").values
    exposure_second = _placed(e2, irf).transpose("energy_true", "irf_y", "irf_x").values
    only_first = first[None] & ~second[None] & (exposure_second[:, None] > 0)  # (true, reco, irf_y, irf_x)
    total = irf["exposure_irf"].values.astype(np.float64)
    share = np.divide(exposure_first, total, out=np.zeros_like(total), where=total > 0)
    kernel_first = _placed(k1, irf).transpose(*dims).values
    expected = (kernel_first * share[:, None])[only_first]
    np.testing.assert_allclose(irf["edisp"].values[only_first], expected, rtol=1e-5, atol=1e-7)
    if order == (1, 0):  # 23526 (threshold 0.71 TeV) is safe in 0.79-1.26 TeV, 23523 (0.87) is not
        assert only_first.any()
        assert (np.broadcast_to(share[:, None], only_first.shape)[only_first] < 0.75).any()  # diluted


def test_an_archive_of_format_version_1_is_refused_with_the_reason(stacked):
    """Version 1 archives hold unmasked kernels: adding to one would mix both meanings."""
    from gpcube.errors import GpcubeError
    from gpcube.storage.layout import open_readonly
    from gpcube.storage.nodes import write_group
    from gpcube.storage.repository import Archive
    from tests.conftest import set_format_version

    config, _, _ = stacked
    archive = Archive(config.output)
    attrs = set_format_version(archive, 1)
    try:
        with pytest.raises(GpcubeError, match="version 1 is not supported: its energy-dispersion kernels"):
            open_readonly(archive)
        with pytest.raises(GpcubeError, match="version 1 is not supported"):
            pipeline.run(config, progress=False)
    finally:
        session = archive.writable()
        write_group(session.store, "", attrs)
        archive.commit(session, "back to version 3")
