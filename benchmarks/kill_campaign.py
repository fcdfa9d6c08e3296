"""Issue 17's fault campaign again, with real kills, on a simulated survey: does an archive lose anything?

Not the named fault points of ``tests/archive/test_faults.py`` (``GPCUBE_KILL_AT``): here processes are
killed as an operator, the kernel's OOM killer or a crashed node would, at random (seeded) times.

``gpcube simulate`` writes a store of ``--obs`` observations on the survey pattern of
``benchmarks/survey.py`` (a grid along the Galactic plane, H.E.S.S. IRFs of run 23523, ``--events``
background events each). The job: galactic CAR at 0.04 deg over the grid plus 3 deg, reco 0.5-50 TeV
(5 bins), true 0.3-100 TeV (8 bins), all five products (so the mosaic has ``mosaic/irf``), observation
chunks of 128 px, mosaic chunks of 64 px, a commit every 20 observations, 2 worker processes.

Setup, without faults, each command timed (the durations set the windows of the random kills): an
archive with every observation reduced and no mosaic (``gpcube reduce``); the reference ``all``, a copy
of it after ``gpcube run`` (which builds the mosaic); the reference ``base``, a first run on the first
two thirds of the observations. Then a full rebuild of ``all``, an add of the last third to ``base`` on
the separate cluster and a first run of all observations into a new archive must give ``all``'s bytes,
else no trial could. Then, for each fault, ``--trials`` trials, each on a fresh archive:

1. ``worker killed during an add``: a copy of ``base`` gets the other third (``gpcube run --scheduler``
   on a cluster of separate processes, ``dask scheduler`` + ``dask worker --nworkers 2``); one worker
   process gets SIGKILL at a random time of the add (its nanny starts a new one);
2. ``two jobs on one scheduler``: that add and a new ``base`` archive on the same scheduler at once
   (the second starts at a random time);
3. ``two writers on one archive``: ``gpcube run`` of the first three quarters into a new archive, and at
   a random time a second ``gpcube run`` of the last three quarters on the same archive (each with its
   own embedded cluster);
4. ``SIGKILL during mosaic --full``: ``gpcube mosaic ARCHIVE --full`` on a copy of ``all``, its process
   group killed at a random time; the archive must then still hold the whole mosaic (the old one, whose
   bytes are the new one's), and again after a re-run;
5. ``reader during an add``: while a copy of ``base`` gets the other third, this process reads the
   archive again and again (``gpcube.open_archive``, and ``xr.open_zarr`` on
   ``Archive(path).readonly().store``): every read must be the old mosaic or the new one, whole (counts,
   background and ``mosaic/irf``'s ``exposure_irf`` totals, and ``obs_ids``), with counts equal to the
   sum of its listed observations' masked counts;
6. ``SIGKILL during a mosaic build``: ``gpcube run`` on a copy of the reduced archive (it builds the
   mosaic), its process group killed at a random time;
7. ``metadata truncated``: a copy of ``base`` with icechunk's branch ref (``refs/``), its head snapshot
   or an older snapshot (``snapshots/``) truncated at a random length; then ``gpcube.open_archive``,
   ``gpcube run`` (the add) and ``gpcube info``;
8. ``SIGKILL during a first run``: ``gpcube run`` of ``all`` into a new archive (reduce and mosaic), its
   process group killed at a random time;
9. ``SIGKILL as the archive is created``: as 8, killed 0-15 ms after the archive's directory appears,
   while icechunk writes the repository's first files and gpcube commits the archive's root group.

Where the fault is a kill, the same command is run once more afterwards (a worker kill only if the
command failed). Outcomes: **identical**: every command succeeded and the archive holds the reference's
observations and exactly its chunk bytes below ``mosaic/`` (with ``mosaic/irf``) and ``obs/`` (after a
kill, also no build branch left, and the bytes are compared after deleting what no snapshot refers to,
as ``gpcube gc --older-than 0 --history`` does); **refused clearly**: a command exited with a gpcube
error (status 2, one line naming the archive, no traceback) and nothing read was wrong; **lost**:
anything else, with the reason printed. Each trial prints a line (where the kill landed, from the
progress bars); then the table. Run from the repository root::

    python benchmarks/kill_campaign.py [--trials 5] [--obs 100] [--seed 1] [--faults 1 4 7] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mosaic import DEFAULT_DATA, compile_gpcube  # noqa: E402
from survey import grid_lon, write_sim  # noqa: E402

import gpcube  # noqa: E402
from gpcube.errors import GpcubeError  # noqa: E402
from gpcube.storage import aio  # noqa: E402
from gpcube.storage.layout import complete_observations, mosaic_attrs, open_readonly  # noqa: E402
from gpcube.storage.repository import Archive  # noqa: E402

#: Where the gpcube this script imported lives: the commands and the workers import the same one.
GPCUBE_ROOT = Path(gpcube.__file__).resolve().parents[1]
_PATHS = [str(GPCUBE_ROOT), os.environ.get("PYTHONPATH")]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in _PATHS if p)}
RECO, TRUE = {"min": 0.5, "max": 50, "nbins": 5}, {"min": 0.3, "max": 100, "nbins": 8}
PRODUCTS = ["counts", "exposure", "background", "psf", "edisp"]
WORKERS = {"n_workers": 2, "threads_per_worker": 1, "processes": True}
#: The groups whose chunks are compared with the reference's (``mosaic/`` holds ``mosaic/irf``).
COMPARED = ("mosaic/", "obs/")
#: A command that takes this many times its clean duration (at least a minute) is taken as hung.
PATIENCE = 10


def gpcube_command(*args) -> list[str]:
    return [sys.executable, "-m", "gpcube.cli", *map(str, args)]


# ---------------------------------------------------------------------------------------- processes
class Command:
    """A command in a process group of its own (so that SIGKILL reaches its embedded cluster too),
    its output (progress bars included) in ``log``."""

    #: The commands of the trials, so that none outlives its trial, whatever stopped it.
    started_in_trials: list[Command] = []

    def __init__(self, argv: list[str], log: Path, trial: bool = True):
        self.log, self.started = log, time.perf_counter()
        with open(log, "w") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=ENV,
                                         start_new_session=True)  # fmt: skip
        if trial:
            Command.started_in_trials.append(self)

    @classmethod
    def kill_leftovers(cls) -> None:
        """Kill the trials' commands that still run (a trial that raised may have left one)."""
        for command in cls.started_in_trials:
            if command.proc.poll() is None:
                command.kill()
        cls.started_in_trials.clear()

    def wait(self, timeout: float) -> int | None:
        """The exit status, or None if it had to be killed after ``timeout`` seconds."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def running_after(self, delay: float) -> bool:
        """Sleep until ``delay`` seconds after the start or the end of the command; whether it still runs."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=max(0.0, self.started + delay - time.perf_counter()))
        return self.proc.poll() is None

    def running_once(self, appeared: Callable[[], bool], jitter: float, timeout: float = 600.0) -> bool:
        """Poll (every ms) until ``appeared()`` or the end of the command, then sleep ``jitter`` s;
        whether it still runs."""
        end = time.perf_counter() + timeout
        while self.proc.poll() is None and not appeared() and time.perf_counter() < end:
            time.sleep(0.001)
        time.sleep(jitter)
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole process group; returns once the group is gone."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        _wait_group_gone(self.proc.pid)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def _wait_group_gone(pgid: int, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    print(f"  warning: processes of group {pgid} still exist after SIGKILL", flush=True)


