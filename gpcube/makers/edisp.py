"""Energy-dispersion kernels: the migration integrated into (energy_true -> energy_reco) bins.

The kernel ``K[i, j]`` is the probability that an event of true energy ``E_i`` (the log-centre of
true bin ``i``) is reconstructed in reco bin ``j = [E'_j, E'_j+1)``. The migration table of the IRF
is a histogram in ``migra = E_reco / E_true``: its value at a migra node is taken as the constant
probability density across that migra bin, so the integral over a reco bin is exact: the
cumulative histogram, linear inside each migra bin, evaluated at ``E'_j / E_i`` and ``E'_j+1 / E_i``.
By default each kernel is normalised by the total migration probability of its true energy.

The IRF is interpolated (by :mod:`gpcube.irf.interp`) in true energy and offset only; since that
interpolation is linear in offset between the IRF's offset nodes and the integral over migra is
linear, the un-normalised integrals at any offset between two nodes are the linear interpolation of
those at the nodes. They are therefore computed once per observation on a small table of offsets (the
nodes, plus a fine grid where the rule extrapolates and clips beyond the outer nodes) and
interpolated per pixel. See ``docs/makers_edisp.rst``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import xarray as xr

from gpcube.errors import GpcubeError
from gpcube.geom import EnergyAxis, SkyGeom
from gpcube.geom.frames import convert_frame
from gpcube.io import Observation
from gpcube.io.gadf import require_full_enclosure
from gpcube.irf import evaluate
from gpcube.irf.interp import axis_weights
from gpcube.makers._cutout import observation_cube
from gpcube.makers._lazy import DEFAULT_CHUNK

__all__ = [
    "KernelTable",
    "KernelZone",
    "KernelZone",
    "edisp_kernels",
    "fold_kernels",
    "interp_kernels",
    "kernel_table",
    "make_edisp_kernel_map",
    "migration_integrals",
]


class KernelZone(NamedTuple):
    """Integrals beyond an outer offset node, where the rule extrapolates linearly and clips at 0.

    At ``delta`` deg beyond ``start`` (away from the nodes) the migration in migra bin ``m`` is
    ``max(0, a_m + b_m delta)``: a linear term until its zero crossing ``delta_m = -a_m / b_m``. With
    the crossings sorted per true energy, the integral over any reco bin is
    ``S_a[q] + delta S_b[q]``, with ``q`` the number of crossings below ``delta`` and ``S`` the sums of
    the still-active terms.
    """

    #: Offset (deg) of the outer node the zone starts at.
    start: float
    #: +1 for the zone above the last node, -1 below the first.
    direction: int
    #: ``(n_true, n_migra)`` zero crossings in deg beyond ``start``, sorted per true energy (inf: none).
    crossings: np.ndarray
    #: ``(n_true, n_migra + 1, n_reco + 1)`` sums of the active constant terms; last column: totals.
    sum_a: np.ndarray
    #: Same for the slopes.
    sum_b: np.ndarray


class KernelTable(NamedTuple):
    """Un-normalised kernel integrals at the offset nodes and in the outer zones (see interp_kernels)."""

    #: IRF offset nodes (deg), increasing.
    nodes: np.ndarray
    #: ``(n_node, n_true, n_reco + 1)`` migration probability inside each reco bin; last column: the
    #: total over the whole migra axis.
    integrals: np.ndarray
    #: The zones between the outer nodes and the outer offset edges.
    zones: tuple[KernelZone, ...]
    #: Outer offset edges (deg) of the IRF; kernels are 0 beyond them.
    offset_edges: tuple[float, float]
    #: Divide the integrals by the totals.
    normalize: bool


def _edges(axis: EnergyAxis | np.ndarray) -> np.ndarray:
    return axis.edges if isinstance(axis, EnergyAxis) else np.asarray(axis, dtype=float)


def _migra_edges(edisp: xr.Dataset) -> np.ndarray:
    lo, hi = edisp["migra_lo"].values, edisp["migra_hi"].values
    if not np.allclose(lo[1:], hi[:-1], rtol=1e-6, atol=0):
        raise GpcubeError("the migra bins of the energy dispersion are not contiguous")
    return np.append(lo, hi[-1])


def migration_integrals(
    density: np.ndarray, migra_edges: np.ndarray, migra_at_reco_edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Integrate a migration histogram over reco-energy bins.

    Parameters
    ----------
    density : ndarray
        ``(..., n_true, n_migra)`` probability per unit migra, constant inside each migra bin.
    migra_edges : ndarray
        ``(n_migra + 1,)`` migra bin edges, increasing.
    migra_at_reco_edges : ndarray
        ``(n_true, n_reco + 1)`` the reco bin edges divided by each true energy.

    Returns
    -------
    integrals : ndarray
        ``(..., n_true, n_reco)`` probability of a migra inside each reco bin (clipped at 0).
    totals : ndarray
        ``(..., n_true)`` probability over the whole migra axis.
    """
    mass = density * np.diff(migra_edges)
    cumulative = np.concatenate([np.zeros_like(mass[..., :1]), np.cumsum(mass, axis=-1)], axis=-1)
    x = np.clip(migra_at_reco_edges, migra_edges[0], migra_edges[-1])
    k = np.clip(np.searchsorted(migra_edges, x, side="right") - 1, 0, len(migra_edges) - 2)
    rows = np.arange(x.shape[0])[:, None]
    at_edges = cumulative[..., rows, k] + (x - migra_edges[k]) * density[..., rows, k]
    return np.clip(np.diff(at_edges, axis=-1), 0.0, None), cumulative[..., -1]


