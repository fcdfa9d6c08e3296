"""make_map_exposure_true_energy: lazy, and aeff x livetime at each pixel's offset."""

from __future__ import annotations

import dask
import numpy as np

import gpcube
from gpcube.irf import evaluate
from gpcube.makers import make_map_exposure_true_energy
from gpcube.makers.exposure import radial_profile_on_offset_map


def _geom(width=6.0):
    axis = gpcube.EnergyAxis.log(0.3, 100, 20, "energy_true")
    return gpcube.SkyGeom.create((83.633, 22.014), 0.05, width=width, axes=[axis])


def test_lazy_and_typed(hess_store):
    def raise_on_compute(*args, **kwargs):
        raise AssertionError("computed while building")

    with dask.config.set(scheduler=raise_on_compute):
        exposure = make_map_exposure_true_energy(hess_store.observation(23523), _geom(), chunk=40)
    assert exposure.dims == ("energy_true", "y", "x")
    assert exposure.attrs["energy_type"] == "true" and exposure.attrs["units"] == "m2 s"
    assert len(exposure.chunks[1]) == 3


def test_exposure_is_aeff_times_livetime_at_the_pixel_offset(hess_store):
    obs = hess_store.observation(23523)
    geom = _geom()
    exposure = make_map_exposure_true_energy(obs, geom, chunk=50).compute(scheduler="sync").values
    offset = geom.offset_map(obs.pointing.ra, obs.pointing.dec, frame="icrs")
    energy = geom.axis("energy_true").centers
    expected = evaluate(obs.aeff, energy_true=energy[:, None, None], offset=offset[None]) * obs.livetime
    np.testing.assert_allclose(exposure, expected, rtol=1e-12, atol=1e-6)
    assert exposure.max() > 1e8  # a few 1e5 m2 x ~1600 s


def test_radial_profile_linear_in_offset_and_zero_outside():
    nodes = np.array([0.0, 1.0, 2.0])
    table = np.array([[1.0, 3.0, 5.0], [10.0, 10.0, 10.0]])
    offset = np.array([[0.5, 1.5], [2.4, 2.6]])
    result = radial_profile_on_offset_map(table, nodes, (-0.5, 2.5), offset)
    np.testing.assert_allclose(result[0], [[2.0, 4.0], [5.8, 0.0]])
    np.testing.assert_allclose(result[1], [[10.0, 10.0], [10.0, 0.0]])
