"""Energy-dispersion kernels: closed forms on synthetic IRFs, the node-table shortcut, laziness."""

from __future__ import annotations

import dask
import numpy as np
import pytest
from scipy.stats import norm

import gpcube
from gpcube.makers.edisp import (
    edisp_kernels,
    fold_kernels,
    interp_kernels,
    kernel_table,
    make_edisp_kernel_map,
    migration_integrals,
)
from tests import gadf_factory as gf

TRUE = gpcube.EnergyAxis.log(0.3, 30, 8, "energy_true")
RECO = gpcube.EnergyAxis.log(0.5, 20, 6, "energy_reco")
OFFSET = gf.linear_axis("offset", 0.0, 2.5, 5)  # nodes 0.25 ... 2.25, edges 0 and 2.5


def _edisp(tmp_path, values, migra=None, offset=None):
    irf = gf.edisp_2d(values=values, energy=gf.energy_axis("energy_true", 0.1, 100.0, 12), migra=migra,
                      offset=offset or OFFSET)  # fmt: skip
    aeff = gf.aeff_2d(values=lambda energy_true, offset: 1e5 + 0 * energy_true + 0 * offset, offset=OFFSET)
    store = gf.write_store(tmp_path, [gf.ObsSpec(1, irfs=[aeff, irf], n_events=5)], gzip=False)
    return gpcube.DataStore.from_dir(store.root).observation(1)


def _uniform(energy_true, migra, offset):
    """Density 1 on migra [0.5, 1.5] at every energy and offset."""
    return ((migra > 0.5) & (migra < 1.5)) + 0 * energy_true + 0 * offset


def _overlap(lo, hi, a, b):
    return np.clip(np.minimum(hi, b) - np.maximum(lo, a), 0, None)


def test_uniform_migration_gives_overlap_lengths(tmp_path):
    obs = _edisp(tmp_path, _uniform, migra=gf.linear_axis("migra", 0.0, 3.0, 30))
    kernels = edisp_kernels(obs.edisp, TRUE, RECO, [0.3, 1.0, 2.4])
    migra = RECO.edges[None, :] / TRUE.centers[:, None]
    expected = _overlap(migra[:, :-1], migra[:, 1:], 0.5, 1.5)
    for k in kernels:
        np.testing.assert_allclose(k, expected, rtol=1e-12, atol=1e-14)
    # rows sum to the probability mass inside the reco range
    inside = _overlap(migra[:, 0], migra[:, -1], 0.5, 1.5)
    np.testing.assert_allclose(kernels[1].sum(axis=1), inside, rtol=1e-12, atol=1e-14)


def test_gaussian_migration_gives_normal_cdf_differences(tmp_path):
    sigma = 0.1
    obs = _edisp(tmp_path, lambda energy_true, migra, offset: norm.pdf(migra, 1.0, sigma) + 0 * energy_true
                 + 0 * offset, migra=gf.linear_axis("migra", 0.2, 3.0, 1400))  # fmt: skip
    kernel = edisp_kernels(obs.edisp, TRUE, RECO, 1.0)
    migra = RECO.edges[None, :] / TRUE.centers[:, None]
    expected = np.diff(norm.cdf(migra, 1.0, sigma), axis=1)
    # the histogram of the density sampled at bin centres (2e-3 wide) is exact to O(width^2)
    np.testing.assert_allclose(kernel, expected, atol=2e-4)


def test_normalisation_divides_by_total_probability(tmp_path):
    obs = _edisp(tmp_path, lambda energy_true, migra, offset: 0.5 * _uniform(energy_true, migra, offset),
                 migra=gf.linear_axis("migra", 0.0, 3.0, 30))  # fmt: skip
    raw = edisp_kernels(obs.edisp, TRUE, RECO, 1.0, normalize=False)
    np.testing.assert_allclose(edisp_kernels(obs.edisp, TRUE, RECO, 1.0), 2 * raw, rtol=1e-12)