def run(argv: list[str], log: Path, timeout: float) -> tuple[int | None, str]:
    command = Command(argv, log)
    code = command.wait(timeout)
    return code, command.text()


def phase(text: str) -> str:
    """Where a command was, from its progress bars: before any, in a stage's tasks, or past the tasks
    of a stage (committing, merging, swapping)."""
    bars = re.findall(r"(reduce|mosaic):\s+(\d+)%", text)
    if not bars:
        return "start"
    name, percent = bars[-1]
    return f"{name} {'commit' if percent == '100' else 'tasks'}"


def clear_refusal(code: int | None, text: str, path: Path) -> bool:
    """A gpcube error as the CLI reports one: status 2, a line naming the archive, no traceback."""
    return code == 2 and "Traceback" not in text and f"file {path}" in text


def error_line(text: str) -> str:
    """The CLI's error line (``gpcube CMD: error: ...``), or the end of the output."""
    lines = [line for line in text.replace("\r", "\n").splitlines() if ": error: " in line]
    return lines[-1] if lines else tail(text)


def tail(text: str, n: int = 400) -> str:
    return " ".join(text.replace("\r", "\n").split("\n")[-6:])[-n:]


class DaskCluster:
    """``dask scheduler`` and ``dask worker --nworkers 2`` as separate processes on loopback, and a
    client of this process (to find and kill worker processes)."""

    def __init__(self, logs: Path, n_workers: int = 2):
        self.n_workers = n_workers
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.address = f"tcp://127.0.0.1:{port}"
        dask, local = [sys.executable, "-m", "dask"], ["--host", "127.0.0.1", "--no-dashboard"]
        scheduler = [*dask, "scheduler", "--port", str(port), *local]
        self.scheduler = Command(scheduler, logs / "dask-scheduler.log", trial=False)
        workers = [*dask, "worker", self.address, "--nworkers", str(n_workers), "--nthreads", "1", *local]
        self.workers = Command(workers, logs / "dask-worker.log", trial=False)
        self.client = None

    def __enter__(self) -> DaskCluster:
        from distributed import Client

        try:
            self.client = Client(self.address, timeout="60s", set_as_default=False)  # not for xarray here
            self.ready()
        except BaseException:
            self.close()
            raise
        return self

    def ready(self) -> None:
        self.client.wait_for_workers(self.n_workers, timeout=180)
        while len(self.client.scheduler_info(n_workers=-1)["workers"]) < self.n_workers:
            time.sleep(0.2)

    def warm(self) -> None:
        """Import what the tasks need in the workers, so that a clean run's duration is a warm one."""
        self.client.run(exec, "import gpcube.workflow.pipeline, gpcube.workflow.mosaic.build")

    def worker_pids(self) -> list[int]:
        """The worker processes' pids, in the order of their names (stable across runs)."""
        workers = self.client.scheduler_info(n_workers=-1)["workers"]
        pids = self.client.run(os.getpid)
        return [pids[a] for a in sorted(pids, key=lambda a: str(workers.get(a, {}).get("name", a)))]

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
        for command in (self.workers, self.scheduler):
            command.kill()

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------------------------------ archives
@dataclasses.dataclass
class Fingerprint:
    """What is compared between two archives: observations, the mosaic's obs_ids, chunk digests."""

    obs: list[int]
    mosaic_obs: list[int] | None
    chunks: dict[str, str]


