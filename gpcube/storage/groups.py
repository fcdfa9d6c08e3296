"""Write a set of lazy DataArrays on one grid as an xarray-readable zarr group, chunk by chunk."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import xarray as xr

from gpcube.storage.nodes import ArrayWriter, write_array, write_group

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["Group", "write_dataarrays", "write_groups"]


def _coords(arrays: Mapping[str, xr.DataArray]) -> dict[str, xr.Variable]:
    """The 1-D coordinates of all arrays (they must agree where they share a name)."""
    coords: dict[str, xr.Variable] = {}
    for array in arrays.values():
        for name, coord in array.coords.items():
            if coord.ndim == 1 and name not in coords:
                coords[name] = coord.variable
    return coords


def _energy_edges_in_attrs(coords: dict[str, xr.Variable]) -> dict[str, xr.Variable]:
    """``coords`` with each energy axis's contiguous ``_lo``/``_hi`` folded into ``attrs["edges"]``.

    ``energy_reco_lo`` and ``energy_reco_hi`` become ``energy_reco.attrs["edges"]`` (TeV, n + 1
    values): two arrays, six files, fewer per energy axis and group. Edges that are not contiguous
    stay arrays.
    """
    out = dict(coords)
    for dim, coord in coords.items():
        lo, hi = coords.get(f"{dim}_lo"), coords.get(f"{dim}_hi")
        if not dim.startswith("energy_") or coord.dims != (dim,) or lo is None or hi is None:
            continue
        if lo.dims != (dim,) or hi.dims != (dim,) or not np.array_equal(lo.values[1:], hi.values[:-1]):
            continue
        edges = [float(v) for v in np.append(lo.values, hi.values[-1])]
        out[dim] = coord.copy(deep=False)
        out[dim].attrs = {**coord.attrs, "edges": edges}
        del out[f"{dim}_lo"], out[f"{dim}_hi"]
    return out


def _is_dask(data) -> bool:
    return hasattr(data, "__dask_graph__")


def _chunked(array: xr.DataArray, chunk: int) -> tuple[np.ndarray | da.Array, tuple[int, ...]]:
    """The array's data, dask arrays rechunked ``(whole leading dims, chunk, chunk)``; the chunks."""
    chunks = tuple(-1 if dim not in ("lat", "lon") else chunk for dim in array.dims)
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
    edges_in_attrs: bool = False,
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
    edges_in_attrs : bool
        Store the energy bin edges as the ``edges`` attribute of the ``energy_*`` coordinate instead
        of as ``energy_*_lo``/``_hi`` arrays (see :func:`_energy_edges_in_attrs`): an observation's
        groups are many small files, and each costs more to create than to fill.
    dtypes : mapping, optional
        ``{name: dtype}`` to store data variables as (cast block by block as they are written);
        others keep their own.
    """
    write_groups(store, [Group(path, arrays, attrs, edges_in_attrs, dtypes)], chunk)


class Group(NamedTuple):
    """A zarr group to write: its path (a key), arrays and attrs, as :func:`write_dataarrays` takes them."""

    path: str
    arrays: Mapping[str, xr.DataArray]
    attrs: Mapping | None
    edges_in_attrs: bool = False
    dtypes: Mapping[str, Any] | None = None
    #: Each data variable as one shard (one stored object, whatever its number of chunks).
    sharded: bool = False


def write_groups(store, groups: Sequence[Group], chunk: int) -> None:
    """Write several groups (as :func:`write_dataarrays`) in one computation, so that what their
    arrays share (an observation's counts and background, under its sky and ring products) is
    computed once."""
    sources, targets = [], []
    for group in groups:
        group_sources, group_targets = _plan_group(store, group, chunk)
        for source, target in zip(group_sources, group_targets, strict=True):
            if _is_dask(source):
                sources.append(source)
                targets.append(target)
            else:
                target[tuple(slice(None) for _ in source.shape)] = source
    if not sources:
        return
    import dask
    import dask.array as da
    import dask.local

    # the synchronous scheduler as a function: named "sync", dask imports distributed (~0.4 s in
    # a process that has not, such as a forked task process) to look for a client first
    with dask.config.set(scheduler=dask.local.get_sync):
        # no graph optimisation: the graphs are a few large blocks, and optimising them costs more
        # than running them
        da.store(sources, targets, lock=False, optimize_graph=False)


def _plan_group(store, group: Group, chunk: int) -> tuple[list, list]:
    """Write the group's metadata and in-memory coordinates; the dask sources and their targets.

    A group whose ``attrs`` are None gets empty attrs for now (the caller writes them later): its
    arrays need it to exist."""
    path, arrays, attrs, edges_in_attrs, dtypes, sharded = group
    write_group(store, path, attrs or {})
    coords = _coords(arrays)
    if edges_in_attrs:
        coords = _energy_edges_in_attrs(coords)
    sources, targets = [], []
    for name, coord in coords.items():
        if coord.dtype.kind in "UO":
            continue
        if _is_dask(coord.data):  # e.g. FoV norms: computed with the data, not twice
            sources.append(coord.data.rechunk(-1))
            targets.append(
                ArrayWriter(
                    store, f"{path}/{name}", coord.shape, coord.dtype, coord.shape, coord.dims, coord.attrs
                )
            )
        else:
            write_array(store, f"{path}/{name}", coord.values, coord.dims, coord.attrs)
    for name, array in arrays.items():
        extra = [c for c in array.coords if c not in array.dims and c in coords]
        var_attrs = dict(array.attrs)
        if extra:
            var_attrs["coordinates"] = " ".join(sorted(extra))
        data, chunks = _chunked(array, chunk)
        dtype = (dtypes or {}).get(name, data.dtype)
        key = f"{path}/{name}"
        targets.append(
            ArrayWriter(store, key, data.shape, dtype, chunks, array.dims, var_attrs, sharded or None)
        )
        sources.append(data)
    return sources, targets
