"""Ring-background jobs: the ring products of each observation and their sums in the mosaic."""

from __future__ import annotations

import numpy as np
import pytest

import gpcube
from gpcube.makers import combine_ring_sums
from gpcube.storage.layout import complete_observations as _complete_observations
from gpcube.workflow import pipeline
from tests.archive.conftest import RING, assert_mosaic_as_full_rebuild, built_archive, job, open_group
from tests.conftest import CRAB_RUNS, archive_store


def complete_observations(path) -> dict:
    return _complete_observations(archive_store(path))


@pytest.fixture(scope="module")
def ring_archive(tmp_path_factory):
    return built_archive(tmp_path_factory, "ring", CRAB_RUNS[:3], background=RING)


def test_observations_hold_their_ring_products(ring_archive):
    obs = gpcube.open_archive(ring_archive, obs_id=CRAB_RUNS[0], ring=True)
    assert set(obs.data_vars) == {
        "counts",
        "counts_off",
        "acceptance",
        "acceptance_off",
        "alpha",
        "mask_safe",
    }
    assert obs["counts_off"].dtype == np.int32 and obs["counts"].dtype == np.int32
    assert obs["counts_off"].dims == ("energy_band", "y", "x")
    np.testing.assert_allclose(obs["energy_band_lo"], [0.5, 5.0], rtol=1e-12)
    np.testing.assert_allclose(obs["energy_band_hi"], [5.0, 50.0], rtol=1e-12)
    sky = gpcube.open_archive(ring_archive, obs_id=CRAB_RUNS[0]).compute()
    on = sky["counts"].where(sky["mask_safe"], 0).isel(energy_reco=slice(0, 2)).sum("energy_reco")
    ring_mask = obs["mask_safe"].to_numpy()[0]
    np.testing.assert_array_equal(obs["counts"].to_numpy()[0], np.where(ring_mask, on.to_numpy(), 0))
    assert (
        obs["counts_off"].to_numpy().sum() > 0
        and not obs["counts_off"].to_numpy()[~obs["mask_safe"].to_numpy()].any()
    )


def test_mosaic_ring_is_the_sum_of_the_observations(ring_archive):
    mosaic = gpcube.open_archive(ring_archive, ring=True).compute()
    shape = mosaic["counts_off"].shape
    sums = {name: np.zeros(shape) for name in ("counts", "counts_off", "alpha_counts_off", "acceptance")}
    for obs_id, attrs in complete_observations(ring_archive).items():
        obs = gpcube.open_archive(ring_archive, obs_id=obs_id, ring=True).compute()
        at = (slice(None), slice(*attrs["slice"]["y"]), slice(*attrs["slice"]["x"]))
        mask = obs["mask_safe"].to_numpy()
        terms = {
            "counts": obs["counts"],
            "counts_off": obs["counts_off"],
            "alpha_counts_off": obs["alpha"].astype(float) * obs["counts_off"],
            "acceptance": obs["acceptance"],
        }
        for name, values in terms.items():
            sums[name][at] += np.where(mask, values.to_numpy(), 0)
    for name in ("counts", "counts_off"):
        assert mosaic[name].dtype == np.int32
        np.testing.assert_array_equal(mosaic[name].to_numpy(), sums[name])
    for name in ("alpha_counts_off", "acceptance"):
        np.testing.assert_allclose(mosaic[name].to_numpy(), sums[name], rtol=1e-6)
    alpha, acceptance_off = combine_ring_sums(
        mosaic["counts_off"].to_numpy(),
        mosaic["alpha_counts_off"].to_numpy().astype(float),
        mosaic["acceptance"].to_numpy().astype(float),
    )
    np.testing.assert_allclose(mosaic["alpha"].to_numpy(), alpha, rtol=1e-6)
    np.testing.assert_allclose(mosaic["acceptance_off"].to_numpy(), acceptance_off, rtol=1e-6)
    assert mosaic["alpha"].sky.geom.axis("energy_band").nbins == 2
    assert all(mosaic[name].dims == ("energy_band", "y", "x") for name in mosaic.data_vars)


def test_adding_observations_updates_the_ring_sums_too(ring_archive, tmp_path):
    import shutil

    grown = tmp_path / "grown.zarr"
    shutil.copytree(ring_archive, grown)
    pipeline.run(job(grown, CRAB_RUNS, background=RING), progress=False)
    attrs = open_group(grown, "mosaic").attrs
    assert attrs["updated_with"] == [CRAB_RUNS[3]]
    assert_mosaic_as_full_rebuild(grown, tmp_path, chunk=64, group="mosaic/ring")


