"""Faults a cluster meets, injected where they hurt (not by sleeping): a kill between every two steps of
each commit protocol, a worker lost after its task wrote (dask runs it again), two writers on one
archive, two jobs on one scheduler, a reader during a commit, a corrupt object, a full disk.

The kills are real: ``gpcube run`` in a subprocess stops dead at a named step
(:func:`gpcube.storage.repository.fault_point`, as SIGKILL would: no cleanup, no ``finally``). After
each, the archive must read as one consistent snapshot, and a plain re-run must end with the bytes of
an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
import yaml

import gpcube
from gpcube.errors import GpcubeError
from gpcube.storage.layout import complete_observations, mosaic_attrs, open_readonly
from gpcube.storage.repository import FAULT_ENV, FAULT_ONCE_ENV, Archive
from tests.archive.conftest import chunk_files, job_dict
from tests.conftest import CRAB_RUNS

GPCUBE = [sys.executable, "-m", "gpcube.cli"]
PRODUCTS = ["counts", "exposure", "background", "psf", "edisp"]
THREADS = {"n_workers": 1, "threads_per_worker": 2, "processes": False}
SIGNIFICANCE = {"radius": 0.1}
#: The steps of the commit protocols of a run that builds a new archive, in order.
FIRST_RUN_POINTS = [
    "archive:created", "reduce:merge", "reduce:commit", "reduce:committed", "mosaic:branch", "mosaic:arrays",
    "mosaic:merge", "mosaic:commit", "mosaic:built", "mosaic:moved", "significance:commit",
]  # fmt: skip
#: The steps of a run that adds an observation to an archive with a mosaic (an update on main).
UPDATE_POINTS = ["reduce:commit", "reduce:committed", "mosaic:merge", "mosaic:commit", "mosaic:committed"]


def _write(folder, name: str, output, obs_ids, **overrides):
    settings = {"products": PRODUCTS, "cluster": THREADS, "significance": SIGNIFICANCE,
                "commit": {"observations": 1}, **overrides}  # fmt: skip
    job = job_dict(output, obs_ids, **settings)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def _run(job, env=None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*GPCUBE, "run", str(job), "-q"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})}, **kwargs)  # fmt: skip


def _start(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [*GPCUBE, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _products(archive) -> dict:
    return {group: chunk_files(archive, group) for group in ("mosaic", "mosaic/irf", "significance")}


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """Chunks of uninterrupted runs: on 2 and on 3 Crab runs."""
    folder = tmp_path_factory.mktemp("references")
    out = {}
    for n in (2, 3):
        job = _write(folder, f"ref{n}", folder / f"ref{n}.zarr", CRAB_RUNS[:n])
        assert _run(job).returncode == 0
        out[n] = _products(folder / f"ref{n}.zarr")
    assert out[2]["mosaic"] and out[3]["mosaic"] != out[2]["mosaic"]
    return out


def _consistent(path) -> None:
    """Whatever a reader finds is one whole snapshot: a mosaic's obs_ids are observations in it, and
    the mosaic's counts are the sum of those observations' (masked) counts."""
    if not (path / "refs").exists():
        return
    try:
        store = open_readonly(Archive(path)).store
    except GpcubeError as exc:  # killed before the archive's first commit: nothing in it yet
        assert "no gpcube archive here" in str(exc)
        return
    attrs = mosaic_attrs(store)
    if attrs is None:
        return
    observations = complete_observations(store)
    assert set(attrs["obs_ids"]) <= set(observations)
    mosaic = gpcube.open_archive(path).compute()
    total = 0
    for obs_id in attrs["obs_ids"]:
        obs = gpcube.open_archive(path, obs_id=obs_id).compute()
        total += int(obs["counts"].where(obs["mask_safe"], 0).sum())
    assert int(mosaic["counts"].sum()) == total


@pytest.mark.parametrize("point", FIRST_RUN_POINTS)
def test_a_kill_at_any_step_of_a_first_run_loses_nothing_committed(point, references, tmp_path):
    job = _write(tmp_path, "job", tmp_path / "a.zarr", CRAB_RUNS[:2])
    killed = _run(job, {FAULT_ENV: point})
    assert killed.returncode == 137, killed.stderr[-2000:]
    _consistent(tmp_path / "a.zarr")
    again = _run(job)
    assert again.returncode == 0, again.stderr[-2000:]
    assert _products(tmp_path / "a.zarr") == references[2]
    assert Archive(tmp_path / "a.zarr").branches() == {"main"}  # the dead build's branch is gone


@pytest.mark.parametrize("point", UPDATE_POINTS)
def test_a_kill_at_any_step_of_an_update_keeps_the_old_mosaic_whole(point, references, tmp_path):
    out = tmp_path / "a.zarr"
    assert _run(_write(tmp_path, "two", out, CRAB_RUNS[:2])).returncode == 0
    job = _write(tmp_path, "three", out, CRAB_RUNS[:3])
    killed = _run(job, {FAULT_ENV: point})
    assert killed.returncode == 137, killed.stderr[-2000:]
    _consistent(out)
    store = Archive(out).readonly().store
    if mosaic_attrs(store)["obs_ids"] == list(CRAB_RUNS[:2]):  # not committed: the old mosaic, whole
        assert chunk_files(out, "mosaic") == references[2]["mosaic"]
    else:  # killed after its commit
        assert point == "mosaic:committed" and chunk_files(out, "mosaic") == references[3]["mosaic"]
    assert _run(job).returncode == 0
    assert _products(out) == references[3]


@pytest.mark.parametrize("point", ["reduce:task", "mosaic:task"])
def test_a_worker_lost_after_its_task_wrote_is_replaced_and_nothing_is_added_twice(
    point, references, tmp_path
):
    """A worker process dies after its task wrote into its fork; dask runs the task again elsewhere."""
    workers = {"n_workers": 2, "threads_per_worker": 1, "processes": True}
    job = _write(tmp_path, "job", tmp_path / "a.zarr", CRAB_RUNS[:2], cluster=workers)
    result = _run(job, {FAULT_ENV: point, FAULT_ONCE_ENV: str(tmp_path / "killed-once")})
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "killed-once").exists()  # a worker did die
    assert _products(tmp_path / "a.zarr") == references[2]


def test_a_mosaic_task_run_twice_in_process_gives_the_same_bytes(references, tmp_path, monkeypatch):
    """Both forks of a task run twice are merged (worse than dask does): the bytes do not change,
    because a task reads only the snapshot it was given, never what it or another task wrote."""
    import pickle

    import gpcube.workflow.mosaic.build as build_mod
    from gpcube.workflow import pipeline
    from gpcube.workflow.config import load_config

    original = build_mod.run_tasks

    def twice(func, calls, *args, **kwargs):
        doubled = [
            (f"{label}-{i}", (pickle.loads(pickle.dumps(a[0])), *a[1:])) for label, a in calls for i in (0, 1)
        ]
        return original(func, doubled, *args, **kwargs)

    monkeypatch.setattr(build_mod, "run_tasks", twice)
    out = tmp_path / "a.zarr"
    pipeline.run(load_config(_write(tmp_path, "two", out, CRAB_RUNS[:2])), progress=False)
    pipeline.run(load_config(_write(tmp_path, "three", out, CRAB_RUNS[:3])), progress=False)  # an update
    assert _products(out) == references[3]


def test_two_writers_on_one_archive_both_commit_and_lose_nothing(references, tmp_path):
    """Two runs on one archive at once, with an observation in common: every observation once, and
    the mosaic of the last to finish holds them all."""
    out = tmp_path / "a.zarr"
    first = _write(tmp_path, "first", out, CRAB_RUNS[:2])
    second = _write(tmp_path, "second", out, CRAB_RUNS[1:3])
    procs = [_start("run", job, "-q") for job in (first, second)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
    store = Archive(out).readonly().store
    assert list(complete_observations(store)) == list(CRAB_RUNS[:3])
    assert mosaic_attrs(store)["obs_ids"] == list(CRAB_RUNS[:3])
    assert chunk_files(out, "mosaic") == references[3]["mosaic"]


def test_two_jobs_on_one_scheduler_at_once(references, tmp_path, dask_cluster):
    address, _ = dask_cluster
    jobs = [_write(tmp_path, f"job{n}", tmp_path / f"a{n}.zarr", CRAB_RUNS[:n]) for n in (2, 3)]
    procs = [_start("run", job, "-q", "--scheduler", address) for job in jobs]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
    for n in (2, 3):
        assert _products(tmp_path / f"a{n}.zarr") == references[n]


def test_a_reader_during_an_update_sees_the_snapshot_it_opened(references, tmp_path):
    from gpcube.workflow import pipeline
    from gpcube.workflow.config import load_config

    out = tmp_path / "a.zarr"
    pipeline.run(load_config(_write(tmp_path, "two", out, CRAB_RUNS[:2])), progress=False)
    before = gpcube.open_archive(out)  # lazy: nothing read yet
    done = threading.Event()

    def update():
        pipeline.run(load_config(_write(tmp_path, "three", out, CRAB_RUNS[:3])), progress=False)
        done.set()

    writer = threading.Thread(target=update)
    writer.start()
    while not done.is_set():  # read again and again while the update runs and commits
        assert before.attrs["obs_ids"] == list(CRAB_RUNS[:2])
        before["counts"].to_numpy().sum()
    writer.join()
    values = before["counts"].to_numpy()
    after = gpcube.open_archive(out)
    assert after.attrs["obs_ids"] == list(CRAB_RUNS[:3]) and after["counts"].to_numpy().sum() > values.sum()
    from tests.archive.conftest import open_group

    np.testing.assert_array_equal(values, before["counts"].to_numpy())
    assert open_group(out, "mosaic")["counts"].to_numpy().tobytes() != values.tobytes()


@pytest.mark.parametrize("left", ["config", "config and first snapshot"])
def test_what_a_kill_inside_the_repositorys_creation_leaves_does_not_block_the_output(
    left, references, tmp_path
):
    """icechunk creates a repository as files written one after the other: config.yaml, the first
    snapshot, then the branch ref that makes them a repository. A run killed before the ref left a
    directory that every later run refused ("output exists and is not a gpcube archive")."""
    out = tmp_path / "a.zarr"
    Archive(out).create()
    shutil.rmtree(out / "refs")
    if left == "config":
        shutil.rmtree(out / "snapshots")
    assert not Archive(out).exists()
    again = _run(_write(tmp_path, "job", out, CRAB_RUNS[:2]))
    assert again.returncode == 0, again.stderr[-2000:]
    assert _products(out) == references[2]


def test_a_truncated_head_snapshot_is_refused_naming_the_archive_and_the_snapshot(tmp_path):
    """icechunk reads every key of a damaged snapshot as missing: the archive looked empty ("no gpcube
    archive here"). Every command refuses it with the snapshot named, and writes nothing."""
    out = tmp_path / "a.zarr"
    assert _run(_write(tmp_path, "job", out, CRAB_RUNS[:1])).returncode == 0
    head = json.loads((out / "refs" / "branch.main" / "ref.json").read_text())["snapshot"]
    snapshot = out / "snapshots" / head
    snapshot.write_bytes(snapshot.read_bytes()[:100])
    files = sorted(p.name for p in out.rglob("*"))
    message = rf"file {out}: its snapshot {head} cannot be read \(.*\): the archive's metadata is damaged"
    with pytest.raises(GpcubeError, match=message):
        gpcube.open_archive(out)
    for args in (["run", _write(tmp_path, "two", out, CRAB_RUNS[:2])], ["info", out]):
        refused = subprocess.run([*GPCUBE, *map(str, args)], capture_output=True, text=True, timeout=600)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-2000:]
        assert f"its snapshot {head} cannot be read" in refused.stderr
    assert sorted(p.name for p in out.rglob("*")) == files


