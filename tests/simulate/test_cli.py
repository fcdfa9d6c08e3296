"""``gpcube simulate`` on the command line, and ``gpcube run`` on what it writes."""

from __future__ import annotations

import numpy as np
import yaml

import gpcube
from gpcube.cli import main
from gpcube.geom import SkyGeom
from gpcube.geom.frames import convert_frame
from tests.archive.conftest import open_group

CONFIG = {
    "output": "sim",
    "seed": 4,
    "pointings": {"frame": "galactic", "grid": {"lon": [-0.5, 0.5], "spacing": 1.0, "lat": [0.0]}},
    "observation": {"livetime": 1800.0, "energy": {"min": 0.3, "max": 100.0}},
    "sources": [{"name": "pt", "position": [0.0, 0.0], "amplitude": 5e-11}],
}


def test_simulate_then_run_end_to_end(tmp_path, capsys):
    (tmp_path / "sim.yaml").write_text(yaml.safe_dump(CONFIG))
    assert main(["simulate", str(tmp_path / "sim.yaml"), "-q", "--seed", "6"]) == 0
    out = capsys.readouterr().out
    assert "2 observations" in out and "pt " in out and str(tmp_path / "sim") in out
    store = gpcube.DataStore.from_dir(tmp_path / "sim")
    assert store.observation(1).events.attrs["object"].startswith("SIM ")
    job = {
        "data": {"store": "sim", "selection": {"target": "SIM*"}},
        "geom": {"frame": "galactic", "center": [0.0, 0.0], "width": [6.0, 4.0], "binsz": 0.05,
                 "energy_reco": {"min": 0.3, "max": 100.0, "nbins": 5},
                 "energy_true": {"min": 0.2, "max": 150.0, "nbins": 8}},
        "products": ["counts", "exposure", "background"],
        "safe_mask": {"methods": ["offset-max"], "offset_max": 2.0},
        "output": "sim.zarr",
        "cluster": {"n_workers": 1, "threads_per_worker": 2, "processes": False},
    }  # fmt: skip
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    assert main(["run", str(tmp_path / "job.yaml"), "-q"]) == 0
    assert "2 added" in capsys.readouterr().out
    mosaic = open_group(tmp_path / "sim.zarr", "mosaic")
    # every event in the energy range, in a pixel whose centre is within 2 deg of the pointing (the
    # offset-max safe mask), is counted once
    geom = SkyGeom.create((0.0, 0.0), 0.05, width=(6.0, 4.0), frame="galactic")
    expected = 0
    for obs in store.observations():
        events = obs.events
        lon, lat = convert_frame(events["ra"].values, events["dec"].values, "icrs", "galactic")
        ix, iy = geom.coord_to_idx(lon, lat)
        pointing = convert_frame(obs.pointing.ra, obs.pointing.dec, "icrs", "galactic")
        safe = geom.separation(float(pointing[0]), float(pointing[1])) < 2.0
        energy = events["energy"].values
        inside = (ix >= 0) & (energy >= 0.3) & (energy < 100.0)
        expected += int(np.sum(safe[iy[inside], ix[inside]]))
    assert int(mosaic["counts"].sum()) == expected > 1000
    assert float(mosaic["exposure"].max()) > 0
    # the counts mosaic away from the source matches the background mosaic within Poisson errors
    off = geom.separation(0.0, 0.0) > 0.6
    counts, background = mosaic["counts"].values[:, off], mosaic["background"].values[:, off]
    assert background.sum() > 5000
    assert abs(counts.sum() - background.sum()) < 4 * np.sqrt(background.sum())


def test_bad_config_exits_2_naming_the_key(tmp_path, capsys):
    (tmp_path / "sim.yaml").write_text(yaml.safe_dump({**CONFIG, "observation": {"livetime": -5}}))
    assert main(["simulate", str(tmp_path / "sim.yaml")]) == 2
    err = capsys.readouterr().err
    assert "observation.livetime" in err and "positive" in err
    assert not (tmp_path / "sim").exists()
