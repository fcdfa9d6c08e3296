"""The written store: readable without warnings, reproducible byte for byte, streamed in chunks."""

from __future__ import annotations

import gzip
import warnings

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits

import gpcube
from gpcube.errors import GpcubeError
from gpcube.irf import evaluate
from gpcube.simulate import simulate_store
from gpcube.simulate.observation import obs_file_name

SMALL = {
    "seed": 11,
    "pointings": {"frame": "galactic", "grid": {"lon": [0.0, 1.0], "spacing": 1.0, "lat": [0.0]}},
    "observation": {"livetime": 600.0, "deadc": 0.9, "energy": {"min": 0.2, "max": 50.0}},
    "sources": [{"name": "pt", "position": [0.5, 0.0], "amplitude": 5e-11},
                {"name": "ext", "position": [0.8, 0.2], "amplitude": 5e-11, "sigma": 0.2}],
}  # fmt: skip


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_different_seed_different_events(tmp_path):
    a = simulate_store(SMALL, tmp_path / "a", progress=False)
    b = simulate_store(SMALL, tmp_path / "b", progress=False)
    c = simulate_store(SMALL, tmp_path / "c", seed=12, progress=False)
    files_a, files_b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert files_a.keys() == files_b.keys() and len(files_a) == 5  # 2 observations, 2 indexes, the config
    assert all(files_a[k] == files_b[k] for k in files_a)
    assert a["events"] == b["events"] and a["events"] != c["events"]
    name = f"data/{obs_file_name(1, False)}"
    assert (tmp_path / "c" / name).read_bytes() != files_a[next(k for k in files_a if str(k) == name)]


def test_workers_do_not_change_the_bytes(tmp_path):
    from distributed import Client, LocalCluster

    serial = simulate_store(SMALL, tmp_path / "serial", progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            parallel = simulate_store(SMALL, tmp_path / "parallel", client=client, progress=False)
    assert serial["events"] == parallel["events"]
    assert _files(tmp_path / "serial") == _files(tmp_path / "parallel")


def test_store_reads_without_warnings_and_events_are_well_formed(tmp_path):
    config = {**SMALL, "chunk_size": 1000}  # several slices per observation
    report = simulate_store(config, tmp_path / "store", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store = gpcube.DataStore.from_dir(tmp_path / "store")
        assert store.obs_ids == [1, 2]
        total = 0
        for obs in store.observations():
            obs.load()
            events, gti = obs.events, obs.gti
            n = events.sizes["event"]
            total += n
            assert n > 3 * 1000  # streamed in several chunks
            assert obs.livetime == pytest.approx(600.0) and obs.ontime == pytest.approx(600.0 / 0.9)
            assert obs.deadc == pytest.approx(0.9)
            np.testing.assert_array_equal(events["event_id"].values, np.arange(1, n + 1))
            time = events["time"].values
            assert np.all(np.diff(time) >= 0)
            assert gti["start"].values[0] <= time[0] and time[-1] <= gti["stop"].values[0]
            assert gti["stop"].values[0] - gti["start"].values[0] == pytest.approx(obs.ontime)
            energy = events["energy"].values
            assert energy.min() >= 0.2 and energy.max() < 50.0
            coords = SkyCoord(events["ra"].values, events["dec"].values, unit="deg")
            offsets = obs.pointing.radec.separation(coords).deg
            assert offsets.max() <= 2.5 + 1e-4  # float32 RA/Dec
            assert set(np.unique(events["mc_id"].values)) == {0, 1, 2}
            assert {obs.aeff.attrs["irf_class"], obs.bkg.attrs["irf_class"]} == {"aeff_2d", "bkg_2d"}
            assert obs.psf.attrs["irf_class"] == "psf_table" and obs.edisp.sizes["migra"] == 120
    assert total == report["n_events"] == sum(report["events"].values())
    assert store.obs_table["EVENT_COUNT"].tolist() == [
        o.events.sizes["event"] for o in store.observations()
    ]  # fmt: skip
    with fits.open(tmp_path / "store" / "data" / obs_file_name(1, False)) as hdus:
        hdus.verify("exception")
        assert [h.name for h in hdus] == ["PRIMARY", "EVENTS", "GTI", "AEFF", "EDISP", "PSF", "BKG"]


def test_gzip_writes_the_same_file_compressed(tmp_path):
    simulate_store(SMALL, tmp_path / "plain", progress=False)
    simulate_store({**SMALL, "compress": True}, tmp_path / "packed", progress=False)
    plain = (tmp_path / "plain" / "data" / obs_file_name(2, False)).read_bytes()
    packed = (tmp_path / "packed" / "data" / obs_file_name(2, True)).read_bytes()
    assert gzip.decompress(packed) == plain
    packed_events = gpcube.DataStore.from_dir(tmp_path / "packed").observation(2).events
    plain_events = gpcube.DataStore.from_dir(tmp_path / "plain").observation(2).events
    np.testing.assert_array_equal(packed_events["energy"].values, plain_events["energy"].values)


def test_existing_store_is_refused_unless_overwrite(tmp_path):
    simulate_store(SMALL, tmp_path / "s", progress=False)
    with pytest.raises(GpcubeError, match="already there"):
        simulate_store(SMALL, tmp_path / "s", progress=False)
    report = simulate_store(SMALL, tmp_path / "s", seed=99, progress=False, overwrite=True)
    store = gpcube.DataStore.from_dir(tmp_path / "s")
    assert sum(o.events.sizes["event"] for o in store.observations()) == report["n_events"]


def test_background_events_sets_the_mean_and_the_written_model(tmp_path):
    config = {
        **SMALL,
        "sources": [],
        "background": {"events": 4000},
        "pointings": {"list": [[0, 0]], "repeat": 8},
    }
    report = simulate_store(config, tmp_path / "s", progress=False)
    assert report["expected"]["background"] == pytest.approx(8 * 4000, rel=1e-6)
    assert abs(report["events"]["background"] - 32000) < 4 * np.sqrt(32000)
    store = gpcube.DataStore.from_dir(tmp_path / "s")
    scale = report["background_scale"]
    written = evaluate(store.observation(1).bkg, energy_reco=1.0, offset=0.5)
    assert written == pytest.approx(100.0 * scale, rel=1e-5)  # the analytic rate at 1 TeV, scaled
    default = simulate_store({**config, "background": {}}, tmp_path / "d", progress=False)
    assert default["expected"]["background"] * scale == pytest.approx(8 * 4000, rel=1e-6)
