"""The significance maps of an archive's mosaic (``gpcube significance``), in its ``significance`` group.

:func:`gpcube.estimators.estimate_excess_map` runs on the mosaic: with a ring background
(``background.method`` ``ring`` or ``adaptive_ring``) on the stacked ring products of
``mosaic/ring`` (:func:`gpcube.workflow.ring.stacked_ring`), otherwise on the mosaic's counts and
background; the mosaic's exposure gives the flux, folded through the stacked energy-dispersion kernels
of ``mosaic/irf`` when the job made them (``edisp`` among the products). The default energy bands are
the ring's own bands (``background.<method>.energy_edges``) with a ring background, else one band over
all reco bins. The maps are on the dim ``energy_band`` (coords ``energy_band_lo``/``_hi``), one entry
per band, as the ring products' bands are. They are stored as float32 and committed in one commit,
replacing earlier ones.

A mosaic whose inputs take at most :data:`IN_MEMORY_BYTES` as stored (the 36-run H.E.S.S. survey,
10 x 456 x 1643 pixels with 20 true-energy bins, takes ~70 MB) is read into memory with the
archive's own reader and its maps are computed and written with numpy, without dask or zarr-python:
their graphs and metadata cost more than the arithmetic at that size. A larger mosaic is opened
lazily (:func:`gpcube.open_archive`) and computed chunk by chunk, so that memory stays at a few
chunks whatever its size. Both give the same maps.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import xarray as xr

from gpcube.errors import GpcubeError
from gpcube.estimators import estimate_excess_map
from gpcube.estimators.bands import band_edges_of
from gpcube.geom import BAND_DIM
from gpcube.geom.world import attach_world_coords
from gpcube.makers.registry import ring_methods
from gpcube.storage.groups import write_dataarrays
from gpcube.storage.layout import MOSAIC, RING, SIGNIFICANCE, mosaic_attrs, now, open_readonly, root_attrs
from gpcube.storage.nodes import (
    array_layout,
    delete,
    exists,
    read_array_attrs,
    read_array_dims,
    read_group_attrs,
    read_region,
)
from gpcube.storage.repository import Archive, ArchiveConflict, as_archive, fault_point

__all__ = ["IN_MEMORY_BYTES", "SIGNIFICANCE", "significance"]

#: The archive's group of the significance maps.
#: Mosaics whose inputs take at most this many bytes (as stored) are computed in memory.
IN_MEMORY_BYTES = 256 << 20
#: How many times the maps are made again when another run committed to the archive meanwhile.
ATTEMPTS = 5
#: Background methods whose mosaic has ring products (``mosaic/ring``).
RING_METHODS = ring_methods()
#: What the estimator may read of the mosaic; of the ring group; of the mosaic next to the ring's.
MOSAIC_INPUTS = ("counts", "mask_safe", "background", "counts_off", "alpha", "acceptance", "acceptance_off",
                 "exposure")  # fmt: skip
RING_INPUTS = ("counts", "counts_off", "alpha_counts_off", "acceptance", "mask_safe")
RING_EXTRA_INPUTS = ("exposure",)
#: The stacked kernels that the flux folds the power law through, in ``mosaic/irf``.
IRF_GROUP, IRF_INPUTS = f"{MOSAIC}/irf", ("edisp",)


def significance(
    archive: Archive | str | os.PathLike,
    radius: float,
    *,
    energy_edges=None,
    spectral_index: float = 2.0,
    correlate_off: bool = True,
    in_memory: bool | None = None,
    storage_options: Mapping | None = None,
) -> xr.Dataset:
    """Excess, significance and flux maps of the mosaic, written to the archive's ``significance`` group.

    The statistic follows the archive's background: Li & Ma (ON/OFF) with the ring products for
    ``ring`` and ``adaptive_ring``, Cash against the background otherwise (see
    :func:`gpcube.estimators.estimate_excess_map` for the other parameters and the definitions). The
    flux folds the power law through the mosaic's stacked edisp kernels if it has them.
    The maps are made from one snapshot of the archive and committed in one commit, replacing earlier
    ones (made again from the new snapshot if another run committed meanwhile, :data:`ATTEMPTS` times
    at most). Also ``gpcube.workflow.pipeline.significance``.

    Parameters
    ----------
    energy_edges : sequence of float, optional
        Band edges in TeV, each a reco bin edge. Default: the ring's own bands with a ring background
        (the bands its OFF counts and alpha were made on), else one band over all reco bins.
    in_memory : bool, optional
        Read the inputs into memory and compute with numpy (True), or lazily with dask (False);
        default: in memory if they take at most :data:`IN_MEMORY_BYTES` as stored.

    Returns
    -------
    xarray.Dataset
        The maps as written: in memory when computed so, else lazy, opened from the archive.

    See Also
    --------
    gpcube.estimators.estimate_excess_map : The estimator.
    gpcube.open_archive : Opens the maps again (``significance=True``).

    Examples
    --------
    >>> from gpcube.data import example_data_dir
    >>> from gpcube.workflow.config import parse_config
    >>> config = parse_config({  # the 4 Crab runs on a small mosaic
    ...     "data": {"store": str(example_data_dir())},
    ...     "geom": {"center": [83.633, 22.014], "width": 3.0, "binsz": 0.05,
    ...              "energy_reco": {"min": 0.5, "max": 50, "nbins": 4},
    ...              "energy_true": {"min": 0.3, "max": 100, "nbins": 8}},
    ...     "output": "crab.zarr",
    ... })
    >>> from gpcube.workflow.pipeline import run
    >>> report = run(config, progress=False)
    >>> from gpcube.workflow.significance import significance
    >>> maps = significance(config.output, radius=0.1)
    >>> sorted(maps.data_vars), maps["sqrt_ts"].shape, maps.attrs["statistic"]
    (['background', 'counts', 'excess', 'flux', 'sqrt_ts'], (1, 60, 60), 'cash')
    >>> float(maps["sqrt_ts"].max()) > 25  # the Crab Nebula
    True
    """
    archive = as_archive(archive, storage_options)
    open_readonly(archive)  # a clear error if it is not an archive
    options = {"energy_edges": energy_edges, "spectral_index": spectral_index, "correlate_off": correlate_off}
    for _ in range(ATTEMPTS):
        try:
            return _significance(archive, radius, in_memory, options)
        except ArchiveConflict:
            continue  # another run committed maps (or a mosaic) meanwhile: make them from the new snapshot
    raise GpcubeError(f"the archive changed under {ATTEMPTS} attempts to write its significance maps: run "
                      "again", path=archive.location)  # fmt: skip


def _significance(archive: Archive, radius: float, in_memory: bool | None, options: dict) -> xr.Dataset:
    """One attempt of :func:`significance`: read a snapshot, write the maps, commit."""
    session = archive.writable()
    store = session.store
    attrs = root_attrs(store)
    mosaic = mosaic_attrs(store)
    if mosaic is None:
        raise GpcubeError(
            "the archive has no complete mosaic yet: run `gpcube mosaic`", path=archive.location
        )
    method = (attrs.get("analysis") or {}).get("background", {}).get("method")
    sources = _sources(store, method)
    if in_memory is None:
        stored = sum(_stored_bytes(store, f"{group}/{name}") for group, names in sources for name in names)
        in_memory = stored <= IN_MEMORY_BYTES
    inputs = _read_inputs(store, sources, method) if in_memory else _open_inputs(archive, session, method)
    if options["energy_edges"] is None and method in RING_METHODS:
        options = {**options, "energy_edges": _ring_band_edges(inputs)}
    edisp = _edisp(store) if "exposure" in inputs.data_vars else None
    maps = estimate_excess_map(inputs, radius, edisp=edisp, **options)
    arrays = {name: var.astype("float32", keep_attrs=True) for name, var in maps.data_vars.items()}
    maps_attrs = {**maps.attrs, "background_method": method, "made_at": now()}
    if exists(store, SIGNIFICANCE):
        delete(store, SIGNIFICANCE)
    write_dataarrays(store, SIGNIFICANCE, arrays, maps_attrs, int(mosaic.get("chunk", 256)))
    fault_point("significance:commit")
    snapshot = archive.commit(session, "significance maps")
    if not in_memory:
        from gpcube.workflow.open import open_archive

        return open_archive(archive, significance=True, snapshot=snapshot)
    written = read_group(archive.readonly(snapshot).store, SIGNIFICANCE, arrays)
    written.attrs.setdefault(
        "archive", {"path": archive.location, "snapshot": snapshot, "analysis": attrs.get("analysis")}
    )
    return written


def _sources(store, method: str | None) -> list[tuple[str, tuple[str, ...]]]:
    """The groups and variables that the estimator reads (those of the lists that the groups have)."""
    if method not in RING_METHODS:
        return [(MOSAIC, _present(store, MOSAIC, MOSAIC_INPUTS))]
    ring = f"{MOSAIC}/{RING}"
    if not exists(store, ring):
        raise GpcubeError(f"the archive has no group {ring!r}")
    return [(ring, _present(store, ring, RING_INPUTS)), (MOSAIC, _present(store, MOSAIC, RING_EXTRA_INPUTS))]


def _edisp(store) -> xr.DataArray | None:
    """The mosaic's stacked edisp kernels (coarse grid, small: read into memory), or None."""
    if not _present(store, IRF_GROUP, IRF_INPUTS):
        return None
    return read_group(store, IRF_GROUP, IRF_INPUTS)["edisp"]