async def _digests(store, keys: list[str], batch: int = 256) -> dict[str, str]:
    from zarr.core.buffer import default_buffer_prototype

    prototype, out = default_buffer_prototype(), {}
    for start in range(0, len(keys), batch):
        part = keys[start : start + batch]
        values = await asyncio.gather(*(store.get(key, prototype) for key in part))
        for key, value in zip(part, values, strict=True):
            out[key] = "missing" if value is None else hashlib.sha1(value.to_bytes()).hexdigest()
    return out


def fingerprint(path: Path) -> Fingerprint:
    store = open_readonly(Archive(path)).store

    async def keys() -> list[str]:
        return [key for prefix in COMPARED async for key in store.list_prefix(prefix)]

    chunks = sorted(key for key in aio.run(keys()) if "/c/" in key and not key.endswith("zarr.json"))
    mosaic = mosaic_attrs(store)
    return Fingerprint(
        list(complete_observations(store)), None if mosaic is None else mosaic["obs_ids"],
        aio.run(_digests(store, chunks)),
    )  # fmt: skip


def _listed(values, n: int = 4) -> str:
    values = sorted(values)
    return ", ".join(map(str, values[:n])) + (f" (+{len(values) - n})" if len(values) > n else "")


def differences(found: Fingerprint, ref: Fingerprint) -> str:
    """What differs from the reference, or '' if nothing does."""
    problems = []
    if found.obs != ref.obs:
        missing, extra = set(ref.obs) - set(found.obs), set(found.obs) - set(ref.obs)
        problems.append(f"observations missing: {_listed(missing)}; extra: {_listed(extra)}")
    if found.mosaic_obs != ref.mosaic_obs:
        n = None if found.mosaic_obs is None else len(found.mosaic_obs)
        problems.append(f"mosaic obs_ids: {n} of {len(ref.mosaic_obs)}")
    missing = set(ref.chunks) - set(found.chunks)
    extra = set(found.chunks) - set(ref.chunks)
    changed = {k for k in set(ref.chunks) & set(found.chunks) if ref.chunks[k] != found.chunks[k]}
    for what, keys in (("missing", missing), ("extra", extra), ("with other bytes", changed)):
        if keys:
            problems.append(f"{len(keys)} chunks {what} ({_listed(keys, 3)})")
    return "; ".join(problems)


def check(path: Path, ref: Fingerprint) -> str:
    """'' if the archive at ``path`` is the reference, byte for byte; else why not."""
    try:
        return differences(fingerprint(path), ref)
    except Exception as exc:  # noqa: BLE001 - an unreadable archive is an outcome
        return f"unreadable: {type(exc).__name__}: {str(exc)[:200]}"


def consistent(path: Path, masked: dict[int, int]) -> str:
    """'' if the archive reads as one snapshot (its mosaic, if any, is the sum of its listed
    observations' masked counts, all of which are in it); else why not."""
    if not (path / "refs").exists():  # killed before the archive was created: nothing to read
        return ""
    try:
        store = open_readonly(Archive(path)).store
        attrs = mosaic_attrs(store)
        if attrs is None:
            return ""
        listed = attrs["obs_ids"]
        absent = set(listed) - set(complete_observations(store))
        if absent:
            return f"mosaic lists observations the archive lacks: {_listed(absent)}"
        counts = int(gpcube.open_archive(path)["counts"].sum(dtype="int64"))
        expected = sum(masked[i] for i in listed)
        return "" if counts == expected else f"mosaic counts {counts}, its observations' {expected}"
    except GpcubeError as exc:
        if "no gpcube archive here" in str(exc):  # killed before the archive's first commit
            return ""
        return f"unreadable: {exc}"
    except Exception as exc:  # noqa: BLE001
        return f"unreadable: {type(exc).__name__}: {str(exc)[:200]}"


