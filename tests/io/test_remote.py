"""A data store at a URL: an HTTP server and an S3 API server (moto), both started here, serve a copy of
the 4 Crab runs of H.E.S.S. DL3 DR1; what gpcube reads over the URL equals what it reads from the disk."""

from __future__ import annotations

import functools
import hashlib
import http.server
import importlib.util
import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from astropy.table import Table

import gpcube
from gpcube.cli import main
from gpcube.errors import GpcubeError
from gpcube.io.location import join
from gpcube.makers import make_map_background, make_map_counts, make_map_exposure_true_energy, make_psf_map
from gpcube.workflow.config import ConfigError, parse_config
from tests.archive.conftest import job_dict
from tests.conftest import CRAB_RUNS, REPO

PARTS = ("events", "gti", "aeff", "edisp", "psf", "bkg")
BUCKET = "gpcube-test"  # a valid S3 bucket name
#: moto accepts any credentials; these show that the secret reaches the reader but not the archive.
S3_KEY, S3_SECRET = "gpcube-test-key", "gpcube-test-secret"


# --------------------------------------------------------------------------------------------- the data
def _make_subset():
    spec = importlib.util.spec_from_file_location("make_crab_subset", REPO / "tools" / "make_crab_subset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_subset


def _rewritten_index(src: Path, dst: Path, *, missing: int | None = None, no_psf_hdu: int | None = None):
    """The HDU index ``src`` written uncompressed to ``dst``, with ``BASE_DIR = '..'`` (its files are one
    folder up), observation ``missing``'s file renamed to one that does not exist, and the PSF row of
    ``no_psf_hdu`` naming an HDU that its file lacks."""
    table = Table.read(src, hdu=1)
    table.meta["BASE_DIR"] = ".."
    names = np.char.strip(table["FILE_NAME"].astype(str))
    hdus = np.char.strip(table["HDU_NAME"].astype(str))
    if missing is not None:
        names = np.where(table["OBS_ID"] == missing, "no_such_file.fits.gz", names)
    if no_psf_hdu is not None:
        hdus = np.where((table["OBS_ID"] == no_psf_hdu) & (table["HDU_TYPE"] == "psf"), "NO_SUCH_HDU", hdus)
    table["FILE_NAME"], table["HDU_NAME"] = names, hdus
    dst.parent.mkdir(parents=True, exist_ok=True)
    table.write(dst, format="fits")


@pytest.fixture(scope="session")
def crab_copy(tmp_path_factory, hess_dir) -> Path:
    """A copy of the Crab runs (data files, filtered index files, the release's README.txt with its terms
    of use); ``nested/`` holds an uncompressed HDU index whose ``BASE_DIR`` points one folder up, and
    ``broken/`` one with a missing file (23526) and a missing PSF HDU (23523)."""
    root = tmp_path_factory.mktemp("crab-copy")
    _make_subset()(hess_dir, root)
    assert (root / "README.txt").read_bytes() == (hess_dir / "README.txt").read_bytes()
    for name, damage in (("nested", {}), ("broken", {"missing": 23526, "no_psf_hdu": 23523})):
        _rewritten_index(root / "hdu-index.fits.gz", root / name / "hdu-index.fits", **damage)
        shutil.copyfile(root / "obs-index.fits.gz", root / name / "obs-index.fits.gz")
    return root


@pytest.fixture(scope="session")
def local_store(crab_copy):
    return gpcube.DataStore.from_dir(crab_copy)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="session")
def http_url(crab_copy):
    """``http://127.0.0.1:PORT``: a thread of this process serving the copy."""
    handler = functools.partial(_QuietHandler, directory=str(crab_copy))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


