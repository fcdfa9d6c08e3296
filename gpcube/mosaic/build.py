"""Build ``mosaic/`` (and ``mosaic/irf``) of an archive from its complete observations."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import numpy as np
import xarray as xr

from gpcube.archive.store import MOSAIC, complete_observations, now, obs_path, root_attrs
from gpcube.archive.zarrv3 import (
    ArrayWriter,
    consolidate,
    read_array_attrs,
    read_array_dims,
    read_region,
    write_array,
    write_group,
)
from gpcube.errors import GpcubeError
from gpcube.execute import raise_failures, run_tasks
from gpcube.geom import SkyGeom
from gpcube.makers._lazy import block_slices
from gpcube.mosaic.sum import Piece, irf_chunk, overlap, sky_chunk

__all__ = ["build_mosaic"]

_SKY = ("counts", "exposure", "background", "mask_safe")
_DTYPES = {"counts": np.int32, "mask_safe": bool}


def _pieces(archive: Path, observations: dict, key: str, group: str = "") -> list[Piece]:
    out = []
    for obs_id, attrs in observations.items():
        box = attrs.get(key)
        if attrs.get("empty") or not box:
            continue
        path = obs_path(archive, obs_id) / group if group else obs_path(archive, obs_id)
        out.append(Piece(obs_id, str(path), (*box["lat"], *box["lon"])))
    return out


def _regions(geom: SkyGeom, chunk: int) -> list[tuple[int, int, int, int]]:
    ny, nx = geom.shape
    return [
        (sy.start, sy.stop, sx.start, sx.stop)
        for sy in block_slices(ny, chunk)
        for sx in block_slices(nx, chunk)
    ]


def _write_coords(group: Path, coords: dict) -> None:
    for name, var in coords.items():
        write_array(group / name, np.asarray(var.values), var.dims, var.attrs)


def _create_arrays(group: Path, template: Path, geom: SkyGeom, coords: dict, lead: dict, chunk: int) -> None:
    """Empty mosaic arrays shaped ``(*lead[name], lat, lon)``, with the template cutout's attrs and dims."""
    for name, sizes in lead.items():
        dims = read_array_dims(template / name)
        attrs = {
            k: v for k, v in read_array_attrs(template / name).items() if k not in ("obs_id", "coordinates")
        }
        attrs["geom"] = geom.to_attrs()
        extra = sorted(c for c, v in coords.items() if c not in dims and set(v.dims) <= set(dims))
        if extra:
            attrs["coordinates"] = " ".join(extra)
        dtype = _DTYPES.get(name, np.float32)
        ArrayWriter(group / name, (*sizes, *geom.shape), dtype, (*sizes, chunk, chunk), dims, attrs)


def _calls(func, out: Path, names, lead: dict, geom: SkyGeom, pieces, chunk: int, prefix: str) -> list:
    """One ``func(out, names, lead, region, pieces)`` task per mosaic chunk, with the pieces it overlaps."""
    calls = []
    for region in _regions(geom, chunk):
        hits = [p for p in pieces if overlap(p.box, region) is not None]
        calls.append((f"{prefix}{region[0]}-{region[2]}", (func, str(out), list(names), lead, region, hits)))
    return calls


def _plan_sky(tmp: Path, geom: SkyGeom, pieces, chunk: int) -> list:
    template = Path(pieces[0].group)
    names = [n for n in _SKY if (template / n / "zarr.json").exists()]
    coords = geom.to_coords()
    _write_coords(tmp, coords)
    lead = {name: geom.axis(read_array_dims(template / name)[0]).nbins for name in names}
    _create_arrays(tmp, template, geom, coords, {n: (size,) for n, size in lead.items()}, chunk)
    return _calls(sky_chunk, tmp, names, lead, geom, pieces, chunk, "")


def _plan_irf(tmp: Path, geom: SkyGeom, pieces, chunk: int) -> list:
    template = Path(pieces[0].group)
    names = [n for n in ("psf", "edisp", "exposure_irf") if (template / n / "zarr.json").exists()]
    coords = geom.to_coords()
    if "psf" in names:
        for name in ("rad", "rad_lo", "rad_hi"):
            coords[name] = xr.Variable(
                ("rad",), read_region(template / name), read_array_attrs(template / name)
            )
    _write_coords(tmp, coords)
    lead = {name: tuple(len(coords[d]) for d in read_array_dims(template / name)[:-2]) for name in names}
    _create_arrays(tmp, template, geom, coords, lead, chunk)
    return _calls(irf_chunk, tmp, names, lead, geom, pieces, chunk, "irf-")


def _call(func, *args):
    return func(*args)


def build_mosaic(
    archive: str | Path, client=None, *, chunk: int = 256, progress: bool = True, consolidated: bool = True
) -> dict:
    """Sum the archive's complete observations into ``mosaic/``; returns the mosaic's attrs.

    The mosaic is built under a temporary name and swapped in when complete, so an interrupted
    build leaves the previous mosaic (or none), never half of one.
    """
    archive = Path(archive)
    attrs = root_attrs(archive)
    geom = SkyGeom.from_attrs(attrs["geom"])
    observations = complete_observations(archive)
    pieces = _pieces(archive, observations, "slice")
    if not pieces:
        raise GpcubeError("no observation with data in the archive: nothing to mosaic", path=archive)
    tmp = archive / f"_tmp-mosaic-{uuid.uuid4().hex[:12]}"
    write_group(tmp, {})
    tasks = _plan_sky(tmp, geom, pieces, chunk)
    irf_pieces = _pieces(archive, observations, "irf_slice", "irf")
    if irf_pieces:
        coarse = geom.to_binsz(attrs["analysis"]["irf"]["binsz"])
        write_group(tmp / "irf", {"grid": "irf", "geom": coarse.to_attrs()})
        tasks += _plan_irf(tmp / "irf", coarse, irf_pieces, chunk)
    _, failures = run_tasks(_call, tasks, client, desc="mosaic", progress=progress)
    if failures:
        shutil.rmtree(tmp, ignore_errors=True)
        raise_failures(failures, "mosaic chunks")
    used = [p.obs_id for p in pieces]
    mosaic_attrs = {
        "complete": True,
        "obs_ids": used,
        "n_obs": len(used),
        "livetime": float(sum(observations[i].get("livetime") or 0.0 for i in used)),
        "geom": geom.to_attrs(),
        "chunk": chunk,
        "made_at": now(),
    }
    write_group(tmp, mosaic_attrs)
    final = archive / MOSAIC
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    if consolidated:
        consolidate(archive)
    return mosaic_attrs
