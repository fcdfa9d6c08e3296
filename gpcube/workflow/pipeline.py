"""The whole job as plain functions: reduce observations into the archive, sum the mosaic, open it.

The CLI (``gpcube run``, ``reduce``, ``mosaic``) calls these; in a notebook call them directly, with
your own :class:`distributed.Client` or none (then tasks run one after the other in this process, on
dask's synchronous scheduler).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from pathlib import Path

import dask.array  # noqa: F401 - every run needs it (xarray imports it at its first Variable): load it with the rest

from gpcube.errors import GpcubeError
from gpcube.execute import EmbeddedCluster, cluster_client, raise_failures, run_tasks
from gpcube.geom.sky import remember_header
from gpcube.storage.layout import (
    IRF,
    MOSAIC,
    SIGNIFICANCE,
    check_or_create,
    complete_observations,
    mosaic_attrs,
    observation_attrs,
    open_readonly,
    root_attrs,
)
from gpcube.storage.nodes import read_group_attrs
from gpcube.storage.repository import Archive, ArchiveConflict, as_archive, drop_stale_branches, fault_point
from gpcube.workflow.config import JobConfig
from gpcube.workflow.mosaic import build_mosaic
from gpcube.workflow.mosaic.build import BUILD_PREFIX, STALE_BRANCH_SECONDS
from gpcube.workflow.open import open_archive
from gpcube.workflow.recipe import import_makers
from gpcube.workflow.reduce import reduce_observation, remember_job
from gpcube.workflow.resources import check_job
from gpcube.workflow.significance import significance

__all__ = ["ReduceCommits", "job_client", "mosaic", "open_archive", "reduce", "run", "significance"]


def reduce(config: JobConfig, client=None, *, progress: bool = True) -> dict:
    """Add the selected observations that the archive lacks; returns counts of what happened.

    The config is checked against the archive first (a changed analysis is refused) and the
    selection is resolved before anything is written. Observations already in the archive are not
    recomputed. The new ones are committed in batches (:class:`ReduceCommits`), so a run that is
    killed keeps what it committed and the next run does the rest. A failing observation does not stop
    the others; the failures are raised together at the end.

    Parameters
    ----------
    config : JobConfig
        The job (:func:`gpcube.workflow.config.load_config`).
    client : distributed.Client or EmbeddedCluster, optional
        What runs the tasks (:func:`job_client`); default: this process.
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        ``selected``, ``already_done``, ``written`` and ``empty`` (outside the geometry) observations.

    See Also
    --------
    mosaic : Sums the observations' products.
    run : Both, and the significance maps.

    Examples
    --------
    >>> from gpcube.data import example_data_dir
    >>> from gpcube.workflow.config import parse_config
    >>> config = parse_config({  # the 4 Crab runs on a small mosaic
    ...     "data": {"store": str(example_data_dir())},
    ...     "geom": {"center": [83.633, 22.014], "width": 3.0, "binsz": 0.05,
    ...              "energy_reco": {"min": 0.5, "max": 50, "nbins": 4},
    ...              "energy_true": {"min": 0.3, "max": 100, "nbins": 8}},
    ...     "output": "crab.zarr",
    ... })
    >>> from gpcube.workflow.pipeline import mosaic, reduce
    >>> reduce(config, progress=False)
    {'selected': 4, 'already_done': 0, 'written': 4, 'empty': 0}
    >>> reduce(config, progress=False)  # nothing to do the second time
    {'selected': 4, 'already_done': 4, 'written': 0, 'empty': 0}
    >>> mosaic(config.output, progress=False)["obs_ids"]
    [23523, 23526, 23559, 23592]
    """
    return _reduce(config, client, progress=progress)[0]


class ReduceCommits:
    """Commit the reduce tasks' forks as they come back: every ``every`` observations or ``seconds``
    seconds (the job's ``commit`` section), and at the end (:meth:`flush`). Each commit costs about the
    archive's metadata (~0.5 s at 1000 observations on a local disk), so not one per observation.

    A batch whose observations another run has committed meanwhile (two runs adding the same
    observations to one archive) is committed without them: their products are the same.
    """

    def __init__(self, archive: Archive, obs_ids: list[int], every: int = 100, seconds: float = 60.0):
        self.archive, self.obs_ids = archive, obs_ids
        self.every, self.seconds = every, seconds
        self.pending: dict[int, object] = {}
        self.committed: list[int] = []
        self.summaries: list[dict] = []
        self.last = time.monotonic()

    def add(self, index: int, result) -> None:
        summary, fork = result
        self.summaries.append(summary)
        self.pending[self.obs_ids[index]] = fork
        if len(self.pending) >= self.every or time.monotonic() - self.last >= self.seconds:
            self.flush()

    def flush(self) -> None:
        while self.pending:
            there = set(observation_attrs(self.archive.readonly().store, list(self.pending)))
            for obs_id in there:  # committed meanwhile by another run
                del self.pending[obs_id]
            if not self.pending:
                break
            session = self.archive.writable()
            fault_point("reduce:merge")
            session.merge(*self.pending.values())
            ids = sorted(self.pending)
            fault_point("reduce:commit")
            try:
                self.archive.commit(session, f"reduce: {len(ids)} observations ({ids[0]}..{ids[-1]})")
            except ArchiveConflict:
                continue  # another run committed some of them meanwhile: drop those and try again
            fault_point("reduce:committed")
            self.committed += ids
            self.pending.clear()
        self.last = time.monotonic()


def _reduce(config: JobConfig, client, *, progress: bool) -> tuple[dict, Archive]:
    """:func:`reduce`, and the archive."""
    check_job(config, client)  # memory and paths, before anything is written
    geom = config.geom()
    data = config.data.open()
    obs_ids = list(data.obs_ids)
    archive = config.archive()
    root = check_or_create(archive, config.analysis_dict(), geom.to_attrs, config.to_dict(redact=True))
    drop_stale_branches(archive, BUILD_PREFIX, STALE_BRANCH_SECONDS)  # a killed build's
    head = archive.readonly()
    grids = _stored_grids(head.store, root)
    for attrs in grids:
        remember_header(attrs)
    done = set(observation_attrs(head.store, obs_ids))
    todo = [i for i in obs_ids if i not in done]
    commits = ReduceCommits(archive, todo, config.commit.observations, config.commit.seconds)
    if todo:
        import_makers(config)
        config_json = json.dumps(config.to_dict())
        grids_json = json.dumps(grids)
        remember_job(config_json, grids_json, config, geom, data)
        base = archive.writable()
        calls = [(str(i), (base.fork(), config_json, grids_json, i)) for i in todo]
        try:
            _, failures = run_tasks(
                reduce_observation, calls, client, desc="reduce", progress=progress, token=_token(archive),
                on_result=commits.add,
            )  # fmt: skip
        finally:
            commits.flush()  # what finished is kept, whatever stopped the rest
        raise_failures(failures, "observations")
    report = {
        "selected": len(obs_ids),
        "already_done": len(done),
        "written": len(commits.committed),
        "empty": sum(1 for r in commits.summaries if r["empty"] and r["obs_id"] in set(commits.committed)),
    }
    return report, archive


def _token(archive: Archive) -> str:
    """A name for one job's tasks on a dask scheduler: the archive's, and unique to this run."""
    stem = re.sub(r"[^A-Za-z0-9]+", "_", archive.location.rstrip("/").rsplit("/", 1)[-1])[:24]
    return f"{stem}-{uuid.uuid4().hex[:8]}"


def _stored_grids(store, root: dict) -> list[dict]:
    """The geometry attrs stored in the archive, whose WCS headers its products carry whatever version
    of gpcube wrote them (see :func:`gpcube.geom.sky.remember_header`): the sky grid's, and the coarse
    IRF grid's once there is a mosaic. This process takes them, and so does each reduce task (in its
    arguments, for workers that did not fork from here after this)."""
    grids = [root.get("geom") or {}]
    with contextlib.suppress(GpcubeError):
        grids.append(read_group_attrs(store, f"{MOSAIC}/{IRF}").get("geom") or {})
    return [attrs for attrs in grids if attrs]


def mosaic(
    archive: Archive | str | Path,
    client=None,
    *,
    chunk: int | None = None,
    progress: bool = True,
    full: bool = False,
    storage_options: dict | None = None,
) -> dict:
    """Bring ``mosaic/`` up to date with every observation of the archive; returns its attrs.

    ``chunk`` (pixels along lon and lat) defaults to the config's ``chunks.mosaic``. Only the chunks
    that observations added since the last mosaic overlap are recomputed, unless ``full`` (see
    :func:`gpcube.workflow.mosaic.build_mosaic`).

    See Also
    --------
    reduce : Adds observations to the archive (with an example of both).
    gpcube.open_archive : Opens the mosaic.
    """
    archive = as_archive(archive, storage_options)
    attrs = root_attrs(open_readonly(archive).store)
    if chunk is None:
        chunk = int(attrs.get("config", {}).get("chunks", {}).get("mosaic", 256))
    return build_mosaic(archive, client, chunk=chunk, progress=progress, full=full, token=_token(archive))


@contextlib.contextmanager
def job_client(config: JobConfig | None = None, scheduler: str | None = None):
    """What runs the job's tasks: a client of ``scheduler`` or ``cluster.address`` if given, else an
    :class:`~gpcube.execute.EmbeddedCluster` from the ``cluster`` section. Its workers start at once
    if they fork (the default on Linux in a process that has not opened an archive yet) or with
    ``cluster.dashboard``; else when a batch of at least ``cluster.min_tasks`` tasks needs them."""
    cluster = config.cluster if config is not None else None
    address = scheduler or (cluster.address if cluster is not None else None)
    if address:
        with cluster_client(address) as client:
            yield client
        return
    options = {}
    if cluster is not None:
        options = {
            "n_workers": cluster.n_workers,
            "threads_per_worker": cluster.threads_per_worker,
            "processes": cluster.processes,
            "memory_limit": cluster.memory_limit,
            "dashboard": cluster.dashboard,
            "start_method": None if cluster.start_method == "auto" else cluster.start_method,
            "min_tasks": 0 if cluster.dashboard else cluster.min_tasks,
        }
    with EmbeddedCluster(**options) as embedded:
        if options.get("dashboard") or embedded.forks:
            # now: so that the dashboard shows the whole job; and forked workers must start before
            # the job opens its archive (gpcube.execute.mark_fork_unsafe)
            embedded.client  # noqa: B018
        yield embedded


def run(config: JobConfig, client=None, *, progress: bool = True) -> dict:
    """Reduce, then bring the mosaic up to date if the set of observations changed (or it is missing),
    then with a ``significance`` section make the maps of :func:`significance` if they are not current
    (in this process: an embedded cluster is closed first, its workers being idle by then).

    Parameters
    ----------
    config : JobConfig
        The job (:func:`gpcube.workflow.config.load_config`).
    client : distributed.Client or EmbeddedCluster, optional
        What runs the tasks (:func:`job_client`, as ``gpcube run`` does); default: this process.
    progress : bool
        Show progress bars.

    Returns
    -------
    dict
        :func:`reduce`'s report, with ``mosaic`` (``n_obs``, ``livetime``, ``made_at``) and, if made,
        ``significance``.

    See Also
    --------
    gpcube.workflow.config.load_config : Reads a job's config.
    gpcube.open_archive : Opens the result.

    Examples
    --------
    The example job of ``gpcube example``: the 4 Crab runs shipped with gpcube, as ``gpcube run
    crab.yaml`` runs it:

    >>> from gpcube.data import write_example_config
    >>> from gpcube.workflow.config import load_config
    >>> from gpcube.workflow.pipeline import run
    >>> config = load_config(write_example_config("crab.yaml"))
    >>> report = run(config, progress=False)
    >>> report["written"], report["mosaic"]["n_obs"], round(report["mosaic"]["livetime"] / 3600, 2)
    (4, 4, 1.75)

    Run again, it finds the work done:

    >>> run(config, progress=False)["already_done"]
    4
    """
    report, archive = _reduce(config, client, progress=progress)
    store = archive.readonly().store
    current = mosaic_attrs(store)
    wanted = [i for i, a in complete_observations(store).items() if not a.get("empty")]
    changed = (
        current is None or current.get("obs_ids") != wanted or current.get("chunk") != config.chunks.mosaic
    )
    if changed:
        current = build_mosaic(
            archive, client, chunk=config.chunks.mosaic, progress=progress, token=_token(archive)
        )
    report["mosaic"] = {key: current[key] for key in ("n_obs", "livetime", "made_at")}
    settings = config.significance
    if settings is not None and (changed or _significance_stale(archive.readonly().store, settings, current)):
        if isinstance(client, EmbeddedCluster):  # the maps are made here: free the idle workers' memory
            client.close()
        maps = significance(
            archive, settings.radius, energy_edges=settings.energy_edges,
            spectral_index=settings.spectral_index, correlate_off=settings.correlate_off,
        )  # fmt: skip
        report["significance"] = {"statistic": maps.attrs["statistic"], "made_at": maps.attrs["made_at"]}
    return report


def _significance_stale(store, settings, mosaic: dict) -> bool:
    """Whether the archive's significance maps are missing, older than ``mosaic`` or made otherwise
    than the job's ``significance`` section says."""
    try:
        attrs = read_group_attrs(store, SIGNIFICANCE)
    except GpcubeError:
        return True
    if (
        attrs.get("made_at", "") < mosaic.get("made_at", "")
        or attrs.get("correlation_radius") != settings.radius
    ):
        return True
    if "spectral_index" in attrs and attrs["spectral_index"] != settings.spectral_index:
        return True
    if attrs.get("statistic") == "wstat" and attrs.get("correlate_off") != settings.correlate_off:
        return True
    if settings.energy_edges is not None:
        axes = {a.get("name"): a.get("edges") for a in (attrs.get("geom") or {}).get("axes", [])}
        return axes.get("energy_band") != list(settings.energy_edges)
    return False
