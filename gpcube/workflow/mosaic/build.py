"""Build or continue ``mosaic/`` (with ``mosaic/irf`` and ``mosaic/ring``) of an archive, as one commit.

The chunk tasks of a mosaic read only one snapshot of the archive (the observations and, for an
update, the previous mosaic) and each writes its own chunks into its own fork of a session: a task
that dask runs twice (a worker lost) writes the same bytes again, and only the fork that comes back is
merged. The caller merges the forks, sets the mosaic's attributes and commits:

* an **update** (observations added to an archive whose mosaic has the same grid and chunking) is
  one commit on the main branch, rebased over what others committed meanwhile if that touched other
  nodes (their observations);
* a **full build** first creates the arrays on a branch of its own (``gpcube-build-...``), then writes
  the chunks there, then moves the main branch to the result if it has not moved meanwhile.

Either way a reader sees the old mosaic or the new one, never a mix. If another run changed the mosaic
meanwhile, the build is planned again from the new snapshot (:data:`ATTEMPTS` times at most).
"""

from __future__ import annotations

import functools
import uuid

import numpy as np

from gpcube.errors import GpcubeError
from gpcube.execute import raise_failures, run_tasks
from gpcube.geom import BAND_DIM, IRF_DIMS, SKY_DIMS, EnergyAxis, SkyGeom
from gpcube.geom.sky import remember_header
from gpcube.makers.registry import products_on, stored_dtypes
from gpcube.storage.groups import group_coords
from gpcube.storage.layout import IRF, MOSAIC, RING, complete_observations, now, obs_path, root_attrs
from gpcube.storage.nodes import (
    ArrayWriter,
    delete,
    exists,
    read_array_attrs,
    read_array_dims,
    read_group_attrs,
    write_array,
    write_group,
)
from gpcube.storage.repository import (
    Archive,
    ArchiveConflict,
    as_archive,
    drop_stale_branches,
    fault_point,
    process_branch,
)
from gpcube.workflow.mosaic.sum import RING_SUMS, Piece, irf_chunk, overlap, ring_chunk, sky_chunk

__all__ = ["build_mosaic"]

#: The products of the two grids and the types they are stored with (:mod:`gpcube.makers.registry`).
_SKY, _IRF, _DTYPES = products_on("sky"), products_on("irf"), stored_dtypes()
#: How many times a build is planned again when another run changed the mosaic meanwhile.
ATTEMPTS = 5
#: The prefix of the branches of full builds (:func:`gpcube.storage.repository.process_branch`).
BUILD_PREFIX = "gpcube-build"
#: A build branch older than this (seconds) is abandoned whoever made it; a younger one only if its
#: process (on this host) is gone.
STALE_BRANCH_SECONDS = 24 * 3600

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


def _pieces(observations: dict, key: str, group: str = "", dims: tuple[str, str] = SKY_DIMS) -> list[Piece]:
    out = []
    for obs_id, attrs in observations.items():
        box = attrs.get(key)
        if attrs.get("empty") or not box:
            continue
        path = f"{obs_path(obs_id)}/{group}" if group else obs_path(obs_id)
        out.append(Piece(obs_id, path, (*box[dims[0]], *box[dims[1]])))
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


def _write_coords(store, group: str, coords: dict) -> None:
    for name, var in coords.items():
        write_array(store, f"{group}/{name}", np.asarray(var.to_numpy()), var.dims, var.attrs)


