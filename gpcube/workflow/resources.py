"""What a job's tasks need of the workers, checked before anything starts.

Two mistakes cost hours on a cluster and are cheap to see first:

* a geometry or chunking whose tasks need more memory than a worker has (a ``chunks.mosaic`` of tens
  of thousands of pixels, a pixel size so fine that one observation's cutout is gigabytes): the job
  would start, then its workers die one after the other;
* paths the workers cannot see (a local data store or archive given to workers on other machines):
  every task would fail with a file-not-found; and a ``memory://`` archive, which only this process
  sees, given to worker processes.

:func:`check_job` says so with the numbers and the keys to change, before the job writes anything.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

from gpcube.errors import GpcubeError
from gpcube.makers.registry import products_on
from gpcube.workflow.config import JobConfig
from gpcube.workflow.mosaic.build import irf_chunk_size, task_size

__all__ = ["TaskMemory", "check_job", "task_memory", "worker_memory"]

#: A task may use at most this share of a worker's memory limit (dask pauses a worker at 80 %).
SHARE = 0.6
#: Copies of a block that a reduce task holds at once (the product, its inputs, the cast for writing).
REDUCE_COPIES = 4
#: Copies of a region that a mosaic task holds (the accumulators and one cutout's piece of it).
MOSAIC_COPIES = 2


class TaskMemory(NamedTuple):
    """Estimated peak bytes of one task of each kind, and what sets them."""

    reduce: int
    mosaic: int
    irf: int
    cutout_px: int
    block_px: int
    region_px: int


def task_memory(config: JobConfig) -> TaskMemory:
    """Estimated peak memory of a reduce task and of a mosaic task (sky and IRF) of ``config``.

    A reduce task computes an observation's products block by block (``chunks.obs`` pixels square,
    or its whole cutout when that is smaller) with every energy bin: float64 values of the
    true-energy and reco-energy products. A mosaic task holds a region of whole chunks (about 512 px
    square at the default chunk) of every product, in their stored types, and a piece of one cutout.
    """
    geom = config.geom()
    n_reco = geom.axis("energy_reco").nbins
    n_true = geom.axis("energy_true").nbins if any(a.name == "energy_true" for a in geom.axes) else 0
    ny, nx = geom.shape
    side = 2 * config.max_offset / geom.binsz + 1
    cutout = min(ny, math.ceil(side)) * min(nx, math.ceil(side))
    block = min(cutout, config.chunks.obs**2)
    reduce = block * (3 * n_true + 4 * n_reco) * 8 * REDUCE_COPIES
    region = min(ny, task_size(config.chunks.mosaic)) * min(nx, task_size(config.chunks.mosaic))
    mosaic = region * (13 * n_reco + 4 * n_true) * MOSAIC_COPIES
    irf = 0
    if set(products_on("irf")) & set(config.products):
        coarse = geom.to_binsz(config.irf.binsz)
        px = min(coarse.shape[0], irf_chunk_size(config.chunks.mosaic)) * min(
            coarse.shape[1], irf_chunk_size(config.chunks.mosaic)
        )
        irf = px * n_true * (config.irf.rad.nbins + n_reco + 2) * 4 * MOSAIC_COPIES
    return TaskMemory(reduce, mosaic, irf, cutout, block, region)


def worker_memory(client) -> int | None:
    """The smallest memory limit (bytes) of the workers that will run the tasks; None if unknown or
    unlimited. ``client``: a :class:`distributed.Client`, an embedded cluster (started or not), or None
    (this process)."""
    from gpcube.execute import EmbeddedCluster

    if isinstance(client, EmbeddedCluster) and not client.started:
        return _embedded_limit(client.options)
    client = client.client if isinstance(client, EmbeddedCluster) else client
    if client is None:
        return _total_memory()
    limits = [w.get("memory_limit") or 0 for w in client.scheduler_info(n_workers=-1)["workers"].values()]
    limits = [limit for limit in limits if limit > 0]
    return min(limits) if limits else None


def _total_memory() -> int:
    from distributed.system import MEMORY_LIMIT

    return int(MEMORY_LIMIT)


def _embedded_limit(options: dict) -> int | None:
    from dask.utils import parse_bytes

    limit, workers = options.get("memory_limit"), max(1, int(options.get("n_workers") or 1))
    if not options.get("processes", True):
        return _total_memory()
    if limit in (None, 0):
        return None
    if limit == "auto":
        return _total_memory() // workers
    return int(parse_bytes(limit)) if isinstance(limit, str) else int(limit)


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_memory(config: JobConfig, client) -> TaskMemory:
    """Refuse a job whose tasks would need more than :data:`SHARE` of a worker's memory (see
    :func:`task_memory`), naming the keys that set it."""
    need = task_memory(config)
    limit = worker_memory(client)
    if limit is None:
        return need
    allowed = SHARE * limit
    if need.reduce > allowed:
        raise GpcubeError(
            f"a reduce task of this job needs about {_gib(need.reduce)} (blocks of {need.block_px} px with "
            f"every energy bin; an observation's cutout is {need.cutout_px} px) and the workers have "
            f"{_gib(limit)} each: use a smaller chunks.obs, a larger geom.binsz, a smaller max_offset, fewer "
            "energy bins, or workers with more memory (cluster.memory_limit)"
        )
    if max(need.mosaic, need.irf) > allowed:
        which = "sky" if need.mosaic >= need.irf else "IRF"
        raise GpcubeError(
            f"a mosaic task ({which} maps) of this job needs about {_gib(max(need.mosaic, need.irf))} "
            f"(regions of {need.region_px} px) and the workers have {_gib(limit)} each: use a smaller "
            "chunks.mosaic, or workers with more memory (cluster.memory_limit)"
        )
    return need


def check_paths(config: JobConfig, client) -> None:
    """Refuse local paths (the data store, the archive) that the workers of a scheduler given by address
    cannot see: they run elsewhere, and would fail every task."""
    from gpcube.execute import EmbeddedCluster

    if client is None or isinstance(client, EmbeddedCluster):
        return  # this machine's processes see this machine's files
    paths = [config.data.store]
    if config.archive().local_path is not None:
        paths.append(os.path.dirname(config.archive().location) or ".")
    paths = [p for p in paths if "://" not in str(p)]
    if not paths:
        return
    seen = client.run(_missing, paths)
    for worker, missing in sorted(seen.items()):
        if missing:
            raise GpcubeError(
                f"the dask worker {worker} cannot see {', '.join(missing)}: workers on other machines need "
                "the data store and the archive on a filesystem they share, or URLs (data.store: s3://..., "
                "output: s3://...)"
            )


def _missing(paths: list[str]) -> list[str]:
    return [p for p in paths if not os.path.exists(p)]


def check_in_process(config: JobConfig, client) -> None:
    """Refuse a ``memory://`` archive for tasks that would run in other processes: it lives in this
    process's memory, and a worker process would fail every task (it finds none of the archive's
    snapshots)."""
    from gpcube.execute import EmbeddedCluster

    if config.archive().scheme != "memory" or client is None:
        return
    if isinstance(client, EmbeddedCluster):
        elsewhere = bool(client.options["processes"])
    else:
        elsewhere = any(pid != os.getpid() for pid in client.run(os.getpid).values())
    if elsewhere:
        raise GpcubeError(
            f"the archive {config.output} lives in this process's memory, which worker processes do not "
            "see: run the tasks here (client None, or cluster.processes: false) or write the archive to "
            "a path or an object store"
        )


def check_job(config: JobConfig, client) -> TaskMemory:
    """:func:`check_paths`, :func:`check_in_process` and :func:`check_memory`; the estimated task
    memory."""
    check_paths(config, client)
    check_in_process(config, client)
    return check_memory(config, client)