def _normalise(integrals: np.ndarray, totals: np.ndarray, normalize: bool) -> np.ndarray:
    if not normalize:
        return integrals
    with np.errstate(divide="ignore", invalid="ignore"):
        kernels = integrals / totals[..., None]
    return np.where(totals[..., None] > 0, kernels, 0.0)


def _integrals_at(edisp: xr.Dataset, energy_true, energy_reco, offsets: np.ndarray):
    """Un-normalised integrals ``(n_offset, n_true, n_reco)`` and totals at 1-D ``offsets``."""
    true_centres = np.sqrt(_edges(energy_true)[:-1] * _edges(energy_true)[1:])
    migra_edges = _migra_edges(edisp)
    density = evaluate(
        edisp,
        energy_true=true_centres[None, :, None],
        migra=edisp["migra"].values[None, None, :],
        offset=offsets[:, None, None],
    )
    migra_at = _edges(energy_reco)[None, :] / true_centres[:, None]
    return migration_integrals(density, migra_edges, migra_at)


def edisp_kernels(
    edisp: xr.Dataset,
    energy_true: EnergyAxis | np.ndarray,
    energy_reco: EnergyAxis | np.ndarray,
    offsets: np.ndarray,
    *,
    normalize: bool = True,
) -> np.ndarray:
    """Energy-dispersion kernels at given offsets, evaluating the migration directly at each one.

    Parameters
    ----------
    edisp : xarray.Dataset
        An ``edisp_2d`` IRF (``observation.edisp``).
    energy_true, energy_reco : EnergyAxis or ndarray
        The axes, or their bin edges in TeV; kernels are computed at the true-bin log-centres.
    offsets : array_like
        Offsets from the pointing in deg, any shape.
    normalize : bool
        Divide by the total migration probability of each true energy (as the reference does).

    Returns
    -------
    ndarray
        ``(*offsets.shape, n_true, n_reco)``: probability of reconstruction in each reco bin; 0 beyond
        the IRF's outer offset edges.
    """
    offsets = np.asarray(offsets, dtype=float)
    integrals, totals = _integrals_at(edisp, energy_true, energy_reco, offsets.ravel())
    kernels = _normalise(integrals, totals, normalize)
    return kernels.reshape(*offsets.shape, *kernels.shape[1:])