def test_adaptive_ring_job(tmp_path):
    adaptive = {"method": "adaptive_ring", "exclusion": RING["exclusion"],
                "adaptive_ring": {"r_in": 0.3, "width": 0.2, "r_out_max": 0.9, "stepsize": 0.2,
                                  "threshold_alpha": 0.05, "energy_edges": "all"}}  # fmt: skip
    out = tmp_path / "adaptive.zarr"
    pipeline.run(job(out, CRAB_RUNS[:2], background=adaptive), progress=False)
    ring = gpcube.open_archive(out, ring=True).compute()
    assert ring.sizes["energy_band"] == 1 and ring["counts_off"].to_numpy().sum() > 0
    maps = pipeline.significance(out, 0.15)
    assert maps.attrs["statistic"] == "wstat" and np.nanmax(maps["sqrt_ts"].to_numpy()) > 5


def test_the_ring_groups_are_children_of_their_groups_in_the_datatree(ring_archive):
    """The ring's energy bands have their own dim (energy_band), so the ring groups align with the
    groups above them: gpcube.open_datatree puts them at their own place, each node what
    open_archive gives."""
    import xarray as xr

    tree = gpcube.open_datatree(ring_archive)
    assert "ring" not in tree.children and set(tree["mosaic"].children) == {"ring"}
    nodes = {"mosaic/ring": gpcube.open_archive(ring_archive, ring=True)}
    for obs_id in CRAB_RUNS[:3]:
        assert set(tree[f"obs/{obs_id}"].children) == {"ring"}
        nodes[f"obs/{obs_id}/ring"] = gpcube.open_archive(ring_archive, obs_id=obs_id, ring=True)
    for node, want in nodes.items():
        got = tree[node].to_dataset()  # the pixel coords are inherited from the group above
        assert set(got.data_vars) == set(want.data_vars) and "y" not in tree[node].to_dataset(inherit=False)
        for name in want.data_vars:
            xr.testing.assert_identical(got[name], want[name])
    got = tree["mosaic/ring"].to_dataset()
    assert got.sizes["energy_band"] == 2 and got.sizes["energy_reco"] == 4  # the bands, and inherited bins
    assert tree["mosaic"].sizes["energy_reco"] == 4


def test_a_ring_archive_opens_as_a_datatree_with_plain_xarray(ring_archive):
    import xarray as xr

    plain = xr.open_datatree(archive_store(ring_archive), engine="zarr", consolidated=False)
    assert set(plain["mosaic"].children) == {"ring"}
    sums = plain["mosaic/ring"].to_dataset(inherit=False)
    ours = gpcube.open_archive(ring_archive, ring=True)
    assert set(sums.data_vars) == {"counts", "counts_off", "alpha_counts_off", "acceptance", "mask_safe"}
    for name in sums.data_vars:
        assert sums[name].dims == ("energy_band", "y", "x")
        np.testing.assert_array_equal(sums[name].to_numpy(), ours[name].to_numpy())
    np.testing.assert_array_equal(sums["energy_band_lo"].to_numpy(), ours["energy_band_lo"].to_numpy())
    np.testing.assert_array_equal(sums["energy_band_hi"].to_numpy(), ours["energy_band_hi"].to_numpy())
    for obs_id in CRAB_RUNS[:3]:
        node = plain[f"obs/{obs_id}/ring"].to_dataset(inherit=False)
        obs = gpcube.open_archive(ring_archive, obs_id=obs_id, ring=True)
        for name in ("counts", "counts_off", "alpha", "mask_safe"):
            np.testing.assert_array_equal(node[name].to_numpy(), obs[name].to_numpy())


def test_an_archive_of_format_version_4_is_refused_naming_the_band_dim(ring_archive, tmp_path):
    import shutil

    from gpcube.errors import GpcubeError
    from gpcube.storage.layout import open_readonly
    from gpcube.storage.repository import Archive
    from tests.conftest import set_format_version

    copy = tmp_path / "old.zarr"
    shutil.copytree(ring_archive, copy)
    archive = Archive(copy)
    set_format_version(archive, 4)
    why = "version 4 is not supported: its ring-background products .*now the dim 'energy_band'"
    with pytest.raises(GpcubeError, match=why):
        open_readonly(archive)
    with pytest.raises(GpcubeError, match="version 4"):
        gpcube.open_datatree(copy)
