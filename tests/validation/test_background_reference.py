"""Predicted background against gammapy 2.1's MapDatasetMaker: 4 Crab runs and 11 MSH 15-52 runs."""

from __future__ import annotations

import numpy as np
import pytest

from gpcube.makers import make_map_background
from tests.conftest import CRAB_RUNS, MSH_RUNS
from tests.validation.conftest import run_reference_maker

CASES = [("crab", obs_id) for obs_id in CRAB_RUNS] + [("msh", obs_id) for obs_id in MSH_RUNS]


@pytest.mark.parametrize(("field", "obs_id"), CASES)
def test_background_matches_reference(hess_store, reference_store, crab_geoms, msh_geoms, field, obs_id):
    """Every pixel within rtol 1e-3 where the reference is above 1e-3 of its maximum."""
    geoms = crab_geoms if field == "crab" else msh_geoms
    reference = run_reference_maker(reference_store, geoms, obs_id, ["background"]).background.data
    ours = make_map_background(hess_store.observation(obs_id), geoms[0]).compute(scheduler="sync")
    assert ours.attrs["orientation"] == "auto"
    significant = reference > 1e-3 * reference.max()
    np.testing.assert_allclose(ours.values[significant], reference[significant], rtol=1e-3)
    assert np.all(ours.values[~significant] < 2e-3 * reference.max())
    np.testing.assert_allclose(ours.values.sum(), reference.sum(), rtol=1e-4)
