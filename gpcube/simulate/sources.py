"""Source events: power-law point and Gaussian sources, through effective area, PSF and energy dispersion.

For one observation a source is tabulated on cells of its true position (one cell for a point
source; for a Gaussian, 20 rings of ``sigma / 4`` out to ``5 sigma`` times 16 position angles, each
weighted by its exact Gaussian probability) and fine true-energy bins. The expected counts per cell
and bin are ``livetime * w_cell * integral of the flux over the bin * aeff(bin log-centre, cell offset)``.
Events are drawn from these cells, a true position within the cell (exact radial Gaussian law,
uniform angle) and a true energy within the bin (the source power law); then a reco direction at a
PSF-drawn distance in a uniform direction, and a reco energy ``migra * E_true`` with ``migra`` drawn
from the energy dispersion. PSF and dispersion are evaluated at each event's true energy and offset
(:class:`~gpcube.simulate.sampling.GroupedCdf`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from gpcube.geom.frames import convert_frame
from gpcube.irf import evaluate
from gpcube.simulate.config import SourceConfig
from gpcube.simulate.sampling import (
    GroupedCdf,
    destination,
    power_law_integral,
    power_law_sample,
    sample_flat_cdf,
    separation,
    sorted_uniforms,
)

__all__ = ["SourceCells", "edisp_sampler", "psf_sampler", "sample_source", "source_cells"]

#: True-energy bins per decade; Gaussian cells: rings of sigma / 4 out to 5 sigma, 16 angles.
ENERGY_PER_DECADE, RING_EDGES, N_ANGLES = 32, np.linspace(0.0, 5.0, 21), 16
#: Fine rad grid of the PSF sampler: bins, and the range (deg) for the parametric PSFs.
N_RAD, PARAMETRIC_RAD_MAX = 400, 1.0
#: m2 -> cm2 (the source amplitude is per cm2).
_CM2 = 1e4


@dataclass(frozen=True)
class SourceCells:
    """One source tabulated for one observation.

    Attributes
    ----------
    expected : float
        Expected events (before the field-of-view and reco-energy cuts).
    cdf : ndarray
        Flat cumulative probability over ``(cell, energy bin)``.
    centre : tuple of float
        Source centre (RA, Dec deg).
    ring_edges : ndarray
        Radial edges of the cells in units of ``sigma`` (``[0, 0]`` for a point source).
    n_angles : int
        Position-angle cells per ring.
    energy_edges : ndarray
        True-energy bin edges (TeV).
    sigma, index : float
        Gaussian width (deg) and spectral index.
    """

    expected: float
    cdf: np.ndarray
    centre: tuple[float, float]
    ring_edges: np.ndarray
    n_angles: int
    energy_edges: np.ndarray
    sigma: float
    index: float


def _cells(sigma: float) -> tuple[np.ndarray, int, np.ndarray, np.ndarray, np.ndarray]:
    """Ring edges (sigma units), angles per ring, and per cell: weight, centre radius (deg), centre angle."""
    if sigma == 0:
        return np.zeros(2), 1, np.ones(1), np.zeros(1), np.zeros(1)
    tail = np.exp(-0.5 * RING_EDGES**2)
    ring_mass = (tail[:-1] - tail[1:]) / (1.0 - tail[-1])
    centre_r = 0.5 * (RING_EDGES[:-1] + RING_EDGES[1:]) * sigma
    angles = (np.arange(N_ANGLES) + 0.5) * (2 * np.pi / N_ANGLES)
    weight = np.repeat(ring_mass / N_ANGLES, N_ANGLES)
    return RING_EDGES, N_ANGLES, weight, np.repeat(centre_r, N_ANGLES), np.tile(angles, len(centre_r))


def source_cells(
    source: SourceConfig,
    aeff: xr.Dataset,
    pointing: tuple[float, float],
    livetime: float,
    energy_true: tuple[float, float],
) -> SourceCells:
    """Tabulate ``source`` for an observation pointed at ``pointing`` (RA, Dec deg)."""
    centre = tuple(float(v) for v in convert_frame(*source.position, source.frame, "icrs"))
    n_e = max(1, int(np.ceil(np.log10(energy_true[1] / energy_true[0]) * ENERGY_PER_DECADE)))
    edges = np.geomspace(energy_true[0], energy_true[1], n_e + 1)
    flux = source.amplitude * power_law_integral(edges[:-1], edges[1:], source.index, source.reference)
    ring_edges, n_angles, weight, r, psi = _cells(source.sigma)
    ra, dec = destination(centre[0], centre[1], r, psi)
    offset = separation(ra, dec, *pointing)
    area = evaluate(aeff, energy_true=np.sqrt(edges[:-1] * edges[1:])[None, :], offset=offset[:, None])
    counts = livetime * _CM2 * weight[:, None] * flux[None, :] * area
    expected = float(counts.sum())
    cdf = np.cumsum(counts.ravel()) / (expected if expected > 0 else 1.0)
    return SourceCells(expected, cdf, centre, ring_edges, n_angles, edges, source.sigma, source.index)


def _true_events(cells: SourceCells, rng: np.random.Generator, n: int):
    """True RA, Dec (deg) and energy (TeV) of ``n`` events."""
    n_e = len(cells.energy_edges) - 1
    cell, k = np.divmod(sample_flat_cdf(cells.cdf, sorted_uniforms(rng, n)), n_e)
    energy = power_law_sample(cells.energy_edges, cells.index, k, rng.random(n))
    ring, angle = np.divmod(cell, cells.n_angles)
    tail_lo = np.exp(-0.5 * cells.ring_edges[ring] ** 2)
    tail_hi = np.exp(-0.5 * cells.ring_edges[ring + 1] ** 2)
    radius = np.sqrt(-2.0 * np.log(tail_lo - rng.random(n) * (tail_lo - tail_hi))) * cells.sigma
    psi = (angle + rng.random(n)) * (2 * np.pi / cells.n_angles)
    ra, dec = destination(cells.centre[0], cells.centre[1], radius, psi)
    return ra, dec, energy


def sample_source(
    cells: SourceCells,
    psf: GroupedCdf,
    edisp: GroupedCdf,
    rng: np.random.Generator,
    n: int,
    pointing: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` events of one source: reco RA, Dec (deg) and energy (TeV); NaN energy where an IRF is empty."""
    ra, dec, energy_true = _true_events(cells, rng, n)
    offset = separation(ra, dec, *pointing)
    rad = psf.sample(rng, energy_true, offset)
    ra, dec = destination(ra, dec, np.nan_to_num(rad), rng.random(n) * 2 * np.pi)
    migra = edisp.sample(rng, energy_true, offset)
    return ra, dec, np.where(np.isfinite(rad), migra * energy_true, np.nan)


