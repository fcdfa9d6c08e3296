"""The mosaic as a sum over cutout slices, one task per mosaic chunk.

Each task owns one chunk of the mosaic: it reads, in obs_id order, the part of every observation's
cutout that overlaps the chunk, applies the observation's safe mask and adds it in, then writes the
chunk once. The order of the additions for a pixel is the obs_id order whatever the chunking or the
number of workers, so the bytes do not depend on them; no two tasks write the same chunk; and a task
holds one chunk of each product plus one observation's piece, not the mosaic.

What is summed (as in a stacked Gammapy ``MapDataset``):

* ``counts`` and ``background``: where the observation's ``mask_safe`` is True;
* ``exposure``: where any reco bin of the observation is safe at that pixel;
* ``mask_safe``: the OR of the observations' masks;
* ``edisp`` (coarse grid): the mean kernel weighted by ``exposure_irf``, the true-energy exposure
  where the observation is safe in any reco bin, which is summed too; the observations' kernels are
  zero in their unsafe reco bins, so each reco bin's kernel comes from the observations safe in it;
* ``psf`` (coarse grid): the mean weighted by ``exposure_psf``, the exposure that ends in safe reco
  bins (``exposure_irf`` for archives without it), which is summed too;
* ring products (``ring/``, on the ring's energy bands): ``counts``, ``counts_off``,
  ``alpha * counts_off`` (as ``alpha_counts_off``) and ``acceptance`` where the observation's ring
  ``mask_safe`` is True, and the OR of those masks; the stacked alpha and OFF acceptance follow
  from these sums (:func:`gpcube.workflow.ring.stacked_ring`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from gpcube.makers.registry import PRODUCTS, stored_dtypes
from gpcube.storage.nodes import ArrayWriter, read_region

__all__ = ["IRF_WEIGHTS", "Piece", "irf_chunk", "overlap", "ring_chunk", "sky_chunk"]

#: Accumulator types. Integers stay integers (summed in int64, stored as int32). Floats are summed in
#: float32, the type they are stored in (as a stacked Gammapy ``MapDataset`` sums them): a stored chunk
#: continued with observations that come later in obs_id order then holds the bytes of a full
#: rebuild, which is what lets the mosaic add observations without re-reading the old ones.
ACCUMULATE = {
    name: np.dtype(np.int64) if np.issubdtype(dtype, np.integer) else dtype
    for name, dtype in stored_dtypes().items()
    if PRODUCTS[name].grid == "sky"
}


class Piece(NamedTuple):
    """An observation's cutout: its group (a key of the archive) and its (y0, y1, x0, x1) box in the
    mosaic grid."""

    obs_id: int
    group: str
    box: tuple[int, int, int, int]


def overlap(
    box: Sequence[int], region: Sequence[int]
) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """Slices ``(in region, in box)`` of the overlap of two (y0, y1, x0, x1) boxes; None if disjoint."""
    y0, y1 = max(box[0], region[0]), min(box[1], region[1])
    x0, x1 = max(box[2], region[2]), min(box[3], region[3])
    if y0 >= y1 or x0 >= x1:
        return None
    target = (slice(y0 - region[0], y1 - region[0]), slice(x0 - region[2], x1 - region[2]))
    source = (slice(y0 - box[0], y1 - box[0]), slice(x0 - box[2], x1 - box[2]))
    return target, source


def _read(store, group: str, name: str, source: tuple[slice, ...]) -> np.ndarray:
    return read_region(store, f"{group}/{name}", (slice(None), *source))


def _add_sky(store, acc: dict, piece: Piece, target, source) -> None:
    """Add a piece to the accumulators, each by its product's rule (``Product.stack`` of the registry)."""
    mask = _read(store, piece.group, "mask_safe", source)
    at = (slice(None), *target)
    where = {"sum-safe": mask, "sum-any-safe": mask.any(axis=0)}
    for name, acc_array in acc.items():
        rule = PRODUCTS[name].stack
        values = mask if name == "mask_safe" else _read(store, piece.group, name, source)
        if rule == "or":
            acc_array[at] |= values
        elif rule in where:
            view = acc_array[at]
            np.add(view, values, out=view, where=where[rule])
        else:
            raise ValueError(f"sky product {name!r} has the stack rule {rule!r}, not one of a sky product")


def _write_region(store, out: str, arrays: dict[str, np.ndarray], region: Sequence[int]) -> None:
    """Write each ``(..., y, x)`` array over ``region`` (y0, y1, x0, x1) of its mosaic array."""
    for name, data in arrays.items():
        lead = tuple(slice(None) for _ in range(data.ndim - 2))
        ArrayWriter.open(store, f"{out}/{name}")[
            (*lead, slice(region[0], region[1]), slice(region[2], region[3]))
        ] = data


def _sum_chunk(
    store,
    out: str,
    sizes: dict,
    region: Sequence[int],
    pieces: Sequence[Piece],
    dtypes: dict,
    add,
    resume: bool = False,
) -> int:
    """Accumulators of ``dtypes`` over ``region``, ``add(store, acc, piece, target, source)`` for each
    overlapping piece in obs_id order, then one write; the number of pieces added.

    The accumulators start at zero, or with ``resume`` at the mosaic's stored values over ``region``
    (the pieces must then all come after those already summed there, in obs_id order).
    """
    ny, nx = region[1] - region[0], region[3] - region[2]
    if resume:
        at = (slice(None), slice(region[0], region[1]), slice(region[2], region[3]))
        acc = {name: read_region(store, f"{out}/{name}", at).astype(dtypes[name]) for name in sizes}
    else:
        acc = {name: np.zeros((size, ny, nx), dtype=dtypes[name]) for name, size in sizes.items()}
    used = 0
    for piece in sorted(pieces, key=lambda p: p.obs_id):
        hit = overlap(piece.box, region)
        if hit is not None:
            add(store, acc, piece, *hit)
            used += 1
    _write_region(store, out, acc, region)
    return used


