"""Reduce one observation into the archive: the task that workers run, once per observation.

The task writes the observation's group into a fork of a session of the archive and returns the fork;
the caller merges the forks and commits them in batches (:func:`gpcube.workflow.pipeline.reduce`). A
task that dask runs twice writes the group twice into copies of the same fork, and only the one that
comes back is merged.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import socket
import time

from gpcube.geom import SkyGeom
from gpcube.geom.sky import remember_header
from gpcube.io import DataStore, Observation
from gpcube.io.dataset_meta import gti_record, observation_telescope
from gpcube.makers._lazy import computed_at_once
from gpcube.storage.groups import Group, write_groups
from gpcube.storage.layout import now, obs_path
from gpcube.storage.nodes import write_group
from gpcube.storage.repository import fault_point
from gpcube.workflow.config import JobConfig, parse_config
from gpcube.workflow.recipe import STORED_DTYPES, at_once, observation_products

__all__ = ["reduce_observation", "remember_job", "write_observation"]


#: ``{(config JSON, grids JSON): (config, geometry, selected data store)}`` of the last few jobs of this
#: process: a cache of what a task's arguments give, made again from them in any other process.
_Job = tuple[JobConfig, SkyGeom, DataStore]
_JOBS: collections.OrderedDict[tuple[str, str], _Job] = collections.OrderedDict()


def _job(text: str, grids: str) -> _Job:
    # every task, before its products are made: their header comes from the grids, and another job of
    # this process (a long-lived worker's) may have remembered another header for the same grid since
    for attrs in json.loads(grids):
        remember_header(attrs)
    job = _JOBS.get((text, grids))
    if job is None:
        config = parse_config(json.loads(text))
        job = (config, config.geom(), config.data.open())
        remember_job(text, grids, *job)
    return job


def remember_job(text: str, grids: str, config: JobConfig, geom: SkyGeom, store: DataStore) -> None:
    """Serve the tasks of the job ``text`` (its config as JSON) on the archive's stored ``grids`` in this
    process with what the caller has made already: the tasks that run on its threads then read neither
    the config nor the data store's index again (~0.1 s for 1000 observations). Worker processes, forked
    before the job opened its archive, spawned or remote, make their own from the task's arguments."""
    _JOBS[(text, grids)] = (config, geom, store)
    _JOBS.move_to_end((text, grids))
    while len(_JOBS) > 4:
        _JOBS.popitem(last=False)


def _slice_attrs(array) -> dict:
    """Where the cutout sits in its parent grid, keyed by the grid's pixel dims (``y``/``x``, or
    ``irf_y``/``irf_x``): ``obs.isel({d: slice(*s) for d, s in attrs.items()})`` of the mosaic."""
    geom = SkyGeom.from_dataarray(array)
    (x0, y0), (nx, ny) = geom.origin, geom.npix
    ydim, xdim = geom.dims
    return {ydim: [y0, y0 + ny], xdim: [x0, x0 + nx]}


def _provenance(observation: Observation, seconds: float) -> dict:
    info = {k: v for k, v in observation.obs_info.items() if isinstance(v, str | int | float | bool)}
    return {
        "files": observation.file_checksums(),  # of the bytes read (a URL's are not fetched twice)
        "hdus": {
            k: {"file": str(v.path), "hdu": v.hdu_name, "class": v.hdu_class}
            for k, v in observation.hdus.items()
        },
        "obs_info": info,
        "reduced_at": now(),
        "worker": {"host": socket.gethostname(), "pid": os.getpid()},
        "seconds": round(seconds, 4),
    }


def write_observation(store, observation: Observation, geom: SkyGeom, config: JobConfig) -> dict:
    """Make one observation's products and write them as ``obs/<obs_id>`` into ``store`` (a session's,
    committed by the caller); returns its summary.

    An observation whose cutout misses the geometry gets an empty group (``attrs["empty"] = True``), so
    that later runs know it was done.
    """
    start = time.perf_counter()
    with computed_at_once() if at_once(config) else contextlib.nullcontext():
        sky, irf, ring = observation_products(observation, geom, config)
    empty = sky["mask_safe"].size == 0
    attrs = {
        "obs_id": observation.obs_id,
        "complete": True,
        "empty": bool(empty),
        "products": sorted([*sky, *irf, *(f"ring/{name}" for name in ring)]),
        "slice": None if empty else _slice_attrs(sky["mask_safe"]),
        "irf_slice": _slice_attrs(irf["exposure_irf"]) if irf and not empty else None,
        "livetime": observation.livetime,
        "ontime": observation.ontime,
        "pointing_radec": [observation.pointing.ra, observation.pointing.dec],
        "gti": gti_record(observation),
        "telescope": observation_telescope(observation),
    }
    key = obs_path(observation.obs_id)
    chunk = config.chunks.obs
    if not empty:  # the group's own attributes are written last, with the provenance
        # one computation for all groups; each product one object (a shard), whatever its chunks
        # compact: the products only, their coordinates in the groups' attributes (one node each)
        groups = [Group(key, sky, None, compact=True, dtypes=STORED_DTYPES, sharded=True)]
        if irf:
            irf_attrs = {"grid": "irf", "slice": attrs["irf_slice"]}
            groups.append(
                Group(f"{key}/irf", irf, irf_attrs, compact=True, dtypes=STORED_DTYPES, sharded=True)
            )
        if ring:
            ring_attrs = {"ring": config.to_dict()["background"], "slice": attrs["slice"]}
            groups.append(Group(f"{key}/ring", ring, ring_attrs, compact=True, sharded=True))
        attrs.update(write_groups(store, groups, chunk)[key])
    attrs["provenance"] = _provenance(observation, time.perf_counter() - start)
    write_group(store, key, attrs)
    return {"obs_id": observation.obs_id, "empty": empty, "seconds": attrs["provenance"]["seconds"]}


def reduce_observation(fork, config_json: str, grids: str, obs_id: int):
    """The worker task: reduce observation ``obs_id`` into ``fork`` (a fork of a session of the
    archive); returns ``(summary, fork)`` for the caller to merge and commit.

    ``config_json`` is the job's config as JSON (:meth:`JobConfig.to_dict`), parsed once per process;
    ``grids`` the geometry attrs stored in the archive, as a JSON list, whose WCS headers the products
    carry (:func:`gpcube.geom.sky.remember_header`). Everything the task needs is in its arguments: a
    worker forked from the caller, spawned or on another machine gives the same bytes.
    """
    config, geom, data = _job(config_json, grids)
    observation = data.observation(obs_id)
    try:
        summary = write_observation(fork.store, observation, geom, config)
    finally:
        observation.close()
    fault_point("reduce:task")  # written, not returned: a worker lost here has its task run again
    return summary, fork
