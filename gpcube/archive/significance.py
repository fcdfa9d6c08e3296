"""The significance maps of an archive's mosaic (``gpcube significance``), in its ``significance`` group.

:func:`gpcube.estimators.estimate_excess_map` runs on the mosaic: with a ring background
(``background.method`` ``ring`` or ``adaptive_ring``) on the stacked ring products of
``mosaic/ring`` (:func:`gpcube.archive.ring.stacked_ring`), otherwise on the mosaic's counts and
background; the mosaic's exposure gives the flux, folded through the stacked energy-dispersion
kernels of ``mosaic/irf`` when the job made them (``edisp`` among the products). The maps are stored
as float32 in a group written under a temporary name and swapped in, replacing an earlier one.

A mosaic whose inputs take at most :data:`IN_MEMORY_BYTES` as stored (the 36-run H.E.S.S. survey,
10 x 456 x 1643 pixels with 20 true-energy bins, takes ~70 MB) is read into memory with the
archive's own reader and its maps are computed and written with numpy, without dask or zarr-python:
their graphs and metadata cost more than the arithmetic at that size. A larger mosaic is opened
lazily (:func:`gpcube.open_archive`) and computed chunk by chunk, so that memory stays at a few
chunks whatever its size. Both give the same maps.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from gpcube.archive.consolidated import consolidate
from gpcube.archive.groups import write_dataarrays
from gpcube.archive.store import MOSAIC, mosaic_attrs, now, replace_group, root_attrs
from gpcube.archive.zarrv3 import read_group_attrs, read_region
from gpcube.errors import GpcubeError
from gpcube.estimators import estimate_excess_map

__all__ = ["IN_MEMORY_BYTES", "SIGNIFICANCE", "significance"]

#: The archive's group of the significance maps.
SIGNIFICANCE = "significance"
#: Mosaics whose inputs take at most this many bytes (as stored) are computed in memory.
IN_MEMORY_BYTES = 256 << 20
#: Background methods whose mosaic has ring products (``mosaic/ring``).
RING_METHODS = ("ring", "adaptive_ring")
#: What the estimator may read of the mosaic; of the ring group; of the mosaic next to the ring's.
MOSAIC_INPUTS = ("counts", "mask_safe", "background", "counts_off", "alpha", "acceptance", "acceptance_off",
                 "exposure")  # fmt: skip
RING_INPUTS = ("counts", "counts_off", "alpha_counts_off", "acceptance", "mask_safe")
RING_EXTRA_INPUTS = ("exposure",)
#: The stacked kernels that the flux folds the power law through, in ``mosaic/irf``.
IRF_GROUP, IRF_INPUTS = f"{MOSAIC}/irf", ("edisp",)


def significance(
    archive: str | Path,
    radius: float,
    *,
    energy_edges=None,
    spectral_index: float = 2.0,
    correlate_off: bool = True,
    in_memory: bool | None = None,
) -> xr.Dataset:
    """Excess, significance and flux maps of the mosaic, written to the archive's ``significance`` group.

    The statistic follows the archive's background: Li & Ma (ON/OFF) with the ring products for
    ``ring`` and ``adaptive_ring``, Cash against the background otherwise (see
    :func:`gpcube.estimators.estimate_excess_map` for the other parameters and the definitions). The
    flux folds the power law through the mosaic's stacked edisp kernels if it has them.
    The group is written under a temporary name and swapped in, replacing an earlier one. Also
    ``gpcube.pipeline.significance``.

    Parameters
    ----------
    in_memory : bool, optional
        Read the inputs into memory and compute with numpy (True), or lazily with dask (False);
        default: in memory if they take at most :data:`IN_MEMORY_BYTES` as stored.

    Returns
    -------
    xarray.Dataset
        The maps as written: in memory when computed so, else lazy, opened from the archive.
    """
    path = Path(archive)
    attrs = root_attrs(path)
    mosaic = mosaic_attrs(path)
    if mosaic is None:
        raise GpcubeError("the archive has no complete mosaic yet: run `gpcube mosaic`", path=path)
    method = (attrs.get("analysis") or {}).get("background", {}).get("method")
    sources = _sources(path, method)
    if in_memory is None:
        stored = sum(_stored_bytes(group / name) for group, names in sources for name in names)
        in_memory = stored <= IN_MEMORY_BYTES
    inputs = _read_inputs(sources, method) if in_memory else _open_inputs(path, method)
    maps = estimate_excess_map(
        inputs,
        radius,
        energy_edges=energy_edges,
        spectral_index=spectral_index,
        correlate_off=correlate_off,
        edisp=_edisp(path) if "exposure" in inputs.data_vars else None,
    )
    arrays = {name: var.astype("float32", keep_attrs=True) for name, var in maps.data_vars.items()}
    maps_attrs = {**maps.attrs, "background_method": method, "made_at": now()}
    _write(path, arrays, maps_attrs, int(mosaic.get("chunk", 256)))
    if not in_memory:
        from gpcube.pipeline import open_archive

        return open_archive(path, significance=True)
    written = read_group(path / SIGNIFICANCE, arrays)
    written.attrs.setdefault("archive", {"path": str(path), "analysis": attrs.get("analysis")})
    return written


def _sources(path: Path, method: str | None) -> list[tuple[Path, tuple[str, ...]]]:
    """The groups and variables that the estimator reads (those of the lists that the groups have)."""
    mosaic = path / MOSAIC
    if method not in RING_METHODS:
        return [(mosaic, _present(mosaic, MOSAIC_INPUTS))]
    ring = mosaic / "ring"
    if not (ring / "zarr.json").exists():
        raise GpcubeError(f"the archive has no group {f'{MOSAIC}/ring'!r}", path=path)
    return [(ring, _present(ring, RING_INPUTS)), (mosaic, _present(mosaic, RING_EXTRA_INPUTS))]


def _edisp(path: Path) -> xr.DataArray | None:
    """The mosaic's stacked edisp kernels (coarse grid, small: read into memory), or None."""
    group = path / IRF_GROUP
    if not _present(group, IRF_INPUTS):
        return None
    return read_group(group, IRF_INPUTS)["edisp"]