def _present(store, group: str, names: Iterable[str]) -> tuple[str, ...]:
    return tuple(name for name in names if exists(store, f"{group}/{name}"))


def _ring_band_edges(inputs: xr.Dataset) -> list[float]:
    """The edges of the ring's energy bands (``energy_band`` of the ring products, contiguous)."""
    lo, hi = band_edges_of(inputs, BAND_DIM)
    return [*map(float, lo), float(hi[-1])]


def _stored_bytes(store, array: str) -> int:
    """The bytes of an archive array in memory (its shape times its item size)."""
    shape, dtype = array_layout(store, array)[:2]
    return int(np.prod(shape, dtype=np.int64)) * dtype.itemsize


def _variable(store, array: str) -> tuple[xr.Variable, list[str]]:
    """An archive array in memory, and the names of its non-index coordinates."""
    attrs = dict(read_array_attrs(store, array))
    coordinates = attrs.pop("coordinates", "").split()
    return xr.Variable(read_array_dims(store, array), read_region(store, array), attrs), coordinates


def read_group(store, group: str, names: Sequence[str]) -> xr.Dataset:
    """Variables ``names`` of a mosaic group and their coordinates, read into memory.

    What :func:`gpcube.open_archive` gives for them, loaded, without zarr-python and dask: the
    group's attrs, each variable's dims and attrs, its index coordinates (arrays named after its
    dims), the coordinates that its ``coordinates`` attribute lists and the lazy world coordinates
    of the group's grid (``lon``/``lat``).
    """
    variables, coords = {}, {}
    for name in names:
        variables[name], extra = _variable(store, f"{group}/{name}")
        for coord in [*variables[name].dims, *extra]:
            if coord not in coords and exists(store, f"{group}/{coord}"):
                coords[coord] = _variable(store, f"{group}/{coord}")[0]
    return attach_world_coords(xr.Dataset(variables, coords=coords, attrs=read_group_attrs(store, group)))


def _read_inputs(store, sources: list[tuple[str, tuple[str, ...]]], method: str | None) -> xr.Dataset:
    """The estimator's inputs in memory (the ring's sums stacked for a ring background)."""
    first, *others = (read_group(store, group, names) for group, names in sources)
    if method in RING_METHODS:
        from gpcube.workflow.ring import stacked_ring

        first = stacked_ring(first).drop_vars("alpha_counts_off")
    for other in others:
        first = first.assign({name: other[name] for name in other.data_vars})
    return first


def _open_inputs(archive: Archive, session, method: str | None) -> xr.Dataset:
    """The estimator's inputs, lazy (dask), as :func:`gpcube.open_archive` opens them (same snapshot)."""
    from gpcube.workflow.open import open_archive

    mosaic = open_archive(archive, snapshot=session.snapshot_id)
    if method in RING_METHODS:  # ON counts, OFF and acceptances on the ring's bands
        ring = open_archive(archive, ring=True, snapshot=session.snapshot_id).drop_vars("alpha_counts_off")
        mosaic = ring.assign(exposure=mosaic["exposure"]) if "exposure" in mosaic else ring
    return mosaic