def _migra_weights(migra_edges: np.ndarray, migra_at_reco_edges: np.ndarray) -> np.ndarray:
    """``(n_true, n_migra, n_reco + 1)``: length of each migra bin inside each reco bin; last: its width."""
    x = np.clip(migra_at_reco_edges, migra_edges[0], migra_edges[-1])[:, None, :]
    low = np.maximum(x[..., :-1], migra_edges[:-1, None])
    high = np.minimum(x[..., 1:], migra_edges[1:, None])
    widths = np.broadcast_to(np.diff(migra_edges)[None, :, None], (x.shape[0], len(migra_edges) - 1, 1))
    return np.concatenate([np.clip(high - low, 0.0, None), widths], axis=-1)


def _migration_at_nodes(edisp: xr.Dataset, true_centres: np.ndarray) -> np.ndarray:
    """``(n_true, n_migra, n_node)``: the table interpolated linearly in log true energy, not clipped.

    0 for true energies beyond the IRF's outer edges, as in :mod:`gpcube.irf.interp`.
    """
    table = edisp["migration"].transpose("energy_true", "migra", "offset").values
    index, weight = axis_weights(edisp["energy_true"].values, true_centres, log=True)
    upper = np.minimum(index + 1, table.shape[0] - 1)
    values = table[index] * (1.0 - weight)[:, None, None] + table[upper] * weight[:, None, None]
    low, high = edisp["energy_true_lo"].values[0], edisp["energy_true_hi"].values[-1]
    return np.where(((true_centres >= low) & (true_centres <= high))[:, None, None], values, 0.0)


