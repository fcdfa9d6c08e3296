"""Predicted background cubes from the background IRF (bkg_3d or bkg_2d).

The background rate model (s-1 TeV-1 sr-1, in FoV coordinates) is integrated over each
reconstructed-energy bin (power law between the rates at the bin edges: trapezoidal in log-log),
multiplied by each pixel's solid angle and by the observation's on-time (GADF defines the rate per
unit of on-time, not dead-time-corrected live time).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import numpy as np
import xarray as xr

from gpcube.errors import GpcubeError
from gpcube.geom import EnergyAxis, SkyGeom
from gpcube.geom.frames import convert_frame, rotation_matrix
from gpcube.io import Observation
from gpcube.irf.interp import LOG_FLOOR, axis_weights, multilinear, multilinear_rows
from gpcube.makers._cutout import observation_cube
from gpcube.makers._lazy import DEFAULT_CHUNK
from gpcube.makers.altaz import fov_rotations
from gpcube.makers.fov import (
    ORIENTATIONS,
    auto_orientation,
    offset_frame_matrix,
    oriented_fov_coords,
    resolve_orientation,
)

__all__ = [
    "fill_energy_gaps",
    "integrate_loglog",
    "background_block",
    "integrate_loglog_from_log",
    "load_background",
    "pad_offset_axis",
    "log_table_at_energies",
    "make_map_background",
]

_TINY = np.finfo(np.float64).tiny


def _integrate_rows(edges: np.ndarray, log_values: np.ndarray) -> np.ndarray:
    """:func:`integrate_loglog_from_log` along axis 0 of a C-contiguous array, which it overwrites.

    Energy first and in place: contiguous rows and three temporaries.
    """
    log_x = np.log(np.asarray(edges, dtype=float)).reshape(-1, *(1,) * (log_values.ndim - 1))
    a = log_values
    a += log_x
    xy = np.exp(a)
    d_a = np.subtract(a[1:], a[:-1], out=a[1:])
    ratio = xy[1:] - xy[:-1]
    flat = np.abs(d_a) < 1e-10
    np.divide(ratio, d_a, out=ratio, where=~flat)
    np.copyto(ratio, xy[:-1], where=flat)
    ratio *= np.diff(log_x, axis=0)
    return ratio


def integrate_loglog_from_log(edges: np.ndarray, log_values: np.ndarray) -> np.ndarray:
    """Power-law integral over each bin of a function given by its log at ``edges`` (last axis).

    Between two edges the function is the power law through both points. With ``a = ln(x y)`` at
    the edges, its integral is ``ln(x2 / x1) (x2 y2 - x1 y1) / (a2 - a1)``, which tends to
    ``ln(x2 / x1) x1 y1`` where ``a2 = a1`` (the power law of index 1).
    """
    moved = np.array(np.moveaxis(np.asarray(log_values, dtype=float), -1, 0), order="C", copy=True)
    return np.moveaxis(_integrate_rows(edges, moved), 0, -1)


def integrate_loglog(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Integrate ``values`` given at ``edges`` (last axis) over each bin, as a power law per bin.

    See :func:`integrate_loglog_from_log`. Zeros are raised to the smallest float64 first, so a bin
    with one zero end gets the (tiny) integral of a steep power law; a bin with both ends zero
    gets 0.
    """
    values = np.asarray(values, dtype=float)
    result = integrate_loglog_from_log(edges, np.log(np.maximum(values, _TINY)))
    both_zero = (values[..., :-1] <= 0) & (values[..., 1:] <= 0)
    return np.where(both_zero, 0.0, result)


