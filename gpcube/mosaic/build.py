"""Build ``mosaic/`` (and ``mosaic/irf``) of an archive from its complete observations."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import numpy as np
import xarray as xr

from gpcube.archive.groups import jsonable
from gpcube.archive.store import MOSAIC, complete_observations, now, obs_path, root_attrs
from gpcube.archive.zarrv3 import (
    ArrayWriter,
    consolidate,
    read_array_attrs,
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
        write_array(group / name, np.asarray(var.values), var.dims, jsonable(var.attrs))


def _variable_attrs(template: Path, geom: SkyGeom, dims: tuple[str, ...], coords: dict) -> dict:
    attrs = {k: v for k, v in read_array_attrs(template).items() if k not in ("obs_id", "coordinates")}
    attrs["geom"] = jsonable(geom.to_attrs())
    extra = sorted(c for c, v in coords.items() if c not in dims and set(v.dims) <= set(dims))
    if extra:
        attrs["coordinates"] = " ".join(extra)
    return attrs


def _create(group: Path, names, dims_of, lead_of, template: Path, geom, coords, chunk, dtype_of) -> None:
    for name in names:
        dims, lead = dims_of(name), lead_of(name)
        attrs = _variable_attrs(template / name, geom, dims, coords)
        chunks = (*lead, chunk, chunk)
        ArrayWriter(group / name, (*lead, *geom.shape), dtype_of(name), chunks, dims, attrs)


def _plan_sky(archive, tmp, geom, names, pieces, chunk):
    template = Path(pieces[0].group)
    coords = geom.to_coords()
    _write_coords(tmp, coords)

    def dims_of(name):
        return read_array_attrs_dims(template / name)

    def lead_of(name):
        return (geom.axis(dims_of(name)[0]).nbins,)

    _create(tmp, names, dims_of, lead_of, template, geom, coords, chunk,
            lambda n: _DTYPES.get(n, np.float32))  # fmt: skip
    sizes = {name: lead_of(name)[0] for name in names}
    calls = []
    for region in _regions(geom, chunk):
        hits = [p for p in pieces if overlap(p.box, region) is not None]
        calls.append((f"{region[0]}-{region[2]}", (str(tmp), list(names), sizes, region, hits)))
    return calls


def read_array_attrs_dims(path: Path) -> tuple[str, ...]:
    """The ``dimension_names`` of an archive array."""
    return tuple(json.loads((path / "zarr.json").read_text())["dimension_names"])


def _plan_irf(tmp, geom: SkyGeom, pieces, chunk):
    template = Path(pieces[0].group)
    coords = geom.to_coords()
    names = [n for n in ("psf", "edisp", "exposure_irf") if (template / n / "zarr.json").exists()]
    extra = {}
    if "psf" in names:
        for name in ("rad", "rad_lo", "rad_hi"):
            extra[name] = read_region(template / name)
    for name, values in extra.items():
        coords[name] = xr.Variable(("rad",), values, read_array_attrs(template / name))
    _write_coords(tmp, coords)
    shapes = {}
    for name in names:
        dims = read_array_attrs_dims(template / name)
        shapes[name] = tuple(len(coords[d]) for d in dims[:-2])
    _create(tmp, names, lambda n: read_array_attrs_dims(template / n), lambda n: shapes[n], template, geom,
            coords, chunk, lambda n: np.float32)  # fmt: skip
    calls = []
    for region in _regions(geom, chunk):
        hits = [p for p in pieces if overlap(p.box, region) is not None]
        calls.append((f"irf-{region[0]}-{region[2]}", (str(tmp), names, shapes, region, hits)))
    return calls


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
    names = [n for n in _SKY if (Path(pieces[0].group) / n / "zarr.json").exists()]
    calls = _plan_sky(archive, tmp, geom, names, pieces, chunk)
    irf_pieces = _pieces(archive, observations, "irf_slice", "irf")
    irf_calls = []
    if irf_pieces:
        coarse = geom.to_binsz(attrs["analysis"]["irf"]["binsz"])
        write_group(tmp / "irf", {"grid": "irf", "geom": jsonable(coarse.to_attrs())})
        irf_calls = _plan_irf(tmp / "irf", coarse, irf_pieces, chunk)
    tasks = [(label, (sky_chunk, *args)) for label, args in calls]
    tasks += [(label, (irf_chunk, *args)) for label, args in irf_calls]
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
        "geom": jsonable(geom.to_attrs()),
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
