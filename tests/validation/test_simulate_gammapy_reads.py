"""The reference (Gammapy 2.1) opens a simulated store and reads every HDU of it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gpcube
from gpcube.simulate import simulate_store
from tests.simulate.conftest import truth_config


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """``(path, report)`` of the simulation tests' truth store, simulated here too."""
    path = tmp_path_factory.mktemp("sim") / "truth"
    return path, simulate_store(truth_config(), path, progress=False)


def test_gammapy_datastore_reads_the_simulated_store(simulated):
    from gammapy.data import DataStore
    from gammapy.datasets import MapDataset
    from gammapy.makers import MapDatasetMaker
    from gammapy.maps import MapAxis, WcsGeom

    path, report = simulated
    ours = gpcube.DataStore.from_dir(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store = DataStore.from_dir(path)
        assert list(store.obs_table["OBS_ID"]) == ours.obs_ids
        obs = store.obs(3)
        assert len(obs.events.table) == ours.observation(3).events.sizes["event"]
        assert obs.observation_live_time_duration.to_value("s") == pytest.approx(3600.0)
        assert obs.pointing.fixed_icrs.separation(ours.observation(3).pointing.radec).deg < 1e-9
        for irf in (obs.aeff, obs.edisp, obs.psf, obs.bkg):
            assert irf is not None
    energy = MapAxis.from_energy_bounds(0.3, 100, 4, unit="TeV")
    true = MapAxis.from_energy_bounds(0.5, 80, 6, unit="TeV", name="energy_true")
    geom = WcsGeom.create(skydir=(0, 0), frame="galactic", width=(4, 3), binsz=0.1, axes=[energy])
    dataset = MapDatasetMaker(selection=["counts", "exposure"]).run(
        MapDataset.create(geom, energy_axis_true=true), obs
    )
    assert dataset.counts.data.sum() > 1000
    assert np.isfinite(dataset.exposure.data).all() and dataset.exposure.data.max() > 0