def test_a_corrupt_object_on_disk_is_named(tmp_path):
    out = tmp_path / "a.zarr"
    assert _run(_write(tmp_path, "job", out, CRAB_RUNS[:1])).returncode == 0
    chunks = sorted((out / "chunks").iterdir(), key=lambda p: -p.stat().st_size)
    for path in chunks:
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 3])  # truncated
    with pytest.raises(
        GpcubeError, match=r"(mosaic|obs)/.*: chunk \(.*\) of the array (is corrupt|cannot be read)"
    ):
        _read_everything(out)


def _read_everything(path) -> None:
    from gpcube.storage import nodes

    store = Archive(path).readonly().store
    for group in ("mosaic", f"obs/{CRAB_RUNS[0]}"):
        for name in nodes.list_children(store, group):
            key = f"{group}/{name}"
            if name not in ("irf", "ring"):
                nodes.read_region(store, key)


def _small_files(limit: int):
    def set_limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return set_limit


def test_a_full_disk_fails_clearly_and_the_archive_stays_whole(tmp_path):
    """No file may grow past 40 kB (as a disk that fills up): the run fails with a clear message,
    and the archive is the snapshot before the failed commit."""
    out = tmp_path / "a.zarr"
    assert _run(_write(tmp_path, "one", out, CRAB_RUNS[:1])).returncode == 0
    head = Archive(out).head()
    full = _run(_write(tmp_path, "two", out, CRAB_RUNS[:2]), preexec_fn=_small_files(40_000))
    assert full.returncode == 2, full.stderr[-2000:]
    assert "Traceback" not in full.stderr and "cannot write to the archive" in full.stderr
    assert "File too large" in full.stderr
    store = open_readonly(Archive(out)).store
    assert list(complete_observations(store)) == [CRAB_RUNS[0]] or Archive(out).head() != head
    _consistent(out)
