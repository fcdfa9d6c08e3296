"""Counts and exposure against gammapy 2.1's MapDatasetMaker on the 4 Crab runs."""

from __future__ import annotations

import numpy as np
import pytest

from gpcube.makers import make_map_counts, make_map_exposure_true_energy
from tests.conftest import CRAB_RUNS
from tests.validation.conftest import run_reference_maker


@pytest.mark.parametrize("obs_id", CRAB_RUNS)
def test_counts_identical_to_reference(hess_store, reference_store, crab_geoms, obs_id):
    dataset = run_reference_maker(reference_store, crab_geoms, obs_id, ["counts"])
    ours = make_map_counts(hess_store.observation(obs_id), crab_geoms[0]).compute(scheduler="sync")
    np.testing.assert_array_equal(ours.values, dataset.counts.data)


@pytest.mark.parametrize("obs_id", CRAB_RUNS)
def test_exposure_matches_reference(hess_store, reference_store, crab_geoms, obs_id):
    """Every pixel within rtol 1e-3 where the reference is above 1e-3 of its maximum."""
    dataset = run_reference_maker(reference_store, crab_geoms, obs_id, ["exposure"])
    reference = dataset.exposure.quantity.to_value("m2 s")
    ours = make_map_exposure_true_energy(hess_store.observation(obs_id), crab_geoms[0]).compute(
        scheduler="sync"
    )
    assert ours.attrs["units"] == "m2 s"
    significant = reference > 1e-3 * reference.max()
    np.testing.assert_allclose(ours.values[significant], reference[significant], rtol=1e-3)
    assert np.all(ours.values[~significant] < 2e-3 * reference.max())