def _create_arrays(
    store,
    group: str,
    template: str,
    geom: SkyGeom,
    coords: dict,
    lead: dict,
    chunk: int,
    *,
    dtypes: dict | None = None,
    geom_attrs: dict | None = None,
    sources: dict | None = None,
) -> None:
    """Empty mosaic arrays shaped ``(*lead[name], y, x)``, with the template cutout's attrs and dims.

    ``dtypes`` (default: the registry's stored dtypes), ``geom_attrs`` (default: ``geom``'s)
    and ``sources`` (the template array of a mosaic array that has none of its own name) as needed.
    """
    for name, sizes in lead.items():
        source_name = (sources or {}).get(name, name)
        source = f"{template}/{source_name}"
        dims = read_array_dims(store, source)
        attrs = {
            k: v for k, v in read_array_attrs(store, source).items() if k not in ("obs_id", "coordinates")
        }
        attrs["geom"] = geom_attrs or geom.to_attrs()
        if source_name != name:
            attrs["product"] = name
        extra = sorted(c for c, v in coords.items() if c not in dims and set(v.dims) <= set(dims))
        if extra:
            attrs["coordinates"] = " ".join(extra)
        dtype = (dtypes or _DTYPES)[name]
        ArrayWriter(
            store, f"{group}/{name}", (*sizes, *geom.shape), dtype, (*sizes, chunk, chunk), dims, attrs
        )


def _calls(
    func, out: str, names, lead: dict, geom: SkyGeom, pieces, chunk: int, prefix: str, only, done=None
) -> list:
    """One ``func(store, out, names, lead, region, pieces)`` task per ``chunk`` x ``chunk`` region that
    a piece overlaps (``chunk`` a multiple of the arrays' chunks: a task may own several).

    Regions that no piece overlaps get no task (they stay fill values, 0, and no chunk). With ``only``
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
        calls.append((f"{prefix}{region[0]}-{region[2]}", (task, out, list(names), lead, region, hits)))
    return calls


def _plan_sky(store, geom: SkyGeom, pieces, chunk: int, only=None, done=None) -> list:
    """Tasks for the sky products; the arrays are created in ``store`` unless updating (``only``, and
    ``done`` as in :func:`_calls`)."""
    template = pieces[0].group
    names = [n for n in _SKY if exists(store, f"{template}/{n}")]
    lead = {name: geom.axis(read_array_dims(store, f"{template}/{name}")[0]).nbins for name in names}
    if only is None:
        coords = geom.to_coords()
        _write_coords(store, MOSAIC, coords)
        _create_arrays(store, MOSAIC, template, geom, coords, {n: (size,) for n, size in lead.items()}, chunk)
    size = chunk if only is not None else task_size(chunk)  # an update touches single chunks
    return _calls(sky_chunk, MOSAIC, names, lead, geom, pieces, size, "", only, done)


def _plan_irf(store, geom: SkyGeom, pieces, chunk: int, only=None) -> list:
    """Tasks for the IRF maps on the coarse grid; as :func:`_plan_sky`."""
    template = pieces[0].group
    out = f"{MOSAIC}/{IRF}"
    names = [n for n in _IRF if exists(store, f"{template}/{n}")]
    coords = geom.to_coords()
    if "psf" in names:  # the rad axis, from the observation group's own coordinates
        stored = group_coords(read_group_attrs(store, template))
        coords.update({name: stored[name] for name in ("rad", "rad_lo", "rad_hi")})
    lead = {
        name: tuple(len(coords[d]) for d in read_array_dims(store, f"{template}/{name}")[:-2])
        for name in names
    }
    if only is None:
        write_group(store, out, {"grid": "irf", "geom": geom.to_attrs()})
        _write_coords(store, out, coords)
        _create_arrays(store, out, template, geom, coords, lead, chunk)
    return _calls(irf_chunk, out, names, lead, geom, pieces, chunk, "irf-", only)


def _with_axis(geom_attrs: dict, axis: EnergyAxis, replaces: str) -> dict:
    """Geometry attrs with ``axis`` in place of the axis named ``replaces``."""
    return {
        **geom_attrs,
        "axes": [axis.to_dict() if a["name"] == replaces else a for a in geom_attrs["axes"]],
    }


def _plan_ring(store, geom: SkyGeom, pieces, chunk: int, only=None, done=None) -> list:
    """Tasks for the ring sums on the ring's energy bands; as :func:`_plan_sky`."""
    template = pieces[0].group
    out = f"{MOSAIC}/{RING}"
    coords = {k: v for k, v in geom.to_coords().items() if set(v.dims) <= set(geom.dims)}
    stored = group_coords(read_group_attrs(store, template))  # the ring's bands
    coords.update({name: stored[name] for name in (BAND_DIM, f"{BAND_DIM}_lo", f"{BAND_DIM}_hi")})
    names = list(RING_SUMS)
    lead = {name: len(coords[BAND_DIM]) for name in names}
    edges = np.append(coords[f"{BAND_DIM}_lo"].to_numpy(), coords[f"{BAND_DIM}_hi"].to_numpy()[-1])
    band_geom = _with_axis(geom.to_attrs(), EnergyAxis.from_edges(edges, BAND_DIM), "energy_reco")
    if only is None:
        write_group(store, out, {"grid": "ring", "geom": band_geom})
        _write_coords(store, out, coords)
        _create_arrays(
            store, out, template, geom, coords, {n: (size,) for n, size in lead.items()}, chunk,
            dtypes={n: types[1] for n, types in RING_SUMS.items()}, geom_attrs=band_geom,
            sources={"alpha_counts_off": "alpha"},
        )  # fmt: skip
    size = chunk if only is not None else task_size(chunk)
    return _calls(ring_chunk, out, names, lead, geom, pieces, size, "ring-", only, done)


