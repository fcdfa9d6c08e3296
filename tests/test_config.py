"""Tests for gpcube.workflow.config: the YAML job configuration, its validation and canonical form."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import os
import pickle
import re
import textwrap

import numpy as np
import pytest
from astropy.coordinates import SkyCoord

import gpcube.workflow.config
from gpcube.errors import GpcubeError
from gpcube.makers import make_map_background, make_map_background_fov_norm, make_safe_mask
from gpcube.makers.psf import RAD_EDGES_DEFAULT
from gpcube.workflow.config import ConfigError, JobConfig, TimeConfig, load_config, parse_config
from tests.conftest import CRAB_RUNS, HESS_DIR, MSH_RUNS, REPO

CRAB = (83.633, 22.014)

SURVEY_YAML = """\
data:
  store: {store}
geom:
  frame: galactic
  projection: CAR
  center: [333.974, -1.965]
  width: [32.85, 9.115]
  binsz: 0.02
  energy_reco: {{min: 0.5, max: 50, nbins: 10}}
  energy_true: {{min: 0.3, max: 100, nbins: 20}}
output: survey.zarr
"""


def minimal() -> dict:
    """The smallest valid configuration (as YAML would give it)."""
    return {
        "data": {"store": str(HESS_DIR)},
        "geom": {"center": [83.633, 22.014], "npix": 100, "binsz": 0.02,
                 "energy_reco": {"min": 0.5, "max": 50, "nbins": 10}},
        "products": ["counts", "background"],
        "output": "/tmp/out.zarr",
    }  # fmt: skip


def full() -> dict:
    """A configuration with every section given and most values away from their defaults."""
    return {
        "data": {
            "store": str(HESS_DIR),
            "obs_ids": list(CRAB_RUNS),
            "selection": {
                "cone": {"lon": 184.557, "lat": -5.784, "radius": 3, "frame": "galactic"},
                "time": {"start": "2004-01-01T00:00:00", "stop": 4e8},
                "target": "Crab*",
                "max_observations": 3,
            },
        },
        "geom": {
            "frame": "galactic", "projection": "TAN", "center": [184.557, -5.784], "npix": [200, 150],
            "binsz": 0.05, "energy_reco": {"min": 0.5, "max": 50, "nbins": 10},
            "energy_true": {"min": 0.3, "max": 100, "nbins": 20},
        },
        "products": ["counts", "exposure", "background", "psf", "edisp"],
        "max_offset": 2.0,
        "safe_mask": {
            "methods": ["offset-max", "aeff-max", "edisp-bias"], "offset_max": 2.2, "aeff_percent": 5,
            "bias_percent": 12.5, "position": [184.557, -5.784], "fixed_offset": None,
        },
        "background": {
            "method": "fov", "orientation": "hess-dr1", "fov_rotation_step": 0.5,
            "exclusion": {"circles": [[83.633, 22.014, 0.3], [84.0, 22.5, 0.2]], "frame": "icrs"},
            "grouping": {"min_counts": 10}, "min_counts": 5, "min_npred_background": 1.5,
        },
        "irf": {"binsz": 0.1, "rad": {"max": 0.5, "nbins": 50}, "spectral_index": 2.5},
        "output": "/tmp/crab.zarr",
        "chunks": {"obs": 64, "mosaic": 128},
        "cluster": {"address": "tcp://127.0.0.1:8786", "n_workers": 4, "threads_per_worker": 2,
                    "processes": False, "memory_limit": "4GiB", "dashboard": True},
    }  # fmt: skip


def replaced(config: dict, key: str, value) -> dict:
    """A deep copy of ``config`` with the dotted ``key`` set to ``value`` (``DELETE``: removed)."""
    out = copy.deepcopy(config)
    *parents, last = key.split(".")
    node = out
    for part in parents:
        node = node.setdefault(part, {})
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return out


DELETE = object()


# ------------------------------------------------------------------------------------ valid configs
def test_full_config_round_trips():
    config = parse_config(full())
    plain = config.to_dict()
    assert json.loads(json.dumps(plain)) == plain
    assert parse_config(plain) == config
    assert parse_config(json.loads(json.dumps(plain))) == config
    assert hash(parse_config(plain)) == hash(config)
    assert pickle.loads(pickle.dumps(config)) == config
    assert config.geom.npix == (200, 150) and config.geom.width is None
    assert config.background.grouping.min_counts == 10
    assert config.data.selection.time.stop == 4e8
    assert config.cluster.memory_limit == "4GiB" and config.cluster.processes is False
    assert plain["background"]["exclusion"]["frame"] == "icrs"
    assert plain["safe_mask"]["position"] == [184.557, -5.784]


def test_defaults_are_filled_in():
    config = parse_config(minimal())
    assert config.products == ("counts", "background")
    assert config.geom.frame == "icrs" and config.geom.projection == "CAR"
    assert config.geom.npix == (100, 100) and config.geom.energy_true is None
    assert config.safe_mask.methods == ("offset-max",) and config.safe_mask.offset_max == 2.5
    assert config.max_offset == 2.5
    assert config.background.method == "model" and config.background.orientation == "auto"
    assert config.irf.binsz == 0.2 and config.irf.rad.max == 0.66 and config.irf.rad.nbins == 66
    np.testing.assert_array_equal(config.irf.rad.edges(), RAD_EDGES_DEFAULT)
    assert (config.chunks.obs, config.chunks.mosaic) == (256, 256)
    assert config.cluster.address is None and config.cluster.n_workers == 2
    assert config.cluster.memory_limit == "auto" and config.cluster.dashboard is False
    assert config.cluster.min_tasks == 16
    plain = config.to_dict()
    assert "exclusion" not in plain["background"] and "grouping" not in plain["background"]
    assert plain["data"]["selection"] == {
        "cone": None,
        "time": None,
        "target": None,
        "max_observations": None,
    }
    assert parse_config(plain) == config


def test_default_products_need_energy_true():
    config = replaced(minimal(), "products", DELETE)
    with pytest.raises(ConfigError) as info:
        parse_config(config)
    assert info.value.key == "geom.energy_true" and "exposure" in str(info.value)
    config["geom"]["energy_true"] = {"min": 0.3, "max": 100, "nbins": 20}
    assert parse_config(config).products == ("counts", "exposure", "background")


@pytest.mark.parametrize(
    ("safe_mask", "expected"),
    [({"offset_max": 2.0}, 2.0), ({"methods": [], "offset_max": 2.0}, 2.5), ({"methods": ["bkg-peak"]}, 2.5)],
)
def test_max_offset_default_follows_the_safe_mask(safe_mask, expected):
    config = parse_config(replaced(minimal(), "safe_mask", safe_mask))
    assert config.max_offset == expected
    assert parse_config(replaced(minimal(), "max_offset", 1.5)).max_offset == 1.5


def test_survey_geom_from_yaml(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(SURVEY_YAML.format(store=os.path.relpath(HESS_DIR, tmp_path)))
    config = load_config(path)
    geom = config.geom()
    assert geom.npix == (1643, 456) and geom.shape == (456, 1643)
    assert geom.frame == "galactic" and geom.projection == "CAR"
    assert geom.crval == pytest.approx((333.974, -1.965))
    assert [ax.name for ax in geom.axes] == ["energy_reco", "energy_true"]
    np.testing.assert_allclose(geom.axis("energy_reco").edges, np.geomspace(0.5, 50, 11))
    np.testing.assert_allclose(geom.axis("energy_true").edges, np.geomspace(0.3, 100, 21))
    # relative paths are resolved against the config file's directory
    assert config.output == str(tmp_path / "survey.zarr")
    assert os.path.samefile(config.data.store, HESS_DIR) and os.path.isabs(config.data.store)
    assert config.source == str(path) and config.data.source == str(path)


def test_relative_paths_without_base_dir_use_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = parse_config(replaced(minimal(), "output", "out.zarr"))
    assert config.output == str(tmp_path / "out.zarr")
    other = parse_config(replaced(minimal(), "output", "out.zarr"), base_dir="/data/jobs")
    assert other.output == "/data/jobs/out.zarr"


def test_yaml_details(tmp_path):
    """YAML 1.2 floats such as 2e-2 are numbers; unquoted dates and times become ISO strings."""
    text = SURVEY_YAML.format(store=HESS_DIR).replace("binsz: 0.02", "binsz: 2e-2")
    text = text.replace(
        "data:\n", "data:\n  selection:\n    time: {start: 2004-01-01, stop: 2004-12-31 12:00:00}\n"
    )
    path = tmp_path / "job.yaml"
    path.write_text(text)
    config = load_config(path)
    assert config.geom.binsz == 0.02
    assert config.data.selection.time == TimeConfig("2004-01-01", "2004-12-31T12:00:00")


def test_analysis_dict():
    config = parse_config(full())
    analysis = config.analysis_dict()
    assert set(analysis) == {"geom", "products", "max_offset", "safe_mask", "background", "irf"}
    assert analysis == {key: config.to_dict()[key] for key in analysis}
    assert json.loads(json.dumps(analysis)) == analysis
    for key, value in [
        ("output", "/elsewhere.zarr"),
        ("cluster.n_workers", 8),
        ("chunks.mosaic", 1024),
        ("data.obs_ids", [23523]),
    ]:
        assert parse_config(replaced(full(), key, value)).analysis_dict() == analysis
    for key, value in [
        ("geom.binsz", 0.04),
        ("products", ["counts"]),
        ("irf.rad.nbins", 10),
        ("background.min_counts", 0),
        ("safe_mask.aeff_percent", 20),
        ("max_offset", 2.5),
    ]:
        assert parse_config(replaced(full(), key, value)).analysis_dict() != analysis, key


# --------------------------------------------------------------------------------------- data store
def test_data_open_with_obs_ids_and_cone(hess_dir):
    config = replaced(
        minimal(),
        "data",
        {
            "store": str(hess_dir),
            "obs_ids": [*CRAB_RUNS, *MSH_RUNS[:3]],
            "selection": {"cone": {"lon": CRAB[0], "lat": CRAB[1], "radius": 2.5}},
        },
    )
    store = parse_config(config).data.open()
    assert store.obs_ids == list(CRAB_RUNS)
    config["data"]["selection"]["max_observations"] = 2
    assert parse_config(config).data.open().obs_ids == sorted(CRAB_RUNS)[:2]
    config["data"]["selection"] = {"target": "msh*"}
    assert parse_config(config).data.open().obs_ids == list(MSH_RUNS[:3])


def test_data_open_time_selection(hess_store):
    tstart = sorted(float(t) for t in hess_store.obs_table["TSTART"])
    config = replaced(minimal(), "data.selection", {"time": {"start": 0, "stop": tstart[2]}})
    assert len(parse_config(config).data.open()) == 3


@pytest.mark.parametrize("kind", ["missing", "empty"])
def test_data_open_bad_store(tmp_path, kind):
    store = tmp_path / "store"
    if kind == "empty":
        store.mkdir()
    config = parse_config(replaced(minimal(), "data.store", str(store)), source="/jobs/job.yaml")
    with pytest.raises(ConfigError) as info:
        config.data.open()
    assert info.value.key == "data.store" and info.value.source == "/jobs/job.yaml"
    assert "data.store" in str(info.value) and str(store) in str(info.value)
    assert ("not found" if kind == "missing" else "index") in str(info.value)


def test_data_open_unknown_obs_id():
    config = parse_config(replaced(minimal(), "data.obs_ids", [23523, 1]))
    with pytest.raises(ConfigError, match=r"data\.obs_ids.*\[1\]") as info:
        config.data.open()
    assert info.value.key == "data.obs_ids"


# ------------------------------------------------------------------------------------ maker kwargs
def test_maker_kwargs_fit_the_makers(hess_store):
    config = parse_config(full())
    geom = config.geom()
    observation = hess_store.observation(CRAB_RUNS[0])
    safe = config.safe_mask_kwargs()
    assert (
        safe["position"].frame.name == "galactic" and safe["binsz_irf"] == 0.1 and safe["max_offset"] == 2.0
    )
    background = config.background.maker_kwargs()
    fov = config.background.fov_norm_kwargs(geom)
    for maker, kwargs in [
        (make_safe_mask, safe),
        (make_map_background, background),
        (make_map_background_fov_norm, fov),
    ]:
        inspect.signature(maker).bind(observation, geom, **kwargs)
    # the circles are given in icrs and handed over in the geometry's (galactic) frame
    expected = SkyCoord(83.633, 22.014, unit="deg").galactic
    lon, lat, radius = fov["exclusion_mask"][0]
    assert (lon, lat, radius) == pytest.approx((expected.l.deg, expected.b.deg, 0.3), abs=1e-9)
    assert fov["grouping"] == {"min_counts": 10} and fov["min_npred_background"] == 1.5
    # the makers accept them (building lazy graphs only)
    mask = make_safe_mask(observation, geom, **safe)
    bkg = make_map_background(observation, geom, **background, max_offset=config.max_offset)
    norm = make_map_background_fov_norm(
        observation, geom, **fov, mask_safe=mask, background=bkg, max_offset=config.max_offset
    )
    assert mask.dims == norm.dims == ("energy_reco", "y", "x") and norm.shape == mask.shape


def test_maker_kwargs_defaults():
    config = parse_config(minimal())
    safe = config.safe_mask_kwargs()
    assert safe["position"] is None and safe["methods"] == ("offset-max",) and safe["offset_max"] == 2.5
    assert config.background.fov_norm_kwargs(config.geom())["exclusion_mask"] is None


# ------------------------------------------------------------------------------------- bad configs
BAD = [
    # (key set, value, key named in the error, a word of what was expected)
    ("geom.binsz", -1, "geom.binsz", "positive number of deg"),
    ("geom.binsz", True, "geom.binsz", "number"),
    ("geom.binsz", "0.02", "geom.binsz", "number"),
    ("geom.binsz", 180, "geom.binsz", "below 180"),
    ("geom.center", [10, 95], "geom.center", "lat in [-90, 90]"),
    ("geom.center", 10, "geom.center", "[lon, lat]"),
    ("geom.frame", "fk5", "geom.frame", "icrs, galactic"),
    ("geom.projection", "AIT", "geom.projection", "CAR, TAN"),
    ("geom.binsize", 0.02, "geom.binsize", "one of center, binsz"),
    ("geoms", {}, "geoms", "one of data, geom"),
    ("data.selection.cone.radius_deg", 1, "data.selection.cone.radius_deg", "one of lon, lat, radius"),
    ("geom", DELETE, "geom", "required key missing"),
    ("output", DELETE, "output", "required key missing"),
    ("data.store", DELETE, "data.store", "required key missing"),
    ("geom.binsz", DELETE, "geom.binsz", "required key missing"),
    ("geom.energy_reco.nbins", DELETE, "geom.energy_reco.nbins", "required key missing"),
    ("geom.npix", DELETE, "geom.width", "exactly one of width and npix"),
    ("geom.width", 5, "geom.npix", "exactly one of width and npix"),
    ("geom.npix", [10, 0], "geom.npix", "positive integer"),
    ("geom.npix", 10.0, "geom.npix", "positive integer"),
    ("geom.energy_reco.max", 0.5, "geom.energy_reco.max", "greater than min"),
    ("geom.energy_reco.max", 0.1, "geom.energy_reco.max", "greater than min"),
    ("geom.energy_reco.min", 0, "geom.energy_reco.min", "positive number of TeV"),
    ("geom.energy_reco.nbins", 0, "geom.energy_reco.nbins", "positive integer"),
    ("geom.energy_reco", [0.5, 50, 10], "geom.energy_reco", "mapping with keys min, max, nbins"),
    ("products", ["counts", "sky"], "products", "names from counts, exposure"),
    ("products", ["counts", "counts"], "products", "distinct"),
    ("products", [], "products", "non-empty"),
    ("products", ["psf"], "geom.energy_true", "needed by psf"),
    ("safe_mask.methods", ["offset-max", "aeff-max"], "geom.energy_true", "needed by aeff-max"),
    ("safe_mask.methods", ["offset-max", "aeff_default"], "safe_mask.methods", "aeff-default"),
    ("safe_mask.offset_max", 0, "safe_mask.offset_max", "positive number of deg"),
    ("safe_mask.aeff_percent", -5, "safe_mask.aeff_percent", "positive number"),
    ("max_offset", "2.5", "max_offset", "positive number of deg"),
    ("background.method", "rings", "background.method", "model, fov, ring, adaptive_ring"),
    ("background.ring", {"r_in": 0.5}, "background.ring", "allowed with ring"),
    ("background.grouping", "per-bin", "background.grouping", "allowed with fov"),
    ("background.method", "fit", "background.method", "model, fov"),
    ("background.exclusion", {"circles": [[83.6, 22.0, 0.3]]}, "background.exclusion", "with fov or ring"),
    ("background.min_counts", 3, "background.min_counts", "allowed with fov"),
    ("background.orientation", "hess", "background.orientation", "auto, gadf, hess-dr1"),
    ("background.fov_rotation_step", 0, "background.fov_rotation_step", "positive"),
    ("irf.rad.nbins", 0, "irf.rad.nbins", "positive integer"),
    ("irf.rad.max", -0.1, "irf.rad.max", "positive number of deg"),
    ("chunks.obs", 0, "chunks.obs", "positive integer"),
    ("chunks.mosaic", 1.5, "chunks.mosaic", "positive integer"),
    ("cluster.n_workers", True, "cluster.n_workers", "positive integer"),
    ("cluster.processes", "yes", "cluster.processes", "true or false"),
    ("cluster.memory_limit", "lots", "cluster.memory_limit", "4GiB"),
    ("cluster.address", "", "cluster.address", "scheduler address"),
    ("cluster.min_tasks", -1, "cluster.min_tasks", "non-negative integer"),
    ("cluster.min_tasks", 2.0, "cluster.min_tasks", "non-negative integer"),
    ("data.obs_ids", [23523, 23523], "data.obs_ids", "distinct observation ids"),
    ("data.obs_ids", 23523, "data.obs_ids", "list"),
    ("data.selection.cone", {"lon": 1, "lat": 2}, "data.selection.cone.radius", "required key missing"),
    (
        "data.selection.cone",
        {"lon": 1, "lat": 2, "radius": 1, "frame": "fk5"},
        "data.selection.cone.frame",
        "icrs, galactic",
    ),
    ("data.selection.time", {"start": "yesterday", "stop": 1}, "data.selection.time.start", "ISO time"),
    ("data.selection.time", {"start": 10, "stop": 5}, "data.selection.time.stop", "after start"),
    ("data.selection.max_observations", 0, "data.selection.max_observations", "positive integer"),
    ("data", "store", "data", "mapping with keys store"),
]


@pytest.mark.parametrize(("key", "value", "error_key", "expected"), BAD)
def test_bad_config(key, value, error_key, expected):
    with pytest.raises(ConfigError) as info:
        parse_config(replaced(minimal(), key, value), source="/jobs/job.yaml")
    error = info.value
    assert isinstance(error, GpcubeError)
    assert error.key == error_key and error.source == "/jobs/job.yaml"
    assert str(error).startswith(f"config key {error_key!r} in /jobs/job.yaml: ")
    assert expected in str(error)


def test_error_message_format():
    with pytest.raises(ConfigError) as info:
        parse_config(replaced(minimal(), "geom.binsz", -1), source="/path/job.yaml")
    assert (
        str(info.value)
        == "config key 'geom.binsz' in /path/job.yaml: expected a positive number of deg below 180, got -1"
    )
    with pytest.raises(
        ConfigError, match=r"^config key 'geom.binsize': unknown key; expected one of center, "
    ):
        parse_config(replaced(minimal(), "geom.binsize", 1))


def test_error_pickles():
    error = ConfigError("geom.binsz", "expected a positive number of deg, got -1", "/path/job.yaml")
    copied = pickle.loads(pickle.dumps(error))
    assert (copied.key, copied.source, str(copied)) == (error.key, error.source, str(error))


def test_frames_follow_the_geometry():
    """safe_mask.position and exclusion circles without a frame are in geom.frame, however made."""
    config = parse_config(full())
    assert config.safe_mask.frame == "galactic"
    config = replaced(full(), "background.exclusion.frame", None)
    assert parse_config(config).background.exclusion.frame == "galactic"
    direct = JobConfig(parse_config(full()).data, parse_config(full()).geom, "/tmp/x.zarr")
    assert direct.safe_mask.frame == "galactic" and direct.max_offset == 2.5


def test_position_and_fixed_offset_exclude_each_other():
    config = replaced(minimal(), "safe_mask", {"position": [83.6, 22.0], "fixed_offset": 0.5})
    with pytest.raises(ConfigError, match="at most one") as info:
        parse_config(config)
    assert info.value.key == "safe_mask.fixed_offset"


def test_not_a_mapping_at_the_top():
    with pytest.raises(ConfigError, match="expected a mapping with keys data, geom") as info:
        parse_config(["data"])
    assert info.value.key is None


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("data:\n  store: x\ngeom: [1, 2\noutput: o.zarr\n", 4, "expected ','"),
        ("data:\n  store: x\n   bad: indent\n", 3, "mapping values are not allowed"),
        ("output: a.zarr\ndata: {store: x}\noutput: b.zarr\n", 3, "duplicate key 'output'"),
    ],
)
def test_yaml_syntax_error_names_file_and_line(tmp_path, text, line, problem):
    path = tmp_path / "job.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert info.value.key is None and info.value.source == str(path)
    assert message.startswith(f"config file {path}: invalid YAML at line {line}, ")
    assert problem in message and "expected valid YAML" in message


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="expected a readable YAML file") as info:
        load_config(tmp_path / "nope.yaml")
    assert info.value.key is None and info.value.source == str(tmp_path / "nope.yaml")


def test_parse_is_pure(tmp_path):
    """Validation writes nothing: neither the output store nor anything else next to the config."""
    config = replaced(minimal(), "output", str(tmp_path / "out.zarr"))
    before = copy.deepcopy(config)
    assert isinstance(parse_config(config), JobConfig)
    assert config == before and list(tmp_path.iterdir()) == []


# -------------------------------------------------------------------------------------------- docs
DOC = REPO / "docs" / "config.rst"


def test_docs_example_is_valid(tmp_path):
    text = DOC.read_text()
    block = text.split(".. code-block:: yaml\n\n", 1)[1].split("\n\n", 1)[0]
    path = tmp_path / "job.yaml"
    path.write_text(textwrap.dedent(block))
    config = load_config(path)
    assert config.geom().npix == (1643, 456) and config.geom.frame == "galactic"
    assert config.output == str(tmp_path / "survey.zarr")


def test_docs_describe_every_key():
    text = DOC.read_text()
    classes = [getattr(gpcube.workflow.config, name) for name in gpcube.workflow.config.__all__]
    for cls in [c for c in classes if dataclasses.is_dataclass(c)]:
        for f in dataclasses.fields(cls):
            if "check" in f.metadata:
                inline = re.search(rf"[{{,] ?{f.name}[,}}]", text)  # as in ``{lon, lat, radius, frame}``
                assert f"``{f.name}``" in text or inline, (cls.__name__, f.name)


RING_BAD = [
    ({"method": "ring", "ring": {"r_in": 0}}, "background.ring.r_in", "positive number of deg"),
    ({"method": "ring", "ring": {"energy_edges": [1, 1]}}, "background.ring.energy_edges", "increasing"),
    ({"method": "ring", "ring": {"energy_edges": "band"}}, "background.ring.energy_edges", "per-bin, all"),
    ({"method": "ring", "adaptive_ring": {}}, "background.adaptive_ring", "allowed with adaptive_ring"),
    ({"method": "ring", "grouping": "all"}, "background.grouping", "allowed with fov"),
    (
        {"method": "adaptive_ring", "adaptive_ring": {"r_in": 0.5, "width": 0.3, "r_out_max": 0.7}},
        "background.adaptive_ring.r_out_max",
        "more than r_in + width = 0.8 deg",
    ),
    (
        {"method": "adaptive_ring", "adaptive_ring": {"method": "grow"}},
        "background.adaptive_ring.method",
        "fixed_width, fixed_r_in",
    ),
]


@pytest.mark.parametrize(("background", "error_key", "expected"), RING_BAD)
def test_bad_ring_config(background, error_key, expected):
    with pytest.raises(ConfigError, match=re.escape(expected)) as info:
        parse_config(replaced(minimal(), "background", background))
    assert info.value.key == error_key


def test_ring_config_defaults_and_round_trip():
    config = parse_config(replaced(minimal(), "background", {"method": "ring"}))
    assert config.background.ring_params == config.background.ring
    assert (config.background.ring.r_in, config.background.ring.width) == (0.5, 0.3)
    assert config.background.ring.energy_edges == "per-bin"
    assert parse_config(config.to_dict()) == config
    assert "adaptive_ring" not in config.to_dict()["background"]
    adaptive = {"method": "adaptive_ring", "adaptive_ring": {"energy_edges": [0.5, 5, 50]}}
    config = parse_config(replaced(minimal(), "background", adaptive))
    assert config.background.ring_params.energy_edges == (0.5, 5.0, 50.0)
    assert config.background.ring_params.threshold_alpha == 0.1
    assert parse_config(config.to_dict()) == config
    model = parse_config(minimal())
    assert model.background.ring_params is None
    assert not {"ring", "adaptive_ring", "exclusion"} & set(model.to_dict()["background"])
