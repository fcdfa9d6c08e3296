"""Build ``mosaic/`` (and ``mosaic/irf``) of an archive from its complete observations."""

from __future__ import annotations

import functools
import shutil
import uuid
from pathlib import Path

import numpy as np
import xarray as xr

from gpcube.errors import GpcubeError
from gpcube.execute import raise_failures, run_tasks
from gpcube.geom import EnergyAxis, SkyGeom
from gpcube.geom.sky import remember_header
from gpcube.storage.consolidated import consolidate
from gpcube.storage.layout import MOSAIC, complete_observations, now, obs_path, replace_group, root_attrs
from gpcube.storage.zarrv3 import (
    ArrayWriter,
    read_array_attrs,
    read_array_dims,
    read_group_attrs,
    read_region,
    write_array,
    write_group,
)
from gpcube.workflow.mosaic.sum import RING_SUMS, Piece, irf_chunk, overlap, ring_chunk, sky_chunk

__all__ = ["build_mosaic"]

_SKY = ("counts", "exposure", "background", "mask_safe")
_IRF = ("psf", "edisp", "exposure_irf", "exposure_psf")
_DTYPES = {"counts": np.int32, "mask_safe": bool}

#: The coarse IRF grid is chunked ``chunk // IRF_CHUNK_DIVISOR`` px square: a PSF pixel holds
#: n_true x n_rad values (1320 in the survey) against the sky's 2 n_reco + n_true, so a chunk of a
#: quarter the side weighs about what a sky chunk does (~20 MB at the default 256) and a survey's
#: coarse grid splits into several tasks instead of one long one.
IRF_CHUNK_DIVISOR = 4


#: A full build's sky and ring tasks each sum a square of whole chunks about this many pixels on a
#: side. A task decodes each overlapping cutout array whole: with one 256 px chunk per task, a
#: survey's 250 px cutouts were decoded ~3.8 times each, with 2 x 2 chunks ~1.9 times. The
#: accumulators of such a region hold ~55 MB in the survey (10 reco, 20 true energy bins).
TASK_PIXELS = 512


