"""The whole job as plain functions: reduce observations into the archive, sum the mosaic, open it.

The CLI (``gpcube run``, ``reduce``, ``mosaic``) calls these; in a notebook call them directly, with
your own :class:`distributed.Client` or none (then tasks run in this process).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import dask.array  # noqa: F401 - every run needs it (xarray imports it at its first Variable): load it with the rest
import xarray as xr

from gpcube.archive.consolidated import consolidate
from gpcube.archive.products import import_makers
from gpcube.archive.reduce import reduce_observation, remember_job
from gpcube.archive.ring import stacked_ring
from gpcube.archive.significance import SIGNIFICANCE, significance
from gpcube.archive.store import (
    MOSAIC,
    check_or_create,
    complete_observations,
    is_complete,
    mosaic_attrs,
    obs_path,
    observation_attrs,
    root_attrs,
)
from gpcube.archive.zarrv3 import read_group_attrs
from gpcube.config import JobConfig
from gpcube.errors import GpcubeError
from gpcube.execute import EmbeddedCluster, cluster_client, raise_failures, run_tasks
from gpcube.geom.sky import remember_header
from gpcube.mosaic import build_mosaic

__all__ = ["export", "job_client", "mosaic", "open_archive", "reduce", "run", "significance"]
#: What ``export`` writes, by its ``dataset`` argument.
EXPORT_DATASETS = ("auto", "map", "onoff")

#: Groups of the archive next to the mosaic's sky products, by ``open_archive`` keyword.
_PARTS = {"irf": "irf", "ring": "ring"}


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
    root = check_or_create(archive, config.analysis_dict(), geom.to_attrs, config.to_dict())
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
    irf = archive / MOSAIC / _PARTS["irf"]
    if (irf / "zarr.json").exists():  # the coarse IRF grid's
        remember_header(read_group_attrs(irf).get("geom") or {})


def mosaic(
    archive: str | Path, client=None, *, chunk: int | None = None, progress: bool = True, full: bool = False
) -> dict:
    """Bring ``mosaic/`` up to date with every complete observation of the archive; returns its attrs.

    ``chunk`` (pixels along lon and lat) defaults to the config's ``chunks.mosaic``. Only the chunks
    that observations added since the last mosaic overlap are recomputed, unless ``full`` (see
    :func:`gpcube.mosaic.build_mosaic`).
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


def open_archive(
    path: str | Path,
    *,
    obs_id: int | None = None,
    irf: bool = False,
    ring: bool = False,
    significance: bool = False,
) -> xr.Dataset:
    """The archive's mosaic as a lazy (dask-backed) :class:`xarray.Dataset`.

    Parameters
    ----------
    path : str or Path
        The archive (``output`` of the job).
    obs_id : int, optional
        Open this observation's cutout products instead of the mosaic.
    irf : bool
        Open the IRF maps (``psf``, ``edisp`` and their weights ``exposure_irf``, ``exposure_psf``,
        on the coarse grid) instead.
    ring : bool
        Open the ring-background products (``background.method`` ``ring`` or ``adaptive_ring``)
        instead: ``counts``, ``counts_off``, ``acceptance``, ``acceptance_off``, ``alpha`` and
        ``mask_safe`` on the ring's energy bands.
    significance : bool
        Open the maps that ``gpcube significance`` wrote (excess, ``sqrt_ts``, flux, ...).
    """
    path = Path(path)
    attrs = root_attrs(path)
    chosen = [name for name, flag in (("irf", irf), ("ring", ring), ("significance", significance)) if flag]
    if len(chosen) > 1:
        raise GpcubeError(f"open one part at a time, not {' and '.join(chosen)}", path=path)
    if significance:
        if obs_id is not None:
            raise GpcubeError("significance maps are made of the mosaic, not of an observation", path=path)
        group = SIGNIFICANCE
    else:
        group = MOSAIC if obs_id is None else obs_path(path, obs_id).relative_to(path).as_posix()
        if obs_id is None and mosaic_attrs(path) is None:
            raise GpcubeError("the archive has no complete mosaic yet: run `gpcube mosaic`", path=path)
        if obs_id is not None and not is_complete(obs_path(path, obs_id)):
            raise GpcubeError(f"observation {obs_id} is not in the archive", path=path)
        if chosen:
            group += "/" + _PARTS[chosen[0]]
    if not (path / group / "zarr.json").exists():
        hint = ": run `gpcube significance`" if significance else ""
        raise GpcubeError(f"the archive has no group {group!r}{hint}", path=path)
    ds = xr.open_zarr(path, group=group, consolidated=False)
    # small 1-D coordinates (bin edges) in memory: no dask in their repr, no re-reading on each use
    ds = ds.assign_coords({name: c.load() for name, c in ds.coords.items() if c.ndim == 1})
    ds = _edges_as_coords(ds)
    if ring and obs_id is None:
        ds = stacked_ring(ds)
    ds.attrs.setdefault("archive", {"path": str(path), "analysis": attrs.get("analysis")})
    return ds


