"""Energy-dispersion kernels and reco-energy exposure against gammapy 2.1 on the 4 Crab runs."""

from __future__ import annotations

import numpy as np
import pytest
from gammapy.estimators.utils import estimate_exposure_reco_energy

from gpcube.makers import make_map_exposure_true_energy
from gpcube.makers.edisp import edisp_kernels, make_edisp_kernel_map
from gpcube.makers.exposure import fold_exposure, make_map_exposure_reco_energy, power_law_integrals
from tests.conftest import CRAB_RUNS
from tests.validation.conftest import run_reference_maker

_DATASETS: dict = {}


@pytest.fixture
def reference_dataset(reference_store, crab_geoms):
    """gammapy's exposure + edisp dataset of one run (binsz_irf 0.2 deg), cached over the module."""

    def get(obs_id):
        if obs_id not in _DATASETS:
            _DATASETS[obs_id] = run_reference_maker(
                reference_store, crab_geoms, obs_id, ["exposure", "edisp"]
            )
        return _DATASETS[obs_id]

    return get


@pytest.mark.parametrize("obs_id", CRAB_RUNS)
def test_kernel_map_matches_reference(hess_store, crab_geoms, reference_dataset, obs_id):
    """Every kernel value within rtol 1e-3 (in fact 1e-10) where the reference is above 1e-3 of its max."""
    reference = reference_dataset(obs_id).edisp.edisp_map.data  # (energy_true, energy, lat, lon)
    ours = make_edisp_kernel_map(hess_store.observation(obs_id), crab_geoms[0]).compute(scheduler="sync")
    assert ours.shape == reference.shape and ours.attrs["geom"]["binsz"] == 0.2
    significant = reference > 1e-3 * reference.max()
    np.testing.assert_allclose(ours.values[significant], reference[significant], rtol=1e-10)
    # elsewhere the reference zeroes values below 1e-8; nothing else differs
    np.testing.assert_allclose(ours.values, reference, rtol=0, atol=1e-8)


@pytest.mark.parametrize("obs_id", CRAB_RUNS[::3])
def test_reco_exposure_matches_reference(hess_store, crab_geoms, reference_dataset, obs_id):
    """The reference folds with one kernel (at the map centre's coarse pixel) for all pixels; gpcube with the
    kernel at each pixel's own offset. The fold itself agrees; the maps agree near that kernel's offset."""
    dataset = reference_dataset(obs_id)
    reference = estimate_exposure_reco_energy(dataset).quantity.to_value("m2 s")
    obs, geom = hess_store.observation(obs_id), crab_geoms[0]
    true_axis, reco_axis = geom.axis("energy_true"), geom.axis("energy_reco")
    flux = [power_law_integrals(a.edges, 2.0) for a in (true_axis, reco_axis)]
    offset = geom.separation(obs.pointing.ra, obs.pointing.dec)
    coarse = geom.to_binsz(0.2)
    reference_offset = coarse.separation(obs.pointing.ra, obs.pointing.dec)[
        coarse.shape[0] // 2, coarse.shape[1] // 2
    ]
    significant = reference > 1e-3 * reference.max()

    kernel = edisp_kernels(obs.edisp, true_axis, reco_axis, reference_offset)
    true = make_map_exposure_true_energy(obs, geom).compute(scheduler="sync").values
    fixed = fold_exposure(true, np.broadcast_to(kernel, (*offset.shape, *kernel.shape)), *flux)
    np.testing.assert_allclose(fixed[significant], reference[significant], rtol=1e-6)

    ours = make_map_exposure_reco_energy(obs, geom).compute(scheduler="sync").values
    near = significant & (np.abs(offset - reference_offset) < 0.01)[None]
    assert near.sum() > 1000
    np.testing.assert_allclose(ours[near], reference[near], rtol=1e-3)