@pytest.fixture(scope="session")
def s3_options(crab_copy):
    """Storage options of an S3 API server (moto, in a thread of this process) whose bucket
    :data:`BUCKET` holds the copy under ``crab/``."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = "http://{}:{}".format(*server.get_host_and_port())
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET)  # fmt: skip
    s3.create_bucket(Bucket=BUCKET)
    for path in sorted(crab_copy.rglob("*")):
        if path.is_file():
            s3.upload_file(str(path), BUCKET, f"crab/{path.relative_to(crab_copy).as_posix()}")
    yield {"key": S3_KEY, "secret": S3_SECRET, "endpoint_url": endpoint}
    server.stop()


@pytest.fixture(params=["http", "s3"])
def remote(request) -> tuple[str, dict]:
    """``(URL of the copy, storage_options)`` on each server."""
    if request.param == "http":
        return request.getfixturevalue("http_url"), {}
    return f"s3://{BUCKET}/crab", request.getfixturevalue("s3_options")


def _assert_same_parts(got: gpcube.Observation, want: gpcube.Observation) -> None:
    """Every part equal, values, coordinates and attrs (but the ``file`` that each was read from)."""
    for part in PARTS:
        a, b = getattr(got, part), getattr(want, part)
        assert a.attrs.pop("file") == str(got.hdus[part].path)
        assert b.attrs.pop("file") == str(want.hdus[part].path)
        xr.testing.assert_identical(a, b)
    assert got.pointing == want.pointing
    assert (got.livetime, got.ontime, got.deadc) == (want.livetime, want.ontime, want.deadc)


# --------------------------------------------------------------------------------------------- reading
def test_store_at_a_url_reads_what_the_directory_gives(remote, local_store):
    url, options = remote
    store = gpcube.DataStore.from_dir(url + "/", storage_options=options)
    assert store.path == url and repr(store) == f"DataStore({url!r}, 4 observations)"
    assert store.obs_ids == local_store.obs_ids == list(CRAB_RUNS)
    got, want = store.obs_table, local_store.obs_table
    assert got.colnames == want.colnames and all((got[c] == want[c]).all() for c in got.colnames)
    for obs_id in CRAB_RUNS:
        obs = store.select(target="Crab*").observation(obs_id)
        assert {part: ref.path for part, ref in obs.hdus.items()} == {
            part: f"{url}/data/hess_dl3_dr1_obs_id_0{obs_id}.fits.gz" for part in PARTS
        }
        _assert_same_parts(obs, local_store.observation(obs_id))


def test_index_base_dir_resolves_against_the_url(remote, local_store):
    """``nested/hdu-index.fits`` (uncompressed: the second name looked for) has ``BASE_DIR = '..'``."""
    url, options = remote
    obs = gpcube.DataStore.from_dir(f"{url}/nested", options).observation(CRAB_RUNS[1])
    assert obs.hdus["events"].path == f"{url}/data/hess_dl3_dr1_obs_id_0{CRAB_RUNS[1]}.fits.gz"
    _assert_same_parts(obs, local_store.observation(CRAB_RUNS[1]))


def _geom(energy_true: bool = False) -> gpcube.SkyGeom:
    axes = [gpcube.EnergyAxis.log(0.5, 50, 4, "energy_reco")]
    if energy_true:
        axes = [gpcube.EnergyAxis.log(0.3, 100, 5, "energy_true")]
    return gpcube.SkyGeom.create((83.633, 22.014), 0.04, width=(3.0, 2.0), axes=axes)


def test_makers_give_identical_products(remote, local_store):
    url, options = remote
    obs = gpcube.DataStore.from_dir(url, options).observation(CRAB_RUNS[2])
    local = local_store.observation(CRAB_RUNS[2])
    makers = {
        "counts": lambda o: make_map_counts(o, _geom(), chunk=32),
        "background": lambda o: make_map_background(o, _geom(), chunk=32),
        "exposure": lambda o: make_map_exposure_true_energy(o, _geom(True), chunk=32),
        "psf": lambda o: make_psf_map(o, _geom(True)),
    }
    for name, make in makers.items():
        got, want = make(obs).compute(scheduler="sync"), make(local).compute(scheduler="sync")
        xr.testing.assert_identical(got, want)
        assert np.any(got.values > 0), name


def _child_env() -> dict:
    """This environment, with this gpcube first on the path of a child Python."""
    paths = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


_CHILD = """
import pickle, sys
observation = pickle.loads(sys.stdin.buffer.read())
assert observation._files == {} and not any(name in vars(observation) for name in sys.argv[1:])
sys.stdout.buffer.write(pickle.dumps(observation.load()))
"""


def test_an_observation_pickles_and_reads_its_urls_in_another_process(remote, local_store):
    url, options = remote
    obs = gpcube.DataStore.from_dir(url, options).observation(CRAB_RUNS[3])
    obs.gti  # noqa: B018 - a part read before pickling travels with the observation
    command = [sys.executable, "-c", _CHILD, "events", "aeff"]
    done = subprocess.run(command, input=pickle.dumps(obs), capture_output=True, env=_child_env())
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    loaded = pickle.loads(done.stdout)
    assert loaded.storage_options == options and loaded.hdus == obs.hdus
    _assert_same_parts(loaded, local_store.observation(CRAB_RUNS[3]))


def test_file_checksums_are_of_the_bytes_read(remote, crab_copy, monkeypatch):
    url, options = remote
    obs = gpcube.DataStore.from_dir(url, options).observation(CRAB_RUNS[0])
    name = f"data/hess_dl3_dr1_obs_id_0{CRAB_RUNS[0]}.fits.gz"
    raw = (crab_copy / name).read_bytes()
    expected = {"path": f"{url}/{name}", "size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    obs.events  # noqa: B018 - read once; the checksum does not fetch it again
    monkeypatch.setattr("gpcube.io.fitsfile.read_bytes", lambda *args: pytest.fail(f"read again: {args}"))
    assert obs.file_checksums() == [expected]


def file_checksums(paths) -> list[dict]:
    """How gpcube recorded a local file's checksum before URLs (read the file again, in blocks)."""
    import hashlib

    out = []
    for p in sorted({str(Path(p).resolve()) for p in paths}):
        digest = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                digest.update(block)
        out.append({"path": p, "size": os.path.getsize(p), "sha256": digest.hexdigest()})
    return out