def _chunk_task(fork, func, *args):
    """The worker task: ``func(fork.store, *args)``; the fork goes back to be merged."""
    func(fork.store, *args)
    fault_point("mosaic:task")  # written, not returned: a worker lost here has its task run again
    return fork


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


def _previous(store, geom: SkyGeom, chunk: int, pieces) -> dict | None:
    """The stored mosaic's attrs if it can be continued: complete, same grid and chunking, and made
    from a subset of the current observations."""
    try:
        attrs = read_group_attrs(store, MOSAIC)
    except GpcubeError:
        return None
    if not attrs.get("complete") or attrs.get("chunk") != chunk or attrs.get("geom") != geom.to_attrs():
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


def _plan(store, coarse: SkyGeom | None, geom: SkyGeom, pieces, irf_pieces, chunk: int, new=None, done=None):
    """All chunk tasks (sky, ring and IRF), largest first (so that the last to finish are small ones,
    whatever the number of workers); only those ``new`` pieces touch if given, continuing chunks of the
    stored mosaic of ``done`` where the order allows (not the IRF maps: they are weighted means, and
    cheap to redo on their coarse grid). Without ``new`` the arrays are created in ``store``."""
    new_ids = None if new is None else {p.obs_id for p in new}

    def only(group_pieces):
        return None if new_ids is None else [p for p in group_pieces if p.obs_id in new_ids]

    tasks = _plan_sky(store, geom, pieces, chunk, new, done)
    ring_pieces = [p._replace(group=f"{p.group}/{RING}") for p in pieces]
    if ring_pieces and exists(store, ring_pieces[0].group):
        tasks += _plan_ring(store, geom, ring_pieces, chunk, only(ring_pieces), done)
    if irf_pieces:
        tasks += _plan_irf(store, coarse, irf_pieces, irf_chunk_size(chunk), only(irf_pieces))
    return sorted(tasks, key=_cost, reverse=True)


def _run(base, tasks, client, progress: bool, token: str) -> None:
    """Run the chunk tasks, each in a fork of ``base``, and merge the forks back into ``base``."""
    calls = [(label, (base.fork(), *args)) for label, args in tasks]
    results, failures = run_tasks(_chunk_task, calls, client, desc="mosaic", progress=progress, token=token)
    raise_failures(failures, "mosaic chunks")
    fault_point("mosaic:merge")
    if results:
        base.merge(*results)


