"""An archive on an S3 API server (moto's, started on localhost by the test): gpcube run with workers
that share nothing but the URL, then xarray and gpcube.open_archive reading it."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr
import yaml

import gpcube
from gpcube.storage.layout import complete_observations
from gpcube.storage.repository import Archive
from tests.archive.conftest import job_dict, open_group
from tests.conftest import CRAB_RUNS, free_port
from tests.test_cli import gpcube as run_gpcube

BUCKET = "gpcube-test"
KEYS = {"access_key_id": "testing", "secret_access_key": "testing", "region": "us-east-1"}


@pytest.fixture(scope="module")
def s3_server():
    """``http://127.0.0.1:<port>`` of a moto S3 server with an empty bucket :data:`BUCKET`."""
    import boto3

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")  # fmt: skip
    try:
        for _ in range(100):
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(0.1)
        else:
            pytest.fail("the moto S3 server did not start")
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)


def _options(endpoint: str) -> dict:
    return {"endpoint_url": endpoint, **KEYS}


def test_an_archive_on_s3_with_workers_that_share_only_the_url(s3_server, dask_cluster, tmp_path):
    address, _ = dask_cluster  # a scheduler and a worker in processes of their own
    url = f"s3://{BUCKET}/crab-{time.time_ns()}"
    job = job_dict(url, CRAB_RUNS[:2], products=["counts", "exposure", "background", "psf", "edisp"])
    job["output_options"] = _options(s3_server)
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    result = run_gpcube("run", tmp_path / "job.yaml", "--scheduler", address, "--quiet")
    assert "2 added" in result.stdout and "mosaic: 2 observations" in result.stdout
    assert not list(tmp_path.glob("*.zarr"))  # nothing on the local disk

    archive = Archive(url, _options(s3_server))
    observations = complete_observations(archive.readonly().store)
    assert list(observations) == list(CRAB_RUNS[:2])
    mosaic = gpcube.open_archive(url, storage_options=_options(s3_server))
    plain = xr.open_zarr(archive.readonly().store, group="mosaic", consolidated=False)
    np.testing.assert_array_equal(mosaic["counts"].to_numpy(), plain["counts"].to_numpy())
    assert int(mosaic["counts"].to_numpy().sum()) > 1000

    local = tmp_path / "local.zarr"  # the same job on the local disk: the same bytes
    job["output"], job["output_options"] = str(local), {}
    (tmp_path / "local.yaml").write_text(yaml.safe_dump(job))
    run_gpcube("run", tmp_path / "local.yaml", "--quiet")
    for name in ("counts", "exposure", "background", "mask_safe"):
        assert open_group(local, "mosaic")[name].to_numpy().tobytes() == plain[name].to_numpy().tobytes(), (
            name
        )

    info = run_gpcube("info", url, "--storage-option", f"endpoint_url={s3_server}",
                      *(f"--storage-option={k}={v}" for k, v in KEYS.items()))  # fmt: skip
    assert "observations: 2" in info.stdout and "mosaic: 2 observations" in info.stdout


def test_concurrent_commits_on_s3_are_detected(s3_server):
    """S3's conditional writes, not a lock file: two sessions writing the same node conflict."""
    from gpcube.storage import nodes
    from gpcube.storage.repository import ArchiveConflict

    archive = Archive(f"s3://{BUCKET}/conflict-{time.time_ns()}", _options(s3_server))
    archive.create()
    session = archive.writable()
    nodes.write_group(session.store, "", {"n": 0})
    archive.commit(session, "root")
    first, second = archive.writable(), archive.writable()
    nodes.write_group(first.store, "", {"n": 1})
    nodes.write_group(second.store, "", {"n": 2})
    archive.commit(first, "one")
    with pytest.raises(ArchiveConflict):
        archive.commit(second, "two")
    assert nodes.read_group_attrs(archive.readonly().store, "") == {"n": 1}
