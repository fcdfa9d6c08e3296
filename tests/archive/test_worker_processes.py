"""Workers forked from the gpcube process, spawned by it, forked by a fork server, started elsewhere
(``dask worker``) or its own threads write the same archive: nothing a task needs lives only in the
memory a forked worker copies from its parent.

The case that tells them apart is an archive whose stored WCS header is not the one this gpcube writes
for its grid (archives of gpcube 0.1.0.dev0 before ``wcs_header`` hold astropy's, rounded to 14
significant digits): the observations added to it carry the stored header, whoever reduces them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import yaml

from gpcube.storage import aio, nodes
from tests.archive.conftest import job, job_dict
from tests.conftest import CRAB_RUNS, archive_store

#: A centre whose header values change when rounded to 14 significant digits.
CENTER = [83.63312345678912, 22.01412345678912]
#: Keys of group attributes that differ between any two runs (when, where, how long).
VOLATILE = ("provenance", "made_at", "written_at", "created")


def _old_archive(path, monkeypatch) -> dict:
    """An archive of the first Crab run written with a rounded WCS header; its root geometry attrs."""
    import gpcube.geom.sky as sky
    from gpcube.geom.sky import remember_header
    from gpcube.workflow import pipeline

    config = job(path, CRAB_RUNS[:1], geom={"center": CENTER})
    monkeypatch.setattr(sky, "_TEMPLATES", {})  # what this process remembers goes with the test
    attrs = config.geom().to_attrs()
    rounded = {k: float(f"{v:.13E}") if isinstance(v, float) else v for k, v in attrs["wcs_header"].items()}
    assert rounded != attrs["wcs_header"]
    remember_header({**attrs, "wcs_header": rounded})
    pipeline.run(config, progress=False)
    monkeypatch.setattr(sky, "_TEMPLATES", {})
    return {**attrs, "wcs_header": rounded}


def _contents(path) -> dict:
    """``{key: bytes}`` of every chunk and ``{key: document}`` of every zarr.json of the archive, without
    the attributes that record when and where (:data:`VOLATILE`)."""
    store = archive_store(path)

    async def keys():
        return sorted([key async for key in store.list_prefix("")])

    found = aio.run(keys())
    values = dict(zip(found, aio.gather(nodes._get(store, key) for key in found), strict=True))
    out = {}
    for key, value in values.items():
        if key.endswith("zarr.json"):
            document = json.loads(value)
            attrs = document.get("attributes", {})
            document["attributes"] = {k: v for k, v in attrs.items() if k not in VOLATILE}
            out[key] = document
        else:
            out[key] = value
    return out


def test_forked_spawned_and_remote_workers_write_the_same_archive(tmp_path, monkeypatch, dask_cluster):
    from gpcube.workflow import pipeline

    address, _ = dask_cluster
    stored = _old_archive(tmp_path / "old.zarr", monkeypatch)
    processes = {"n_workers": 1, "threads_per_worker": 1, "processes": True, "min_tasks": 0}
    runs = {"fork": [], "spawn": [], "forkserver": [], "remote": ["--scheduler", address]}
    for name, extra in runs.items():
        out = tmp_path / f"{name}.zarr"
        shutil.copytree(tmp_path / "old.zarr", out)
        cluster = {**processes, "start_method": name if name != "remote" else "auto"}
        settings = job_dict(out, CRAB_RUNS[:2], geom={"center": CENTER}, cluster=cluster)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(settings))
        done = subprocess.run([sys.executable, "-m", "gpcube.cli", "run", str(path), "-q", *extra],
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    added = f"obs/{CRAB_RUNS[1]}"
    fork = _contents(tmp_path / "fork.zarr")
    header = fork[f"{added}/zarr.json"]["attributes"]["geom"]["wcs_header"]
    grid = {k: v for k, v in header.items() if not k.startswith(("NAXIS", "CRPIX"))}  # the cutout's own
    assert grid == {k: v for k, v in stored["wcs_header"].items() if not k.startswith(("NAXIS", "CRPIX"))}
    assert any("/c/" in key for key in fork if key.startswith(added))
    threads = tmp_path / "threads.zarr"  # this process: the tasks on its threads
    shutil.copytree(tmp_path / "old.zarr", threads)
    pipeline.run(job(threads, CRAB_RUNS[:2], geom={"center": CENTER}), progress=False)
    for name in ("spawn", "forkserver", "remote", "threads"):
        other = _contents(tmp_path / f"{name}.zarr")
        assert other.keys() == fork.keys(), name
        differ = sorted(key for key in fork if other[key] != fork[key])
        assert not differ, (name, differ[:10])


def test_a_task_carries_its_own_jobs_header_whatever_another_job_of_the_process_remembered(
    tmp_path, monkeypatch
):
    """A long-lived worker (a remote one, or this process's threads) serves a job on an old archive, then
    a job on a new archive of the same grid, then the first again: each task takes its archive's header
    from its own arguments, not from what the process remembered last."""
    import gpcube.geom.sky as sky
    from gpcube.geom import SkyGeom
    from gpcube.workflow.reduce import _job

    monkeypatch.setattr(sky, "_TEMPLATES", {})
    config = job(tmp_path / "a.zarr", CRAB_RUNS[:1], geom={"center": CENTER})
    attrs = config.geom().to_attrs()
    rounded = {k: float(f"{v:.13E}") if isinstance(v, float) else v for k, v in attrs["wcs_header"].items()}
    text = json.dumps(config.to_dict())
    old, new = json.dumps([{**attrs, "wcs_header": rounded}]), json.dumps([attrs])
    for grids, header in [(old, rounded), (new, attrs["wcs_header"]), (old, rounded)]:
        _, geom, _ = _job(text, grids)
        assert SkyGeom.from_attrs(attrs).to_attrs()["wcs_header"] == header


def test_a_memory_archive_is_refused_for_worker_processes(tmp_path):
    """It lives in this process: worker processes would fail every task."""
    import pytest

    from gpcube.errors import GpcubeError
    from gpcube.execute import EmbeddedCluster
    from gpcube.workflow.resources import check_in_process

    config = job("memory://worker-processes-test", CRAB_RUNS[:1])
    check_in_process(config, None)
    with EmbeddedCluster(n_workers=1, processes=False) as threads:
        check_in_process(config, threads)
        check_in_process(config, threads.client)  # a client whose workers are this process's threads
    with EmbeddedCluster(n_workers=1, processes=True, start_method="spawn") as processes:
        with pytest.raises(GpcubeError, match="memory://worker-processes-test lives in this process"):
            check_in_process(config, processes)
    check_in_process(job(tmp_path / "a.zarr", CRAB_RUNS[:1]), processes)
