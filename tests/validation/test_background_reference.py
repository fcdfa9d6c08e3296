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


def test_bkg_2d_matches_reference(tmp_path):
    """A synthetic bkg_2d store (H.E.S.S. DR1 has none), read by both: the edge padding included."""
    import warnings

    from gammapy.data import DataStore
    from gammapy.datasets import MapDataset
    from gammapy.makers import MapDatasetMaker
    from gammapy.maps import MapAxis, WcsGeom

    import gpcube
    from tests import gadf_factory as gf

    def radial(energy_reco, offset):
        return 2e-4 * energy_reco**-2.5 * np.exp(-(offset**2))

    location = {"GEOLON": 16.5, "GEOLAT": -23.27, "ALTITUDE": 1835.0, "TELESCOP": "HESS"}
    offset = gf.linear_axis("offset", 0, 2.5, 10)
    spec = gf.ObsSpec(1, extra_header=location, irfs=[gf.aeff_2d(), gf.bkg_2d(radial, offset=offset)])
    gf.write_store(tmp_path, [spec])
    center = (spec.ra_pnt, spec.dec_pnt)
    energy = MapAxis.from_energy_bounds(0.5, 50, 6, unit="TeV", name="energy")
    ref_geom = WcsGeom.create(skydir=center, binsz=0.05, width=7, frame="icrs", axes=[energy])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        observation = DataStore.from_dir(tmp_path).obs(1, required_irf=["aeff", "bkg"])
        reference = MapDatasetMaker(selection=["background"]).run(MapDataset.create(ref_geom), observation)
    reference = reference.background.data
    axis = gpcube.EnergyAxis.log(0.5, 50, 6, "energy_reco")
    geom = gpcube.SkyGeom.create(center, 0.05, width=7, axes=[axis])
    ours = make_map_background(gpcube.DataStore.from_dir(tmp_path).observation(1), geom)
    ours = ours.compute(scheduler="sync").values
    significant = reference > 1e-3 * reference.max()
    np.testing.assert_allclose(ours[significant], reference[significant], rtol=1e-6)
    assert np.all(ours[~significant] < 2e-3 * reference.max())
