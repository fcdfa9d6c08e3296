"""Background events from the background IRF (bkg_2d or RADEC-aligned bkg_3d).

The rate is tabulated once on a fine polar grid of the field of view (offset ``r`` and position angle
``phi`` east of north, out to ``max_offset``) times fine log-energy bins, evaluated as gpcube's
background maker does: the same gap filling along energy and offset padding, the rate interpolated
in log at the cell centre and the energy edges, integrated over each energy bin as a power law,
times the cell's exact solid angle. A bkg_3d table is read in the GADF orientation (``DETX`` along
minus the FoV longitude, ``DETY`` along the FoV latitude), which is what gpcube's maker picks for
files not written by the old H.E.S.S. exporter.

Sampling draws cells from the flat cumulative distribution with sorted uniforms (fast
``searchsorted``), then a point uniformly in solid angle within the cell and an energy from the
local power law within the energy bin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from gpcube.irf import evaluate
from gpcube.makers.background import fill_energy_gaps, integrate_loglog, pad_offset_axis
from gpcube.simulate.sampling import destination, power_law_sample, sample_flat_cdf, sorted_uniforms

__all__ = ["BackgroundSampler", "background_sampler", "sample_background"]

#: Fine grid of the sampler: energy bins per decade, offset step (deg), position-angle bins (bkg_3d).
ENERGY_PER_DECADE, OFFSET_STEP, N_PHI = 32, 0.025, 180


@dataclass(frozen=True)
class BackgroundSampler:
    """A background model tabulated for sampling.

    Attributes
    ----------
    rate : float
        Expected events per second of on time inside the field of view and the energy range.
    cdf : ndarray
        Flat cumulative probability over ``(energy bin, offset bin, phi bin)`` cells.
    energy_edges, energy_index : ndarray
        Fine energy bin edges (TeV) and the power-law index of the rate within each bin.
    cos_offset_edges : ndarray
        Cosines of the offset bin edges.
    n_phi : int
        Position-angle bins (1 for a radially symmetric bkg_2d).
    """

    rate: float
    cdf: np.ndarray
    energy_edges: np.ndarray
    energy_index: np.ndarray
    cos_offset_edges: np.ndarray
    n_phi: int


def _prepared(bkg: xr.Dataset) -> xr.Dataset:
    """The model as the maker uses it: energy gaps filled, a bkg_2d padded by one offset bin each side."""
    values = fill_energy_gaps(bkg["bkg"].values, bkg["energy_reco"].values)
    bkg = bkg.copy()
    bkg["bkg"] = bkg["bkg"].copy(data=values)
    return pad_offset_axis(bkg) if bkg.attrs["irf_class"] == "bkg_2d" else bkg


def _cell_rates(bkg: xr.Dataset, energy_edges: np.ndarray, r: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Rates (s-1 TeV-1 sr-1) at ``(energy edge, cell)``: shape ``(n_edges, n_cells)``."""
    energy = energy_edges[:, None]
    if bkg.attrs["irf_class"] == "bkg_2d":
        return evaluate(bkg, energy_reco=energy, offset=r[None, :])
    r_rad = np.deg2rad(r)
    x, y, z = np.cos(r_rad), np.sin(r_rad) * np.sin(phi), np.sin(r_rad) * np.cos(phi)
    lon, lat = np.rad2deg(np.arctan2(y, x)), np.rad2deg(np.arcsin(z))
    return evaluate(bkg, energy_reco=energy, fov_lon=-lon[None, :], fov_lat=lat[None, :])


def background_sampler(
    bkg: xr.Dataset, energy_range: tuple[float, float], max_offset: float, scale: float = 1.0
) -> BackgroundSampler:
    """Tabulate ``bkg`` (a gpcube bkg_2d or bkg_3d Dataset) for sampling within ``max_offset`` deg.

    The energy range is clipped to the table's (no background if they do not overlap); ``scale``
    multiplies the rate.
    """
    bkg = _prepared(bkg)
    e_lo = max(energy_range[0], float(bkg["energy_reco_lo"][0]))
    e_hi = min(energy_range[1], float(bkg["energy_reco_hi"][-1]))
    if not e_hi > e_lo:  # the table does not reach the energy range: no background
        (e_lo, e_hi), scale = energy_range, 0.0
    n_e = max(1, int(np.ceil(np.log10(e_hi / e_lo) * ENERGY_PER_DECADE)))
    energy_edges = np.geomspace(e_lo, e_hi, n_e + 1)
    r_edges = np.linspace(0.0, max_offset, max(1, int(np.ceil(max_offset / OFFSET_STEP))) + 1)
    n_phi = 1 if bkg.attrs["irf_class"] == "bkg_2d" else N_PHI
    phi_edges = np.linspace(0.0, 2 * np.pi, n_phi + 1)
    r = np.repeat(0.5 * (r_edges[:-1] + r_edges[1:]), n_phi)
    phi = np.tile(0.5 * (phi_edges[:-1] + phi_edges[1:]), len(r_edges) - 1)
    rates = _cell_rates(bkg, energy_edges, r, phi)
    cos_edges = np.cos(np.deg2rad(r_edges))
    solid = np.repeat(cos_edges[:-1] - cos_edges[1:], n_phi) * (2 * np.pi / n_phi)
    counts = integrate_loglog(energy_edges, rates.T).T * solid * scale  # (n_e, n_cells), s-1
    total = float(counts.sum())
    cdf = np.cumsum(counts.ravel()) / (total if total > 0 else 1.0)
    marginal = np.maximum(rates @ solid, np.finfo(float).tiny)
    index = -np.diff(np.log(marginal)) / np.diff(np.log(energy_edges))
    return BackgroundSampler(total, cdf, energy_edges, index, cos_edges, n_phi)


def sample_background(
    sampler: BackgroundSampler, rng: np.random.Generator, n: int, pointing: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` background events around ``pointing`` (RA, Dec deg): RA, Dec (deg) and energy (TeV).

    The events come out grouped by cell (the caller shuffles them).
    """
    cell = sample_flat_cdf(sampler.cdf, sorted_uniforms(rng, n))
    n_cells = (len(sampler.cos_offset_edges) - 1) * sampler.n_phi
    k, spatial = np.divmod(cell, n_cells)
    i_r, i_phi = np.divmod(spatial, sampler.n_phi)
    cos_lo, cos_hi = sampler.cos_offset_edges[i_r], sampler.cos_offset_edges[i_r + 1]
    cos_offset = cos_lo + rng.random(n) * (cos_hi - cos_lo)
    phi = (i_phi + rng.random(n)) * (2 * np.pi / sampler.n_phi)
    energy = power_law_sample(sampler.energy_edges, sampler.energy_index, k, rng.random(n))
    ra, dec = destination(pointing[0], pointing[1], None, phi, cos_rad=cos_offset)
    return ra, dec, energy