def sky_chunk(
    store,
    out: str,
    names: Sequence[str],
    sizes: dict,
    region: Sequence[int],
    pieces: Sequence[Piece],
    resume: bool = False,
) -> int:
    """Sum the pieces overlapping ``region`` (y0, y1, x0, x1) into the chunk of each mosaic array of
    the group ``out``, reading the pieces (and, with ``resume``, the stored chunk) from ``store``.

    ``sizes`` gives each product's leading size (its energy axis); ``resume`` adds the pieces to the
    chunk's stored values instead of zeros. Returns the number of pieces added.
    """
    sizes = {name: sizes[name] for name in names}
    return _sum_chunk(store, out, sizes, region, pieces, ACCUMULATE, _add_sky, resume)


#: The weight of each IRF map's mean (:attr:`gpcube.makers.registry.Product.weight`): the PSF's is
#: ``exposure_psf`` where the observations have one (with an ``edisp`` map), else ``exposure_irf`` as
#: for the energy dispersion.
IRF_WEIGHTS = {name: p.weight for name, p in PRODUCTS.items() if p.stack == "mean"}


def irf_chunk(
    store, out: str, names: Sequence[str], shapes: dict, region: Sequence[int], pieces: Sequence[Piece]
) -> int:
    """Exposure-weighted means of the IRF maps over ``region`` of the coarse grid.

    ``names`` are the maps and their weights (``exposure_irf``, and ``exposure_psf`` if stored): each
    map is weighted by its weight of :data:`IRF_WEIGHTS`, and the weights are summed too. The
    observations' ``edisp`` kernels are zero in their unsafe reco bins (see
    :mod:`gpcube.workflow.recipe`), so the mean kernel of a reco bin is taken over the observations
    that are safe in it, while dividing by all the exposure: ``exposure * edisp`` of the stack is the
    sum of the observations' ``exposure * edisp`` in every reco bin.

    ``shapes`` gives each map's leading shape (e.g. ``(n_true, n_rad)`` for ``psf``). Sums and means
    are float32, the type they are stored in, and are formed in place one true-energy plane at a
    time: the PSF of a survey's coarse grid is 20 x 66 planes, and float64 sums with whole-array
    temporaries made this task the largest in memory of the job (~250 MB more than a sky chunk).
    """
    ny, nx = region[1] - region[0], region[3] - region[2]
    weights = {
        name: np.zeros((shapes[name][0], ny, nx), dtype=np.float32)
        for name in names
        if PRODUCTS[name].stack == "sum"
    }
    sums = {
        name: np.zeros((*shapes[name], ny, nx), dtype=np.float32) for name in names if name not in weights
    }
    weight_of = {name: IRF_WEIGHTS[name] if IRF_WEIGHTS[name] in weights else "exposure_irf" for name in sums}
    used = 0
    for piece in sorted(pieces, key=lambda p: p.obs_id):
        hit = overlap(piece.box, region)
        if hit is None:
            continue
        target, source = hit
        w = {name: _read(store, piece.group, name, source).astype(np.float32, copy=False) for name in weights}
        for name, acc in weights.items():
            acc[(slice(None), *target)] += w[name]
        for name, acc in sums.items():
            values = read_region(store, f"{piece.group}/{name}", (slice(None), slice(None), *source))
            view = acc[(slice(None), slice(None), *target)]
            for i, plane in enumerate(values):  # float32 product of one true-energy plane
                plane *= w[weight_of[name]][i]
                view[i] += plane
        used += 1
    for name, acc in sums.items():  # the means, in place: sum / weight where weighted, else 0
        weight = weights[weight_of[name]][:, None]
        np.divide(acc, weight, out=acc, where=weight > 0)
        np.copyto(acc, 0.0, where=~(weight > 0))
    _write_region(store, out, {**weights, **sums}, region)
    return used


#: What the mosaic's ring group holds, with accumulator and stored types.
RING_SUMS = {
    "counts": (np.int64, np.int32),
    "counts_off": (np.int64, np.int32),
    "alpha_counts_off": (np.float32, np.float32),
    "acceptance": (np.float32, np.float32),
    "mask_safe": (bool, bool),
}


def _add_ring(store, acc: dict, piece: Piece, target, source) -> None:
    at = (slice(None), *target)
    mask = _read(store, piece.group, "mask_safe", source)
    acc["mask_safe"][at] |= mask
    counts_off = _read(store, piece.group, "counts_off", source)
    terms = {
        "counts": _read(store, piece.group, "counts", source),
        "counts_off": counts_off,
        "alpha_counts_off": (_read(store, piece.group, "alpha", source) * counts_off).astype(np.float32),
        "acceptance": _read(store, piece.group, "acceptance", source),
    }
    for name, values in terms.items():
        view = acc[name][at]
        np.add(view, values, out=view, where=mask)


def ring_chunk(
    store,
    out: str,
    names: Sequence[str],
    sizes: dict,
    region: Sequence[int],
    pieces: Sequence[Piece],
    resume: bool = False,
) -> int:
    """Sum the ring products of the pieces overlapping ``region`` (see the module docstring); as
    :func:`sky_chunk`."""
    dtypes = {name: types[0] for name, types in RING_SUMS.items()}
    sizes = {name: sizes[name] for name in names}
    return _sum_chunk(store, out, sizes, region, pieces, dtypes, _add_ring, resume)
