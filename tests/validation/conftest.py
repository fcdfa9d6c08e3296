"""Reference (gammapy 2.1) objects for the validation tests: same data, same geometry as gpcube's."""

from __future__ import annotations

import warnings

import pytest
from gammapy.data import DataStore
from gammapy.maps import MapAxis, WcsGeom

import gpcube

CRAB_CENTER = (83.633, 22.014)
MSH_CENTER = (320.57, -0.89)  # galactic


@pytest.fixture(scope="session")
def reference_store(hess_dir):
    return DataStore.from_dir(hess_dir)


@pytest.fixture(scope="session")
def crab_geoms():
    """(gpcube geometry, gammapy geometry, gammapy true-energy axis) of the Crab validation setup."""
    reco = gpcube.EnergyAxis.log(0.5, 50, 10, "energy_reco")
    true = gpcube.EnergyAxis.log(0.3, 100, 20, "energy_true")
    ours = gpcube.SkyGeom.create(CRAB_CENTER, 0.02, width=5, axes=[reco, true])
    energy = MapAxis.from_energy_bounds(0.5, 50, 10, unit="TeV", name="energy")
    energy_true = MapAxis.from_energy_bounds(0.3, 100, 20, unit="TeV", name="energy_true")
    ref = WcsGeom.create(skydir=CRAB_CENTER, binsz=0.02, width=5, frame="icrs", proj="CAR", axes=[energy])
    return ours, ref, energy_true


@pytest.fixture(scope="session")
def msh_geoms():
    """The MSH 15-52 validation setup: galactic CAR 5 x 5 deg, 0.02 deg, the Crab setup's axes."""
    reco = gpcube.EnergyAxis.log(0.5, 50, 10, "energy_reco")
    true = gpcube.EnergyAxis.log(0.3, 100, 20, "energy_true")
    ours = gpcube.SkyGeom.create(MSH_CENTER, 0.02, width=5, frame="galactic", axes=[reco, true])
    energy = MapAxis.from_energy_bounds(0.5, 50, 10, unit="TeV", name="energy")
    energy_true = MapAxis.from_energy_bounds(0.3, 100, 20, unit="TeV", name="energy_true")
    ref = WcsGeom.create(skydir=MSH_CENTER, binsz=0.02, width=5, frame="galactic", proj="CAR", axes=[energy])
    return ours, ref, energy_true


def run_reference_maker(reference_store, crab_geoms, obs_id, selection):
    """gammapy's MapDatasetMaker for ``selection`` on one observation (warnings silenced)."""
    from gammapy.datasets import MapDataset
    from gammapy.makers import MapDatasetMaker

    _, ref_geom, energy_true = crab_geoms
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        empty = MapDataset.create(ref_geom, energy_axis_true=energy_true)
        return MapDatasetMaker(selection=selection).run(empty, reference_store.obs(obs_id))
