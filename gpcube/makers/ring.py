"""Ring background per observation: OFF counts and OFF acceptance summed over a ring around each pixel.

For every pixel of an observation's cutout, the *ring* is the set of pixels whose centres lie, in
pixel units on the flat cutout grid, between ``r_in`` and ``r_in + width`` of the pixel's centre
(both bounds included; radii are ``r_in / binsz`` and ``width / binsz`` with ``binsz`` the pixel size
in deg; for TAN, the pixel size at the reference point). This is the reference's ring (a
peak-normalised ring kernel evaluated at pixel centres and convolved with the image, zero beyond
the cutout), so the pixels match it one for one. Rings are cut by the cutout's edge: make the cutout
cover the safe region, as the makers' ``max_offset`` cutouts do for the offset-max safe mask.

Before the ring sums, counts and acceptance are set to zero outside the safe mask (then summed over
the energy bands), and outside the exclusion mask. Then, per pixel and band,

* ``counts_off``: the counts summed over the ring (an integer);
* ``acceptance_off``: the acceptance (predicted background) summed over the ring;
* ``acceptance``: the pixel's own acceptance (the ON acceptance);
* ``alpha = acceptance / acceptance_off``, 0 where ``acceptance_off`` is 0 (the reference's alpha
  property turns the 0/0 into 0 too, and drops such pixels from its safe mask);
* ``mask_safe``: the band's safe mask (any of its bins safe) and ``acceptance_off > 0``;
* ``counts``: the ON counts, summed over the band's safe bins (an integer).

The mosaic sums, per pixel and over observations, ``counts_off``, ``alpha * counts_off`` and
``acceptance``, each masked by the observation's ``mask_safe``, and turns them into a stacked alpha
and OFF acceptance (:mod:`gpcube.makers.ring_stack`).

The sums are FFT convolutions in float64 of whole cutout planes, one dask task per energy band.
The OFF counts are rounded to integers: the inputs are integers and the float64 round-off is below
1e-6 for any realistic number of counts (checked on every plane: more than 0.25 raises). OFF
acceptances below 1e-10 of the plane's total (FFT round-off where the true sum is 0) are set to 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import dask.array as da
import numpy as np
import scipy.fft
import xarray as xr

from gpcube.errors import GpcubeError
from gpcube.geom import EnergyAxis
from gpcube.makers.fov_norm import _exclusion

__all__ = ["convolve_same", "make_map_ring_background", "ring_alpha", "ring_kernel", "ring_sums"]

#: Largest distance of an FFT-convolved integer from the nearest integer that is accepted.
MAX_ROUNDING = 0.25
#: OFF acceptances below this fraction of the plane's total acceptance are FFT round-off: set to 0.
ACCEPTANCE_FLOOR = 1e-10
RING_VARIABLES = ("counts_off", "acceptance", "acceptance_off", "alpha", "mask_safe", "counts")


# --------------------------------------------------------------------------------- numpy functions
def ring_kernel(r_in: float, width: float) -> np.ndarray:
    """Ring of pixel offsets: 1.0 where ``r_in**2 <= dx**2 + dy**2 <= (r_in + width)**2``, else 0.0.

    Radii in pixels. The array is square, of side ``ceil(2 (r_in + width))`` rounded up to an odd
    number (the reference kernel's size), centred on offset (0, 0): it holds the whole ring.
    """
    r_out = r_in + width
    size = int(np.ceil(2 * r_out))
    size += 1 - size % 2
    offsets = np.arange(size, dtype=np.float64) - (size - 1) // 2
    rr = offsets[:, None] ** 2 + offsets[None, :] ** 2
    return ((rr >= r_in**2) & (rr <= r_out**2)).astype(np.float64)


def disc_kernel(radius: float) -> np.ndarray:
    """Disc of pixel offsets: 1.0 where ``dx**2 + dy**2 <= radius**2`` (radius in pixels)."""
    return ring_kernel(0.0, radius)


def pad_kernel(kernel: np.ndarray, size: int) -> np.ndarray:
    """``kernel`` (odd, square) centred in a ``size`` x ``size`` array of zeros (``size`` odd)."""
    pad = (size - kernel.shape[0]) // 2
    return np.pad(kernel, pad) if pad > 0 else kernel


def fft_shape(image_shape: tuple[int, int], kernel_size: int) -> tuple[int, int]:
    """Fast FFT sizes holding the full (linear, not circular) convolution."""
    return tuple(scipy.fft.next_fast_len(n + kernel_size - 1, real=True) for n in image_shape)


def convolve_same(images: np.ndarray, kernel: np.ndarray, *, transformed: np.ndarray | None = None):
    """Convolution of each ``(..., ny, nx)`` image with a symmetric odd kernel, zero outside, same shape.

    ``transformed`` is ``scipy.fft.rfft2(images, s)`` for ``s = fft_shape(image shape, kernel size)``,
    to reuse across kernels of one size. Float64.
    """
    ny, nx = images.shape[-2:]
    shape = fft_shape((ny, nx), kernel.shape[0])
    if transformed is None:
        transformed = scipy.fft.rfft2(np.asarray(images, dtype=np.float64), shape)
    full = scipy.fft.irfft2(transformed * scipy.fft.rfft2(kernel, shape), shape)
    h = (kernel.shape[0] - 1) // 2
    return full[..., h : h + ny, h : h + nx]


def round_counts(values: np.ndarray) -> np.ndarray:
    """FFT-convolved integer counts as int64; raises if any is further than 0.25 from an integer."""
    rounded = np.rint(values)
    if values.size and np.abs(values - rounded).max() > MAX_ROUNDING:
        raise GpcubeError("ring OFF counts: FFT round-off above 0.25 count (too many counts for float64)")
    return rounded.astype(np.int64)


def floor_acceptance(values: np.ndarray, total: float) -> np.ndarray:
    """OFF acceptances with FFT round-off (below :data:`ACCEPTANCE_FLOOR` x ``total``) set to 0."""
    return np.where(values > ACCEPTANCE_FLOOR * total, values, 0.0)


def ring_sums(
    counts: np.ndarray, acceptance: np.ndarray, kernel: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """OFF counts (int64) and OFF acceptance of masked ``(..., ny, nx)`` planes for a ring kernel."""
    planes = np.stack([np.asarray(counts, dtype=np.float64), np.asarray(acceptance, dtype=np.float64)])
    summed = convolve_same(planes, kernel)
    total = np.abs(planes[1]).sum(axis=(-2, -1), keepdims=True)
    return round_counts(summed[0]), floor_acceptance(summed[1], total)


def ring_alpha(acceptance: np.ndarray, acceptance_off: np.ndarray) -> np.ndarray:
    """``acceptance / acceptance_off``, 0 where ``acceptance_off <= 0``."""
    positive = acceptance_off > 0
    return np.divide(acceptance, acceptance_off, out=np.zeros(np.shape(acceptance)), where=positive)


def _ring_block(counts: np.ndarray, acceptance: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``(2, *shape)`` float64: OFF counts and OFF acceptance of one energy band (a dask block)."""
    counts_off, acceptance_off = ring_sums(counts, acceptance, kernel)
    return np.stack([counts_off.astype(np.float64), acceptance_off])


# ----------------------------------------------------------------------------- xarray/dask layer
def _band_slices(counts: xr.DataArray, energy_edges: Sequence[float]) -> tuple[list[slice], np.ndarray]:
    """Bin slices of each band and the band edges (the counts' own edge values)."""
    edges = np.append(counts["energy_reco_lo"].values, counts["energy_reco_hi"].values[-1])
    wanted = np.asarray(energy_edges, dtype=np.float64)
    if wanted.ndim != 1 or wanted.size < 2 or np.any(np.diff(wanted) <= 0):
        raise GpcubeError(f"energy_edges must be at least 2 increasing energies (TeV), got {energy_edges!r}")
    index = [np.flatnonzero(np.isclose(edges, e, rtol=1e-6, atol=0)) for e in wanted]
    missing = [float(e) for e, i in zip(wanted, index, strict=True) if i.size == 0]
    if missing:
        raise GpcubeError(
            f"energy_edges {missing} (TeV) are not bin edges of the counts' energy_reco axis; "
            f"use a subset of {[float(f'{e:.6g}') for e in edges]}"
        )
    index = [int(i[0]) for i in index]
    return [slice(a, b) for a, b in zip(index[:-1], index[1:], strict=True)], edges[index]


def _band_sum(cube: xr.DataArray, slices: list[slice]) -> xr.DataArray:
    return xr.concat([cube.isel(energy_reco=s).sum("energy_reco") for s in slices], dim="energy_reco")


def _band_any(mask: xr.DataArray, slices: list[slice]) -> xr.DataArray:
    return xr.concat([mask.isel(energy_reco=s).any("energy_reco") for s in slices], dim="energy_reco")


def pixel_size(geom_attrs: dict) -> float:
    """Pixel size in deg from a product's geometry attrs."""
    if "binsz" not in geom_attrs:
        raise GpcubeError(
            "counts.attrs['geom'] lacks 'binsz': make counts with gpcube.makers.make_map_counts"
        )
    return float(geom_attrs["binsz"])


def _band_geom_attrs(geom_attrs: dict, axis: EnergyAxis) -> dict:
    axes = [axis.to_dict() if a["name"] == axis.name else a for a in geom_attrs.get("axes", [])]
    return {**geom_attrs, "axes": axes}


def prepare_ring_inputs(
    counts: xr.DataArray,
    acceptance: xr.DataArray,
    exclusion=None,
    mask_safe: xr.DataArray | None = None,
    energy_edges: Sequence[float] | None = None,
) -> dict:
    """Masked, band-summed inputs of the ring sums, lazy.

    Returns a dict: ``counts``, ``acceptance`` (zeroed outside the safe mask, summed per band),
    ``mask_safe`` (per band: any of its bins safe), ``ring_counts``, ``ring_acceptance`` (also
    zeroed outside the exclusion mask) and ``geom_attrs`` (with the band axis).
    """
    if counts.dims != ("energy_reco", "lat", "lon") or acceptance.dims != counts.dims:
        raise GpcubeError("counts and acceptance must have dims ('energy_reco', 'lat', 'lon')")
    if not np.issubdtype(counts.dtype, np.integer):
        raise GpcubeError(f"counts must be integers, got dtype {counts.dtype}")
    geom_attrs = counts.attrs.get("geom", {})
    usable = _exclusion(exclusion, counts)
    if mask_safe is None:
        mask_safe = xr.ones_like(counts, dtype=bool)
    counts, acceptance = counts.where(mask_safe, 0), acceptance.where(mask_safe, 0.0)
    if energy_edges is not None:
        slices, edges = _band_slices(counts, energy_edges)
        axis = EnergyAxis.from_edges(edges, "energy_reco")
        counts, acceptance = _band_sum(counts, slices), _band_sum(acceptance, slices)
        mask_safe = _band_any(mask_safe, slices)
        counts, acceptance, mask_safe = (
            x.assign_coords(axis.to_coords()) for x in (counts, acceptance, mask_safe)
        )
        geom_attrs = _band_geom_attrs(geom_attrs, axis)
    return {
        "counts": counts, "acceptance": acceptance, "mask_safe": mask_safe,
        "ring_counts": counts.where(usable, 0), "ring_acceptance": acceptance.where(usable, 0.0),
        "geom_attrs": geom_attrs,
    }  # fmt: skip


def plane_chunks(cube: xr.DataArray) -> da.Array:
    """The dask array of ``cube`` with one chunk per energy band holding the whole plane."""
    data = cube.data if isinstance(cube.data, da.Array) else da.from_array(cube.data)
    return data.rechunk((1, -1, -1))


def map_planes(func, arrays: Sequence[da.Array], n_out: int, **kwargs) -> da.Array:
    """``func(*blocks, **kwargs)`` per energy band, returning ``(n_out, 1, ny, nx)`` float64 blocks."""
    chunks = ((n_out,), *arrays[0].chunks)
    return da.map_blocks(
        func, *arrays, new_axis=0, chunks=chunks, dtype=np.float64, meta=np.array((), np.float64), **kwargs
    )


def ring_dataset(
    inputs: dict,
    counts_off: da.Array,
    acceptance_off: da.Array,
    *,
    found: da.Array | None = None,
    product: str,
    parameters: dict,
) -> xr.Dataset:
    """Assemble the ring product (:data:`RING_VARIABLES`) with the makers' attrs.

    ``found``: where a ring was found (adaptive ring); pixels outside it are not safe.
    """
    counts = inputs["counts"]
    acceptance = plane_chunks(inputs["acceptance"])
    mask = plane_chunks(inputs["mask_safe"]) & (acceptance_off > 0)
    if found is not None:
        mask = mask & found
    data = {
        "counts_off": counts_off, "acceptance": acceptance, "acceptance_off": acceptance_off,
        "alpha": da.map_blocks(ring_alpha, acceptance, acceptance_off, dtype=np.float64), "mask_safe": mask,
        "counts": plane_chunks(counts),
    }  # fmt: skip
    coords = {k: v for k, v in counts.coords.items() if set(v.dims) <= set(counts.dims)}
    common = {"energy_type": "reco", "obs_id": counts.attrs.get("obs_id"), **parameters}
    variables = {
        name: xr.DataArray(value, dims=counts.dims, coords=coords, name=name,
                           attrs={"units": "", **common, "product": name, "geom": inputs["geom_attrs"]})
        for name, value in data.items()
    }  # fmt: skip
    return xr.Dataset(variables, attrs={**common, "product": product, "geom": inputs["geom_attrs"]})


def make_map_ring_background(
    counts: xr.DataArray,
    acceptance: xr.DataArray,
    *,
    r_in: float,
    width: float,
    exclusion=None,
    mask_safe: xr.DataArray | None = None,
    energy_edges: Sequence[float] | None = None,
) -> xr.Dataset:
    """Ring background of one observation, lazy (module docstring).

    Parameters
    ----------
    counts : xarray.DataArray
        ``counts(energy_reco, lat, lon)``, integer, over the observation's cutout (as made by
        :func:`gpcube.makers.make_map_counts`).
    acceptance : xarray.DataArray
        Predicted background on the same pixels, not negative (:func:`gpcube.makers.make_map_background`
        or the FoV-normalised one).
    r_in, width : float
        Inner radius and width of the ring in deg (divided by the pixel size for pixels).
    exclusion : xarray.DataArray or sequence of circles, optional
        Boolean ``(lat, lon)`` mask on the mosaic geometry (or the cutout), True where pixels may
        be used, as made by :func:`gpcube.makers.exclusion_mask_from_circles`; or circles
        ``(lon, lat, radius)`` in deg in the geometry's frame, or ``(SkyCoord, radius)``.
    mask_safe : xarray.DataArray, optional
        Boolean ``(energy_reco, lat, lon)`` safe mask on the same pixels (e.g. from
        :func:`gpcube.makers.make_safe_mask`). Counts and acceptance outside it are not used.
    energy_edges : sequence of float, optional
        Band edges in TeV, a subset of the counts' bin edges (to a relative 1e-6): counts and
        acceptance are summed over each band first; bins outside the first and last edge are
        left out. Default: each energy bin on its own.

    Returns
    -------
    xarray.Dataset
        ``counts_off`` (int64), ``acceptance``, ``acceptance_off``, ``alpha`` (float64) and
        ``mask_safe`` (bool), dims ``(energy_reco, lat, lon)`` (the bands), one dask chunk per
        band; attrs ``units``, ``energy_type``, ``obs_id``, ``product``, ``geom`` and the ring
        parameters (``ring_r_in``, ``ring_width`` in deg).
    """
    inputs = prepare_ring_inputs(counts, acceptance, exclusion, mask_safe, energy_edges)
    binsz = pixel_size(inputs["geom_attrs"])
    kernel = ring_kernel(r_in / binsz, width / binsz)
    planes = [plane_chunks(inputs["ring_counts"]), plane_chunks(inputs["ring_acceptance"])]
    sums = map_planes(_ring_block, planes, 2, kernel=kernel)
    parameters = {"ring_r_in": float(r_in), "ring_width": float(width)}
    return ring_dataset(
        inputs, sums[0].astype(np.int64), sums[1], product="ring_background", parameters=parameters
    )