def leftovers(path: Path) -> tuple[str, str]:
    """After a killed run and its re-run: (a problem or '', a note). A build branch left is a problem;
    then what no snapshot refers to any more is deleted as ``gpcube gc --older-than 0 --history`` does
    (the caller then checks the bytes: gc must not have deleted anything the archive needs)."""
    from gpcube.storage.maintenance import collect_garbage

    branches = Archive(path).branches() - {"main"}
    staged = sum(1 for p in path.rglob("*") if "#" in p.name)  # interrupted writes of the local store
    if branches:
        return f"branches left: {_listed(branches, 2)}", ""
    report = collect_garbage(Archive(path), older_than_hours=0, history=True)
    return "", f"gc deleted {report['objects_deleted']}" + (f", {staged} staged files" if staged else "")


# ---------------------------------------------------------------------------------------------- setup
@dataclasses.dataclass
class Setup:
    work: Path
    store: Path
    lon: list[float]
    obs_ids: list[int]
    base: list[int]
    paths: dict[str, Path]  # the reference archives: base, all, reduced (no mosaic)
    refs: dict[str, Fingerprint]
    masked: dict[int, int]  # each observation's counts where its safe mask is true
    totals: dict[str, tuple]  # old (base) and new (all) totals of what the reader reads
    seconds: dict[str, float]  # clean durations: reduce, build, full, add, add_cluster
    cluster: DaskCluster
    logs: Path
    counter: Counter = dataclasses.field(default_factory=Counter)

    def job(self, name: str, obs_ids, output: Path) -> Path:
        path = self.work / f"{name}.yaml"
        path.write_text(yaml.safe_dump(job_dict(self.store, obs_ids, output, self.lon), sort_keys=False))
        return path

    def archive(self, name: str, source: str | None = None) -> Path:
        """A new archive path (a copy of the reference ``source`` if given)."""
        self.counter[name] += 1
        path = self.work / f"{name}-{self.counter[name]}.zarr"
        if source is not None:
            shutil.copytree(self.paths[source], path)
        return path

    def log(self, name: str) -> Path:
        self.counter["log-" + name] += 1
        return self.logs / f"{name}-{self.counter['log-' + name]}.log"

    def timeout(self, key: str) -> float:
        return max(60.0, PATIENCE * self.seconds[key])


def job_dict(store: Path, obs_ids, output: Path, lon) -> dict:
    return {
        "data": {"store": str(store), "obs_ids": [int(i) for i in obs_ids]},
        "geom": {"frame": "galactic", "projection": "CAR", "center": [0.0, 0.0],
                 "width": [lon[1] - lon[0] + 6.0, 8.0], "binsz": 0.04, "energy_reco": RECO,
                 "energy_true": TRUE},
        "products": PRODUCTS,
        "safe_mask": {"methods": ["offset-max"], "offset_max": 2.5},
        "irf": {"binsz": 0.2, "rad": {"max": 0.5, "nbins": 20}},
        "chunks": {"obs": 128, "mosaic": 64},
        "commit": {"observations": 20},
        "cluster": WORKERS,
        "output": str(output),
    }  # fmt: skip


def simulate(work: Path, n: int, events: int, data: Path) -> tuple[Path, list[int]]:
    from gpcube.io import DataStore

    store = work / "store"
    write_sim(work / "sim.yaml", store, n, events, data)
    code, text = run(gpcube_command("simulate", work / "sim.yaml", "-q", "--workers", "2"),
                     work / "logs" / "simulate.log", 3600)  # fmt: skip
    if code != 0:
        raise SystemExit(f"gpcube simulate failed: {tail(text)}")
    obs_ids = sorted(int(i) for i in DataStore.from_dir(store).obs_table["OBS_ID"])
    print(f"simulated {len(obs_ids)} observations into {store}", flush=True)
    return store, obs_ids


def clean(setup: Setup, key: str, argv: list[str], name: str) -> None:
    """A command without faults, timed into ``setup.seconds[key]``; it must succeed."""
    start = time.perf_counter()
    code, text = run(argv, setup.log(name), 3600)
    setup.seconds[key] = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"setup: {' '.join(argv[3:])} failed: {tail(text)}")
    print(f"  {name}: {setup.seconds[key]:.1f} s", flush=True)


def masked_counts(path: Path, obs_ids) -> dict[int, int]:
    out = {}
    for obs_id in obs_ids:
        obs = gpcube.open_archive(path, obs_id=obs_id)
        out[obs_id] = int(obs["counts"].where(obs["mask_safe"], 0).sum(dtype="int64"))
    return out


def reader_totals(mosaic, irf) -> tuple:
    """What a reader compares: obs_ids, counts, background and exposure_irf totals."""
    return (
        tuple(mosaic.attrs["obs_ids"]),
        int(mosaic["counts"].sum(dtype="int64")),
        float(mosaic["background"].sum(dtype="float64")),
        float(irf["exposure_irf"].sum(dtype="float64")),
    )


