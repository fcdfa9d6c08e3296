"""Counts cubes: events binned in reconstructed energy and sky pixels."""

from __future__ import annotations

import numpy as np
import xarray as xr

from gpcube.geom import EnergyAxis, SkyGeom
from gpcube.geom.frames import convert_frame
from gpcube.io import Observation
from gpcube.makers._cutout import observation_cube
from gpcube.makers._lazy import DEFAULT_CHUNK

__all__ = ["bin_events", "make_map_counts"]

COUNTS_DTYPE = np.int64


def bin_events(
    ra: np.ndarray, dec: np.ndarray, energy: np.ndarray, geom: SkyGeom, energy_edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer (energy, y, x) bin of each event inside ``geom`` and its energy range.

    Pixel ``i`` covers ``[i - 0.5, i + 0.5)`` in pixel coordinates; energy bin ``k`` covers
    ``[edges[k], edges[k + 1])``. Events outside are dropped.
    """
    ie = np.searchsorted(energy_edges, energy, side="right") - 1
    in_range = (ie >= 0) & (ie < len(energy_edges) - 1)
    if not in_range.all():  # positions only for the events in the energy range (often half of them)
        ra, dec, ie = ra[in_range], dec[in_range], ie[in_range]
    lon, lat = convert_frame(ra, dec, "icrs", geom.frame)
    ix, iy = geom.coord_to_idx(lon, lat)
    keep = ix >= 0
    return ie[keep], iy[keep], ix[keep]


def histogram_block(
    indices: tuple[np.ndarray, ...], shape: tuple[int, ...], start: tuple[int, ...]
) -> np.ndarray:
    """Count integer index tuples inside the block ``[start, start + shape)`` (all axes)."""
    keep = np.ones(len(indices[0]), dtype=bool)
    flat = np.zeros(len(indices[0]), dtype=np.int64)
    for index, size, offset in zip(indices, shape, start, strict=True):
        local = index - offset
        keep &= (local >= 0) & (local < size)
        flat = flat * size + local
    counts = np.bincount(flat[keep], minlength=int(np.prod(shape)))
    return counts.reshape(shape).astype(COUNTS_DTYPE, copy=False)


def _load_counts(observation: Observation, geom: SkyGeom, axis: EnergyAxis):
    events = observation.events
    indices = bin_events(events["ra"].values, events["dec"].values, events["energy"].values, geom, axis.edges)
    return indices, geom.origin


def _counts_block(loaded, block_geom: SkyGeom) -> np.ndarray:
    indices, origin = loaded
    start = (0, block_geom.origin[1] - origin[1], block_geom.origin[0] - origin[0])
    return histogram_block(indices, block_geom.data_shape("energy_reco"), start)


def make_map_counts(
    observation: Observation,
    geom: SkyGeom,
    *,
    max_offset: float | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> xr.DataArray:
    """Counts cube of one observation, lazy, over its cutout of ``geom``.

    Parameters
    ----------
    observation : Observation
        The observation; its events are read when the result is computed.
    geom : SkyGeom
        Mosaic geometry with an ``energy_reco`` axis.
    max_offset : float, optional
        Cutout radius in deg around the pointing; default: the whole of ``geom``.
    chunk : int
        Block size in pixels along lon and lat.

    Returns
    -------
    xarray.DataArray
        ``counts(energy_reco, y, x)``, int64, dask-backed.

    See Also
    --------
    make_map_background : The predicted background on the same pixels.
    make_map_exposure_true_energy : The exposure.
    gpcube.workflow.pipeline.run : Makes the products of every observation of a job and sums them.

    Examples
    --------
    A Crab run's counts within 2 deg of its pointing, on a 4 x 4 deg mosaic geometry:

    >>> import gpcube
    >>> from gpcube.data import example_data_dir
    >>> from gpcube.geom import EnergyAxis, SkyGeom
    >>> obs = gpcube.DataStore.from_dir(example_data_dir()).observation(23523)
    >>> axes = [EnergyAxis.log(0.5, 50, 4, "energy_reco")]
    >>> geom = SkyGeom.create((83.633, 22.014), binsz=0.05, width=4.0, axes=axes)
    >>> from gpcube.makers import make_map_counts
    >>> counts = make_map_counts(obs, geom, max_offset=2.0)  # lazy: nothing is read yet
    >>> counts.shape  # the cutout: (energy_reco, ny, nx), 71 x 80 of the mosaic's 80 x 80 pixels
    (4, 71, 80)
    >>> counts.values.sum(axis=(1, 2))  # events per energy bin
    array([3926,  889,  319,   46])
    >>> counts.sky.geom.origin  # where the cutout lies in the mosaic (ix0, iy0)
    (0, 0)
    """
    return observation_cube(
        observation, geom, product="counts", axis_name="energy_reco", units="", load=_load_counts,
        block=_counts_block, dtype=COUNTS_DTYPE, max_offset=max_offset, chunk=chunk,
    )  # fmt: skip