def export(
    path: str | Path,
    output: str | Path,
    *,
    obs_id: int | None = None,
    dataset: str = "auto",
    name: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the archive's mosaic, or one observation's products, as a FITS dataset that gammapy reads.

    Parameters
    ----------
    path : str or Path
        The archive.
    output : str or Path
        The FITS file to write.
    obs_id : int, optional
        Export this observation's cutout products (its own safe mask, exposure, background and IRF
        maps from ``obs/<obs_id>``) instead of the mosaic: one dataset per observation, for a joint
        fit or a light curve of the observations.
    dataset : {"auto", "map", "onoff"}
        ``map``: a ``MapDataset`` (counts, exposure, background, IRF maps, masks).
        ``onoff``: a ``MapDatasetOnOff`` of the ring background (ON and OFF counts, acceptances and the
        safe mask on the ring's energy bands, with the exposure and IRF maps, the edisp kernel summed
        into the bands). ``auto`` (default): ``onoff`` if the archive has ring products, else ``map``.
    name : str, optional
        The dataset's name; default ``"gpcube"``, or ``"gpcube-<obs_id>"`` for an observation.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    pathlib.Path
        The file written, with the ``GTI``, ``META_TABLE`` and live time of the observations it holds
        (:doc:`/export`).

    Raises
    ------
    GpcubeError
        If the archive has no mosaic (or not that observation, or it lies outside the geometry), if
        ``onoff`` is asked of an archive without ring products, or as
        :func:`gpcube.io.export.write_map_dataset`.
    """
    from gpcube.archive.export import observations_meta
    from gpcube.io.export import write_map_dataset, write_map_dataset_onoff

    if dataset not in EXPORT_DATASETS:
        raise GpcubeError(f"dataset must be one of {EXPORT_DATASETS}, got {dataset!r}")
    path = Path(path)
    sky = open_archive(path, obs_id=obs_id)
    if obs_id is not None and sky.attrs.get("empty"):
        raise GpcubeError(f"observation {obs_id} lies outside the geometry: it has no products", path=path)
    group = path / (MOSAIC if obs_id is None else obs_path(path, obs_id).relative_to(path))
    has_ring = (group / _PARTS["ring"] / "zarr.json").exists()
    if dataset == "onoff" and not has_ring:
        raise GpcubeError("no ring background products (background.method ring or adaptive_ring)", path=path)
    irf = (
        open_archive(path, obs_id=obs_id, irf=True)
        if (group / _PARTS["irf"] / "zarr.json").exists()
        else None
    )
    obs_ids = [obs_id] if obs_id is not None else sky.attrs.get("obs_ids", [])
    options = {
        "name": name or ("gpcube" if obs_id is None else f"gpcube-{obs_id}"),
        "observations": observations_meta(path, obs_ids),
        "overwrite": overwrite,
    }
    if dataset == "map" or not has_ring:
        return write_map_dataset(output, sky, irf, **options)
    ring = open_archive(path, obs_id=obs_id, ring=True)
    onoff = ring[["counts", "counts_off", "acceptance", "acceptance_off", "mask_safe"]]
    if "exposure" in sky.data_vars:
        onoff = onoff.assign(exposure=sky["exposure"])
    return write_map_dataset_onoff(output, onoff, irf, **options)


def _edges_as_coords(ds: xr.Dataset) -> xr.Dataset:
    """``<dim>_lo``/``<dim>_hi`` coords from ``attrs["edges"]`` of an energy coordinate (observation
    groups store their bin edges there, to save two files per axis)."""
    extra = {}
    for dim, coord in ds.coords.items():
        edges = coord.attrs.get("edges")
        if edges is not None and coord.dims == (dim,) and f"{dim}_lo" not in ds.coords:
            extra[f"{dim}_lo"] = ((dim,), list(edges[:-1]), {"units": coord.attrs.get("units", "TeV")})
            extra[f"{dim}_hi"] = ((dim,), list(edges[1:]), {"units": coord.attrs.get("units", "TeV")})
    return ds.assign_coords(extra) if extra else ds