def irf_chunk_size(chunk: int) -> int:
    """The chunk (px) of the mosaic's coarse IRF grid for a sky chunk of ``chunk`` px."""
    return max(16, chunk // IRF_CHUNK_DIVISOR)


def task_size(chunk: int) -> int:
    """The side (px) of a full build's sky and ring task regions: whole chunks, ~:data:`TASK_PIXELS`."""
    return chunk * max(1, TASK_PIXELS // chunk)


def _pieces(archive: Path, observations: dict, key: str, group: str = "") -> list[Piece]:
    out = []
    for obs_id, attrs in observations.items():
        box = attrs.get(key)
        if attrs.get("empty") or not box:
            continue
        path = obs_path(archive, obs_id) / group if group else obs_path(archive, obs_id)
        out.append(Piece(obs_id, str(path), (*box["lat"], *box["lon"])))
    return out


def _chunk_index(pieces, shape: tuple[int, int], chunk: int) -> dict[tuple[int, int], list]:
    """The pieces overlapping each mosaic chunk, keyed by chunk grid index, each list in obs_id order."""
    ny, nx = shape
    index: dict[tuple[int, int], list] = {}
    for piece in sorted(pieces, key=lambda p: p.obs_id):
        y0, y1 = max(piece.box[0], 0), min(piece.box[1], ny)
        x0, x1 = max(piece.box[2], 0), min(piece.box[3], nx)
        for iy in range(y0 // chunk, -(-y1 // chunk)):
            for ix in range(x0 // chunk, -(-x1 // chunk)):
                index.setdefault((iy, ix), []).append(piece)
    return index


def _write_coords(group: Path, coords: dict) -> None:
    for name, var in coords.items():
        write_array(group / name, np.asarray(var.values), var.dims, var.attrs)


def _create_arrays(
    group: Path,
    template: Path,
    geom: SkyGeom,
    coords: dict,
    lead: dict,
    chunk: int,
    *,
    dtypes: dict | None = None,
    geom_attrs: dict | None = None,
    sources: dict | None = None,
) -> None:
    """Empty mosaic arrays shaped ``(*lead[name], lat, lon)``, with the template cutout's attrs and dims.

    ``dtypes`` (default: counts int32, mask bool, else float32), ``geom_attrs`` (default: ``geom``'s)
    and ``sources`` (the template array of a mosaic array that has none of its own name) as needed.
    """
    for name, sizes in lead.items():
        source = template / (sources or {}).get(name, name)
        dims = read_array_dims(source)
        attrs = {k: v for k, v in read_array_attrs(source).items() if k not in ("obs_id", "coordinates")}
        attrs["geom"] = geom_attrs or geom.to_attrs()
        if source.name != name:
            attrs["product"] = name
        extra = sorted(c for c, v in coords.items() if c not in dims and set(v.dims) <= set(dims))
        if extra:
            attrs["coordinates"] = " ".join(extra)
        dtype = (dtypes or {}).get(name, _DTYPES.get(name, np.float32))
        ArrayWriter(group / name, (*sizes, *geom.shape), dtype, (*sizes, chunk, chunk), dims, attrs)


def _calls(
    func, out: Path, names, lead: dict, geom: SkyGeom, pieces, chunk: int, prefix: str, only, done=None
) -> list:
    """One ``func(out, names, lead, region, pieces)`` task per ``chunk`` x ``chunk`` region that a
    piece overlaps (``chunk`` a multiple of the arrays' chunks: a task may own several).

    Regions that no piece overlaps get no task (they stay fill values, 0, and no file). With ``only``
    (a list of pieces), just the regions those pieces overlap, each summing every piece over it; with
    ``done`` too (the obs_ids summed into the stored, complete mosaic), a region whose new pieces all
    come after its old ones in obs_id order is continued from its stored values with the new pieces
    only (``resume=True``): the same additions in the same order as summing them all again.
    """
    ny, nx = geom.shape
    index = _chunk_index(pieces, (ny, nx), chunk)
    keys = sorted(index if only is None else _chunk_index(only, (ny, nx), chunk))
    calls = []
    for iy, ix in keys:
        region = (iy * chunk, min((iy + 1) * chunk, ny), ix * chunk, min((ix + 1) * chunk, nx))
        hits, task = index.get((iy, ix), []), func
        if done is not None:
            old = [p.obs_id for p in hits if p.obs_id in done]
            new = [p for p in hits if p.obs_id not in done]
            if old and min(p.obs_id for p in new) > max(old):
                hits, task = new, functools.partial(func, resume=True)
        calls.append((f"{prefix}{region[0]}-{region[2]}", (task, str(out), list(names), lead, region, hits)))
    return calls


def _plan_sky(tmp: Path, geom: SkyGeom, pieces, chunk: int, only=None, done=None) -> list:
    """Tasks for the sky products; the arrays are created in ``tmp`` unless updating (``only``, and
    ``done`` as in :func:`_calls`)."""
    template = Path(pieces[0].group)
    names = [n for n in _SKY if (template / n / "zarr.json").exists()]
    lead = {name: geom.axis(read_array_dims(template / name)[0]).nbins for name in names}
    if only is None:
        coords = geom.to_coords()
        _write_coords(tmp, coords)
        _create_arrays(tmp, template, geom, coords, {n: (size,) for n, size in lead.items()}, chunk)
    size = chunk if only is not None else task_size(chunk)  # an update touches single chunks
    return _calls(sky_chunk, tmp, names, lead, geom, pieces, size, "", only, done)


def _check_irf_grid(geom: SkyGeom, pieces) -> None:
    """Refuse observations whose IRF maps lie on another coarse grid than ``geom``.

    gpcube before the coarse grid's size was rounded half to even (as Gammapy's) made, for a mosaic
    width of an odd number of half coarse pixels, a grid one pixel wider: its cutouts, summed on this
    grid, would be shifted by half a pixel.
    """
    for piece in pieces:
        stored = SkyGeom.from_attrs(read_array_attrs(Path(piece.group) / "exposure_irf")["geom"])
        parent_crpix = tuple(c + o for c, o in zip(stored.crpix, stored.origin, strict=True))
        if stored.binsz != geom.binsz or parent_crpix != geom.crpix:
            raise GpcubeError(
                f"observation {piece.obs_id}: its IRF maps are on a coarse grid of reference pixel "
                f"{parent_crpix}, not on {geom!r} (reference pixel {geom.crpix}) that this gpcube derives "
                "from the archive's geometry; an earlier gpcube reduced it: run the job again into a new "
                "output",
                path=piece.group,
            )


def _plan_irf(tmp: Path, geom: SkyGeom, pieces, chunk: int, only=None) -> list:
    """Tasks for the IRF maps on the coarse grid; as :func:`_plan_sky`."""
    _check_irf_grid(geom, pieces)
    template = Path(pieces[0].group)
    names = [n for n in _IRF if (template / n / "zarr.json").exists()]
    coords = geom.to_coords()
    if "psf" in names:
        for name in ("rad", "rad_lo", "rad_hi"):
            coords[name] = xr.Variable(
                ("rad",), read_region(template / name), read_array_attrs(template / name)
            )
    lead = {name: tuple(len(coords[d]) for d in read_array_dims(template / name)[:-2]) for name in names}
    if only is None:
        _write_coords(tmp, coords)
        _create_arrays(tmp, template, geom, coords, lead, chunk)
    return _calls(irf_chunk, tmp, names, lead, geom, pieces, chunk, "irf-", only)


def _with_axis(geom_attrs: dict, axis: EnergyAxis) -> dict:
    """Geometry attrs with ``axis`` in place of the axis of the same name."""
    return {
        **geom_attrs,
        "axes": [axis.to_dict() if a["name"] == axis.name else a for a in geom_attrs["axes"]],
    }


def _plan_ring(tmp: Path, geom: SkyGeom, pieces, chunk: int, only=None, done=None) -> list:
    """Tasks for the ring sums on the ring's energy bands; as :func:`_plan_sky`."""
    template = Path(pieces[0].group)
    coords = {k: v for k, v in geom.to_coords().items() if set(v.dims) <= {"lat", "lon"}}
    for name in ("energy_reco", "energy_reco_lo", "energy_reco_hi"):  # the bands, not the reco axis
        coords[name] = xr.Variable(
            ("energy_reco",), read_region(template / name), read_array_attrs(template / name)
        )
    names = list(RING_SUMS)
    lead = {name: len(coords["energy_reco"]) for name in names}
    edges = np.append(coords["energy_reco_lo"].values, coords["energy_reco_hi"].values[-1])
    band_geom = _with_axis(geom.to_attrs(), EnergyAxis.from_edges(edges, "energy_reco"))
    if only is None:
        write_group(tmp, {"grid": "ring", "geom": band_geom})
        _write_coords(tmp, coords)
        _create_arrays(
            tmp, template, geom, coords, {n: (size,) for n, size in lead.items()}, chunk,
            dtypes={n: types[1] for n, types in RING_SUMS.items()}, geom_attrs=band_geom,
            sources={"alpha_counts_off": "alpha"},
        )  # fmt: skip
    size = chunk if only is not None else task_size(chunk)
    return _calls(ring_chunk, tmp, names, lead, geom, pieces, size, "ring-", only, done)


def _call(func, *args):
    return func(*args)


def _cost(call) -> int:
    """A task's work, for ordering: pixels of the pieces it adds times the values per pixel."""
    _, (_, _, names, lead, region, hits) = call
    per_pixel = sum(int(np.prod(lead[name])) for name in names)
    area = 0
    for piece in hits:
        hit = overlap(piece.box, region)
        if hit is not None:
            (ys, xs), _ = hit
            area += (ys.stop - ys.start) * (xs.stop - xs.start)
    return area * per_pixel


def _previous(archive: Path, geom: SkyGeom, chunk: int, pieces) -> dict | None:
    """The existing mosaic's attrs if it can be updated in place: same grid and chunking, and made
    from a subset of the current observations (a complete mosaic, or one whose update was cut short)."""
    try:
        attrs = read_group_attrs(archive / MOSAIC)
    except GpcubeError:
        return None
    if attrs.get("chunk") != chunk or attrs.get("geom") != geom.to_attrs():
        return None
    if attrs.get("irf_chunk", chunk) != irf_chunk_size(chunk):  # a mosaic of an older gpcube
        return None
    if not set(attrs.get("obs_ids") or ()) <= {p.obs_id for p in pieces}:
        return None
    return attrs


def _mosaic_attrs(geom: SkyGeom, chunk: int, observations: dict, pieces) -> dict:
    used = [p.obs_id for p in pieces]
    return {
        "complete": True,
        "obs_ids": used,
        "n_obs": len(used),
        "livetime": float(sum(observations[i].get("livetime") or 0.0 for i in used)),
        "geom": geom.to_attrs(),
        "chunk": chunk,
        "irf_chunk": irf_chunk_size(chunk),
        "made_at": now(),
    }


def _plan(
    archive: Path, out: Path, geom: SkyGeom, pieces, irf_pieces, chunk: int, new=None, done=None
) -> list:
    """All chunk tasks (sky, ring and IRF) writing into ``out``, largest first (so that the last to
    finish are small ones, whatever the number of workers); only those ``new`` pieces touch if
    given, continuing chunks of the stored mosaic of ``done`` where the order allows (not the IRF
    maps: they are weighted means, and cheap to redo on their coarse grid)."""
    new_ids = None if new is None else {p.obs_id for p in new}

    def only(group_pieces):
        return None if new_ids is None else [p for p in group_pieces if p.obs_id in new_ids]

    tasks = _plan_sky(out, geom, pieces, chunk, new, done)
    ring_pieces = [p._replace(group=str(Path(p.group) / "ring")) for p in pieces]
    if ring_pieces and (Path(ring_pieces[0].group) / "zarr.json").exists():
        tasks += _plan_ring(out / "ring", geom, ring_pieces, chunk, only(ring_pieces), done)
    if irf_pieces:
        coarse = geom.to_binsz(root_attrs(archive)["analysis"]["irf"]["binsz"])
        if new is None:
            write_group(out / "irf", {"grid": "irf", "geom": coarse.to_attrs()})
        tasks += _plan_irf(out / "irf", coarse, irf_pieces, irf_chunk_size(chunk), only(irf_pieces))
    return sorted(tasks, key=_cost, reverse=True)


def _run(tasks, client, progress: bool, on_failure) -> None:
    _, failures = run_tasks(_call, tasks, client, desc="mosaic", progress=progress)
    if failures:
        on_failure()
        raise_failures(failures, "mosaic chunks")


def build_mosaic(
    archive: str | Path,
    client=None,
    *,
    chunk: int = 256,
    progress: bool = True,
    consolidated: bool = True,
    full: bool = False,
    observations: dict | None = None,
) -> dict:
    """Sum the archive's complete observations into ``mosaic/``; returns the mosaic's attrs.

    If a mosaic of a subset of the observations exists on the same grid and chunking, only the
    chunks that the new observations overlap are recomputed: a chunk whose new observations all come
    after its old ones in obs_id order (the usual case: new runs have higher numbers) by adding the
    new pieces to its stored values, any other from all the pieces over it in obs_id order. Either
    way the bytes are those of a full rebuild, at a cost proportional to what was added.
    The update marks the mosaic incomplete first (``complete: False``, ``pending_obs_ids``) and
    complete last, so an update cut short is finished by the next call. ``full=True``, or a mosaic
    that cannot be updated, rebuilds everything under a temporary name and swaps it in, so an
    interrupted build leaves the previous mosaic (or none), never half of one. ``observations``
    (``{obs_id: attrs}`` of the archive's complete observations, as
    :func:`gpcube.storage.layout.complete_observations` gives) saves reading them again.
    """
    archive = Path(archive)
    stored = root_attrs(archive)["geom"]
    remember_header(stored)  # the archive's own WCS header, whatever wrote it
    geom = SkyGeom.from_attrs(stored)
    if observations is None:  # ``{obs_id: attrs}`` of the complete observations, if the caller has it
        observations = complete_observations(archive)
    pieces = _pieces(archive, observations, "slice")
    if not pieces:
        raise GpcubeError("no observation with data in the archive: nothing to mosaic", path=archive)
    irf_pieces = _pieces(archive, observations, "irf_slice", "irf")
    attrs = _mosaic_attrs(geom, chunk, observations, pieces)
    previous = None if full else _previous(archive, geom, chunk, pieces)
    final = archive / MOSAIC
    if previous is not None:
        done = set(previous.get("obs_ids") or ())
        new = [p for p in pieces if p.obs_id not in done]
        if not new and previous.get("complete"):
            return previous
        # chunks of a complete mosaic can be continued; after an update cut short, some chunks may
        # hold the pending observations already, so those chunks are summed again from all pieces
        resumable = done if previous.get("complete") else None
        write_group(final, {**previous, "complete": False, "pending_obs_ids": [p.obs_id for p in new]})
        tasks = _plan(archive, final, geom, pieces, irf_pieces, chunk, new, resumable)
        _run(tasks, client, progress, lambda: None)
        write_group(final, {**attrs, "updated_with": [p.obs_id for p in new]})
    else:
        tmp = archive / f"_tmp-mosaic-{uuid.uuid4().hex[:12]}"
        write_group(tmp, {})
        _run(_plan(archive, tmp, geom, pieces, irf_pieces, chunk), client, progress,
             lambda: shutil.rmtree(tmp, ignore_errors=True))  # fmt: skip
        write_group(tmp, attrs)
        replace_group(tmp, final)
    if consolidated:
        consolidate(archive)
    return attrs
