"""Counts equal gammapy 2.1's MapDatasetMaker in every pixel on the 4 Crab runs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gammapy.maps import MapAxis, WcsGeom

import gpcube
from gpcube.makers import make_map_counts
from tests.conftest import CRAB_RUNS


@pytest.fixture(scope="module")
def reference_store(hess_dir):
    from gammapy.data import DataStore

    return DataStore.from_dir(hess_dir)


@pytest.mark.parametrize("obs_id", CRAB_RUNS)
def test_counts_identical_to_reference(hess_store, reference_store, obs_id):
    from gammapy.datasets import MapDataset
    from gammapy.makers import MapDatasetMaker

    energy = MapAxis.from_energy_bounds(0.5, 50, 10, unit="TeV", name="energy")
    ref_geom = WcsGeom.create(
        skydir=(83.633, 22.014), binsz=0.02, width=5, frame="icrs", proj="CAR", axes=[energy]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = MapDatasetMaker(selection=["counts"]).run(
            MapDataset.create(ref_geom), reference_store.obs(obs_id)
        )
    axis = gpcube.EnergyAxis.log(0.5, 50, 10, "energy_reco")
    geom = gpcube.SkyGeom.create((83.633, 22.014), 0.02, width=5, axes=[axis])
    ours = make_map_counts(hess_store.observation(obs_id), geom).compute(scheduler="sync")
    np.testing.assert_array_equal(ours.values, dataset.counts.data)
