"""Write a set of lazy DataArrays on one grid as an xarray-readable zarr group, chunk by chunk."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import dask
import dask.array as da
import xarray as xr

from gpcube.archive.zarrv3 import ArrayWriter, write_array, write_group

__all__ = ["write_dataarrays"]


def _coords(arrays: Mapping[str, xr.DataArray]) -> dict[str, xr.Variable]:
    """The 1-D coordinates of all arrays (they must agree where they share a name)."""
    coords: dict[str, xr.Variable] = {}
    for array in arrays.values():
        for name, coord in array.coords.items():
            if coord.ndim == 1 and name not in coords:
                coords[name] = coord.variable
    return coords


def _chunked(array: xr.DataArray, chunk: int) -> da.Array:
    data = array.data if isinstance(array.data, da.Array) else da.from_array(array.data)
    chunks = tuple(-1 if dim not in ("lat", "lon") else chunk for dim in array.dims)
    return data.rechunk(chunks)


def write_dataarrays(
    path: str | Path, arrays: Mapping[str, xr.DataArray], attrs: Mapping, chunk: int
) -> None:
    """Write ``arrays`` (and their 1-D coordinates) as a zarr v3 group at ``path``.

    Data variables are chunked ``(whole leading dims, chunk, chunk)`` and computed block by block
    with the synchronous scheduler, so memory stays at a few blocks whatever the cutout's size.
    Non-index coordinates are listed in each variable's ``coordinates`` attribute, as xarray expects.
    """
    path = Path(path)
    write_group(path, attrs)
    sources, targets = [], []
    for name, coord in _coords(arrays).items():
        if coord.dtype.kind in "UO":
            continue
        if isinstance(coord.data, da.Array):  # e.g. FoV norms: computed with the data, not twice
            sources.append(coord.data.rechunk(-1))
            targets.append(
                ArrayWriter(path / name, coord.shape, coord.dtype, coord.shape, coord.dims, coord.attrs)
            )
        else:
            write_array(path / name, coord.values, coord.dims, coord.attrs)
    for name, array in arrays.items():
        extra = [c for c in array.coords if c not in array.dims and array.coords[c].ndim == 1]
        var_attrs = dict(array.attrs)
        if extra:
            var_attrs["coordinates"] = " ".join(sorted(extra))
        data = _chunked(array, chunk)
        chunks = tuple(c[0] if c else 1 for c in data.chunks)
        targets.append(ArrayWriter(path / name, data.shape, data.dtype, chunks, array.dims, var_attrs))
        sources.append(data)
    with dask.config.set(scheduler="sync"):
        da.store(sources, targets, lock=False)
