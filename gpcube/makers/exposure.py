"""Exposure cubes: effective area times live time, on the true-energy axis."""

from __future__ import annotations

import numpy as np
import xarray as xr

from gpcube.geom import EnergyAxis, SkyGeom
from gpcube.geom.frames import convert_frame
from gpcube.io import Observation
from gpcube.irf import evaluate
from gpcube.irf.interp import axis_weights, zero_outside
from gpcube.makers._cutout import observation_cube
from gpcube.makers._lazy import DEFAULT_CHUNK

__all__ = ["make_map_exposure_true_energy", "radial_profile_on_offset_map"]


def radial_profile_on_offset_map(
    table: np.ndarray, offset_nodes: np.ndarray, offset_edges: tuple[float, float], offset: np.ndarray
) -> np.ndarray:
    """Interpolate ``table(energy, offset_node)`` linearly in offset at every pixel of an offset map.

    Returns ``(n_energy, *offset.shape)``; linear extrapolation up to the outer offset edges, 0
    beyond them, clipped at 0 — the rule of :mod:`gpcube.irf.interp`, applied along offset only.
    """
    index, weight = axis_weights(offset_nodes, offset)
    upper = np.minimum(index + 1, len(offset_nodes) - 1)
    values = table[:, index] * (1.0 - weight) + table[:, upper] * weight
    return zero_outside(values, [offset], [offset_edges])


def _load_exposure(observation: Observation, geom: SkyGeom, axis: EnergyAxis):
    aeff = observation.aeff
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
        ``exposure(energy_true, lat, lon)`` in m2 s, float64, dask-backed.
    """
    return observation_cube(
        observation, geom, product="exposure", axis_name="energy_true", units="m2 s", load=_load_exposure,
        block=_exposure_block, dtype=np.float64, max_offset=max_offset, chunk=chunk,
    )  # fmt: skip