def _varying(energy_true, migra, offset):
    """A migration whose width, mean and norm change with offset and energy (goes to 0 at large offset)."""
    sigma = 0.1 + 0.08 * offset + 0.02 * np.log10(energy_true)
    return (1.2 - 0.5 * offset) * norm.pdf(migra, 1.0 + 0.05 * offset, sigma)


@pytest.mark.parametrize("offset_axis", [OFFSET, gf.Axis.from_nodes("offset", [0.0, 0.5, 1.0, 1.5, 2.0])])
def test_table_equals_direct_evaluation_at_any_offset(tmp_path, offset_axis):
    """Between nodes by linearity; beyond the outer nodes (extrapolated, clipped per migra bin) exactly."""
    obs = _edisp(tmp_path, _varying, migra=gf.linear_axis("migra", 0.2, 3.0, 56), offset=offset_axis)
    offsets = np.linspace(0.0, 2.8, 561)  # offsets are never negative: 0 is the lowest
    direct = edisp_kernels(obs.edisp, TRUE, RECO, offsets, normalize=False)
    table = kernel_table(obs.edisp, TRUE, RECO, normalize=False)
    np.testing.assert_allclose(interp_kernels(table, offsets), direct, rtol=1e-10, atol=1e-13)
    normalised = kernel_table(obs.edisp, TRUE, RECO)
    expected = edisp_kernels(obs.edisp, TRUE, RECO, offsets)
    np.testing.assert_allclose(interp_kernels(normalised, offsets), expected, rtol=1e-10, atol=1e-13)
    weights = np.random.default_rng(1).uniform(0, 1, (len(offsets), TRUE.nbins))
    np.testing.assert_allclose(fold_kernels(normalised, offsets, weights),
                               np.einsum("pi,pij->pj", weights, interp_kernels(normalised, offsets)),
                               rtol=1e-10, atol=1e-13)  # fmt: skip


def test_migration_integrals_is_the_exact_histogram_integral():
    edges = np.array([0.0, 1.0, 2.0, 4.0])
    density = np.array([[1.0, 2.0, 0.5]])
    integrals, totals = migration_integrals(density, edges, np.array([[-1.0, 0.5, 1.5, 3.0, 9.0]]))
    np.testing.assert_allclose(integrals, [[0.5, 0.5 + 1.0, 1.0 + 0.5, 0.5]])
    np.testing.assert_allclose(totals, [4.0])


def _geom():
    return gpcube.SkyGeom.create((83.633, 22.014), 0.02, width=4, axes=[RECO, TRUE])


def test_lazy_and_typed(hess_store):
    def raise_on_compute(*args, **kwargs):
        raise AssertionError("computed while building")

    with dask.config.set(scheduler=raise_on_compute):
        kernels = make_edisp_kernel_map(hess_store.observation(23523), _geom(), chunk=8)
    assert kernels.dims == ("energy_true", "energy_reco", "irf_y", "irf_x")
    assert kernels.shape == (TRUE.nbins, RECO.nbins, 20, 20)
    assert kernels.attrs["energy_type"] == "true->reco" and kernels.attrs["units"] == ""
    assert kernels.attrs["geom"]["binsz"] == 0.2 and len(kernels.chunks[3]) == 3


def test_map_is_the_kernel_at_each_coarse_pixel_offset(hess_store):
    obs = hess_store.observation(23523)
    kernels = make_edisp_kernel_map(obs, _geom(), chunk=8, max_offset=1.5).compute(scheduler="sync")
    coarse = gpcube.SkyGeom.from_attrs(kernels.attrs["geom"])
    offset = coarse.separation(obs.pointing.ra, obs.pointing.dec)
    expected = np.moveaxis(edisp_kernels(obs.edisp, TRUE, RECO, offset), (0, 1), (2, 3))
    np.testing.assert_allclose(kernels.values, expected, rtol=1e-10, atol=1e-13)
    assert kernels.values.max() > 0.5
