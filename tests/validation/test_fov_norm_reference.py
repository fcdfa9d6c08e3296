"""FoV background norms against gammapy 2.1's FoVBackgroundMaker (scale), Crab and MSH 15-52 runs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

from gpcube.makers import exclusion_mask_from_circles, make_map_background_fov_norm
from tests.conftest import CRAB_RUNS, MSH_RUNS
from tests.validation.conftest import CRAB_CENTER, MSH_CENTER, run_reference_maker

OFFSET_MAX = 2.5
EXCLUSION_RADIUS = 0.5


def _reference_norms(dataset, observation, geom, center, frame):
    from astropy import units as u
    from astropy.coordinates import SkyCoord
    from gammapy.makers import FoVBackgroundMaker, SafeMaskMaker
    from regions import CircleSkyRegion

    region = CircleSkyRegion(SkyCoord(*center, unit="deg", frame=frame), EXCLUSION_RADIUS * u.deg)
    exclusion = ~geom.to_image().region_mask([region])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = SafeMaskMaker(methods=["offset-max"], offset_max=f"{OFFSET_MAX} deg").run(
            dataset, observation
        )
        mask_safe = dataset.mask_safe.data.copy()
        total = FoVBackgroundMaker(method="scale", exclusion_mask=exclusion).run(dataset.copy(name="all"))
        norms = [total.models["all-bkg"].spectral_model.norm.value]
        for index in range(dataset.counts.data.shape[0]):
            sliced = dataset.slice_by_idx({"energy": slice(index, index + 1)}, name=f"bin{index}")
            sliced = FoVBackgroundMaker(method="scale", exclusion_mask=exclusion).run(sliced)
            norms.append(sliced.models[f"bin{index}-bkg"].spectral_model.norm.value)
    return mask_safe, norms[0], np.array(norms[1:])


CASES = [("crab", obs_id) for obs_id in CRAB_RUNS] + [("msh", obs_id) for obs_id in MSH_RUNS[:4]]


@pytest.mark.parametrize(("field", "obs_id"), CASES)
def test_fov_norms_match_reference(hess_store, reference_store, crab_geoms, msh_geoms, field, obs_id):
    if field == "crab":
        geoms, center, frame = crab_geoms, CRAB_CENTER, "icrs"
    else:
        geoms, center, frame = msh_geoms, MSH_CENTER, "galactic"
    dataset = run_reference_maker(reference_store, geoms, obs_id, ["counts", "background"])
    mask_safe, norm_all, norm_per_bin = _reference_norms(
        dataset, reference_store.obs(obs_id), geoms[1], center, frame
    )
    ours_geom = geoms[0]
    obs = hess_store.observation(obs_id)
    safe = xr.DataArray(mask_safe, dims=("energy_reco", "y", "x"))
    exclusion = exclusion_mask_from_circles(ours_geom, [(*center, EXCLUSION_RADIUS)])
    options = {"exclusion_mask": exclusion, "mask_safe": safe}
    all_bins = make_map_background_fov_norm(obs, ours_geom, **options).compute(scheduler="sync")
    np.testing.assert_allclose(all_bins["fov_norm"].values, norm_all, rtol=1e-3)
    per_bin = make_map_background_fov_norm(obs, ours_geom, grouping="per-bin", **options)
    per_bin = per_bin.compute(scheduler="sync")
    ok = np.isfinite(norm_per_bin) & per_bin["fov_norm_ok"].values
    assert ok.sum() >= 8
    np.testing.assert_allclose(per_bin["fov_norm"].values[ok], norm_per_bin[ok], rtol=1e-3)
