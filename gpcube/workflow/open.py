"""Open an archive's mosaic, IRF maps, ring products, significance maps or one observation as xarray,
or the whole archive as one :class:`xarray.DataTree`.

Every Dataset carries the lazy world coordinates of its grid (``lon``/``lat``, ``irf_lon``/``irf_lat``
on the coarse IRF grid; :mod:`gpcube.geom.world`): they are derived from ``attrs["geom"]``, never
stored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import xarray as xr

from gpcube.errors import GpcubeError
from gpcube.geom.world import attach_world_coords
from gpcube.storage.groups import group_coords
from gpcube.storage.layout import (
    IRF,
    MOSAIC,
    RING,
    SIGNIFICANCE,
    complete_observations,
    mosaic_attrs,
    obs_path,
    observation_attrs,
    open_readonly,
    root_attrs,
)
from gpcube.storage.nodes import exists, list_children
from gpcube.storage.repository import Archive, as_archive
from gpcube.workflow.ring import stacked_ring

__all__ = ["open_archive", "open_datatree"]

#: Groups of the archive next to the mosaic's sky products, by ``open_archive`` keyword.
_PARTS = {"irf": IRF, "ring": RING}


def open_archive(
    path: Archive | str | os.PathLike,
    *,
    obs_id: int | None = None,
    irf: bool = False,
    ring: bool = False,
    significance: bool = False,
    snapshot: str | None = None,
    storage_options: Mapping | None = None,
) -> xr.Dataset:
    """The archive's mosaic as a lazy (dask-backed) :class:`xarray.Dataset`, from one snapshot.

    What is committed to the archive after it is opened does not change the Dataset: it reads the
    archive's latest snapshot at the time of the call (or ``snapshot``), whole.

    Parameters
    ----------
    path : str, Path or Archive
        The archive (``output`` of the job): a local path or a URL (``s3://...``).
    obs_id : int, optional
        Open this observation's cutout products instead of the mosaic.
    irf : bool
        Open the IRF maps (``psf``, ``edisp`` and their weights ``exposure_irf``, ``exposure_psf``,
        on the coarse grid) instead.
    ring : bool
        Open the ring-background products (``background.method`` ``ring`` or ``adaptive_ring``)
        instead: ``counts``, ``counts_off``, ``acceptance``, ``acceptance_off``, ``alpha`` and
        ``mask_safe`` on the ring's energy bands, the dim ``energy_band`` (coords ``energy_band_lo``,
        ``energy_band_hi``).
    significance : bool
        Open the maps that ``gpcube significance`` wrote (excess, ``sqrt_ts``, flux, ...), on the dim
        ``energy_band``.
    snapshot : str, optional
        The id of an earlier snapshot to open (``gpcube info`` lists the latest commits).
    storage_options : mapping, optional
        Options of the archive's storage (see :class:`gpcube.storage.repository.Archive`).

    Returns
    -------
    xarray.Dataset
        Dask-backed products with their coordinates; the attrs hold the geometry, the observations
        summed (``obs_ids``, ``n_obs``, ``livetime``) and ``archive`` (path and snapshot).

        Pixel dims ``y``/``x`` (``irf_y``/``irf_x`` for ``irf=True``) with the parent grid's pixel
        indices as coordinates, and the lazy world coordinates ``lon``/``lat`` (``irf_lon``/``irf_lat``)
        in deg: ``ds.sel(lon=83.633, lat=22.014, method="nearest")`` selects the pixel of the Crab.

    Raises
    ------
    GpcubeError
        If the archive has no mosaic yet, not that observation or not that group.

    See Also
    --------
    gpcube.workflow.pipeline.run : Makes the archive.
    gpcube.workflow.export.export : Writes it as a FITS dataset that Gammapy reads.
    open_datatree : The whole archive as one DataTree.

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
    >>> from gpcube.workflow.pipeline import run
    >>> report = run(config, progress=False)
    >>> import gpcube
    >>> mosaic = gpcube.open_archive(config.output)
    >>> sorted(mosaic.data_vars)
    ['background', 'counts', 'exposure', 'mask_safe']
    >>> mosaic["counts"].shape, mosaic.attrs["obs_ids"]
    ((4, 60, 60), [23523, 23526, 23559, 23592])
    >>> int(mosaic["counts"].sum())  # lazy until here
    12286

    One observation's cutout products:

    >>> gpcube.open_archive(config.output, obs_id=23559)["counts"].shape
    (4, 60, 51)
    """
    archive = as_archive(path, storage_options)
    path = archive.location
    session = open_readonly(archive, snapshot)
    store = session.store
    attrs = root_attrs(store)
    chosen = [name for name, flag in (("irf", irf), ("ring", ring), ("significance", significance)) if flag]
    if len(chosen) > 1:
        raise GpcubeError(f"open one part at a time, not {' and '.join(chosen)}", path=path)
    if significance:
        if obs_id is not None:
            raise GpcubeError("significance maps are made of the mosaic, not of an observation", path=path)
        group = SIGNIFICANCE
    else:
        group = MOSAIC if obs_id is None else obs_path(obs_id)
        if obs_id is None and mosaic_attrs(store) is None:
            raise GpcubeError("the archive has no complete mosaic yet: run `gpcube mosaic`", path=path)
        if obs_id is not None and not observation_attrs(store, [obs_id]):
            raise GpcubeError(f"observation {obs_id} is not in the archive", path=path)
        if chosen:
            group += "/" + _PARTS[chosen[0]]
    if not exists(store, group):
        hint = ": run `gpcube significance`" if significance else ""
        raise GpcubeError(f"the archive has no group {group!r}{hint}", path=path)
    ds = _open_group(store, group, compact=obs_id is not None, ring_sums=ring and obs_id is None)
    ds.attrs.setdefault(
        "archive", {"path": path, "snapshot": session.snapshot_id, "analysis": attrs.get("analysis")}
    )
    return ds


def _open_group(store, group: str, *, compact: bool, ring_sums: bool = False) -> xr.Dataset:
    """One group of the archive as :func:`open_archive` gives it (without the ``archive`` attrs)."""
    ds = xr.open_zarr(store, group=group, consolidated=False)
    # small 1-D coordinates (bin edges) in memory: no dask in their repr, no re-reading on each use
    ds = ds.assign_coords({name: c.load() for name, c in ds.coords.items() if c.ndim == 1})
    if compact:  # an observation's groups are compact: coordinates and grid in their attrs
        ds = ds.assign_coords(group_coords(ds.attrs, ds.dims))
        ds.attrs.pop("coords", None)
        for var in ds.data_vars.values():  # each product's grid, as the makers made it
            var.attrs.setdefault("geom", ds.attrs.get("geom"))
    if ring_sums:
        ds = stacked_ring(ds)
    return attach_world_coords(ds)


def open_datatree(
    path: Archive | str | os.PathLike,
    *,
    observations: bool = True,
    snapshot: str | None = None,
    storage_options: Mapping | None = None,
) -> xr.DataTree:
    """The whole archive as one lazy :class:`xarray.DataTree`, from one snapshot.

    Each node is what :func:`open_archive` gives for its group, world coordinates included, at the
    group's own place: ``/mosaic`` (``open_archive(path)``), ``/mosaic/irf`` (``irf=True``),
    ``/mosaic/ring`` (``ring=True``: with the stacked ``alpha`` and ``acceptance_off``),
    ``/significance`` (``significance=True``), ``/obs/<obs_id>``, ``/obs/<obs_id>/irf`` and
    ``/obs/<obs_id>/ring`` (``obs_id=...``). The root holds the archive's attrs (geometry, config,
    versions). A child inherits its parent's coordinates (the energy bins); each grid has its own dims,
    so that it aligns with the groups above it: the two pixel grids ``y``/``x`` and ``irf_y``/``irf_x``
    (with world coordinates ``lon``/``lat`` and ``irf_lon``/``irf_lat``), the reco bins ``energy_reco``
    and the energy bands of the ring products and significance maps ``energy_band``.

    Parameters
    ----------
    path : str, Path or Archive
        The archive: a local path or a URL.
    observations : bool
        Include the observations' groups (one node per observation: opening a survey's thousands of
        groups takes a while); False for the mosaic's groups only.
    snapshot : str, optional
        The id of an earlier snapshot to open.
    storage_options : mapping, optional
        Options of the archive's storage (see :class:`gpcube.storage.repository.Archive`).

    Returns
    -------
    xarray.DataTree

    Notes
    -----
    The archive is an icechunk repository, not a zarr directory: xarray reads it through a session's
    store. Without gpcube's coordinates (pixel dims and their pixel-index coordinates only, the
    observations' groups without theirs) and without the stacked ring ``alpha`` and ``acceptance_off``
    (``mosaic/ring`` stores their sums), the archive opens with plain xarray as
    ``xr.open_datatree(Archive(path).readonly().store, engine="zarr", consolidated=False)``
    (``from gpcube.storage.repository import Archive``).
    """
    archive = as_archive(path, storage_options)
    session = open_readonly(archive, snapshot)
    store = session.store
    attrs = root_attrs(store)
    groups: dict[str, xr.Dataset] = {"/": xr.Dataset(attrs=attrs)}
    if mosaic_attrs(store) is not None:
        groups["/mosaic"] = _open_group(store, MOSAIC, compact=False)
        for name in (IRF, RING):
            if exists(store, f"{MOSAIC}/{name}"):
                groups[f"/{MOSAIC}/{name}"] = _open_group(
                    store, f"{MOSAIC}/{name}", compact=False, ring_sums=name == RING
                )
    if exists(store, SIGNIFICANCE):
        groups["/significance"] = _open_group(store, SIGNIFICANCE, compact=False)
    if observations:
        for obs_id, obs_attrs in complete_observations(store).items():
            if obs_attrs.get("empty"):
                continue  # an observation outside the geometry: attrs only
            group = obs_path(obs_id)
            children = set(list_children(store, group))
            groups[f"/{group}"] = _open_group(store, group, compact=True)
            for name in (IRF, RING):
                if name in children:
                    groups[f"/{group}/{name}"] = _open_group(store, f"{group}/{name}", compact=True)
    groups["/"].attrs.setdefault("archive", {"path": archive.location, "snapshot": session.snapshot_id})
    return xr.DataTree.from_dict(groups)