def prepare(work: Path, args, cluster: DaskCluster) -> Setup:
    store, obs_ids = simulate(work, args.obs, args.events, args.data)
    lon = grid_lon(len(obs_ids))
    base = obs_ids[: 2 * len(obs_ids) // 3]
    paths = {name: work / f"ref-{name}.zarr" for name in ("base", "all", "reduced")}
    setup = Setup(work, store, lon, obs_ids, base, paths, {}, {}, {}, {}, cluster, work / "logs")
    print("references (no faults):", flush=True)
    reduce_job = setup.job("ref-reduced", obs_ids, paths["reduced"])
    clean(setup, "reduce", gpcube_command("reduce", reduce_job), "reduce")
    shutil.copytree(paths["reduced"], paths["all"])
    clean(setup, "build", gpcube_command("run", setup.job("ref-all", obs_ids, paths["all"])), "build-all")
    clean(setup, "base", gpcube_command("run", setup.job("ref-base", base, paths["base"])), "build-base")
    setup.refs = {name: fingerprint(paths[name]) for name in ("base", "all")}
    setup.masked = masked_counts(paths["all"], obs_ids)
    setup.totals = {
        name: reader_totals(gpcube.open_archive(paths[key]), gpcube.open_archive(paths[key], irf=True))
        for name, key in (("old", "base"), ("new", "all"))
    }
    _sanity(setup)
    return setup


def _sanity(setup: Setup) -> None:
    """The references agree with each other: a full rebuild, an add on the separate cluster and a
    first run of all observations give the bytes of ``all`` (else no trial could be identical)."""
    full = setup.archive("sanity-full", "all")
    clean(setup, "full", gpcube_command("mosaic", full, "--full"), "mosaic-full")
    add = setup.archive("sanity-add", "base")
    job = setup.job("sanity-add", setup.obs_ids, add)
    address = setup.cluster.address
    setup.cluster.warm()
    clean(setup, "add", gpcube_command("run", job, "--scheduler", address), "add-cluster")
    first = setup.archive("sanity-first")
    clean(setup, "first", gpcube_command("run", setup.job("sanity-first", setup.obs_ids, first)), "first-run")
    for path in (full, add, first):
        problem = check(path, setup.refs["all"])
        if problem:
            raise SystemExit(f"setup: {path.name} differs from the reference: {problem}")
        shutil.rmtree(path)


# --------------------------------------------------------------------------------------------- trials
@dataclasses.dataclass
class Outcome:
    kind: str  # identical | refused | lost
    reason: str = ""
    note: str = ""


def verdict(reasons: list[str], note: str = "", refusals: list[str] = ()) -> Outcome:
    reasons = [r for r in reasons if r]
    if reasons:
        return Outcome("lost", "; ".join(reasons), note)
    if refusals:
        return Outcome("refused", "; ".join(refusals), note)
    return Outcome("identical", "", note)


def _command_problem(code: int | None, text: str, what: str) -> str:
    if code == 0:
        return ""
    return f"{what} {'hung' if code is None else f'failed ({code})'}: {error_line(text)}"


def kill_and_rerun(
    setup: Setup, argv: list[str], path: Path, when, key: str, ref: str, describe=None
) -> Outcome:
    """Start ``argv``, SIGKILL its process group when ``when(command)`` returns (a delay in s, or a
    function that waits and says whether the command still runs), check the archive reads whole, run
    ``argv`` again, check it is the reference ``ref`` and that nothing of the kill stays. ``describe``
    (path -> str) says what the kill left, in the note."""
    name = path.stem
    command = Command(argv, setup.log(name))
    killed = command.running_after(when) if isinstance(when, float) else when(command)
    seconds = command.seconds
    where = phase(command.text()) if killed else "finished first"
    if killed:
        command.kill()
        where += f" ({describe(path)})" if describe else ""
    elif command.proc.returncode != 0:
        return Outcome("lost", f"run failed before the kill: {tail(command.text())}", where)
    reasons = [consistent(path, setup.masked) if path.exists() else ""]
    if key == "full":  # the old mosaic and the new one have the same bytes: it must be whole now
        problem = check(path, setup.refs[ref])
        reasons.append(problem and f"after the kill: {problem}")
    code, text = run(argv, setup.log(name), setup.timeout(key))
    reasons.append(_command_problem(code, text, "re-run"))
    note = f"{where} at {seconds:.1f} s"
    if not any(reasons):
        problem, gc_note = leftovers(path)
        reasons.append(problem)
        note += f", {gc_note}"
    if not any(reasons):
        problem = check(path, setup.refs[ref])
        reasons.append(problem and f"after the re-run and gc: {problem}")
    return verdict(reasons, note)


def trial_worker_kill(setup: Setup, rng: random.Random) -> Outcome:
    path = setup.archive("worker", "base")
    job, address = setup.job("worker", setup.obs_ids, path), setup.cluster.address
    argv = gpcube_command("run", job, "--scheduler", address)
    delay = rng.uniform(0.1, 1.0) * setup.seconds["add"]
    victim = rng.randrange(setup.cluster.n_workers)
    command = Command(argv, setup.log("worker"))
    note = "finished first"
    if command.running_after(delay):
        pid = setup.cluster.worker_pids()[victim]
        os.kill(pid, signal.SIGKILL)
        note = f"{phase(command.text())} at {delay:.1f} s"
    code = command.wait(setup.timeout("add"))
    reasons = []
    if code != 0:  # the fault is a kill: one plain re-run
        note += f", run failed ({error_line(command.text())}), re-run"
        code, text = run(argv, setup.log("worker"), setup.timeout("add"))
        reasons.append(_command_problem(code, text, "re-run"))
    setup.cluster.ready()
    reasons.append(check(path, setup.refs["all"]))
    shutil.rmtree(path)
    return verdict(reasons, note)


def trial_two_jobs(setup: Setup, rng: random.Random) -> Outcome:
    add, new = setup.archive("jobs-add", "base"), setup.archive("jobs-new")
    address = setup.cluster.address
    first = Command(gpcube_command("run", setup.job("jobs-add", setup.obs_ids, add), "--scheduler", address),
                    setup.log("jobs-add"))  # fmt: skip
    delay = rng.uniform(0.0, 0.6) * setup.seconds["add"]
    first.running_after(delay)
    second = Command(gpcube_command("run", setup.job("jobs-new", setup.base, new), "--scheduler", address),
                     setup.log("jobs-new"))  # fmt: skip
    reasons = []
    for command, what in ((first, "the add"), (second, "the new archive's run")):
        code = command.wait(setup.timeout("add") + setup.timeout("base"))
        reasons.append(_command_problem(code, command.text(), what))
    for label, path, ref in (("the add", add, "all"), ("the new archive", new, "base")):
        problem = check(path, setup.refs[ref])
        reasons.append(problem and f"{label}: {problem}")
        shutil.rmtree(path, ignore_errors=True)
    return verdict(reasons, f"second at {delay:.1f} s")


def trial_two_writers(setup: Setup, rng: random.Random) -> Outcome:
    path, n = setup.archive("writers"), len(setup.obs_ids)
    first_ids, second_ids = setup.obs_ids[: 3 * n // 4], setup.obs_ids[n // 4 :]
    first = Command(gpcube_command("run", setup.job("writers-1", first_ids, path)), setup.log("writers-1"))
    delay = rng.uniform(0.0, 0.9) * 0.75 * setup.seconds["first"]
    first.running_after(delay)
    second = Command(gpcube_command("run", setup.job("writers-2", second_ids, path)), setup.log("writers-2"))
    reasons, refusals = [], []
    timeout = 2 * setup.timeout("first")
    for command, what in ((first, "first"), (second, "second")):
        code = command.wait(timeout)
        if clear_refusal(code, command.text(), path):
            refusals.append(f"{what}: {error_line(command.text())}")
        else:
            reasons.append(_command_problem(code, command.text(), what))
    if refusals:
        reasons.append(consistent(path, setup.masked))
    else:
        reasons.append(check(path, setup.refs["all"]))
    shutil.rmtree(path, ignore_errors=True)
    return verdict(reasons, f"second at {delay:.1f} s", refusals)


def trial_full_kill(setup: Setup, rng: random.Random) -> Outcome:
    path = setup.archive("full", "all")
    delay = rng.uniform(0.05, 1.0) * setup.seconds["full"]
    outcome = kill_and_rerun(setup, gpcube_command("mosaic", path, "--full"), path, delay, "full", "all")
    shutil.rmtree(path, ignore_errors=True)
    return outcome


def read_archive(path: Path, how: str) -> tuple:
    """One reader's view: through gpcube.open_archive (the IRF maps from the snapshot the mosaic was
    opened at: each call opens the latest one) or plain xarray on one read-only session's store (both
    groups from that snapshot)."""
    import xarray as xr

    if how == "open_archive":
        mosaic = gpcube.open_archive(path)
        return reader_totals(
            mosaic, gpcube.open_archive(path, irf=True, snapshot=mosaic.attrs["archive"]["snapshot"])
        )
    store = Archive(path).readonly().store
    mosaic = xr.open_zarr(store, group="mosaic", consolidated=False)
    return reader_totals(mosaic, xr.open_zarr(store, group="mosaic/irf", consolidated=False))


def judge_read(seen: tuple, setup: Setup) -> str:
    """'' for the old or the new mosaic, whole, consistent with its obs_ids; else what was read."""
    if seen in (setup.totals["old"], setup.totals["new"]):
        return ""
    obs_ids, counts = seen[0], seen[1]
    expected = sum(setup.masked.get(i, 0) for i in obs_ids)
    return f"read {len(obs_ids)} obs_ids, counts {counts} (their sum {expected}), totals {seen[1:]}"


def trial_reader(setup: Setup, rng: random.Random) -> Outcome:
    path = setup.archive("reader", "base")
    writer = Command(gpcube_command("run", setup.job("reader", setup.obs_ids, path)), setup.log("reader"))
    seen, bad = Counter(), []
    deadline = time.perf_counter() + setup.timeout("add")
    while writer.proc.poll() is None and time.perf_counter() < deadline:
        for how in ("open_archive", "xarray"):
            try:
                view = read_archive(path, how)
            except Exception as exc:  # noqa: BLE001
                bad.append(f"{how} failed: {type(exc).__name__}: {str(exc)[:150]}")
                continue
            problem = judge_read(view, setup)
            seen["old" if view == setup.totals["old"] else "new" if not problem else "mixed"] += 1
            if problem:
                bad.append(f"{how}: {problem}")
        time.sleep(rng.uniform(0.0, 0.2))
    code = writer.wait(max(1.0, deadline - time.perf_counter()))
    reasons = [_command_problem(code, writer.text(), "the add"), *bad[:3], check(path, setup.refs["all"])]
    shutil.rmtree(path, ignore_errors=True)
    return verdict(reasons, f"reads: {seen['old']} old, {seen['new']} new, {seen['mixed']} mixed")


def _kill_a_run(
    setup: Setup, rng: random.Random, name: str, start_from: str | None, earliest: float
) -> Outcome:
    """``gpcube run`` of every observation into a copy of reference ``start_from`` (a new archive if None),
    killed at a random time from ``earliest`` of its reference duration ``name`` on, then run again."""
    path = setup.archive(name, start_from)
    argv = gpcube_command("run", setup.job(name, setup.obs_ids, path))
    delay = rng.uniform(earliest, 1.0) * setup.seconds[name]
    outcome = kill_and_rerun(setup, argv, path, delay, name, "all")
    shutil.rmtree(path, ignore_errors=True)
    return outcome


def trial_build_kill(setup: Setup, rng: random.Random) -> Outcome:
    return _kill_a_run(setup, rng, "build", "reduced", 0.05)


def trial_first_run_kill(setup: Setup, rng: random.Random) -> Outcome:
    return _kill_a_run(setup, rng, "first", None, 0.02)


def trial_create_kill(setup: Setup, rng: random.Random) -> Outcome:
    """A first run killed 0-15 ms after its archive's directory appears: while gpcube checks the
    directory, icechunk creates the repository (config, first snapshot, branch ref: ~5 ms) and gpcube
    commits the archive's root group (~1 ms)."""
    path = setup.archive("create")
    argv = gpcube_command("run", setup.job("create", setup.obs_ids, path))
    jitter = rng.uniform(0.0, 0.015)

    def when(command: Command) -> bool:
        return command.running_once(path.exists, jitter)

    outcome = kill_and_rerun(setup, argv, path, when, "first", "all", creation_state)
    shutil.rmtree(path, ignore_errors=True)
    return outcome


def creation_state(path: Path) -> str:
    """What a run killed while creating the archive left at ``path``."""
    if not path.exists() or not any(path.iterdir()):
        return "an empty directory" if path.exists() else "nothing"
    if not (path / "refs" / "branch.main" / "ref.json").exists():
        return "icechunk's first files, no branch ref"
    if len(list((path / "snapshots").iterdir())) < 2:
        return "a repository without the archive's root group"
    return "an archive"


#: The icechunk metadata files a trial truncates, in turn.
METADATA = ("branch ref", "head snapshot", "older snapshot")


def corrupt(path: Path, variant: str, rng: random.Random) -> str:
    """Truncate one of the archive's metadata files at a random length; which one, and to what."""
    ref = path / "refs" / "branch.main" / "ref.json"
    head = json.loads(ref.read_text())["snapshot"]
    if variant == "branch ref":
        target = ref
    elif variant == "head snapshot":
        target = path / "snapshots" / head
    else:
        older = sorted(p for p in (path / "snapshots").iterdir() if p.name != head)
        target = rng.choice(older)
    size = target.stat().st_size
    keep = rng.randrange(size)
    os.truncate(target, keep)
    return f"{target.relative_to(path)} {size} -> {keep} bytes"


def _open_step(path: Path, setup: Setup) -> tuple[str, str]:
    """(problem, refusal) of gpcube.open_archive on the corrupt archive."""
    try:
        seen = reader_totals(gpcube.open_archive(path), gpcube.open_archive(path, irf=True))
    except GpcubeError as exc:
        if str(path) in str(exc):
            return "", f"open_archive: {exc}"
        return f"open_archive: unclear error: {exc}", ""
    except Exception as exc:  # noqa: BLE001
        return f"open_archive: {type(exc).__name__}: {str(exc)[:200]}", ""
    return ("" if seen == setup.totals["old"] else f"open_archive read {seen[1:]}"), ""


def _cli_step(argv: list[str], path: Path, setup: Setup, what: str) -> tuple[str, str, int | None]:
    code, text = run(argv, setup.log("metadata"), setup.timeout("add"))
    if code == 0:
        return "", "", code
    if clear_refusal(code, text, path):
        return "", error_line(text), code
    return _command_problem(code, text, what), "", code


def trial_metadata(setup: Setup, rng: random.Random, index: int) -> Outcome:
    path = setup.archive("metadata", "base")
    variant = METADATA[index % len(METADATA)]
    what = corrupt(path, variant, rng)
    steps = [_open_step(path, setup)]
    run_job = gpcube_command("run", setup.job("metadata", setup.obs_ids, path))
    problem, refusal, code = _cli_step(run_job, path, setup, "run")
    steps.append((problem or (check(path, setup.refs["all"]) if code == 0 else ""), refusal))
    steps.append(_cli_step(gpcube_command("info", path), path, setup, "info")[:2])
    shutil.rmtree(path, ignore_errors=True)
    return verdict([p for p, _ in steps], what, [r for _, r in steps if r])


@dataclasses.dataclass
class Fault:
    key: str
    label: str
    trial: Callable


FAULTS = [
    Fault("1", "dask worker killed while observations are added to an existing mosaic", trial_worker_kill),
    Fault("2", "two jobs (two archives) on one scheduler at once", trial_two_jobs),
    Fault("3", "a second `gpcube run` on the same archive while one is writing", trial_two_writers),
    Fault("4", "SIGKILL during `gpcube mosaic --full`", trial_full_kill),
    Fault("5", "a reader (`open_archive`, `xr.open_zarr`) during an add", trial_reader),
    Fault("6", "SIGKILL during a mosaic build", trial_build_kill),
    Fault("7", "root metadata truncated (icechunk ref or snapshot)", trial_metadata),
    Fault("8", "SIGKILL during a first `gpcube run` (reduce + mosaic)", trial_first_run_kill),
    Fault("9", "SIGKILL of a first `gpcube run` as it creates the archive", trial_create_kill),
]


def run_fault(fault: Fault, setup: Setup, trials: int, seed: int) -> dict:
    print(f"\n{fault.key}. {fault.label}", flush=True)
    outcomes, start = [], time.perf_counter()
    for i in range(trials):
        rng = random.Random(f"{seed}:{fault.key}:{i}")
        t0 = time.perf_counter()
        try:
            outcome = fault.trial(setup, rng, i) if fault.trial is trial_metadata else fault.trial(setup, rng)
        except Exception as exc:  # noqa: BLE001 - the campaign goes on; the trial counts as lost
            outcome = Outcome("lost", f"trial raised {type(exc).__name__}: {exc}")
        finally:
            Command.kill_leftovers()
        outcomes.append(outcome)
        reason = f": {outcome.reason}" if outcome.reason else ""
        print(f"  trial {i + 1}: {outcome.kind} ({outcome.note}; {time.perf_counter() - t0:.0f} s){reason}",
              flush=True)  # fmt: skip
    kinds = Counter(o.kind for o in outcomes)
    return {"fault": fault, "tried": trials, **{k: kinds[k] for k in ("identical", "refused", "lost")},
            "wall": time.perf_counter() - start, "outcomes": outcomes}  # fmt: skip


def print_table(rows: list[dict], total: float) -> None:
    print("\n| fault | tried | identical | refused clearly | lost | wall (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['fault'].key}. {row['fault'].label} | {row['tried']} | {row['identical']} | "
              f"{row['refused']} | {row['lost']} | {row['wall']:.0f} |")  # fmt: skip
    print(f"\ntotal wall time {total / 60:.1f} min")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5, help="trials per fault")
    parser.add_argument("--obs", type=int, default=100, help="observations of the simulated store")
    parser.add_argument("--seed", type=int, default=1, help="seeds the kill times, victims and truncations")
    parser.add_argument("--events", type=int, default=20_000, help="background events per observation")
    keys = [f.key for f in FAULTS]
    parser.add_argument("--faults", nargs="+", default=keys, choices=keys, help="which faults (default all)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="store whose IRFs are simulated")
    parser.add_argument("--work", type=Path, default=None, help="parent of the work dir (default: /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, store, references)")
    args = parser.parse_args()
    compile_gpcube()
    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="gpcube-kill-", dir=args.work))
    (work / "logs").mkdir()
    print(f"gpcube from {GPCUBE_ROOT}; work dir {work}", flush=True)
    try:
        with DaskCluster(work / "logs") as cluster:
            setup = prepare(work, args, cluster)
            faults = [f for f in FAULTS if f.key in args.faults]
            rows = [run_fault(fault, setup, args.trials, args.seed) for fault in faults]
        print_table(rows, time.perf_counter() - start)
    finally:
        Command.kill_leftovers()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