def fill_energy_gaps(values: np.ndarray, energies: np.ndarray) -> np.ndarray:
    """Fill zero or non-finite rates that lie between valid ones along the energy axis (axis 0).

    The holes of a background table (bins left empty by the statistics of its construction) are
    interpolated linearly in log of the rate and log energy from the nearest valid bins below and
    above; zeros below the first or above the last valid bin of a column stay 0.
    """
    n = values.shape[0]
    flat = values.reshape(n, -1)
    missing = ~np.isfinite(flat) | (flat <= 0)
    if not missing.any():
        return values
    index = np.broadcast_to(np.arange(n)[:, None], flat.shape)
    below = np.maximum.accumulate(np.where(missing, -1, index), axis=0)
    above = np.minimum.accumulate(np.where(missing, n, index)[::-1], axis=0)[::-1]
    fillable = missing & (below >= 0) & (above < n)
    log_e = np.log(energies)
    log_v = np.log(np.where(missing, 1.0, flat))
    lo, hi = np.clip(below, 0, n - 1), np.clip(above, 0, n - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = (log_e[index] - log_e[lo]) / (log_e[hi] - log_e[lo])
    interpolated = np.exp(
        np.take_along_axis(log_v, lo, 0) * (1 - weight) + np.take_along_axis(log_v, hi, 0) * weight
    )
    return np.where(fillable, interpolated, np.where(missing, 0.0, flat)).reshape(values.shape)


def log_table_at_energies(
    bkg: xr.Dataset, energies: np.ndarray, fill_gaps: bool = True
) -> tuple[np.ndarray, np.ndarray, float]:
    """Log of the rate table interpolated (linearly in log energy) at ``energies``, and a mask.

    Returns ``(log_table, inside, floor)``: ``log_table`` has the energy axis replaced by
    ``energies`` and moved last; ``inside`` says which energies lie within the table's outer
    energy edges; values were raised to ``floor`` before the log (see :mod:`gpcube.irf.interp`).
    With ``fill_gaps``, holes along energy are filled first (:func:`fill_energy_gaps`).
    """
    floor = bkg["bkg"].attrs.get("log_floor", LOG_FLOOR)
    nodes = bkg["energy_reco"].values
    values = fill_energy_gaps(bkg["bkg"].values, nodes) if fill_gaps else bkg["bkg"].values
    table = np.log(np.maximum(values, floor))
    log_table = multilinear(table, [axis_weights(nodes, energies, log=True)])
    inside = (energies >= bkg["energy_reco_lo"].values[0]) & (energies <= bkg["energy_reco_hi"].values[-1])
    return np.moveaxis(log_table, 0, -1), inside, floor


def _fov_integrals(loaded: dict, coords: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Rates integrated over the energy bins at the points inside the table's FoV edges.

    ``coords`` holds 1-D FoV coordinates per table dim. The log rate is multilinear in the log table
    at each energy edge (the log of the smallest float64 at edges beyond the table's energies, which
    the log-log integration takes as rate 0); bins with both edges beyond them are 0. Returns
    ``(integrals, keep)``: ``(n_energy, len(keep))`` in s-1 sr-1 and the indices of the points inside
    (the others, NaN included, have no rate).
    """
    dims = loaded["fov_dims"]
    inside = np.ones(len(coords[dims[0]]), dtype=bool)
    for d in dims:
        low, high = loaded["fov_edges"][d]
        inside &= (coords[d] >= low) & (coords[d] <= high)
    keep = np.flatnonzero(inside)
    weights = [axis_weights(loaded["fov_nodes"][d], coords[d][keep]) for d in dims]
    log_rates = multilinear_rows(loaded["log_table"], weights)
    log_rates[~loaded["inside"]] = np.log(_TINY)
    integrals = _integrate_rows(loaded["edges"], log_rates)
    integrals[~loaded["inside"][:-1] & ~loaded["inside"][1:]] = 0.0
    return integrals, keep


def pad_offset_axis(bkg: xr.Dataset) -> xr.Dataset:
    """A bkg_2d model with one more offset bin on each side holding the edge bin's rate.

    Between the last node and the outer edge the rate is then the last bin's value (and so on one
    bin further) instead of a linear extrapolation, as the reference does by default.
    """
    lo, hi = bkg["offset_lo"].values, bkg["offset_hi"].values
    width_lo, width_hi = hi[0] - lo[0], hi[-1] - lo[-1]
    values = bkg["bkg"].transpose("energy_reco", "offset").values
    padded = np.concatenate([values[:, :1], values, values[:, -1:]], axis=1)
    new_lo = np.concatenate([[lo[0] - width_lo], lo, [hi[-1]]])
    new_hi = np.concatenate([[lo[0]], hi, [hi[-1] + width_hi]])
    nodes = np.concatenate([[bkg["offset"].values[0] - width_lo], bkg["offset"].values,
                            [bkg["offset"].values[-1] + width_hi]])  # fmt: skip
    coords = {
        "energy_reco": bkg["energy_reco"], "energy_reco_lo": bkg["energy_reco_lo"],
        "energy_reco_hi": bkg["energy_reco_hi"], "offset": ("offset", nodes),
        "offset_lo": ("offset", new_lo), "offset_hi": ("offset", new_hi),
    }  # fmt: skip
    variable = xr.DataArray(padded, dims=("energy_reco", "offset"), attrs=bkg["bkg"].attrs)
    return xr.Dataset({"bkg": variable}, coords=coords, attrs=bkg.attrs)


def load_background(
    observation: Observation,
    geom: SkyGeom,
    axis: EnergyAxis,
    *,
    orientation: dict | str,
    step: float,
    fill_gaps: bool,
    pad_offset: bool = True,
) -> dict:
    """Everything :func:`background_block` needs, read and prepared once per observation."""
    bkg = observation.bkg
    if pad_offset and bkg.attrs["irf_class"] == "bkg_2d":
        bkg = pad_offset_axis(bkg)
    log_table, inside, _ = log_table_at_energies(bkg, axis.edges, fill_gaps)
    alignment = bkg.attrs.get("fov_alignment", "RADEC")
    if bkg.attrs["irf_class"] == "bkg_2d" or alignment == "RADEC":
        rotations, weights = [None], np.ones(1)
    elif alignment == "ALTAZ":
        rotations, weights = fov_rotations(observation, step)
    else:
        raise GpcubeError(
            f"background FoV alignment {alignment!r} is not supported (RADEC or ALTAZ)",
            path=bkg.attrs.get("file"),
            hdu=bkg.attrs.get("hdu"),
        )
    if orientation == "auto":
        orientation = ORIENTATIONS[auto_orientation(observation.events.attrs)]
    pointing = convert_frame(observation.pointing.ra, observation.pointing.dec, "icrs", geom.frame)
    radec = (observation.pointing.ra, observation.pointing.dec)
    return {
        "irf_class": bkg.attrs["irf_class"],
        "fov_dims": bkg["bkg"].dims[1:],
        "fov_nodes": {d: bkg[d].values for d in bkg["bkg"].dims[1:]},
        "fov_edges": {d: (bkg[f"{d}_lo"].values[0], bkg[f"{d}_hi"].values[-1]) for d in bkg["bkg"].dims[1:]},
        "log_table": np.ascontiguousarray(np.moveaxis(log_table, -1, 0)),  # energy edges first
        "inside": inside,
        "edges": axis.edges,
        "orientation": orientation,
        "rotations": rotations,
        "weights": weights,
        "pointing": (float(pointing[0]), float(pointing[1])),
        # geometry's frame -> offset frame of the pointing in ICRS (the RADEC FoV frame)
        "to_offset_frame": offset_frame_matrix(*radec) @ rotation_matrix(geom.frame, "icrs"),
        "ontime": observation.ontime,
    }


def _fov_coords(loaded: dict, block_geom: SkyGeom) -> list[tuple[dict[str, np.ndarray], float]]:
    """FoV coordinates of the block's pixels (flattened) and their weight, per instant of the model."""
    if loaded["irf_class"] == "bkg_2d":
        return [({"offset": block_geom.separation(*loaded["pointing"]).ravel()}, 1.0)]
    vectors = block_geom.pixel_vectors(loaded["to_offset_frame"]).reshape(3, -1)
    return [
        (oriented_fov_coords(vectors, loaded["orientation"], rotation), float(weight))
        for rotation, weight in zip(loaded["rotations"], loaded["weights"], strict=True)
    ]


def background_block(loaded: dict, block_geom: SkyGeom) -> np.ndarray:
    """Predicted counts ``(n_energy, ny, nx)`` on ``block_geom`` from :func:`load_background`'s output."""
    ny, nx = block_geom.shape
    scale = (block_geom.solid_angle() * loaded["ontime"]).ravel()
    rates = np.zeros((len(loaded["edges"]) - 1, ny * nx))
    instants = _fov_coords(loaded, block_geom)
    for coords, weight in instants:
        integrals, keep = _fov_integrals(loaded, coords)
        integrals *= scale[keep] * weight if weight != 1.0 else scale[keep]
        if len(instants) == 1:
            rates[:, keep] = integrals
        else:
            rates[:, keep] += integrals
    return rates.reshape(-1, ny, nx)


def make_map_background(
    observation: Observation,
    geom: SkyGeom,
    *,
    orientation: str | Mapping[str, str] = "auto",
    fov_rotation_step: float = 1.0,
    fill_gaps: bool = True,
    pad_offset: bool = True,
    max_offset: float | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> xr.DataArray:
    """Predicted background counts of one observation, lazy, over its cutout of ``geom``.

    The rate model is interpolated (multilinear in log of the rate, log energy and the FoV
    coordinates, as :func:`gpcube.irf.evaluate`) at each pixel centre and the ``energy_reco`` bin
    edges, integrated over each bin as a power law between its edges, and multiplied by the pixel
    solid angle and the on-time.

    Parameters
    ----------
    observation : Observation
        Its background IRF, pointing and on-time are read when the result is computed.
    geom : SkyGeom
        Mosaic geometry with an ``energy_reco`` axis.
    orientation : str or mapping
        How a bkg_3d table's axes lie on the sky: ``"auto"`` (the default) picks ``"hess-dr1"`` for
        files of the old H.E.S.S. exporter and ``"gadf"`` otherwise; or a preset of
        :data:`gpcube.makers.fov.ORIENTATIONS`, or a mapping such as
        ``{"fov_lon": "-lon", "fov_lat": "+lat"}``. Ignored for bkg_2d.
    fov_rotation_step : float
        For ALTAZ-aligned models: the largest rotation of the FoV on the sky (deg) between the
        instants at which the model is evaluated and averaged over the observation.
    fill_gaps : bool
        Fill empty bins of the model that lie between filled ones along energy
        (:func:`fill_energy_gaps`), as the reference does by default.
    pad_offset : bool
        For bkg_2d: hold the edge bins' rates one bin beyond the offset axis instead of
        extrapolating (:func:`pad_offset_axis`), as the reference does by default.
    max_offset : float, optional
        Cutout radius in deg around the pointing; default: the whole of ``geom``.
    chunk : int
        Block size in pixels along lon and lat.

    Returns
    -------
    xarray.DataArray
        ``background(energy_reco, y, x)`` in counts (float64), dask-backed.

    See Also
    --------
    make_map_background_fov_norm : The same, scaled to the counts outside exclusion regions.
    make_map_counts : The counts on the same pixels.

    Examples
    --------
    >>> import gpcube
    >>> from gpcube.data import example_data_dir
    >>> from gpcube.geom import EnergyAxis, SkyGeom
    >>> obs = gpcube.DataStore.from_dir(example_data_dir()).observation(23523)
    >>> axes = [EnergyAxis.log(0.5, 50, 4, "energy_reco")]
    >>> geom = SkyGeom.create((83.633, 22.014), binsz=0.05, width=4.0, axes=axes)
    >>> from gpcube.makers import make_map_background
    >>> background = make_map_background(obs, geom, max_offset=2.0)
    >>> background.shape
    (4, 71, 80)
    >>> background.values.sum(axis=(1, 2)).round(1)  # predicted counts per energy bin
    array([1358.7,  881.8,  265.9,   61.9])
    """
    mapping = resolve_orientation(orientation)
    load_kwargs = {
        "orientation": mapping, "step": fov_rotation_step, "fill_gaps": fill_gaps, "pad_offset": pad_offset,
    }  # fmt: skip
    orientation_attr = (
        mapping if isinstance(mapping, str) else ",".join(f"{k}:{v}" for k, v in sorted(mapping.items()))
    )
    return observation_cube(
        observation, geom, product="background", axis_name="energy_reco", units="",
        load=partial(load_background, **load_kwargs), block=background_block, dtype=np.float64,
        max_offset=max_offset, chunk=chunk, attrs={"orientation": orientation_attr},
    )  # fmt: skip