def _zone(start: float, direction: int, a: np.ndarray, b: np.ndarray, weights: np.ndarray) -> KernelZone:
    """The :class:`KernelZone` of terms ``max(0, a + b delta)`` (``a``, ``b``: ``(n_true, n_migra)``)."""
    a = np.clip(a, 0.0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        crossings = np.where(b < 0, a / -b, np.inf)
    order = np.argsort(crossings, axis=1, kind="stable")
    rows = np.arange(a.shape[0])[:, None]
    sums = []
    for coefficient in (a, b):
        terms = (coefficient[..., None] * weights)[rows, order]
        suffix = np.cumsum(terms[:, ::-1], axis=1)[:, ::-1]
        sums.append(np.concatenate([suffix, np.zeros_like(suffix[:, :1])], axis=1))
    return KernelZone(start, direction, crossings[rows, order], *sums)


def _zone_integrals(zone: KernelZone, offset: np.ndarray) -> np.ndarray:
    """``(n_offset, n_true, n_reco + 1)`` integrals at 1-D ``offset`` inside ``zone``."""
    delta = (offset - zone.start) * zone.direction
    out = np.empty((len(offset), *zone.sum_a[:, 0].shape))
    for i in range(zone.crossings.shape[0]):
        q = np.searchsorted(zone.crossings[i], delta, side="right")
        out[:, i] = zone.sum_a[i, q] + delta[:, None] * zone.sum_b[i, q]
    return np.clip(out, 0.0, None)


def kernel_table(
    edisp: xr.Dataset,
    energy_true: EnergyAxis | np.ndarray,
    energy_reco: EnergyAxis | np.ndarray,
    *,
    normalize: bool = True,
) -> KernelTable:
    """Kernel integrals at the IRF's offset nodes, and their exact form beyond the outer nodes.

    Parameters are those of :func:`edisp_kernels`. :func:`interp_kernels` then gives the kernels at
    any offset, equal to :func:`edisp_kernels` to rounding (for true-energy centres inside the IRF's
    outer true-energy nodes; see ``docs/makers_edisp.rst``).
    """
    nodes = edisp["offset"].values.astype(float)
    edges = (float(edisp["offset_lo"].values[0]), float(edisp["offset_hi"].values[-1]))
    true_centres = np.sqrt(_edges(energy_true)[:-1] * _edges(energy_true)[1:])
    weights = _migra_weights(_migra_edges(edisp), _edges(energy_reco)[None, :] / true_centres[:, None])
    values = _migration_at_nodes(edisp, true_centres)
    integrals = np.einsum("imn,imj->nij", np.clip(values, 0.0, None), weights)
    zones = []
    for end, direction, outer, inner in ((edges[1], 1, -1, -2), (max(edges[0], 0.0), -1, 0, 1)):
        if (end - nodes[outer]) * direction <= 0:
            continue
        slope = np.zeros_like(values[..., 0])
        if len(nodes) > 1:
            slope = (values[..., outer] - values[..., inner]) / abs(nodes[outer] - nodes[inner])
        zones.append(_zone(nodes[outer], direction, values[..., outer], slope, weights))
    return KernelTable(nodes, integrals, tuple(zones), edges, normalize)


def interp_kernels(table: KernelTable, offset: np.ndarray) -> np.ndarray:
    """Kernels at any offsets from a :class:`KernelTable`.

    Parameters
    ----------
    table : KernelTable
        From :func:`kernel_table`.
    offset : array_like
        Offsets in deg, any shape; NaN allowed (kernel 0).

    Returns
    -------
    ndarray
        ``(*offset.shape, n_true, n_reco)``: linear interpolation between the nodes, the exact
        clipped extrapolation between the outer nodes and edges, 0 beyond the edges.
    """
    offset = np.asarray(offset, dtype=float)
    flat = offset.ravel()
    nodes = table.nodes
    integrals = np.zeros((len(flat), *table.integrals.shape[1:]))
    inside = (flat >= nodes[0]) & (flat <= nodes[-1])
    index, weight = axis_weights(nodes, flat[inside])
    upper = np.minimum(index + 1, len(nodes) - 1)
    w = weight[:, None, None]
    integrals[inside] = table.integrals[index] * (1.0 - w) + table.integrals[upper] * w
    low, high = table.offset_edges
    for zone in table.zones:
        selected = ((flat - zone.start) * zone.direction > 0) & (flat >= low) & (flat <= high)
        integrals[selected] = _zone_integrals(zone, flat[selected])
    kernels = _normalise(integrals[..., :-1], integrals[..., -1], table.normalize)
    return kernels.reshape(*offset.shape, *kernels.shape[1:])


def fold_kernels(table: KernelTable, offset: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum_i weights[p, i] K[p, i, j]`` at 1-D offsets, without forming every pixel's kernel.

    Equal to ``np.einsum("pi,pij->pj", weights, interp_kernels(table, offset))``, but between nodes the
    sum is two small matrix products per node interval (the integrals are linear in offset there).

    Parameters
    ----------
    table : KernelTable
        From :func:`kernel_table`.
    offset : ndarray
        ``(n_pix,)`` offsets in deg.
    weights : ndarray
        ``(n_pix, n_true)`` weight of each true bin at each pixel.

    Returns
    -------
    ndarray
        ``(n_pix, n_reco)``.
    """
    nodes, integrals = table.nodes, table.integrals
    out = np.zeros((len(offset), integrals.shape[-1] - 1))
    inside = np.flatnonzero((offset >= nodes[0]) & (offset <= nodes[-1]))
    index, t = axis_weights(nodes, offset[inside])
    upper = np.minimum(index + 1, len(nodes) - 1)
    totals = integrals[index, :, -1] * (1.0 - t)[:, None] + integrals[upper, :, -1] * t[:, None]
    scaled = _normalise(weights[inside][..., None], totals, table.normalize)[..., 0]
    for k in np.unique(index):
        sel = index == k
        low, high = (1.0 - t[sel])[:, None] * scaled[sel], t[sel][:, None] * scaled[sel]
        out[inside[sel]] = low @ integrals[k, :, :-1] + high @ integrals[min(k + 1, len(nodes) - 1), :, :-1]
    low, high = table.offset_edges
    zone = ((offset < nodes[0]) | (offset > nodes[-1])) & (offset >= low) & (offset <= high)
    outside = np.flatnonzero(zone)
    if outside.size:
        kernels = interp_kernels(table, offset[outside])
        out[outside] = np.einsum("pi,pij->pj", weights[outside], kernels)
    return out


def _load_kernels(
    observation: Observation, geom: SkyGeom, true_axis: EnergyAxis, reco_axis: EnergyAxis, *, normalize: bool
):
    edisp = require_full_enclosure(observation.edisp, "energy-dispersion kernel map")
    table = kernel_table(edisp, true_axis, reco_axis, normalize=normalize)
    pointing = convert_frame(observation.pointing.ra, observation.pointing.dec, "icrs", geom.frame)
    return table, (float(pointing[0]), float(pointing[1]))


def _kernel_block(loaded, block_geom: SkyGeom) -> np.ndarray:
    table, pointing = loaded
    kernels = interp_kernels(table, block_geom.separation(*pointing))
    return np.moveaxis(kernels, (0, 1), (2, 3))


def make_edisp_kernel_map(
    observation: Observation,
    geom: SkyGeom,
    *,
    binsz_irf: float = 0.2,
    max_offset: float | None = None,
    normalize: bool = True,
    chunk: int = DEFAULT_CHUNK,
) -> xr.DataArray:
    """Energy-dispersion kernels of one observation on the coarse IRF grid, lazy, over its cutout.

    Parameters
    ----------
    observation : Observation
        The observation; its energy dispersion is read when the result is computed.
    geom : SkyGeom
        Mosaic geometry with ``energy_true`` and ``energy_reco`` axes; the kernels live on
        ``geom.to_binsz(binsz_irf)``.
    binsz_irf : float
        Pixel size in deg of the coarse grid.
    max_offset : float, optional
        Cutout radius in deg around the pointing; default: the whole coarse grid.
    normalize : bool
        Normalise each kernel to the total migration probability of its true energy.
    chunk : int
        Block size in coarse pixels along lon and lat.

    Returns
    -------
    xarray.DataArray
        ``edisp(energy_true, energy_reco, irf_y, irf_x)``, dimensionless, float64, dask-backed:
        the probability that an event of true energy ``energy_true`` (bin log-centre) at that pixel is
        reconstructed in the reco bin. ``attrs["energy_type"]`` is ``"true->reco"``.

    See Also
    --------
    make_map_exposure_reco_energy : Folds the exposure through the kernels.
    gpcube.irf.evaluate : The migration density at any point.

    Examples
    --------
    >>> import gpcube
    >>> from gpcube.data import example_data_dir
    >>> from gpcube.geom import EnergyAxis, SkyGeom
    >>> obs = gpcube.DataStore.from_dir(example_data_dir()).observation(23523)
    >>> axes = [EnergyAxis.log(0.5, 50, 4, "energy_reco"), EnergyAxis.log(0.3, 100, 8, "energy_true")]
    >>> geom = SkyGeom.create((83.633, 22.014), binsz=0.05, width=4.0, axes=axes)
    >>> from gpcube.makers import make_edisp_kernel_map
    >>> edisp = make_edisp_kernel_map(obs, geom, binsz_irf=0.2, max_offset=2.0)
    >>> edisp.shape  # (energy_true, energy_reco, ny, nx) on the 0.2 deg grid
    (8, 4, 18, 20)

    The probability that an event of each true energy is reconstructed within 0.5 to 50 TeV:

    >>> edisp.values[:, :, 9, 10].sum(axis=1).round(2)
    array([0.93, 1.  , 1.  , 1.  , 1.  , 1.  , 0.97, 0.04])
    """
    attrs = {"energy_type": "true->reco", "binsz_irf": float(binsz_irf), "normalize": int(normalize)}
    return observation_cube(
        observation, geom.to_binsz(binsz_irf), product="edisp", axis_name=("energy_true", "energy_reco"),
        units="", load=functools.partial(_load_kernels, normalize=normalize), block=_kernel_block,
        dtype=np.float64, max_offset=max_offset, chunk=chunk, attrs=attrs,
    )  # fmt: skip
