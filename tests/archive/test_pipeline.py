"""The whole job in Python: reduce into the archive, mosaic, re-runs, refusals and determinism."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import xarray as xr
from astropy.coordinates import SkyCoord

import gpcube
import gpcube.data
from gpcube.errors import GpcubeError
from gpcube.storage.layout import complete_observations as _complete_observations
from gpcube.storage.nodes import read_group_attrs
from gpcube.storage.repository import Archive
from gpcube.workflow import pipeline
from gpcube.workflow.config import ConfigError
from tests.archive.conftest import (
    assert_mosaic_as_full_rebuild,
    chunk_files,
    job,
    job_dict,
    open_group,
    spy_sky_chunks,
)
from tests.conftest import CRAB_RUNS, HESS_DIR, archive_store


def complete_observations(path) -> dict:
    return _complete_observations(archive_store(path))


def _histogram(obs_ids, config) -> np.ndarray:
    """Counts of the safe region, by astropy's WCS and plain numpy: independent of gpcube's makers."""
    geom = config.geom()
    wcs = geom.wcs
    edges = config.geom.energy_reco.axis("energy_reco").edges
    ny, nx = geom.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    centres = wcs.pixel_to_world(xx, yy)
    total = np.zeros((len(edges) - 1, ny, nx), dtype=np.int64)
    store = gpcube.DataStore.from_dir(HESS_DIR)
    for obs_id in obs_ids:
        obs = store.observation(obs_id)
        ev = obs.events
        x, y = wcs.world_to_pixel(SkyCoord(ev["ra"].to_numpy(), ev["dec"].to_numpy(), unit="deg"))
        ix, iy = np.floor(x + 0.5).astype(int), np.floor(y + 0.5).astype(int)
        hist, _ = np.histogramdd(
            (ev["energy"].to_numpy(), iy, ix), bins=(edges, np.arange(ny + 1) - 0.5, np.arange(nx + 1) - 0.5)
        )
        safe = centres.separation(obs.pointing.radec).deg < config.safe_mask.offset_max
        total += np.where(safe, hist, 0).astype(np.int64)
    return total


@pytest.fixture(scope="module")
def crab_archive(tmp_path_factory):
    """Two Crab runs reduced in this process, mosaic built."""
    config = job(tmp_path_factory.mktemp("a") / "crab.zarr")
    report = pipeline.run(config, progress=False)
    return config, report


def test_mosaic_counts_are_a_plain_histogram_of_the_safe_events(crab_archive):
    config, report = crab_archive
    assert report["written"] == 2 and report["selected"] == 2
    mosaic = open_group(config.output, "mosaic")  # plain xarray, as a user would
    assert mosaic["counts"].dims == ("energy_reco", "y", "x")
    assert mosaic["exposure"].dims == ("energy_true", "y", "x")
    assert mosaic["counts"].dtype == np.int32
    np.testing.assert_array_equal(mosaic["counts"].to_numpy(), _histogram(CRAB_RUNS[:2], config))
    assert mosaic.attrs["obs_ids"] == list(CRAB_RUNS[:2])


def test_mosaic_is_the_sum_of_the_masked_cutouts(crab_archive):
    config, _ = crab_archive
    mosaic = gpcube.open_archive(config.output).load()
    expected = xr.zeros_like(mosaic[["counts", "background", "exposure"]], dtype=float)
    for obs_id in CRAB_RUNS[:2]:
        obs = open_group(config.output, f"obs/{obs_id}").load()
        sl = obs.attrs["slice"]
        region = {"y": slice(*sl["y"]), "x": slice(*sl["x"])}
        np.testing.assert_array_equal(obs["y"].to_numpy(), np.arange(*sl["y"]))
        mask = obs["mask_safe"]
        for name in ("counts", "background"):
            expected[name][{**region}] += obs[name].where(mask, 0).to_numpy()
        expected["exposure"][{**region}] += obs["exposure"].where(mask.any("energy_reco"), 0).to_numpy()
    np.testing.assert_array_equal(mosaic["counts"].to_numpy(), expected["counts"].to_numpy())
    for name in ("background", "exposure"):
        np.testing.assert_allclose(mosaic[name].to_numpy(), expected[name].to_numpy(), rtol=1e-6)
    assert mosaic["mask_safe"].to_numpy().any()


def test_irf_mosaic_is_the_exposure_weighted_mean_of_the_observations(tmp_path):
    """edisp weighted by exposure_irf, psf by exposure_psf, both weights summed (float64 by xarray)."""
    config = job(tmp_path / "irf.zarr", products=["counts", "exposure", "psf", "edisp"])
    pipeline.run(config, progress=False)
    irf = open_group(config.output, "mosaic/irf").load()
    weights = {name: xr.zeros_like(irf[name], dtype=np.float64) for name in ("exposure_irf", "exposure_psf")}
    sums = {name: xr.zeros_like(irf[name], dtype=np.float64) for name in ("psf", "edisp")}
    weight_of = {"psf": "exposure_psf", "edisp": "exposure_irf"}
    for obs_id in CRAB_RUNS[:2]:  # float64 sums of the stored per-observation maps, by plain xarray
        obs = open_group(config.output, f"obs/{obs_id}/irf").load()
        region = {dim: slice(*bounds) for dim, bounds in obs.attrs["slice"].items()}
        for name, acc in weights.items():
            acc[region] += obs[name].astype(np.float64).to_numpy()
        for name, acc in sums.items():
            acc[region] += (
                (obs[name] * obs[weight_of[name]].astype(np.float64)).transpose(*acc.dims).to_numpy()
            )
    for name, weight in weights.items():
        assert (weight > 0).any() and (weight == 0).any()  # the grid reaches beyond the runs' cutouts
        np.testing.assert_allclose(irf[name], weight, rtol=1e-6)
    for name, acc in sums.items():
        weight = weights[weight_of[name]]
        expected = (acc / weight).where(weight > 0, 0.0)
        assert irf[name].dtype == np.float32
        np.testing.assert_allclose(irf[name], expected, rtol=1e-5, atol=1e-6 * float(expected.max()))


def test_mosaic_tasks_run_largest_first_and_the_irf_grid_is_split(tmp_path, monkeypatch):
    import gpcube.execute
    import gpcube.workflow.mosaic.build as build_mod

    submitted = []

    def spy(func, calls, *args, **kwargs):
        submitted.extend(calls)
        return run_tasks(func, calls, *args, **kwargs)

    run_tasks = gpcube.execute.run_tasks
    monkeypatch.setattr(build_mod, "run_tasks", spy)
    config = job(tmp_path / "order.zarr", products=["counts", "exposure", "psf"], chunks={"mosaic": 32})
    pipeline.run(config, progress=False)
    costs = [build_mod._cost((label, args[1:])) for label, args in submitted]  # without the fork
    assert costs == sorted(costs, reverse=True) and costs[0] > costs[-1]
    irf = [args[1:] for label, args in submitted if label.startswith("irf-")]  # without the fork
    size = build_mod.irf_chunk_size(32)
    assert size < 32 and len(irf) > 1  # the small coarse grid still splits into several tasks
    for *_, region, _ in irf:
        assert region[1] - region[0] <= size and region[3] - region[2] <= size
    psf = open_group(tmp_path / "order.zarr", "mosaic/irf")["psf"]
    shape = psf.shape[-2:]
    assert list(psf.encoding["chunks"][-2:]) == [min(size, n) for n in shape]


def test_observation_groups_hold_products_slice_and_provenance(crab_archive):
    config, _ = crab_archive
    ds = open_group(config.output, f"obs/{CRAB_RUNS[0]}")
    assert set(ds.data_vars) == {"counts", "exposure", "background", "mask_safe"}
    assert ds.attrs["complete"] is True and ds.attrs["obs_id"] == CRAB_RUNS[0]
    files = ds.attrs["provenance"]["files"]
    assert len(files) == 1 and len(files[0]["sha256"]) == 64 and files[0]["path"].endswith("023523.fits.gz")
    root = read_group_attrs(archive_store(config.output), "")
    assert root["geom"]["npix"] == [100, 75]
    assert root["analysis"]["safe_mask"]["methods"] == ["offset-max"]
    assert set(root["versions"]) >= {"gpcube", "numpy", "zarr"}


def test_adding_observations_reduces_only_the_new_ones(tmp_path, monkeypatch):
    out = tmp_path / "inc.zarr"
    pipeline.run(job(out, CRAB_RUNS[:1]), progress=False)
    first = (
        chunk_files(out, f"obs/{CRAB_RUNS[0]}"),
        read_group_attrs(archive_store(out), f"obs/{CRAB_RUNS[0]}"),
    )

    import gpcube.workflow.reduce as reduce_mod

    made = []
    original = reduce_mod.write_observation

    def spy(store, observation, geom, config):
        made.append(observation.obs_id)
        return original(store, observation, geom, config)

    monkeypatch.setattr(reduce_mod, "write_observation", spy)
    report = pipeline.run(job(out, CRAB_RUNS[:3]), progress=False)
    assert made == list(CRAB_RUNS[1:3])
    assert report["already_done"] == 1 and report["written"] == 2
    again = (
        chunk_files(out, f"obs/{CRAB_RUNS[0]}"),
        read_group_attrs(archive_store(out), f"obs/{CRAB_RUNS[0]}"),
    )
    assert again == first

    fresh = tmp_path / "fresh.zarr"
    pipeline.run(job(fresh, CRAB_RUNS[:3]), progress=False)
    for name in ("counts", "exposure", "background", "mask_safe"):
        a = open_group(out, "mosaic")[name].to_numpy()
        b = open_group(fresh, "mosaic")[name].to_numpy()
        assert a.tobytes() == b.tobytes(), name


def test_changed_analysis_is_refused_and_nothing_changes(tmp_path):
    out = tmp_path / "a.zarr"
    pipeline.run(job(out, CRAB_RUNS[:1]), progress=False)
    before = Archive(out).head()
    changed = job(out, CRAB_RUNS[:2], geom={"binsz": 0.05})
    with pytest.raises(GpcubeError, match=r"geom\.binsz: archive has 0\.04, config has 0\.05"):
        pipeline.run(changed, progress=False)
    with pytest.raises(GpcubeError, match="safe_mask.offset_max"):
        pipeline.run(job(out, CRAB_RUNS[:2], safe_mask={"offset_max": 2.5}), progress=False)
    assert Archive(out).head() == before  # nothing committed
    # data, chunks and cluster may change
    pipeline.run(job(out, CRAB_RUNS[:2], chunks={"obs": 32, "mosaic": 128}), progress=False)
    assert list(complete_observations(out)) == list(CRAB_RUNS[:2])


def test_bad_config_writes_nothing(tmp_path):
    bad = job_dict(tmp_path / "bad.zarr", geom={"binsz": -1})
    with pytest.raises(ConfigError, match="geom.binsz"):
        pipeline.run(gpcube.workflow.config.parse_config(bad), progress=False)
    missing = job(tmp_path / "bad.zarr", data={"store": str(HESS_DIR), "obs_ids": [1]})
    with pytest.raises(ConfigError, match=r"data.obs_ids.*\[1\]"):
        pipeline.run(missing, progress=False)
    assert not (tmp_path / "bad.zarr").exists()


def test_mosaic_bytes_do_not_depend_on_chunks_or_workers(crab_archive, tmp_path, monkeypatch):
    import gpcube.workflow.mosaic.build as build_mod

    config, _ = crab_archive
    copy = tmp_path / "copy.zarr"
    shutil.copytree(config.output, copy)
    reference = {k: v.to_numpy().tobytes() for k, v in open_group(config.output, "mosaic").data_vars.items()}
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        with Client(cluster) as client:
            # a task sums a region of several chunks (TASK_PIXELS), or one chunk each (0)
            for chunk, task_pixels in ((16, 512), (16, 0), (40, 512), (200, 0)):
                monkeypatch.setattr(build_mod, "TASK_PIXELS", task_pixels)
                assert (build_mod.task_size(chunk) > chunk) == (task_pixels >= 2 * chunk)
                pipeline.mosaic(copy, client, chunk=chunk, progress=False, full=True)
                got = open_group(copy, "mosaic")
                assert got["counts"].encoding["chunks"][1:] == (min(chunk, 75), min(chunk, 100))
                for name, data in reference.items():
                    assert got[name].to_numpy().tobytes() == data, (chunk, name)


def test_empty_and_failing_observations(tmp_path):
    store = tmp_path / "store"
    shutil.copytree(gpcube.data.example_data_dir(), store)
    bad = store / "data" / "hess_dl3_dr1_obs_id_023559.fits.gz"
    bad.write_bytes(bad.read_bytes()[:5000])  # truncated: a clear error naming the file
    data = {"store": str(store), "obs_ids": list(CRAB_RUNS)}
    geom = {"center": [84.5, 23.0], "width": [1.0, 1.0]}
    config = job(tmp_path / "x.zarr", CRAB_RUNS, data=data, geom=geom, safe_mask={"offset_max": 0.9})
    with pytest.raises(GpcubeError, match="1 observations failed") as info:
        pipeline.run(config, progress=False)
    assert "023559.fits.gz" in str(info.value)
    done = complete_observations(config.output)
    assert 23559 not in done and set(done) == {23523, 23526, 23592}
    assert done[23523]["empty"] is True  # its 0.9 deg circle misses the 1 x 1 deg field
    assert done[23526]["empty"] is False


def test_adding_observations_updates_only_the_chunks_they_touch(tmp_path, monkeypatch):
    wide = {"width": [10.0, 3.0]}
    out = tmp_path / "upd.zarr"
    pipeline.run(job(out, CRAB_RUNS[:3], geom=wide, chunks={"obs": 64, "mosaic": 16}), progress=False)
    summed = spy_sky_chunks(monkeypatch)
    config = job(out, CRAB_RUNS, geom=wide, chunks={"obs": 64, "mosaic": 16})
    pipeline.run(config, progress=False)
    attrs = read_group_attrs(archive_store(out), "mosaic")
    assert attrs["complete"] and attrs["obs_ids"] == list(CRAB_RUNS)
    assert attrs["updated_with"] == [CRAB_RUNS[3]]

    # exactly the chunks the new cutouts overlap; the new run has the highest obs_id, so each chunk
    # that already held cutouts is continued from its stored values with the new cutout only
    observations = complete_observations(out)
    boxes = {i: (*observations[i]["slice"]["y"], *observations[i]["slice"]["x"]) for i in CRAB_RUNS}
    ny, nx = config.geom().shape
    grid = [(y, x) for y in range(0, ny, 16) for x in range(0, nx, 16)]

    def hits(y, x, ids):
        return [
            i
            for i in ids
            if boxes[i][0] < y + 16 and boxes[i][1] > y and boxes[i][2] < x + 16 and boxes[i][3] > x
        ]

    expected = [
        ((y, x), hits(y, x, CRAB_RUNS[3:]), bool(hits(y, x, CRAB_RUNS[:3])))
        for y, x in grid
        if hits(y, x, CRAB_RUNS[3:])
    ]
    assert sorted(((r[0], r[2]), ids, resume) for r, ids, resume in summed) == expected  # any order
    assert any(resume for *_, resume in expected)
    assert 0 < len(expected) < len([g for g in grid if hits(*g, CRAB_RUNS)])

    # the same bytes as a full rebuild
    monkeypatch.undo()
    assert_mosaic_as_full_rebuild(out, tmp_path, chunk=16)


def test_adding_an_earlier_observation_sums_its_chunks_again(tmp_path, monkeypatch):
    """A run whose obs_id is lower than runs already summed cannot be added on top of them (the
    order of the additions, hence the float bytes, would differ): those chunks are summed again."""
    wide = {"width": [10.0, 3.0]}
    chunks = {"obs": 64, "mosaic": 16}
    out = tmp_path / "late.zarr"
    pipeline.run(job(out, CRAB_RUNS[1:], geom=wide, chunks=chunks), progress=False)
    summed = spy_sky_chunks(monkeypatch)
    pipeline.run(job(out, CRAB_RUNS, geom=wide, chunks=chunks), progress=False)
    assert summed and all(CRAB_RUNS[0] in ids for _, ids, _ in summed)
    assert not any(resume for _, ids, resume in summed if len(ids) > 1)
    assert any(len(ids) > 1 for _, ids, _ in summed)

    monkeypatch.undo()
    assert_mosaic_as_full_rebuild(out, tmp_path, chunk=16)


def test_a_failed_mosaic_update_commits_nothing_and_the_next_run_does_it(tmp_path, monkeypatch):
    """The update is one commit: a chunk task that fails leaves the previous mosaic whole."""
    import gpcube.workflow.mosaic.build as build_mod

    out = tmp_path / "cut.zarr"
    pipeline.run(job(out, CRAB_RUNS[:2]), progress=False)
    pipeline.reduce(job(out, CRAB_RUNS[:3]), progress=False)
    before = Archive(out).head(), chunk_files(out, "mosaic")

    def boom(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(build_mod, "sky_chunk", boom)
    with pytest.raises(GpcubeError, match="mosaic chunks"):
        pipeline.mosaic(out, progress=False)
    assert (Archive(out).head(), chunk_files(out, "mosaic")) == before
    assert gpcube.open_archive(out).attrs["obs_ids"] == list(CRAB_RUNS[:2])  # the old mosaic, whole

    monkeypatch.undo()
    pipeline.mosaic(out, progress=False)
    fresh = tmp_path / "fresh.zarr"
    pipeline.run(job(fresh, CRAB_RUNS[:3]), progress=False)
    assert chunk_files(out, "mosaic") == chunk_files(fresh, "mosaic")


def test_products_computed_at_once_are_the_graphs_bytes(tmp_path, monkeypatch):
    import gpcube.workflow.reduce as reduce_mod
    from gpcube.makers._lazy import computed_at_once
    from gpcube.workflow.recipe import observation_products

    products = ["counts", "exposure", "background", "psf", "edisp"]
    config = job(tmp_path / "at_once.zarr", products=products, chunks={"obs": 128})  # one block a cutout
    observation = gpcube.DataStore.from_dir(HESS_DIR).observation(CRAB_RUNS[0])
    with computed_at_once():
        sky, irf, _ = observation_products(observation, config.geom(), config)
    assert all(isinstance(a.data, np.ndarray) for a in [*sky.values(), *irf.values()])
    small = job(tmp_path / "x.zarr", products=products, chunks={"obs": 32})
    with computed_at_once():  # several blocks: still a graph
        assert hasattr(observation_products(observation, small.geom(), small).sky["counts"].data, "dask")
    pipeline.reduce(config, progress=False)
    monkeypatch.setattr(reduce_mod, "at_once", lambda config: False)
    graphs = job(tmp_path / "graphs.zarr", products=products, chunks={"obs": 128})
    pipeline.reduce(graphs, progress=False)
    for obs_id in CRAB_RUNS[:2]:
        got = chunk_files(tmp_path / "at_once.zarr", f"obs/{obs_id}")
        assert got and got == chunk_files(tmp_path / "graphs.zarr", f"obs/{obs_id}")


def test_a_job_too_large_for_the_workers_is_refused_before_it_starts(tmp_path):
    """Chunks so large that one mosaic task needs more memory than a worker has: said at once, with the
    keys to change, and nothing is written."""
    from gpcube.execute import EmbeddedCluster
    from gpcube.workflow.resources import task_memory

    config = job(tmp_path / "big.zarr", geom={"binsz": 0.0005}, chunks={"obs": 4096, "mosaic": 8192})
    need = task_memory(config)
    assert need.mosaic > 2**30 and need.reduce > 2**30
    with EmbeddedCluster(n_workers=2, memory_limit="512MiB") as cluster:
        with pytest.raises(GpcubeError, match=r"a reduce task of this job needs about .* GiB.*chunks\.obs"):
            pipeline.run(config, cluster, progress=False)
    small = job(tmp_path / "big.zarr", geom={"binsz": 0.0005}, chunks={"obs": 64, "mosaic": 8192})
    with EmbeddedCluster(n_workers=2, memory_limit="512MiB") as cluster:
        with pytest.raises(GpcubeError, match=r"a mosaic task \(sky maps\) .*chunks\.mosaic"):
            pipeline.run(small, cluster, progress=False)
    assert not (tmp_path / "big.zarr").exists()
    assert task_memory(job(tmp_path / "ok.zarr")).mosaic < 100 * 2**20  # the test jobs: a few MB


def test_paths_that_remote_workers_cannot_see_are_refused(tmp_path, dask_cluster):
    """A scheduler given by address: its workers run elsewhere. Here they are local processes, so a path
    is hidden from them by a worker-side check (client.run) that cannot find it."""
    from distributed import Client

    from gpcube.workflow import resources

    address, _ = dask_cluster
    config = job(tmp_path / "a.zarr")
    with Client(address) as client:
        resources.check_paths(config, client)  # they see this machine's files
        hidden = job(
            tmp_path / "a.zarr", data={"store": str(tmp_path / "nowhere"), "obs_ids": [CRAB_RUNS[0]]}
        )
        with pytest.raises(GpcubeError, match=r"the dask worker .* cannot see .*nowhere"):
            resources.check_paths(hidden, client)


def test_an_observation_is_one_object_per_product_whatever_its_chunks(tmp_path):
    """Blocks of 16 px: each cutout product has many chunks, stored as one shard (one object)."""
    products = ["counts", "exposure", "background", "psf"]
    config = job(tmp_path / "shards.zarr", products=products, chunks={"obs": 16})
    pipeline.run(config, progress=False)
    group = f"obs/{CRAB_RUNS[0]}"
    coordinates = ("y", "x", "energy", "irf/irf_y", "irf/irf_x", "irf/energy", "irf/rad")
    stored = [key.split("/c/")[0] for key in sorted(chunk_files(config.output, group))]
    expected = ["background", "counts", "exposure", "irf/exposure_irf", "irf/psf", "mask_safe"]
    assert [name for name in stored if not name.startswith(coordinates)] == expected
    counts = open_group(config.output, group)["counts"]
    assert counts.encoding["chunks"][1:] == (16, 16) and counts.encoding["shards"][1:] == (80, 112)
    fresh = job(tmp_path / "plain.zarr", products=products, chunks={"obs": 128})
    pipeline.run(fresh, progress=False)
    for name in ("counts", "exposure", "background", "mask_safe"):
        a = open_group(config.output, "mosaic")[name].to_numpy()
        assert a.tobytes() == open_group(fresh.output, "mosaic")[name].to_numpy().tobytes(), name
