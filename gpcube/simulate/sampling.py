"""Vectorised sampling primitives: sorted uniforms, inverse CDFs on grids, power laws, sky offsets.

Everything here is a pure numpy function of a :class:`numpy.random.Generator` and arrays, so the
samplers built on it are reproducible draw for draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpcube.irf.interp import axis_weights

__all__ = [
    "GroupedCdf",
    "destination",
    "power_law_integral",
    "power_law_sample",
    "sample_flat_cdf",
    "separation",
    "sorted_uniforms",
]


def sorted_uniforms(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` uniform variates on (0, 1) in increasing order, in O(n) (normalised exponential spacings)."""
    spacings = rng.standard_exponential(n + 1)
    cumulative = np.cumsum(spacings)
    return cumulative[:-1] / cumulative[-1]


def sample_flat_cdf(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Cell index of each ``u`` for a flat cumulative distribution ``cdf`` (last value 1).

    ``u`` sorted makes this much faster (numpy's binary search starts from the previous key).
    """
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


def power_law_integral(lo: np.ndarray, hi: np.ndarray, index: float, reference: float = 1.0) -> np.ndarray:
    """Integral of ``(E / reference) ** -index`` from ``lo`` to ``hi`` (same unit as ``reference``)."""
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    if abs(index - 1.0) < 1e-9:
        return reference * np.log(hi / lo)
    g = 1.0 - index
    return reference * ((hi / reference) ** g - (lo / reference) ** g) / g


def power_law_sample(edges: np.ndarray, index, k: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Energies in bins ``k`` of ``edges``, density ``E ** -index`` within each bin (CDF inverted at ``u``).

    ``index`` is one number or one per bin. Per-bin constants are computed once, so each point costs
    one ``log1p`` and one ``exp``: ``E = lo * exp(log1p(u * expm1(g L)) / g)`` with ``g = 1 - index``
    and ``L = ln(hi / lo)`` (which tends to ``lo * exp(u L)`` as ``g`` tends to 0).
    """
    edges = np.asarray(edges, dtype=float)
    log_ratio = np.log(edges[1:] / edges[:-1])
    g = np.broadcast_to(1.0 - np.asarray(index, dtype=float), log_ratio.shape)
    g = np.where(np.abs(g) < 1e-12, 1e-12, g)
    c = np.expm1(g * log_ratio)
    with np.errstate(over="ignore", invalid="ignore"):
        return edges[:-1][k] * np.exp(np.log1p(u * c[k]) / g[k])


def destination(lon0, lat0, rad, psi, *, cos_rad=None) -> tuple[np.ndarray, np.ndarray]:
    """The point at angular distance ``rad`` and position angle ``psi`` (east of north) from ``(lon0, lat0)``.

    All in deg except ``psi`` in radians; inputs broadcast. Longitudes are returned in [0, 360).
    With ``cos_rad`` (the cosine of the distance) given instead, ``rad`` is ignored and two
    trigonometric functions are saved per point.
    """
    lat0_r = np.deg2rad(lat0)
    if cos_rad is None:
        rad_r = np.deg2rad(rad)
        sin_rad, cos_rad = np.sin(rad_r), np.cos(rad_r)
    else:
        sin_rad = np.sqrt(np.clip(1.0 - np.square(cos_rad), 0.0, None))
    sin_lat0, cos_lat0 = np.sin(lat0_r), np.cos(lat0_r)
    sin_lat = sin_lat0 * cos_rad + cos_lat0 * sin_rad * np.cos(psi)
    lat = np.arcsin(np.clip(sin_lat, -1.0, 1.0))
    dlon = np.arctan2(np.sin(psi) * sin_rad * cos_lat0, cos_rad - sin_lat0 * sin_lat)
    lon = np.mod(lon0 + np.rad2deg(dlon), 360.0)
    return lon, np.rad2deg(lat)


def separation(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Angular distance in deg between points (deg, broadcast), by the haversine formula."""
    lon1, lat1, lon2, lat2 = (np.deg2rad(np.asarray(x, dtype=float)) for x in (lon1, lat1, lon2, lat2))
    hav = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return np.rad2deg(2 * np.arcsin(np.sqrt(np.clip(hav, 0.0, 1.0))))


@dataclass(frozen=True)
class GroupedCdf:
    """Inverse-CDF sampling along one grid axis, for a table of distributions on (log energy, offset) nodes.

    A point ``(energy, offset)`` picks one of the four surrounding nodes at random with the bilinear
    interpolation weights (linear in log energy and offset, nearest node beyond the outer nodes), so
    the sampled law is the bilinear interpolation of the node distributions. Within the chosen node's
    distribution a grid bin is drawn by its cumulative probability, then a value within the bin:
    uniformly, or uniformly in ``x**2`` (an area-weighted radius) with ``area=True``. Nodes whose
    distribution is empty give NaN.

    Attributes
    ----------
    energy_nodes, offset_nodes : ndarray
        Node coordinates (TeV, deg).
    edges : ndarray
        ``n + 1`` bin edges of the sampled variable.
    cumulative : ndarray
        Flat ``g + cdf_g`` per node ``g = i_energy * n_offset + i_offset``, ``n`` values per node.
    valid : ndarray
        Whether each node has a non-empty distribution.
    area : bool
        Sample uniformly in ``x**2`` within a bin.
    """

    energy_nodes: np.ndarray
    offset_nodes: np.ndarray
    edges: np.ndarray
    cumulative: np.ndarray
    valid: np.ndarray
    area: bool = False

    @classmethod
    def from_masses(
        cls, energy_nodes, offset_nodes, edges, masses: np.ndarray, area: bool = False
    ) -> GroupedCdf:
        """From probability masses ``(n_energy, n_offset, n_bins)`` (any normalisation)."""
        masses = np.clip(np.nan_to_num(np.asarray(masses, dtype=float)), 0.0, None)
        flat = masses.reshape(-1, masses.shape[-1])
        totals = flat.sum(axis=1)
        valid = totals > 0
        cdf = np.cumsum(flat, axis=1) / np.where(valid, totals, 1.0)[:, None]
        cdf[:, -1] = 1.0
        cumulative = (cdf + np.arange(len(flat))[:, None]).ravel()
        return cls(np.asarray(energy_nodes, float), np.asarray(offset_nodes, float),
                   np.asarray(edges, float), cumulative, valid, area)  # fmt: skip

    def _node(self, rng: np.random.Generator, nodes: np.ndarray, x: np.ndarray, log: bool) -> np.ndarray:
        if len(nodes) == 1:
            return np.zeros(x.shape, dtype=np.intp)
        index, weight = axis_weights(nodes, x, log=log)
        weight = np.clip(np.nan_to_num(weight), 0.0, 1.0)
        return index + (rng.random(x.shape) < weight)

    def sample(self, rng: np.random.Generator, energy: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """One value per ``(energy, offset)`` point (NaN where the chosen node is empty)."""
        energy, offset = np.asarray(energy, dtype=float), np.asarray(offset, dtype=float)
        group = self._node(rng, self.energy_nodes, energy, True) * len(self.offset_nodes)
        group += self._node(rng, self.offset_nodes, offset, False)
        n_bins = len(self.edges) - 1
        position = np.searchsorted(self.cumulative, group + rng.random(energy.shape), side="right")
        j = np.clip(position - group * n_bins, 0, n_bins - 1)
        lo, hi, v = self.edges[j], self.edges[j + 1], rng.random(energy.shape)
        value = np.sqrt(lo**2 + v * (hi**2 - lo**2)) if self.area else lo + v * (hi - lo)
        return np.where(self.valid[group], value, np.nan)
