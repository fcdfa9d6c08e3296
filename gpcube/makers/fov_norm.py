"""Field-of-view background normalisation: scale the predicted background to the observed counts.

Outside the exclusion regions (and inside the safe mask), the counts of an observation are assumed
to be background. The background model is scaled by ``norm = sum(counts) / sum(background)`` over
those pixels, for each *group* of reconstructed-energy bins:

``"all"``
    one group for the whole energy range (the reference's ``FoVBackgroundMaker(method="scale")``);
``"per-bin"``
    every energy bin on its own;
``{"min_counts": n}``
    consecutive bins merged from low energy up until a group holds at least ``n`` counts; a last
    group short of ``n`` joins the group below it.

A group whose counts are not above ``min_counts``, whose background is not above
``min_npred_background``, or whose norm is not finite gets norm NaN (the reference marks such an
observation unusable); ``fov_norm_ok`` says which.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import dask.array as da
import numpy as np
import xarray as xr

from gpcube.errors import GpcubeError
from gpcube.geom import SkyGeom
from gpcube.io import Observation
from gpcube.makers._lazy import DEFAULT_CHUNK, chunked_like, masked_sum
from gpcube.makers.background import make_map_background
from gpcube.makers.counts import make_map_counts
from gpcube.makers.exclusion import exclusion_mask_from_circles, exclusion_on

__all__ = [
    "energy_groups",
    "exclusion_mask_from_circles",
    "fov_norm_table",
    "make_map_background_fov_norm",
    "resolve_grouping",
]

#: Rows of the per-bin table returned by :func:`fov_norm_table`.
TABLE_ROWS = ("fov_norm", "fov_norm_group", "fov_norm_counts", "fov_norm_background", "fov_norm_ok")


def resolve_grouping(grouping: str | Mapping) -> dict:
    """A grouping scheme as a plain dict: ``{"scheme": "all" | "per-bin" | "min-counts", ...}``."""
    if grouping in ("all", "per-bin"):
        return {"scheme": grouping}
    if isinstance(grouping, Mapping) and set(grouping) == {"min_counts"}:
        value = grouping["min_counts"]
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise GpcubeError(f"grouping min_counts must be a positive integer, got {value!r}")
        return {"scheme": "min-counts", "min_counts": int(value)}
    raise GpcubeError(f"grouping must be 'all', 'per-bin' or {{'min_counts': n}}, got {grouping!r}")


def energy_groups(counts: np.ndarray, scheme: Mapping) -> np.ndarray:
    """Group index of each energy bin (consecutive bins share an index) for a resolved scheme."""
    n = len(counts)
    if scheme["scheme"] == "all":
        return np.zeros(n, dtype=np.int64)
    if scheme["scheme"] == "per-bin":
        return np.arange(n, dtype=np.int64)
    groups, current, total = np.zeros(n, dtype=np.int64), 0, 0
    for index, value in enumerate(counts):
        groups[index] = current
        total += value
        if total >= scheme["min_counts"] and index < n - 1:
            current, total = current + 1, 0
    if total < scheme["min_counts"] and current > 0:
        groups[groups == current] = current - 1
    return groups


def fov_norm_table(
    counts: np.ndarray,
    background: np.ndarray,
    scheme: Mapping,
    min_counts: float,
    min_npred_background: float,
) -> np.ndarray:
    """Per-bin ``(5, n_energy)`` table, rows :data:`TABLE_ROWS`, from masked per-bin sums."""
    groups = energy_groups(counts, scheme)
    group_counts = np.bincount(groups, weights=counts)[groups]
    group_background = np.bincount(groups, weights=background)[groups]
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = group_counts / group_background
    ok = np.isfinite(norm) & (group_counts > min_counts) & (group_background > min_npred_background)
    return np.stack([np.where(ok, norm, np.nan), groups, group_counts, group_background, ok])


def make_map_background_fov_norm(
    observation: Observation,
    geom: SkyGeom,
    *,
    exclusion_mask=None,
    mask_safe: xr.DataArray | None = None,
    grouping: str | Mapping = "all",
    min_counts: float = 0,
    min_npred_background: float = 0,
    counts: xr.DataArray | None = None,
    background: xr.DataArray | None = None,
    max_offset: float | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> xr.DataArray:
    """Predicted background scaled to the counts outside the exclusion regions, lazy.

    Parameters
    ----------
    observation : Observation
    geom : SkyGeom
        Mosaic geometry with an ``energy_reco`` axis.
    exclusion_mask : xarray.DataArray or sequence of circles, optional
        Boolean ``(y, x)`` mask on the mosaic geometry, True where pixels may be used (as made
        by :func:`exclusion_mask_from_circles`), or circles ``(lon, lat, radius)`` in deg in the
        geometry's frame, or ``(SkyCoord, radius)``. Default: nothing excluded.
    mask_safe : xarray.DataArray, optional
        Boolean ``(energy_reco, y, x)`` safe mask over the same cutout (e.g. from
        :func:`gpcube.makers.make_safe_mask`); pixels outside it are not used.
    grouping : {"all", "per-bin"} or {"min_counts": n}
        Energy grouping scheme (module docstring).
    min_counts, min_npred_background : float
        A group needs more counts and more predicted background than these.
    counts, background : xarray.DataArray, optional
        Products already made for this observation and cutout (else they are made here).
    max_offset : float, optional
        Cutout radius in deg around the pointing; default: the whole of ``geom``.
    chunk : int
        Block size in pixels along lon and lat.

    Returns
    -------
    xarray.DataArray
        ``background(energy_reco, y, x)`` times the norm of each bin's group, dask-backed. The
        per-bin coordinates ``fov_norm``, ``fov_norm_group``, ``fov_norm_counts`` (events used by
        the group), ``fov_norm_background`` and ``fov_norm_ok`` record the result; attrs record the
        scheme and the thresholds.

    See Also
    --------
    make_map_background : The background model's prediction.
    exclusion_mask_from_circles : An exclusion mask.

    Examples
    --------
    Outside a 0.3 deg circle around the Crab Nebula the normalised background predicts the counts:

    >>> import gpcube
    >>> from gpcube.data import example_data_dir
    >>> from gpcube.geom import EnergyAxis, SkyGeom
    >>> obs = gpcube.DataStore.from_dir(example_data_dir()).observation(23523)
    >>> axes = [EnergyAxis.log(0.5, 50, 4, "energy_reco")]
    >>> geom = SkyGeom.create((83.633, 22.014), binsz=0.05, width=4.0, axes=axes)
    >>> from gpcube.makers import (
    ...     exclusion_mask_from_circles, make_map_background_fov_norm, make_map_counts)
    >>> circles = [(83.633, 22.014, 0.3)]  # (lon, lat, radius) in deg
    >>> background = make_map_background_fov_norm(obs, geom, exclusion_mask=circles, max_offset=2.0)
    >>> counts = make_map_counts(obs, geom, max_offset=2.0)
    >>> outside = exclusion_mask_from_circles(counts.sky.geom, circles).values  # on the cutout
    >>> n_counts, n_background = counts.values.sum(axis=0), background.values.sum(axis=0)
    >>> int(n_counts[outside].sum()), round(float(n_background[outside].sum()), 6)
    (4763, 4763.0)
    >>> background.attrs["fov_norm_scheme"]  # one norm for all energies
    'all'
    """
    scheme = resolve_grouping(grouping)
    if counts is None:
        counts = make_map_counts(observation, geom, max_offset=max_offset, chunk=chunk)
    if background is None:
        background = make_map_background(observation, geom, max_offset=max_offset, chunk=chunk)
    mask = exclusion_on(exclusion_mask, background)
    if mask_safe is not None:
        mask = chunked_like(mask, mask_safe) & mask_safe
    summed_counts = masked_sum(counts, mask)
    summed_background = masked_sum(background, mask)
    n = background.sizes["energy_reco"]
    table_of = functools.partial(
        fov_norm_table, scheme=scheme, min_counts=min_counts, min_npred_background=min_npred_background
    )
    summed = [x if hasattr(x, "__dask_graph__") else da.from_array(x, chunks=-1)
              for x in (summed_counts, summed_background)]  # fmt: skip
    # one task from the two sums (dask.array.blockwise: dask's array query planning has no from_delayed)
    table = da.blockwise(
        table_of, "ri", summed[0], "i", summed[1], "i", new_axes={"r": len(TABLE_ROWS)},
        concatenate=True, dtype=np.float64, meta=np.empty((0, 0), dtype=np.float64),
    )  # fmt: skip
    assert table.shape == (len(TABLE_ROWS), n)
    result = background * xr.DataArray(table[0], dims=("energy_reco",))
    for row, name in enumerate(TABLE_ROWS):
        values = table[row].astype(bool) if name == "fov_norm_ok" else table[row]
        result = result.assign_coords({name: ("energy_reco", values)})
    result.attrs = {
        **background.attrs,
        "product": "background_fov_norm",
        "fov_norm_scheme": scheme["scheme"],
        "fov_norm_min_counts_per_group": scheme.get("min_counts", 0),
        "fov_norm_min_counts": min_counts,
        "fov_norm_min_npred_background": min_npred_background,
    }
    return result.rename("background")