def psf_sampler(psf: xr.Dataset) -> GroupedCdf:
    """Radial PSF distributions at the PSF's (energy_true, offset) nodes, on a fine rad grid.

    Table PSFs are sampled out to their last rad edge, parametric ones out to 1 deg.
    """
    energy, offset = psf["energy_true"].values, psf["offset"].values
    rad_max = float(psf["rad_hi"][-1]) if "rad" in psf.dims else PARAMETRIC_RAD_MAX
    rad = np.linspace(0.0, rad_max, N_RAD + 1)
    centres = 0.5 * (rad[:-1] + rad[1:])
    values = evaluate(psf, energy_true=energy[:, None, None], offset=offset[None, :, None], rad=centres)
    ring = 2 * np.pi * -np.diff(np.cos(np.deg2rad(rad)))
    return GroupedCdf.from_masses(energy, offset, rad, values * ring, area=True)


def edisp_sampler(edisp: xr.Dataset) -> GroupedCdf:
    """Migration distributions at the dispersion's (energy_true, offset) nodes, on its migra bins."""
    matrix = edisp["migration"].transpose("energy_true", "offset", "migra").values
    edges = np.append(edisp["migra_lo"].values, edisp["migra_hi"].values[-1])
    masses = matrix * np.diff(edges)
    return GroupedCdf.from_masses(edisp["energy_true"].values, edisp["offset"].values, edges, masses)
