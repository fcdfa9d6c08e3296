"""make_map_background_fov_norm: lazy, norms from masked sums, grouping schemes, exclusion masks."""

from __future__ import annotations

import dask
import numpy as np
import pytest

import gpcube
from gpcube.errors import GpcubeError
from gpcube.makers import make_map_background, make_map_background_fov_norm, make_map_counts
from gpcube.makers.fov_norm import (
    energy_groups,
    exclusion_mask_from_circles,
    fov_norm_table,
    resolve_grouping,
)

CRAB = (83.633, 22.014)


def _geom(width=4.0):
    axis = gpcube.EnergyAxis.log(0.5, 50, 6, "energy_reco")
    return gpcube.SkyGeom.create(CRAB, 0.04, width=width, axes=[axis])


def test_lazy(hess_store):
    def raise_on_compute(*args, **kwargs):
        raise AssertionError("computed while building")

    with dask.config.set(scheduler=raise_on_compute):
        cube = make_map_background_fov_norm(hess_store.observation(23523), _geom(), grouping="per-bin")
    assert cube.dims == ("energy_reco", "y", "x") and cube.attrs["fov_norm_scheme"] == "per-bin"
    assert cube.attrs["energy_type"] == "reco"


@pytest.mark.parametrize("grouping", ["all", "per-bin", {"min_counts": 200}])
def test_norm_is_masked_counts_over_masked_background(hess_store, grouping):
    obs, geom = hess_store.observation(23523), _geom()
    exclusion = exclusion_mask_from_circles(geom, [(*CRAB, 0.4)])
    result = make_map_background_fov_norm(obs, geom, exclusion_mask=exclusion, grouping=grouping)
    result = result.compute(scheduler="sync")
    counts = make_map_counts(obs, geom).to_numpy() * exclusion.values
    background = make_map_background(obs, geom).compute(scheduler="sync").values
    groups = result["fov_norm_group"].values.astype(int)
    for group in np.unique(groups):
        in_group = groups == group
        norm = counts[in_group].sum() / (background[in_group] * exclusion.values).sum()
        np.testing.assert_allclose(result["fov_norm"].values[in_group], norm, rtol=1e-12)
        assert result["fov_norm_counts"].values[in_group][0] == counts[in_group].sum()
    np.testing.assert_allclose(result.values, background * result["fov_norm"].values[:, None, None])
    assert result["fov_norm_ok"].values.all()


def test_circles_in_another_frame_equal_the_mask(hess_store):
    obs, geom = hess_store.observation(23523), _geom()
    from astropy.coordinates import SkyCoord

    crab = SkyCoord(*CRAB, unit="deg")
    galactic = [(crab.galactic.l.deg, crab.galactic.b.deg, 0.4)]
    a = make_map_background_fov_norm(obs, geom, exclusion_mask=[(crab, 0.4)])["fov_norm"].to_numpy()
    b = make_map_background_fov_norm(obs, geom, exclusion_mask=[(*CRAB, 0.4)])["fov_norm"].to_numpy()
    mask = exclusion_mask_from_circles(geom, galactic, frame="galactic")
    c = make_map_background_fov_norm(obs, geom, exclusion_mask=mask)["fov_norm"].to_numpy()
    np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(b, c)


def test_energy_groups_merge_until_min_counts():
    counts = np.array([50, 30, 40, 100, 5, 3, 1])
    scheme = resolve_grouping({"min_counts": 60})
    # 50+30 -> group 0; 40+100 -> group 1; 5+3+1 = 9 < 60 joins group 1
    np.testing.assert_array_equal(energy_groups(counts, scheme), [0, 0, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(energy_groups(counts, resolve_grouping("all")), np.zeros(7))
    np.testing.assert_array_equal(energy_groups(counts, resolve_grouping("per-bin")), np.arange(7))
    one_group = resolve_grouping({"min_counts": 10_000})
    np.testing.assert_array_equal(energy_groups(counts, one_group), np.zeros(7))


def test_failed_groups_get_nan_and_not_ok():
    table = fov_norm_table(np.array([0.0, 10.0]), np.array([5.0, 0.0]), resolve_grouping("per-bin"), 0, 0)
    norm, ok = table[0], table[4].astype(bool)
    assert np.isnan(norm).all() and not ok.any()


@pytest.mark.parametrize("bad", ["sometimes", {"min_counts": 0}, {"min_counts": 2.5}, {"events": 3}])
def test_bad_grouping_is_refused(bad):
    with pytest.raises(GpcubeError, match="grouping"):
        resolve_grouping(bad)


def test_mask_on_another_grid_is_refused(hess_store):
    other = exclusion_mask_from_circles(gpcube.SkyGeom.create(CRAB, 0.04, width=1.0), [(*CRAB, 0.2)])
    with pytest.raises(GpcubeError, match="does not cover"):
        make_map_background_fov_norm(hess_store.observation(23523), _geom(), exclusion_mask=other)
