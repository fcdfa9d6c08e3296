"""Write a set of lazy DataArrays on one grid as an xarray-readable zarr group, chunk by chunk."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import xarray as xr

from gpcube.geom import IRF_DIMS, SKY_DIMS
from gpcube.storage.nodes import ArrayWriter, write_array, write_group

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["Group", "group_coords", "store_blocks", "write_dataarrays", "write_groups"]

#: The pixel dims of both grids: chunked; all other dims are whole in each chunk.
PIXEL_DIMS = (*SKY_DIMS, *IRF_DIMS)


def _coords(arrays: Mapping[str, xr.DataArray]) -> dict[str, xr.Variable]:
    """The 1-D coordinates of all arrays (they must agree where they share a name)."""
    coords: dict[str, xr.Variable] = {}
    for array in arrays.values():
        for name, coord in array.coords.items():
            if coord.ndim == 1 and name not in coords:
                coords[name] = coord.variable
    return coords


def _is_dask(data) -> bool:
    return hasattr(data, "__dask_graph__")


def _chunked(array: xr.DataArray, chunk: int) -> tuple[np.ndarray | da.Array, tuple[int, ...]]:
    """The array's data, dask arrays rechunked ``(whole leading dims, chunk, chunk)``; the chunks."""
    chunks = tuple(-1 if dim not in PIXEL_DIMS else chunk for dim in array.dims)
    if not _is_dask(array.data):  # in memory: written as it is, chunk by chunk, without dask
        whole = tuple(n if c == -1 else c for c, n in zip(chunks, array.shape, strict=True))
        return np.asarray(array.data), whole
    data = array.data.rechunk(chunks)
    return data, tuple(c[0] if c else 1 for c in data.chunks)


def write_dataarrays(
    store,
    path: str,
    arrays: Mapping[str, xr.DataArray],
    attrs: Mapping | None,
    chunk: int,
    *,
    dtypes: Mapping[str, Any] | None = None,
) -> None:
    """Write ``arrays`` (and their 1-D coordinates) as a zarr v3 group at ``path`` of ``store``.

    Data variables are chunked ``(whole leading dims, chunk, chunk)``; dask-backed ones are computed
    block by block with the synchronous scheduler, so memory stays at a few blocks whatever the
    cutout's size, and numpy-backed ones are written as they are, without dask.
    Non-index coordinates are listed in each variable's ``coordinates`` attribute, as xarray expects.

    Parameters
    ----------
    attrs : mapping or None
        The group's attributes; None if the caller writes the group's metadata itself (later).
    dtypes : mapping, optional
        ``{name: dtype}`` to store data variables as (cast block by block as they are written);
        others keep their own.
    """
    write_groups(store, [Group(path, arrays, attrs, dtypes=dtypes)], chunk)


class Group(NamedTuple):
    """A zarr group to write: its path (a key), arrays and attrs, as :func:`write_dataarrays` takes them."""

    path: str
    arrays: Mapping[str, xr.DataArray]
    attrs: Mapping | None
    #: Compact (an observation's groups): the data variables only, their common ``geom`` and the 1-D
    #: coordinates that it does not give in the group's attributes (see :func:`group_coords`).
    compact: bool = False
    dtypes: Mapping[str, Any] | None = None
    #: Each data variable as one shard (one stored object, whatever its number of chunks).
    sharded: bool = False


def write_groups(store, groups: Sequence[Group], chunk: int) -> dict[str, dict]:
    """Write several groups (as :func:`write_dataarrays`) in one computation, so that what their
    arrays share (an observation's counts and background, under its sky and ring products) is
    computed once. Returns ``{path: attrs}`` of what compact groups hold in their attributes (``geom``,
    ``coords``): written with the group's own attrs, or to be added by a caller that writes them."""
    sources, targets, plans = [], [], []
    for group in groups:
        plan = _plan_group(store, group, chunk)
        plans.append(plan)
        for source, target in zip(plan.sources, plan.targets, strict=True):
            if _is_dask(source):
                sources.append(source)
                targets.append(target)
            else:
                target[tuple(slice(None) for _ in source.shape)] = source
    if sources:
        store_blocks(sources, targets)
    out = {}
    for group, plan in zip(groups, plans, strict=True):
        extra = plan.extra_attrs()
        out[group.path] = extra
        if group.attrs is not None:
            write_group(store, group.path, {**group.attrs, **extra})
    return out


def _write_block(block: np.ndarray, *, target, offsets: tuple[np.ndarray, ...], block_id) -> np.ndarray:
    """``target[region] = block`` for the block at ``block_id`` (``offsets``: each axis' chunk starts);
    a one-element array stands for the written block."""
    region = tuple(slice(o[i], o[i] + n) for o, i, n in zip(offsets, block_id, block.shape, strict=True))
    target[region] = block
    return np.zeros((1,) * block.ndim, dtype=bool)


def store_blocks(sources: Sequence[da.Array], targets: Sequence) -> None:
    """``target[region] = block`` for every block of every source, in one computation on the
    synchronous scheduler (what the sources share is computed once), memory a few blocks.

    What :func:`dask.array.store` does, made of :func:`dask.array.map_blocks` and
    :func:`dask.compute`, which dask's array query planning (``array.query-planning``) also has.
    """
    import dask
    import dask.array as da
    import dask.local

    writes = []
    for k, (source, target) in enumerate(zip(sources, targets, strict=True)):
        offsets = tuple(np.cumsum((0, *c))[:-1] for c in source.chunks)
        write = source.map_blocks(
            functools.partial(_write_block, target=target, offsets=offsets),
            chunks=tuple((1,) * len(c) for c in source.chunks),
            dtype=bool,
            meta=np.empty((0,) * source.ndim, dtype=bool),
            name=f"gpcube-write-{k}-{source.name}",
        )
        writes.append(write)
    # the synchronous scheduler as a function: named "sync", dask imports distributed (~0.4 s in a
    # process that has not, such as a forked task process) to look for a client first
    with dask.config.set(scheduler=dask.local.get_sync):
        # no graph optimisation: the graphs are a few large blocks, and optimising them costs more
        # than running them; but array expressions (query planning) are only lowered to tasks
        # (rechunks included) by their optimisation
        dask.compute(*writes, optimize_graph=da.array_expr_enabled())


