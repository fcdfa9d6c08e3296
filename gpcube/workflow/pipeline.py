"""The whole job as plain functions: reduce observations into the archive, sum the mosaic, open it.

The CLI (``gpcube run``, ``reduce``, ``mosaic``) calls these; in a notebook call them directly, with
your own :class:`distributed.Client` or none (then tasks run in this process).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import dask.array  # noqa: F401 - every run needs it (xarray imports it at its first Variable): load it with the rest

from gpcube.errors import GpcubeError
from gpcube.execute import EmbeddedCluster, cluster_client, raise_failures, run_tasks
from gpcube.geom.sky import remember_header
from gpcube.storage.consolidated import consolidate
from gpcube.storage.layout import (
    IRF,
    MOSAIC,
    SIGNIFICANCE,
    check_or_create,
    complete_observations,
    mosaic_attrs,
    observation_attrs,
    root_attrs,
)
from gpcube.storage.zarrv3 import read_group_attrs
from gpcube.workflow.config import JobConfig
from gpcube.workflow.mosaic import build_mosaic
from gpcube.workflow.open import open_archive
from gpcube.workflow.recipe import import_makers
from gpcube.workflow.reduce import reduce_observation, remember_job
from gpcube.workflow.significance import significance

__all__ = ["job_client", "mosaic", "open_archive", "reduce", "run", "significance"]


def reduce(config: JobConfig, client=None, *, progress: bool = True, consolidated: bool = True) -> dict:
    """Add the selected observations that the archive lacks; returns counts of what happened.

    The config is checked against the archive first (a changed analysis is refused) and the
    selection is resolved before anything is written. Observations already complete are not
    recomputed; groups left by a killed run are deleted and redone. A failing observation does not
    stop the others; the failures are raised together at the end.
    """
    return _reduce(config, client, progress=progress, consolidated=consolidated)[0]


def _reduce(config: JobConfig, client, *, progress: bool, consolidated: bool) -> tuple[dict, dict[int, dict]]:
    """:func:`reduce`, and the attrs of the archive's complete observations afterwards."""
    geom = config.geom()
    store = config.data.open()
    obs_ids = list(store.obs_ids)
    archive = Path(config.output)
    root = check_or_create(archive, config.analysis_dict(), geom.to_attrs, config.to_dict(redact=True))
    _remember_headers(archive, root)
    done = complete_observations(archive, clean=True)
    todo = [i for i in obs_ids if i not in done]
    config_json = json.dumps(config.to_dict())
    calls = [(str(i), (str(archive), config_json, i)) for i in todo]
    if todo:
        import_makers(config)
        remember_job(config_json, config, geom, store)
    results, failures = run_tasks(reduce_observation, calls, client, desc="reduce", progress=progress)
    if consolidated or failures:
        consolidate(archive)
    raise_failures(failures, "observations")
    written = [r for r in results if r and r["written"]]
    report = {
        "selected": len(obs_ids),
        "already_done": len(obs_ids) - len(todo),
        "written": len(written),
        "empty": sum(1 for r in written if r["empty"]),
    }
    return report, dict(sorted({**done, **observation_attrs(archive, todo)}.items()))


def _remember_headers(archive: Path, root: dict) -> None:
    """The WCS headers stored in the archive serve this process and the workers it forks (see
    :func:`gpcube.geom.sky.remember_header`), whatever version of gpcube wrote them."""
    remember_header(root.get("geom") or {})
    irf = archive / MOSAIC / IRF
    if (irf / "zarr.json").exists():  # the coarse IRF grid's
        remember_header(read_group_attrs(irf).get("geom") or {})


def mosaic(
    archive: str | Path, client=None, *, chunk: int | None = None, progress: bool = True, full: bool = False
) -> dict:
    """Bring ``mosaic/`` up to date with every complete observation of the archive; returns its attrs.

    ``chunk`` (pixels along lon and lat) defaults to the config's ``chunks.mosaic``. Only the chunks
    that observations added since the last mosaic overlap are recomputed, unless ``full`` (see
    :func:`gpcube.workflow.mosaic.build_mosaic`).
    """
    attrs = root_attrs(archive)
    if chunk is None:
        chunk = int(attrs.get("config", {}).get("chunks", {}).get("mosaic", 256))
    return build_mosaic(archive, client, chunk=chunk, progress=progress, full=full)


@contextlib.contextmanager
def job_client(config: JobConfig | None = None, scheduler: str | None = None):
    """What runs the job's tasks: a client of ``scheduler`` or ``cluster.address`` if given, else an
    :class:`~gpcube.execute.EmbeddedCluster` from the ``cluster`` section, which starts when a batch
    of at least ``cluster.min_tasks`` tasks needs it (at once with ``cluster.dashboard``)."""
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
        if options.get("dashboard"):
            embedded.client  # noqa: B018 - start now, so that the dashboard shows the whole job
        yield embedded


def run(config: JobConfig, client=None, *, progress: bool = True) -> dict:
    """Reduce, then rebuild the mosaic if the set of observations changed (or it is missing), then
    with a ``significance`` section make the maps of :func:`significance` if they are not current
    (in this process: an embedded cluster is closed first, its workers being idle by then)."""
    report, observations = _reduce(
        config, client, progress=progress, consolidated=False
    )  # consolidated below
    archive = Path(config.output)
    current = mosaic_attrs(archive)
    wanted = [i for i, a in observations.items() if not a.get("empty")]
    changed = (
        current is None or current.get("obs_ids") != wanted or current.get("chunk") != config.chunks.mosaic
    )
    if changed:
        current = build_mosaic(
            archive, client, chunk=config.chunks.mosaic, progress=progress, observations=observations
        )
    else:
        consolidate(archive)
    report["mosaic"] = {key: current[key] for key in ("n_obs", "livetime", "made_at")}
    settings = config.significance
    if settings is not None and (changed or _significance_stale(archive, settings, current)):
        if isinstance(client, EmbeddedCluster):  # the maps are made here: free the idle workers' memory
            client.close()
        maps = significance(
            archive, settings.radius, energy_edges=settings.energy_edges,
            spectral_index=settings.spectral_index, correlate_off=settings.correlate_off,
        )  # fmt: skip
        report["significance"] = {"statistic": maps.attrs["statistic"], "made_at": maps.attrs["made_at"]}
    return report


def _significance_stale(archive: Path, settings, mosaic: dict) -> bool:
    """Whether the archive's significance maps are missing, older than ``mosaic`` or made otherwise
    than the job's ``significance`` section says."""
    try:
        attrs = read_group_attrs(archive / SIGNIFICANCE)
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
        return axes.get("energy_reco") != list(settings.energy_edges)
    return False
