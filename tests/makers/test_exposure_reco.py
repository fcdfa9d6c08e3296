"""make_map_exposure_reco_energy: true exposure folded through the kernel at each pixel's offset."""

from __future__ import annotations

import dask
import numpy as np

import gpcube
from gpcube.makers import make_map_exposure_true_energy
from gpcube.makers.edisp import edisp_kernels
from gpcube.makers.exposure import fold_exposure, make_map_exposure_reco_energy, power_law_integrals
from tests import gadf_factory as gf

EDGES = np.geomspace(0.5, 50, 11)


def _perfect(energy_true, migra, offset):
    """All the probability in the migra bin [0.99, 1.01]: E_reco within 1 % of E_true."""
    return 50.0 * (np.abs(migra - 1.0) < 0.005) + 0 * energy_true + 0 * offset


def _observation(tmp_path, aeff=lambda energy_true, offset: 1e5 * (1 + energy_true) * (3 - offset)):
    offset = gf.linear_axis("offset", 0.0, 2.5, 5)
    irfs = [
        gf.aeff_2d(values=aeff, offset=offset),
        gf.edisp_2d(values=_perfect, migra=gf.linear_axis("migra", 0.01, 2.01, 100), offset=offset),
    ]
    store = gf.write_store(tmp_path, [gf.ObsSpec(1, irfs=irfs, n_events=5)], gzip=False)
    return gpcube.DataStore.from_dir(store.root).observation(1)


def _geom(true_edges):
    axes = [gpcube.EnergyAxis("energy_reco", EDGES), gpcube.EnergyAxis("energy_true", true_edges)]
    return gpcube.SkyGeom.create((83.633, 22.0145), 0.1, width=4, axes=axes)


def test_perfect_migration_on_the_same_axis_gives_the_true_exposure(tmp_path):
    obs = _observation(tmp_path)
    geom = _geom(EDGES)
    reco = make_map_exposure_reco_energy(obs, geom, chunk=16).compute(scheduler="sync")
    true = make_map_exposure_true_energy(obs, geom, chunk=16).compute(scheduler="sync")
    np.testing.assert_allclose(reco.values, true.values, rtol=1e-12, atol=1e-6)
    assert reco.values.max() > 1e8


def test_flat_aeff_and_perfect_migration_give_area_times_livetime(tmp_path):
    """True bins nested in the reco bins: the power-law integrals add up, whatever the index."""
    obs = _observation(tmp_path, aeff=lambda energy_true, offset: 2e5 + 0 * energy_true + 0 * offset)
    geom = _geom(np.geomspace(0.5, 50, 21))
    offset = geom.separation(obs.pointing.ra, obs.pointing.dec)
    for index in (2.0, 1.0, 3.3):
        reco = make_map_exposure_reco_energy(obs, geom, spectral_index=index).compute(scheduler="sync")
        expected = np.where(offset <= 2.5, 2e5 * obs.livetime, 0.0)
        np.testing.assert_allclose(reco.values, np.broadcast_to(expected, reco.shape), rtol=1e-12)


def test_lazy_and_typed(hess_store):
    def raise_on_compute(*args, **kwargs):
        raise AssertionError("computed while building")

    with dask.config.set(scheduler=raise_on_compute):
        reco = make_map_exposure_reco_energy(hess_store.observation(23523), _geom(EDGES), chunk=16)
    assert reco.dims == ("energy_reco", "y", "x") and reco.shape == (10, 40, 40)
    assert reco.attrs["energy_type"] == "reco" and reco.attrs["units"] == "m2 s"
    assert len(reco.chunks[1]) == 3


def test_hess_is_the_fold_with_the_kernel_at_each_pixel_offset(hess_store):
    obs = hess_store.observation(23523)
    geom = _geom(np.geomspace(0.3, 100, 21))
    reco = make_map_exposure_reco_energy(obs, geom, chunk=16).compute(scheduler="sync").values
    true = make_map_exposure_true_energy(obs, geom).compute(scheduler="sync").values
    offset = geom.separation(obs.pointing.ra, obs.pointing.dec)
    kernels = edisp_kernels(obs.edisp, geom.axis("energy_true"), geom.axis("energy_reco"), offset)
    flux = [power_law_integrals(geom.axis(name).edges, 2.0) for name in ("energy_true", "energy_reco")]
    np.testing.assert_allclose(reco, fold_exposure(true, kernels, *flux), rtol=1e-10, atol=1e-3)


def test_power_law_integrals():
    np.testing.assert_allclose(power_law_integrals(np.array([1.0, 2.0]), 2.0), [0.5])
    np.testing.assert_allclose(power_law_integrals(np.array([1.0, np.e]), 1.0), [1.0])
