"""Small jobs on the H.E.S.S. Crab runs, quick enough to run many times."""

from __future__ import annotations

import copy
import shutil

import pytest

from gpcube.workflow.config import parse_config
from tests.conftest import CRAB_RUNS, HESS_DIR

#: A fixed-ring background around the Crab (the test jobs' geometry), three energy bands.
RING = {"method": "ring", "exclusion": {"circles": [[83.633, 22.014, 0.3]]},
        "ring": {"r_in": 0.4, "width": 0.2, "energy_edges": [0.5, 5.0, 50.0]}}  # fmt: skip


def job_dict(output, obs_ids=CRAB_RUNS[:2], **overrides) -> dict:
    """A job on a 4 x 3 deg icrs CAR grid around the Crab, 0.04 deg pixels, few energy bins."""
    job = {
        "data": {"store": str(HESS_DIR), "obs_ids": list(obs_ids)},
        "geom": {
            "frame": "icrs",
            "projection": "CAR",
            "center": [83.633, 22.014],
            "width": [4.0, 3.0],
            "binsz": 0.04,
            "energy_reco": {"min": 0.5, "max": 50, "nbins": 4},
            "energy_true": {"min": 0.3, "max": 100, "nbins": 5},
        },
        "products": ["counts", "exposure", "background"],
        "safe_mask": {"methods": ["offset-max"], "offset_max": 2.0},
        "output": str(output),
        "chunks": {"obs": 64, "mosaic": 64},
        "cluster": {"n_workers": 1, "threads_per_worker": 2, "processes": False},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(job.get(key), dict):
            job[key] = {**job[key], **value}
        else:
            job[key] = value
    return copy.deepcopy(job)


def job(output, obs_ids=CRAB_RUNS[:2], **overrides):
    """The parsed :func:`job_dict`."""
    return parse_config(job_dict(output, obs_ids, **overrides))


def built_archive(tmp_path_factory, name: str, obs_ids, **overrides):
    """The path of a new archive of :func:`job` (``obs_ids``, ``overrides``), reduced and mosaicked."""
    from gpcube.workflow import pipeline

    out = tmp_path_factory.mktemp(name) / f"{name}.zarr"
    pipeline.run(job(out, obs_ids, **overrides), progress=False)
    return out


@pytest.fixture
def small_job():
    return job


def open_group(archive, group: str):
    """A group of the latest snapshot of the archive at ``archive``, opened by plain xarray."""
    import xarray as xr

    from tests.conftest import archive_store

    return xr.open_zarr(archive_store(archive), group=group, consolidated=False)


def chunk_files(archive, group: str) -> dict:
    """``{key below group: encoded bytes}`` of the chunks of ``group`` in the archive's latest snapshot."""
    from gpcube.storage import aio, nodes
    from tests.conftest import archive_store

    store = archive_store(archive)

    async def keys():
        return [key async for key in store.list_prefix(f"{group}/")]

    chunks = sorted(key for key in aio.run(keys()) if "/c/" in key and not key.endswith("zarr.json"))
    values = aio.gather(nodes._get(store, key) for key in chunks)
    return {key[len(group) + 1 :]: value for key, value in zip(chunks, values, strict=True)}


def assert_mosaic_as_full_rebuild(archive, scratch, chunk: int, group: str = "mosaic") -> None:
    """The chunks of ``archive/group`` equal those of a full rebuild of a copy in ``scratch``."""
    from gpcube.workflow.mosaic.build import build_mosaic

    full = scratch / "full.zarr"
    shutil.copytree(archive, full)
    build_mosaic(full, chunk=chunk, progress=False, full=True)
    assert chunk_files(archive, group) == chunk_files(full, group)


def spy_sky_chunks(monkeypatch) -> list:
    """Record ``(region, sorted obs_ids, resume)`` of every mosaic sky-chunk task from now on."""
    import gpcube.workflow.mosaic.build as build_mod

    calls, original = [], build_mod.sky_chunk

    def spy(store, out, names, sizes, region, pieces, resume=False):
        calls.append((region, sorted(p.obs_id for p in pieces), resume))
        return original(store, out, names, sizes, region, pieces, resume)

    monkeypatch.setattr(build_mod, "sky_chunk", spy)
    return calls
