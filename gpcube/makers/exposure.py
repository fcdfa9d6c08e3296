"""Exposure cubes: effective area times live time, on the true-energy axis."""

from __future__ import annotations

import functools

import numpy as np
import xarray as xr

from gpcube.geom import EnergyAxis, SkyGeom
from gpcube.geom.frames import convert_frame
from gpcube.io import Observation
from gpcube.io.gadf import require_full_enclosure
from gpcube.irf import evaluate
from gpcube.irf.interp import linear_weight_matrix
from gpcube.makers._cutout import observation_cube
from gpcube.makers._lazy import DEFAULT_CHUNK

__all__ = [
    "fold_exposure",
    "make_map_exposure_reco_energy",
    "make_map_exposure_true_energy",
    "power_law_integrals",
    "radial_profile_on_offset_map",
]


def radial_profile_on_offset_map(
    table: np.ndarray, offset_nodes: np.ndarray, offset_edges: tuple[float, float], offset: np.ndarray
) -> np.ndarray:
    """Interpolate ``table(energy, offset_node)`` linearly in offset at every pixel of an offset map.

    Returns ``(n_energy, *offset.shape)``; linear extrapolation up to the outer offset edges, 0
    beyond them, clipped at 0 — the rule of :mod:`gpcube.irf.interp`, applied along offset only.
    """
    values = table @ linear_weight_matrix(offset_nodes, offset_edges, offset)
    np.maximum(values, 0.0, out=values)
    return values.reshape(len(table), *np.shape(offset))


def _load_exposure(observation: Observation, geom: SkyGeom, axis: EnergyAxis):
    aeff = require_full_enclosure(observation.aeff, "exposure")
    energy = axis.centers
    nodes = aeff["offset"].values
    table = evaluate(aeff, energy_true=energy[:, None], offset=nodes[None, :]) * observation.livetime
    edges = (float(aeff["offset_lo"][0]), float(aeff["offset_hi"][-1]))
    pointing = convert_frame(observation.pointing.ra, observation.pointing.dec, "icrs", geom.frame)
    return table, nodes, edges, (float(pointing[0]), float(pointing[1]))


def _exposure_block(loaded, block_geom: SkyGeom) -> np.ndarray:
    table, nodes, edges, pointing = loaded
    offset = block_geom.separation(*pointing)
    return radial_profile_on_offset_map(table, nodes, edges, offset)