def _present(group: Path, names: Iterable[str]) -> tuple[str, ...]:
    return tuple(name for name in names if (group / name / "zarr.json").is_file())


def _metadata(array: Path) -> dict:
    try:
        return json.loads((array / "zarr.json").read_text())
    except (OSError, ValueError) as exc:
        raise GpcubeError(f"cannot read zarr metadata: {exc}", path=array) from exc


def _stored_bytes(array: Path) -> int:
    """The bytes of an archive array in memory (its shape times its item size)."""
    meta = _metadata(array)
    return int(np.prod(meta["shape"], dtype=np.int64)) * np.dtype(meta["data_type"]).itemsize


def _variable(array: Path) -> tuple[xr.Variable, list[str]]:
    """An archive array in memory, and the names of its non-index coordinates."""
    meta = _metadata(array)
    attrs = dict(meta.get("attributes", {}))
    coordinates = attrs.pop("coordinates", "").split()
    return xr.Variable(tuple(meta["dimension_names"]), read_region(array), attrs), coordinates


def read_group(group: Path, names: Sequence[str]) -> xr.Dataset:
    """Variables ``names`` of a mosaic group and their coordinates, read into memory.

    What :func:`gpcube.open_archive` gives for them, loaded, without zarr-python and dask: the
    group's attrs, each variable's dims and attrs, its index coordinates (arrays named after its
    dims) and the coordinates that its ``coordinates`` attribute lists.
    """
    variables, coords = {}, {}
    for name in names:
        variables[name], extra = _variable(group / name)
        for coord in [*variables[name].dims, *extra]:
            if coord not in coords and (group / coord / "zarr.json").is_file():
                coords[coord] = _variable(group / coord)[0]
    return xr.Dataset(variables, coords=coords, attrs=read_group_attrs(group))


def _read_inputs(sources: list[tuple[Path, tuple[str, ...]]], method: str | None) -> xr.Dataset:
    """The estimator's inputs in memory (the ring's sums stacked for a ring background)."""
    first, *others = (read_group(group, names) for group, names in sources)
    if method in RING_METHODS:
        from gpcube.archive.ring import stacked_ring

        first = stacked_ring(first).drop_vars("alpha_counts_off")
    for other in others:
        first = first.assign({name: other[name] for name in other.data_vars})
    return first


def _open_inputs(path: Path, method: str | None) -> xr.Dataset:
    """The estimator's inputs, lazy (dask), as :func:`gpcube.open_archive` opens them."""
    from gpcube.pipeline import open_archive

    mosaic = open_archive(path)
    if method in RING_METHODS:  # ON counts, OFF and acceptances on the ring's bands
        ring = open_archive(path, ring=True).drop_vars("alpha_counts_off")
        mosaic = ring.assign(exposure=mosaic["exposure"]) if "exposure" in mosaic else ring
    return mosaic


def _write(path: Path, arrays: dict[str, xr.DataArray], attrs: dict, chunk: int) -> None:
    """Write the maps under a temporary name, swap them in for the ``significance`` group, consolidate."""
    tmp = path / f"_tmp-{SIGNIFICANCE}-{uuid.uuid4().hex[:12]}"
    try:
        write_dataarrays(tmp, arrays, attrs, chunk)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_group(tmp, path / SIGNIFICANCE)
    consolidate(path)
