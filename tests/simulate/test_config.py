"""The simulation config: defaults, canonical form, and errors that name the key."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from gpcube.geom.frames import convert_frame
from gpcube.simulate import load_sim_config, parse_sim_config, plan_observations, simulate_store
from gpcube.workflow.config import ConfigError

MINIMAL = {"pointings": {"list": [[0.0, 0.0]]}}


def test_minimal_config_takes_documented_defaults():
    config = parse_sim_config(MINIMAL)
    assert config.irf.analytic is not None and config.irf.store is None
    assert config.observation.livetime == 1800.0 and config.observation.max_offset == 2.5
    assert config.pointings.list == ((0.0, 0.0, "galactic"),)
    assert config.sources == () and config.seed == 0 and config.output is None


def test_canonical_form_round_trips():
    mapping = {
        "pointings": {"frame": "icrs", "list": [[83.6, 22.0], [10.0, 1.0, "galactic"]], "repeat": 2},
        "background": {"events": 5000},
        "sources": [{"position": [83.6, 22.0], "frame": "icrs", "amplitude": 1e-11, "sigma": 0.2}],
        "irf": {"analytic": {"psf": {"sigma": 0.05}}},
    }
    config = parse_sim_config(mapping)
    assert parse_sim_config(config.to_dict()) == config
    assert config.sources[0].name == "source 1"
    assert config.pointings.list[0][2] == "icrs" and config.pointings.list[1][2] == "galactic"


@pytest.mark.parametrize(
    ("change", "key", "text"),
    [
        ({"pointings": {}}, "pointings.grid", "exactly one of grid and list"),
        ({"pointings": {"grid": {"lon": [0, 1], "spacing": 1}, "list": [[0, 0]]}}, "pointings.grid", "one"),
        ({"pointings": {"grid": {"lon": [1, 0], "spacing": 1}}}, "pointings.grid.lon", "max >= min"),
        ({"pointings": {"grid": {"lon": [0, 1], "spacing": -1}}}, "pointings.grid.spacing", "positive"),
        ({"pointings": {"list": [[0, 95]]}}, "pointings.list", "[lon, lat]"),
        ({"pointings": {"list": [[0, 0, "altaz"]]}}, "pointings.list", "frame"),
        ({"observation": {"livetime": 0}}, "observation.livetime", "positive"),
        ({"observation": {"deadc": 1.5}}, "observation.deadc", "(0, 1]"),
        ({"observation": {"energy": {"min": 10, "max": 1}}}, "observation.energy.max", "greater than min"),
        ({"observation": {"start": "yesterday"}}, "observation.start", "ISO time"),
        ({"observation": {"colour": 1}}, "observation.colour", "unknown key"),
        ({"irf": {"store": "/nowhere"}}, "irf.obs_id", "required key missing"),
        ({"irf": {"obs_id": 3}}, "irf.obs_id", "null without irf.store"),
        ({"irf": {"store": "/x", "obs_id": 1, "analytic": {}}}, "irf.analytic", "at most one"),
        ({"irf": {"obs_ids": [1, 2]}}, "irf.obs_ids", "null without irf.store"),
        ({"irf": {"store": "/x", "obs_id": 1, "obs_ids": [1]}}, "irf.obs_ids", "at most one"),
        ({"irf": {"store": "/x", "obs_ids": []}}, "irf.obs_ids", "non-empty list of observation ids"),
        ({"irf": {"store": "/x", "obs_ids": [1, -2]}}, "irf.obs_ids", "non-negative integers"),
        ({"irf": {"store": "/x", "obs_ids": 7}}, "irf.obs_ids", "list of observation ids"),
        ({"irf": {"analytic": {"psf": {"sigma": 0}}}}, "irf.analytic.psf.sigma", "positive"),
        ({"background": {"scale": 2, "events": 10}}, "background.events", "at most one"),
        ({"sources": [{"position": [0, 0]}]}, "sources[0].amplitude", "required key missing"),
        ({"sources": [{"position": [0, 0], "amplitude": 1}, {"position": [0], "amplitude": 1}]},
         "sources[1].position", "[lon, lat]"),
        ({"sources": [{"position": [0, 0], "amplitude": 1, "name": "a"},
                      {"position": [1, 0], "amplitude": 1, "name": "a"}]}, "sources", "distinct names"),
        ({"chunk_size": 10}, "chunk_size", "at least 1000"),
        ({"seed": -1}, "seed", "non-negative integer"),
    ],
)  # fmt: skip
def test_bad_key_is_named(change, key, text):
    with pytest.raises(ConfigError) as info:
        parse_sim_config({**MINIMAL, **change})
    assert info.value.key == key
    assert text in str(info.value) and repr(key) in str(info.value)


def test_yaml_file_resolves_paths_against_its_folder_and_names_itself_in_errors(tmp_path):
    (tmp_path / "sim.yaml").write_text(yaml.safe_dump({**MINIMAL, "output": "out"}))
    assert load_sim_config(tmp_path / "sim.yaml").output == str(tmp_path / "out")
    (tmp_path / "bad.yaml").write_text("pointings: {list: [[0, 0]]}\nobservation: {livetime: -1}\n")
    with pytest.raises(ConfigError, match="observation.livetime.*bad.yaml"):
        load_sim_config(tmp_path / "bad.yaml")


def test_missing_store_or_output_is_refused_before_writing(tmp_path, hess_dir):
    with pytest.raises(ConfigError, match="'output'"):
        simulate_store(MINIMAL, progress=False)
    bad_store = {**MINIMAL, "irf": {"store": str(tmp_path / "nowhere"), "obs_id": 1}}
    with pytest.raises(ConfigError, match="'irf.store'"):
        simulate_store(bad_store, tmp_path / "out", progress=False)
    bad_id = {**MINIMAL, "irf": {"store": str(hess_dir), "obs_id": 1}}
    with pytest.raises(ConfigError, match="'irf.obs_id'"):
        simulate_store(bad_id, tmp_path / "out", progress=False)
    bad_ids = {**MINIMAL, "irf": {"store": str(hess_dir), "obs_ids": [23523, 1]}}
    with pytest.raises(ConfigError, match="'irf.obs_ids'.*observation 1 is not in the data store"):
        simulate_store(bad_ids, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_survey_grid_and_times():
    config = parse_sim_config({
        "pointings": {"frame": "galactic", "grid": {"lon": [-1.0, 1.0], "spacing": 0.5, "lat": [-1, 1]},
                      "repeat": 2},
        "observation": {"livetime": 900, "deadc": 0.9, "gap": 100, "obs_id_start": 100, "start": 1000.0},
    })  # fmt: skip
    plans = plan_observations(config)
    assert len(plans) == 5 * 2 * 2
    assert [p.obs_id for p in plans] == list(range(100, 120))
    np.testing.assert_allclose([p.tstart for p in plans], 1000.0 + np.arange(20) * (1000.0 + 100.0))
    glon, glat = convert_frame([p.ra for p in plans], [p.dec for p in plans], "icrs", "galactic")
    expected_lon = np.repeat(np.tile([-1.0, -0.5, 0.0, 0.5, 1.0], 2), 2)
    np.testing.assert_allclose((glon + 180) % 360 - 180, expected_lon, atol=1e-9)
    np.testing.assert_allclose(glat, np.repeat([-1.0, 1.0], 10), atol=1e-9)
    np.testing.assert_allclose([p.glon for p in plans], glon)