def test_local_file_checksums_are_those_recorded_before(local_store):
    obs = local_store.observation(CRAB_RUNS[0])
    assert obs.file_checksums() == file_checksums(ref.path for ref in obs.hdus.values())


def test_a_local_store_is_read_without_fsspec(crab_copy):
    """The local path goes through no other layer: fsspec is not even imported."""
    script = f"""
import sys
import gpcube
gpcube.DataStore.from_dir({str(crab_copy)!r}).observation({CRAB_RUNS[0]}).load()
print(sorted(name for name in ("fsspec", "s3fs", "aiohttp") if name in sys.modules))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=_child_env(), check=True
    )
    assert done.stdout.strip() == "[]"


# --------------------------------------------------------------------------------------------- errors
def test_a_missing_file_or_hdu_names_the_url(remote):
    url, options = remote
    store = gpcube.DataStore.from_dir(f"{url}/broken", options)
    missing = f"{url}/data/no_such_file.fits.gz"
    with pytest.raises(GpcubeError, match="file not found") as info:
        store.observation(23526).events  # noqa: B018
    assert info.value.path == missing and info.value.hdu == "events" and missing in str(info.value)
    obs = store.observation(23523)
    assert obs.events.sizes["event"] > 0
    with pytest.raises(GpcubeError, match="no such HDU") as info:
        obs.psf  # noqa: B018
    assert info.value.hdu == "NO_SUCH_HDU" and info.value.path == obs.hdus["psf"].path.replace("/broken", "")
    with pytest.raises(GpcubeError, match="no hdu-index file") as info:
        gpcube.DataStore.from_dir(f"{url}/nowhere", options)
    assert info.value.path == f"{url}/nowhere"


@pytest.mark.parametrize(
    ("url", "options", "match"),
    [
        ("http://127.0.0.1:1/store", {}, "cannot read this URL .*Connect"),
        ("nosuchprotocol://host/store", {}, "Protocol not known"),
        ("s3://bucket/store", {"no_such_option": 1}, "no_such_option"),
    ],
)
def test_unreadable_urls(url, options, match):
    with pytest.raises(GpcubeError, match=match) as info:
        gpcube.DataStore.from_dir(url, options)
    assert info.value.path.startswith(url)


def test_storage_options_need_a_url(crab_copy):
    with pytest.raises(GpcubeError, match="storage_options are for a store at a URL"):
        gpcube.DataStore.from_dir(crab_copy, storage_options={"anon": True})


@pytest.mark.parametrize(
    ("base", "parts", "expected"),
    [
        ("s3://bucket/store", ("data", "run.fits.gz"), "s3://bucket/store/data/run.fits.gz"),
        ("s3://bucket/store/index", ("..", "./data", "run.fits"), "s3://bucket/store/data/run.fits"),
        ("https://host/a/b", ("/c", "run.fits"), "https://host/c/run.fits"),
        ("https://host", (".", "run.fits"), "https://host/run.fits"),
        ("https://host/a", ("..", ".."), "https://host"),
        ("https://host/a", ("s3://bucket/x/", "run.fits"), "s3://bucket/x/run.fits"),
        (Path("/store"), ("data", "run.fits"), Path("/store/data/run.fits")),
        (Path("/store"), ("/abs", "run.fits"), Path("/abs/run.fits")),
        (Path("/store"), ("https://host/data", "run.fits"), "https://host/data/run.fits"),
    ],
)
def test_join(base, parts, expected):
    assert join(base, *parts) == expected


# --------------------------------------------------------------------------------------------- the job
def _job(tmp_path, store: str, **data) -> dict:
    out = job_dict(tmp_path / f"{Path(store).name or 'store'}.zarr", CRAB_RUNS[:2])
    out["data"].update(store=store, **data)
    return out


def test_config_keeps_a_url_and_its_storage_options(tmp_path):
    options = {"key": "k", "secret": "s", "endpoint_url": "http://localhost:9000", "client_kwargs": {"b": 1}}
    config = parse_config(_job(tmp_path, "s3://bucket/store/", storage_options=options), base_dir="/jobs")
    assert config.data.store == "s3://bucket/store" and config.data.storage_options == options
    assert parse_config(config.to_dict()) == config
    redacted = config.to_dict(redact=True)["data"]["storage_options"]
    assert redacted == {**options, "key": "***", "secret": "***"}
    local = parse_config(_job(tmp_path, "relative/store"), base_dir="/jobs")
    assert local.data.store == "/jobs/relative/store" and local.data.storage_options is None


@pytest.mark.parametrize(
    ("store", "options", "expected"),
    [
        ("/data/store", {"anon": True}, "no storage_options with a local data.store"),
        ("s3://bucket/store", ["anon"], "a mapping of fsspec storage options"),
        ("s3://bucket/store", {1: True}, "a mapping of fsspec storage options"),
        ("s3://bucket/store", {"anon": {1, 2}}, "whose values are strings"),
    ],
)
def test_config_storage_option_errors(tmp_path, store, options, expected):
    with pytest.raises(ConfigError, match=expected) as info:
        parse_config(_job(tmp_path, store, storage_options=options))
    assert info.value.key == "data.storage_options"


def test_config_store_that_cannot_be_opened(tmp_path, http_url):
    config = parse_config(_job(tmp_path, f"{http_url}/nowhere"))
    with pytest.raises(ConfigError, match="no hdu-index file") as info:
        config.data.open()
    assert info.value.key == "data.store" and f"{http_url}/nowhere" in str(info.value)


def _mosaic(archive: Path) -> dict[str, np.ndarray]:
    mosaic = gpcube.open_archive(archive)
    return {name: mosaic[name].to_numpy() for name in ("counts", "exposure", "background")}


#: A worker process of its own, started fresh (spawn): it shares nothing with this one but the tasks.
SPAWNED_WORKER = {"n_workers": 1, "threads_per_worker": 1, "processes": True, "min_tasks": 0,
                  "start_method": "spawn"}  # fmt: skip


def test_gpcube_run_on_an_s3_store(tmp_path, s3_options, crab_copy, capsys):
    """A spawned worker reduces the observations from S3; the mosaic equals the local store's (reduced in
    this process); the archive records the URLs, not the secret."""
    archives = {}
    for name, data, cluster in (
        ("s3", {"store": f"s3://{BUCKET}/crab", "storage_options": s3_options}, SPAWNED_WORKER),
        ("local", {"store": str(crab_copy)}, None),
    ):
        job = _job(tmp_path, name)
        job["data"], job["output"] = {**job["data"], **data}, str(tmp_path / f"{name}.zarr")
        job["cluster"] = cluster or job["cluster"]
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(job))
        assert main(["run", str(tmp_path / f"{name}.yaml"), "--quiet"]) == 0
        archives[name] = tmp_path / f"{name}.zarr"
    capsys.readouterr()
    got, want = _mosaic(archives["s3"]), _mosaic(archives["local"])
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    from gpcube.storage.nodes import read_group_attrs
    from tests.conftest import archive_store

    root = read_group_attrs(archive_store(archives["s3"]), "")
    text = json.dumps(root)
    assert S3_SECRET not in text and S3_KEY not in text
    recorded = root["config"]["data"]
    assert recorded["store"] == f"s3://{BUCKET}/crab"
    assert recorded["storage_options"] == {**s3_options, "key": "***", "secret": "***"}
    obs = gpcube.open_archive(archives["s3"], obs_id=CRAB_RUNS[0])
    (entry,) = obs.attrs["provenance"]["files"]
    assert entry["path"] == f"s3://{BUCKET}/crab/data/hess_dl3_dr1_obs_id_0{CRAB_RUNS[0]}.fits.gz"
    assert obs.attrs["provenance"]["worker"]["pid"] != os.getpid()