def make_map_exposure_true_energy(
    observation: Observation,
    geom: SkyGeom,
    *,
    max_offset: float | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> xr.DataArray:
    """Exposure (effective area x live time) of one observation, lazy, over its cutout of ``geom``.

    The effective area is evaluated at the ``energy_true`` bin centres (log centres) and the offset
    of each pixel centre from the pointing, as :func:`gpcube.irf.evaluate` does.

    Parameters
    ----------
    observation : Observation
        The observation; its effective area and live time are read when the result is computed.
    geom : SkyGeom
        Mosaic geometry with an ``energy_true`` axis.
    max_offset : float, optional
        Cutout radius in deg around the pointing; default: the whole of ``geom``.
    chunk : int
        Block size in pixels along lon and lat.

    Returns
    -------
    xarray.DataArray
        ``exposure(energy_true, y, x)`` in m2 s, float64, dask-backed.

    See Also
    --------
    make_map_exposure_reco_energy : The exposure on the reco-energy axis.
    gpcube.irf.evaluate : The effective area at any energy and offset.

    Examples
    --------
    >>> import gpcube
    >>> from gpcube.data import example_data_dir
    >>> from gpcube.geom import EnergyAxis, SkyGeom
    >>> obs = gpcube.DataStore.from_dir(example_data_dir()).observation(23523)
    >>> axes = [EnergyAxis.log(0.3, 100, 8, "energy_true")]
    >>> geom = SkyGeom.create((83.633, 22.014), binsz=0.05, width=4.0, axes=axes)
    >>> from gpcube.makers import make_map_exposure_true_energy
    >>> exposure = make_map_exposure_true_energy(obs, geom, max_offset=2.0)
    >>> exposure.shape, exposure.attrs["units"]
    ((8, 71, 80), 'm2 s')
    >>> (exposure.values.max(axis=(1, 2)) / obs.livetime).round(-3)  # the effective area (m2)
    array([ 15000., 206000., 355000., 562000., 686000., 694000., 691000.,
           621000.])
    """
    return observation_cube(
        observation, geom, product="exposure", axis_name="energy_true", units="m2 s", load=_load_exposure,
        block=_exposure_block, dtype=np.float64, max_offset=max_offset, chunk=chunk,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------- reco energy
def power_law_integrals(edges: np.ndarray, index: float) -> np.ndarray:
    """Integral of ``E**-index`` over each bin of ``edges`` (TeV)."""
    lo, hi = np.asarray(edges[:-1], dtype=float), np.asarray(edges[1:], dtype=float)
    if np.isclose(index, 1.0):
        return np.log(hi / lo)
    return (hi ** (1.0 - index) - lo ** (1.0 - index)) / (1.0 - index)


def fold_exposure(
    exposure_true: np.ndarray, kernels: np.ndarray, flux_true: np.ndarray, flux_reco: np.ndarray
) -> np.ndarray:
    """Exposure on reco bins: ``sum_i eps_i F_i K_ij / F'_j`` at each pixel.

    Parameters
    ----------
    exposure_true : ndarray
        ``(n_true, *pixels)`` exposure on the true bins.
    kernels : ndarray
        ``(*pixels, n_true, n_reco)`` kernels at each pixel.
    flux_true, flux_reco : ndarray
        Integral of the assumed spectrum over each true and reco bin.

    Returns
    -------
    ndarray
        ``(n_reco, *pixels)``.
    """
    weighted = np.moveaxis(exposure_true * flux_true.reshape(-1, *[1] * (exposure_true.ndim - 1)), 0, -1)
    folded = np.einsum("...i,...ij->...j", weighted, kernels)
    return np.moveaxis(folded, -1, 0) / flux_reco.reshape(-1, *[1] * (exposure_true.ndim - 1))


def _load_exposure_reco(observation: Observation, geom: SkyGeom, axis: EnergyAxis, spectral_index: float):
    from gpcube.makers.edisp import kernel_table

    true_axis = geom.axis("energy_true")
    exposure = _load_exposure(observation, geom, true_axis)
    table = kernel_table(require_full_enclosure(observation.edisp, "reco-energy exposure"), true_axis, axis)
    flux = tuple(power_law_integrals(a.edges, spectral_index) for a in (true_axis, axis))
    return exposure, table, flux


def _exposure_reco_block(loaded, block_geom: SkyGeom) -> np.ndarray:
    from gpcube.makers.edisp import fold_kernels

    exposure, table, (flux_true, flux_reco) = loaded
    true = _exposure_block(exposure, block_geom).reshape(len(flux_true), -1)
    offset = block_geom.separation(*exposure[3]).ravel()
    folded = fold_kernels(table, offset, (true * flux_true[:, None]).T)
    return (folded.T / flux_reco[:, None]).reshape(len(flux_reco), *block_geom.shape)


def make_map_exposure_reco_energy(
    observation: Observation,
    geom: SkyGeom,
    *,
    spectral_index: float = 2.0,
    max_offset: float | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> xr.DataArray:
    """Exposure of one observation on the reco-energy axis, folded through the energy dispersion; lazy.

    ``eps_reco_j = sum_i eps_i F_i K_ij / F'_j``: the true exposure ``eps_i`` (as in
    :func:`make_map_exposure_true_energy`) weighted by the integral ``F_i`` of a power law
    ``E**-spectral_index`` over true bin ``i``, moved to reco bin ``j`` by the kernel ``K_ij`` at the
    pixel's own offset (:mod:`gpcube.makers.edisp`), divided by the power-law integral ``F'_j`` over the
    reco bin. Events of true energy outside ``geom``'s ``energy_true`` axis are not counted.

    Parameters
    ----------
    observation : Observation
        The observation; effective area, energy dispersion and live time are read on computing.
    geom : SkyGeom
        Mosaic geometry with ``energy_reco`` and ``energy_true`` axes.
    spectral_index : float
        Index of the assumed power-law spectrum.
    max_offset : float, optional
        Cutout radius in deg around the pointing; default: the whole of ``geom``.
    chunk : int
        Block size in pixels along lon and lat.

    Returns
    -------
    xarray.DataArray
        ``exposure_reco(energy_reco, y, x)`` in m2 s, float64, dask-backed.

    See Also
    --------
    make_map_exposure_true_energy : The exposure on the true-energy axis.
    make_edisp_kernel_map : The energy-dispersion kernels.

    Examples
    --------
    >>> import gpcube
    >>> from gpcube.data import example_data_dir
    >>> from gpcube.geom import EnergyAxis, SkyGeom
    >>> obs = gpcube.DataStore.from_dir(example_data_dir()).observation(23523)
    >>> axes = [EnergyAxis.log(0.5, 50, 4, "energy_reco"), EnergyAxis.log(0.3, 100, 8, "energy_true")]
    >>> geom = SkyGeom.create((83.633, 22.014), binsz=0.05, width=4.0, axes=axes)
    >>> from gpcube.makers import make_map_exposure_reco_energy
    >>> exposure = make_map_exposure_reco_energy(obs, geom, spectral_index=2.0, max_offset=2.0)
    >>> exposure.shape
    (4, 71, 80)
    >>> (exposure.values.max(axis=(1, 2)) / obs.livetime).round(-3)  # the effective area (m2)
    array([169000., 475000., 647000., 774000.])
    """
    geom.axis("energy_true")
    return observation_cube(
        observation, geom, product="exposure_reco", axis_name="energy_reco", units="m2 s",
        load=functools.partial(_load_exposure_reco, spectral_index=float(spectral_index)),
        block=_exposure_reco_block, dtype=np.float64, max_offset=max_offset, chunk=chunk,
    )  # fmt: skip