class _Sink:
    """A dask store target that keeps a small array (a coordinate computed with the data)."""

    def __init__(self, shape, dtype):
        self.values = np.empty(shape, dtype=dtype)

    def __setitem__(self, region, block) -> None:
        self.values[region] = block


class _Plan(NamedTuple):
    sources: list
    targets: list
    geom: dict | None
    coords: dict  # name -> (dims, values or _Sink, attrs), for a compact group's attributes

    def extra_attrs(self) -> dict:
        if self.geom is None:
            return {}
        coords = {}
        for name, (dims, values, attrs) in self.coords.items():
            values = values.values if isinstance(values, _Sink) else values
            coords[name] = {"dims": list(dims), "values": np.asarray(values).tolist(), "attrs": dict(attrs)}
        return {"geom": self.geom, "coords": coords}


def _common_geom(arrays: Mapping[str, xr.DataArray]) -> dict | None:
    """The ``geom`` attribute of the data variables: one sky grid (every key alike but ``axes``) with
    the union of their energy axes (alike where they share one); None if they differ."""
    geoms = [array.attrs.get("geom") for array in arrays.values()]
    if not geoms or any(g is None for g in geoms):
        return None
    first = {k: v for k, v in geoms[0].items() if k != "axes"}
    axes: dict[str, dict] = {}
    for geom in geoms:
        if {k: v for k, v in geom.items() if k != "axes"} != first:
            return None
        for axis in geom.get("axes", []):
            if axes.setdefault(axis["name"], axis) != axis:
                return None
    return {**first, "axes": list(axes.values())}


def _derivable(name: str, coord: xr.Variable, derived: Mapping[str, xr.Variable]) -> bool:
    """Whether a coordinate equals what the group's geometry gives (so it need not be stored)."""
    own = derived.get(name)
    if own is None or own.dims != coord.dims or _is_dask(coord.data):
        return False
    return bool(np.array_equal(np.asarray(coord.to_numpy()), np.asarray(own.to_numpy())))


def _plan_group(store, group: Group, chunk: int) -> _Plan:
    """Write the group's metadata (its attrs come last, in :func:`write_groups`) and in-memory
    coordinates; the dask sources and their targets."""
    path, arrays, _, compact, dtypes, sharded = group
    write_group(store, path, {})  # the arrays need their group; its attrs are written last
    coords = _coords(arrays)
    geom = _common_geom(arrays) if compact else None
    kept: dict = {}
    sources, targets = [], []
    if geom is not None:
        from gpcube.geom import SkyGeom

        derived = SkyGeom.from_attrs(geom).to_coords()
        for name, coord in coords.items():
            if coord.dtype.kind in "UO" or _derivable(name, coord, derived):
                continue
            if _is_dask(coord.data):  # e.g. FoV norms: computed with the data, not twice
                sink = _Sink(coord.shape, coord.dtype)
                sources.append(coord.data.rechunk(-1))
                targets.append(sink)
                kept[name] = (coord.dims, sink, coord.attrs)
            else:
                kept[name] = (coord.dims, coord.to_numpy(), coord.attrs)
    else:
        for name, coord in coords.items():
            if coord.dtype.kind in "UO":
                continue
            key = f"{path}/{name}"
            if _is_dask(coord.data):  # e.g. FoV norms: computed with the data, not twice
                sources.append(coord.data.rechunk(-1))
                targets.append(
                    ArrayWriter(store, key, coord.shape, coord.dtype, coord.shape, coord.dims, coord.attrs)
                )
            else:
                write_array(store, key, coord.to_numpy(), coord.dims, coord.attrs)
    for name, array in arrays.items():
        var_attrs = dict(array.attrs)
        if geom is not None:
            var_attrs.pop("geom", None)  # the group's
        else:
            extra = [c for c in array.coords if c not in array.dims and c in coords]
            if extra:
                var_attrs["coordinates"] = " ".join(sorted(extra))
        data, chunks = _chunked(array, chunk)
        dtype = (dtypes or {}).get(name, data.dtype)
        key = f"{path}/{name}"
        targets.append(
            ArrayWriter(store, key, data.shape, dtype, chunks, array.dims, var_attrs, sharded or None)
        )
        sources.append(data)
    return _Plan(sources, targets, geom, kept)


def group_coords(attrs: Mapping, dims: Sequence[str] | None = None) -> dict[str, xr.Variable]:
    """The coordinates of a compact group (an observation's) from its attributes: those its ``geom``
    gives (pixel indices of the parent grid, energy bin centres and edges) and those in ``coords``;
    only along ``dims`` if given. ``{}`` for a group that is not compact."""
    if "geom" not in attrs:
        return {}
    from gpcube.geom import SkyGeom

    out = SkyGeom.from_attrs(attrs["geom"]).to_coords()
    for name, coord in (attrs.get("coords") or {}).items():
        out[name] = xr.Variable(tuple(coord["dims"]), np.asarray(coord["values"]), coord.get("attrs") or {})
    if dims is not None:
        out = {name: var for name, var in out.items() if set(var.dims) <= set(dims)}
    return out