def build_mosaic(
    archive: Archive | str,
    client=None,
    *,
    chunk: int = 256,
    progress: bool = True,
    full: bool = False,
    token: str | None = None,
) -> dict:
    """Sum the archive's observations into ``mosaic/`` as one commit; returns the mosaic's attrs.

    If the stored mosaic has the same grid and chunking and was made of a subset of the observations,
    only the chunks that the new observations overlap are recomputed: a chunk whose new observations all
    come after its old ones in obs_id order (the usual case: new runs have higher numbers) by adding the
    new pieces to its stored values, any other from all the pieces over it in obs_id order. Either way
    the bytes are those of a full rebuild, at a cost proportional to what was added. ``full=True``, or a
    mosaic that cannot be continued, builds everything anew (see the module docstring). ``token`` names
    the job's tasks on a dask scheduler (unique per job: default a new one).
    """
    archive = as_archive(archive)
    token = token or uuid.uuid4().hex[:12]
    drop_stale_branches(archive, BUILD_PREFIX, STALE_BRANCH_SECONDS)
    for _ in range(ATTEMPTS):
        try:
            return _build_once(archive, client, chunk, progress, full, token)
        except ArchiveConflict:
            continue  # another run changed the mosaic meanwhile: plan again from the new snapshot
    raise GpcubeError(f"the mosaic changed under {ATTEMPTS} attempts to build it (other runs keep writing "
                      "it): run again", path=archive.location)  # fmt: skip


def _build_once(archive: Archive, client, chunk: int, progress: bool, full: bool, token: str) -> dict:
    base = archive.writable()
    head = base.snapshot_id
    store = base.store  # what the tasks read: this snapshot, whatever is committed meanwhile
    stored = root_attrs(store)
    remember_header(stored["geom"])  # the archive's own WCS header, whatever wrote it
    geom = SkyGeom.from_attrs(stored["geom"])
    observations = complete_observations(store)
    pieces = _pieces(observations, "slice")
    if not pieces:
        raise GpcubeError("no observation with data in the archive: nothing to mosaic", path=archive.location)
    irf_pieces = _pieces(observations, "irf_slice", IRF, IRF_DIMS)
    coarse = geom.to_binsz(stored["analysis"]["irf"]["binsz"]) if irf_pieces else None
    attrs = _mosaic_attrs(geom, chunk, observations, pieces)
    previous = None if full else _previous(store, geom, chunk, pieces)
    if previous is not None:
        done = set(previous.get("obs_ids") or ())
        new = [p for p in pieces if p.obs_id not in done]
        if not new:
            return previous
        _run(base, _plan(store, coarse, geom, pieces, irf_pieces, chunk, new, done), client, progress, token)
        write_group(base.store, MOSAIC, {**attrs, "updated_with": [p.obs_id for p in new]})
        fault_point("mosaic:commit")
        archive.commit(base, f"mosaic: {len(new)} observations added ({len(pieces)} in all)")
        fault_point("mosaic:committed")
        return attrs
    branch = process_branch(BUILD_PREFIX)
    archive.branch(branch, head)
    fault_point("mosaic:branch")
    try:
        layout = archive.writable(branch)  # the new arrays, empty, on the build's branch
        if exists(layout.store, MOSAIC):
            delete(layout.store, MOSAIC)
        write_group(layout.store, MOSAIC, {**attrs, "complete": False})
        tasks = _plan(layout.store, coarse, geom, pieces, irf_pieces, chunk)
        archive.commit(layout, "mosaic: arrays", rebase=False)
        fault_point("mosaic:arrays")
        base = archive.writable(branch)
        _run(base, tasks, client, progress, token)
        write_group(base.store, MOSAIC, attrs)
        fault_point("mosaic:commit")
        built = archive.commit(base, f"mosaic: {len(pieces)} observations", rebase=False)
        fault_point("mosaic:built")
        if not archive.move_main(built, expected=head):
            raise ArchiveConflict("the archive changed during the build", path=archive.location)
        fault_point("mosaic:moved")
    finally:
        archive.delete_branch(branch)
    return attrs
