"""Ring background per observation: OFF counts and OFF acceptance summed over a ring around each pixel.

For every pixel of an observation's cutout, the *ring* is the set of pixels whose centres lie, in
pixel units on the flat cutout grid, between ``r_in`` and ``r_in + width`` of the pixel's centre
(both bounds included; radii are ``r_in / binsz`` and ``width / binsz`` with ``binsz`` the pixel size
in deg; for TAN, the pixel size at the reference point). This is the reference's ring (a
peak-normalised ring kernel evaluated at pixel centres and convolved with the image, zero beyond
the cutout), so the pixels match it one for one. Rings are cut by the cutout's edge: make the cutout
cover the safe region, as the makers' ``max_offset`` cutouts do for the offset-max safe mask.

Before the ring sums, counts and acceptance are set to zero outside the safe mask (then summed over
the energy bands), and outside the exclusion mask. Then, per pixel and band (the dim
``energy_band``, its own name, not the counts' ``energy_reco``: the bands are runs of reco bins),

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

The sums are FFT convolutions in float64 of whole cutout planes (circular, on a grid padded by the
kernel's half-size so that nothing wraps into the cutout; the kernel's transform is remembered per
grid size), one dask task per few energy bands that makes all their products at once
(:func:`ring_bands`). The OFF counts are rounded to integers: the inputs are integers and the float64
round-off is below 1e-6 for any realistic number of counts (checked on every plane: more than 0.25
raises). OFF acceptances below 1e-10 of the plane's total (FFT round-off where the true sum is 0)
are set to 0.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Sequence

import dask.array as da
import numpy as np
import scipy.fft
import xarray as xr
from dask.base import tokenize

from gpcube.errors import GpcubeError
from gpcube.geom import BAND_DIM, EnergyAxis
from gpcube.makers.exclusion import exclusion_plane

__all__ = [
    "convolve_same", "make_map_ring_background", "ring_alpha", "ring_bands", "ring_kernel", "ring_products",
    "ring_sums",
]  # fmt: skip

#: Largest distance of an FFT-convolved integer from the nearest integer that is accepted.
MAX_ROUNDING = 0.25
#: OFF acceptances below this fraction of the plane's total acceptance are FFT round-off: set to 0.
ACCEPTANCE_FLOOR = 1e-10
RING_VARIABLES = ("counts_off", "acceptance", "acceptance_off", "alpha", "mask_safe", "counts")
#: Energy bands per dask task: a band is a few ms of FFTs, about what a task costs dask; a few bands
#: per task keep that small, while the bands of a cube still spread over a few workers.
BANDS_PER_TASK = 5


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


def fft_shape(image_shape: tuple[int, int], kernel_size: int) -> tuple[int, int]:
    """Fast real-FFT sizes for a circular convolution that wraps nothing into the image.

    With the kernel centred on index 0, output pixel ``i`` reads image pixels ``i - h .. i + h``
    (``h`` the kernel's half-size): a grid of ``n + h`` or more puts the wrapped ones on zero padding.
    """
    return tuple(scipy.fft.next_fast_len(n + kernel_size // 2, real=True) for n in image_shape)


@functools.lru_cache(maxsize=32)
def _kernel_spectrum(kernel_bytes: bytes, size: int, shape: tuple[int, int]) -> np.ndarray:
    kernel = np.frombuffer(kernel_bytes, dtype=np.float64).reshape(size, size)
    index = np.arange(size) - size // 2
    wrapped = np.zeros(shape)
    wrapped[np.ix_(index % shape[0], index % shape[1])] = kernel
    spectrum = scipy.fft.rfft2(wrapped)
    spectrum.setflags(write=False)
    return spectrum


def kernel_spectrum(kernel: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``rfft2`` of a square odd kernel centred on index ``(0, 0)`` of a ``shape`` grid (remembered)."""
    kernel = np.ascontiguousarray(kernel, dtype=np.float64)
    return _kernel_spectrum(kernel.tobytes(), kernel.shape[0], tuple(int(n) for n in shape))


def convolve_same(
    images: np.ndarray,
    kernel: np.ndarray,
    *,
    shape: tuple[int, int] | None = None,
    transformed: np.ndarray | None = None,
) -> np.ndarray:
    """Convolution of each ``(..., ny, nx)`` image with a symmetric odd kernel, zero outside, same shape.

    ``shape`` is the FFT grid, default ``fft_shape(image shape, kernel size)`` (a larger one works
    too); ``transformed`` is ``scipy.fft.rfft2(images, shape)``, to reuse across kernels. Float64.
    """
    ny, nx = images.shape[-2:]
    shape = fft_shape((ny, nx), kernel.shape[0]) if shape is None else shape
    if transformed is None:
        transformed = scipy.fft.rfft2(np.asarray(images, dtype=np.float64), shape)
    full = scipy.fft.irfft2(transformed * kernel_spectrum(kernel, shape), shape)
    return full[..., :ny, :nx]


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


def _band_plane(cube: np.ndarray, safe: np.ndarray | None, band: slice, summed: bool, zero) -> np.ndarray:
    """The ``(ny, nx)`` plane of a band: bins zeroed outside ``safe``, summed if ``summed``.

    ``safe`` may also be one ``(ny, nx)`` mask for all the band's bins: then it is applied once,
    after the sum (the same sums, in the same order).
    """
    if safe is not None and safe.ndim == 2:
        return np.where(safe, cube[band].sum(axis=0) if summed else cube[band.start], zero)
    part = cube[band] if safe is None else np.where(safe[band], cube[band], zero)
    return part.sum(axis=0) if summed else part[0]


def _band_mask(mask_safe: np.ndarray | None, band: slice, summed: bool) -> np.ndarray | None:
    """The band's safe mask as one ``(ny, nx)`` plane if every bin has it, else the bins' masks."""
    if mask_safe is None or not summed:
        return mask_safe
    first = mask_safe[band.start]
    return first if (mask_safe[band] == first).all() else mask_safe


def _band_inputs(counts, acceptance, mask_safe, band: slice, summed: bool) -> tuple[np.ndarray, ...]:
    """ON counts, ON acceptance and safe mask ``(ny, nx)`` of one band."""
    band_safe = _band_mask(mask_safe, band, summed)
    on = _band_plane(counts, band_safe, band, summed, 0)
    on_acceptance = _band_plane(acceptance, band_safe, band, summed, 0.0)
    if band_safe is None:
        safe = np.ones(on.shape, dtype=bool)
    else:
        safe = band_safe.copy() if band_safe.ndim == 2 else band_safe[band].any(axis=0)
    return on, on_acceptance, safe


def ring_bands(
    counts: np.ndarray,
    acceptance: np.ndarray,
    mask_safe: np.ndarray | None,
    usable: np.ndarray | None,
    *,
    bands: Sequence[slice],
    summed: bool,
    sums: Callable = None,
    **sums_kwargs,
) -> dict[str, np.ndarray]:
    """All ring products (:data:`RING_VARIABLES`) of some energy bands, ``(n_bands, ny, nx)`` each.

    Parameters
    ----------
    counts, acceptance : numpy.ndarray
        ``(energy, ny, nx)`` cubes of the cutout.
    mask_safe : numpy.ndarray or None
        ``(energy, ny, nx)`` boolean safe mask (None: all safe).
    usable : numpy.ndarray or None
        ``(ny, nx)`` exclusion mask, True where the ring may use a pixel (None: everywhere).
    bands : sequence of slice
        The bins of each band; ``summed``: sum them (else each band is the single bin ``start``).
    sums : callable
        ``sums(ring_counts, ring_acceptance, acceptance, **sums_kwargs)`` on ``(n_bands, ny, nx)``
        planes, returning OFF counts, OFF acceptance and where a ring was found (or None:
        everywhere); default :func:`fixed_ring_sums`.
    """
    per_band = [_band_inputs(counts, acceptance, mask_safe, band, summed) for band in bands]
    on, on_acceptance, safe = (np.stack(planes) for planes in zip(*per_band, strict=True))
    ring_counts, ring_acceptance = on, on_acceptance
    if usable is not None:
        ring_counts, ring_acceptance = np.where(usable, on, 0), np.where(usable, on_acceptance, 0.0)
    sums = fixed_ring_sums if sums is None else sums
    counts_off, acceptance_off, found = sums(ring_counts, ring_acceptance, on_acceptance, **sums_kwargs)
    mask = safe & (acceptance_off > 0)
    if found is not None:
        mask &= found
    return {
        "counts_off": counts_off, "acceptance": on_acceptance, "acceptance_off": acceptance_off,
        "alpha": ring_alpha(on_acceptance, acceptance_off), "mask_safe": mask, "counts": on,
    }  # fmt: skip


def fixed_ring_sums(ring_counts, ring_acceptance, acceptance, *, kernel: np.ndarray):
    """OFF counts and OFF acceptance of a fixed ring (found everywhere), for :func:`ring_bands`."""
    counts_off, acceptance_off = ring_sums(ring_counts, ring_acceptance, kernel)
    return counts_off, acceptance_off, None


def _pick(products: dict, name: str, zero_unsafe: bool, dtype) -> np.ndarray:
    """One product of :func:`ring_bands`, zeroed outside its mask_safe if asked, cast to ``dtype``."""
    value = products[name]
    if zero_unsafe:
        value = np.where(products["mask_safe"], value, 0)
    return value.astype(dtype, copy=False)


# ----------------------------------------------------------------------------- xarray/dask layer
def _reco_edges(counts: xr.DataArray) -> np.ndarray:
    """The counts' ``energy_reco`` bin edges, from their ``energy_reco_lo``/``_hi`` coords."""
    missing = [n for n in ("energy_reco_lo", "energy_reco_hi") if n not in counts.coords]
    if missing:
        raise GpcubeError(f"counts lack the coords {missing}: make counts with gpcube.makers.make_map_counts")
    return np.append(counts["energy_reco_lo"].to_numpy(), counts["energy_reco_hi"].to_numpy()[-1])


def _band_slices(counts: xr.DataArray, energy_edges: Sequence[float] | None) -> tuple[list, np.ndarray]:
    """Bin slices of each band and the band edges (the counts' own edge values); each bin a band
    for ``energy_edges=None``."""
    edges = _reco_edges(counts)
    if energy_edges is None:
        return [slice(i, i + 1) for i in range(edges.size - 1)], edges
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


def pixel_size(geom_attrs: dict) -> float:
    """Pixel size in deg from a product's geometry attrs."""
    if "binsz" not in geom_attrs:
        raise GpcubeError(
            "counts.attrs['geom'] lacks 'binsz': make counts with gpcube.makers.make_map_counts"
        )
    return float(geom_attrs["binsz"])


def _band_geom_attrs(geom_attrs: dict, axis: EnergyAxis) -> dict:
    """Geometry attrs with the band axis in place of the reco axis (the products' energy axis)."""
    axes = [axis.to_dict() if a["name"] == "energy_reco" else a for a in geom_attrs.get("axes", [])]
    return {**geom_attrs, "axes": axes}


def _band_dtype(dtype, summed: bool, masked: bool, zero) -> np.dtype:
    """The dtype of :func:`_band_plane` for a cube of ``dtype`` (computed on a one-pixel cube)."""
    safe = np.ones((1, 1, 1), dtype=bool) if masked else None
    return _band_plane(np.zeros((1, 1, 1), dtype), safe, slice(0, 1), summed, zero).dtype


def _band_groups(n_bands: int) -> list[range]:
    """The bands of each task: at most :data:`BANDS_PER_TASK` consecutive bands, groups of equal size."""
    n_tasks = -(-n_bands // BANDS_PER_TASK)
    edges = np.linspace(0, n_bands, n_tasks + 1).round().astype(int).tolist()
    return [range(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _group_bands(slices: list[slice]) -> tuple[tuple[int, ...], tuple[tuple[slice, ...], ...]]:
    """The bins of each task's bands (the tasks of :func:`_band_groups`): their numbers, and the
    bands' slices into them. Bands are consecutive: a task's bins are its first band's start to its
    last band's stop."""
    bins, bands = [], []
    for group in _band_groups(len(slices)):
        start, stop = slices[group[0]].start, slices[group[-1]].stop
        bins.append(stop - start)
        bands.append(tuple(slice(slices[b].start - start, slices[b].stop - start) for b in group))
    return tuple(bins), tuple(bands)


def _grouped(value, bins: slice, chunks: tuple[int, ...], name: str) -> da.Array | None:
    """An input as a dask array of one chunk per task of :func:`_band_groups`: a cube's ``bins``
    split into ``chunks`` along energy, whole in y/x; a ``(y, x)`` plane whole."""
    if value is None:
        return None
    if value.ndim == 3:
        value, chunks = value[bins], (chunks, -1, -1)
    else:
        chunks = (-1, -1)
    if isinstance(value, da.Array):
        return value.rechunk(chunks)
    return da.from_array(value, chunks=chunks, name=name)  # named: hashing it costs more than the ring


def _ring_group(counts, acceptance, mask_safe, usable, *, bands, block_id, **kwargs) -> dict:
    """:func:`ring_bands` of the bands ``bands[i]`` of the task ``i = block_id[0]``."""
    return ring_bands(counts, acceptance, mask_safe, usable, bands=bands[block_id[0]], **kwargs)


def _band_tasks(arrays: dict, slices: list[slice], summed: bool, sums: Callable, sums_kwargs: dict):
    """The :func:`ring_bands` tasks (see :func:`_band_groups`): a dask array of their results (dicts),
    one chunk each, along energy (``(n_bands, ny, nx)``)."""
    lazy = [a for a in arrays.values() if isinstance(a, da.Array)]
    if len(lazy) == len([a for a in arrays.values() if a is not None]):
        token = tokenize([a.name for a in lazy], slices, summed, sums, sums_kwargs)
    else:  # in-memory inputs: hashing them costs more than the ring; the graph is unique anyway
        token = uuid.uuid4().hex
    bins, bands = _group_bands(slices)
    span = slice(slices[0].start, slices[-1].stop)
    inputs = [_grouped(a, span, bins, f"ring-{k}-{token}") for k, a in arrays.items()]
    # bound into the function: dask would make a task of a long list (the adaptive ring's kernels)
    func = functools.partial(_ring_group, bands=bands, summed=summed, sums=sums, **sums_kwargs)
    chunks = (tuple(len(b) for b in bands), *((n,) for n in arrays["counts"].shape[1:]))
    meta = np.empty((0, 0, 0), dtype=object)
    return da.map_blocks(func, *inputs, chunks=chunks, dtype=object, meta=meta, name=f"ring-bands-{token}")


def _output_array(core: da.Array, name: str, zero: bool, dtype) -> da.Array:
    """The dask array of one product: per task of :func:`_band_tasks`, a task picking it out."""
    func = functools.partial(_pick, name=name, zero_unsafe=zero, dtype=dtype)
    meta = np.empty((0, 0, 0), dtype=dtype)
    return da.map_blocks(func, core, dtype=dtype, meta=meta, name=f"{name}-{core.name}")


def _check_inputs(counts: xr.DataArray, acceptance: xr.DataArray, mask_safe) -> xr.DataArray | None:
    """Raise on bad inputs; return ``mask_safe`` in the counts' dim order."""
    if counts.dims != ("energy_reco", "y", "x") or acceptance.dims != counts.dims:
        raise GpcubeError("counts and acceptance must have dims ('energy_reco', 'y', 'x')")
    if not np.issubdtype(counts.dtype, np.integer):
        raise GpcubeError(f"counts must be integers, got dtype {counts.dtype}")
    if mask_safe is not None and mask_safe.dims != counts.dims:
        mask_safe = mask_safe.transpose(*counts.dims)
    if any(x is not None and x.shape != counts.shape for x in (acceptance, mask_safe)):
        raise GpcubeError("counts, acceptance and mask_safe must have the same shape")
    return mask_safe


def _coords(counts: xr.DataArray, axis: EnergyAxis) -> xr.Coordinates:
    """The counts' pixel coordinates (their indexes too: the world coordinates' selects by degrees),
    with the band axis' coordinates in place of the reco bins'."""
    dims = set(counts.dims)
    drop = [k for k, v in counts.coords.items() if not set(v.dims) <= dims or "energy_reco" in v.dims]
    return counts.drop_vars(drop).coords.assign(axis.to_coords())


def fixed_ring_options(r_in: float, width: float, binsz: float) -> dict:
    """The :func:`ring_products` options of a fixed ring (radii in deg, pixel size ``binsz`` deg)."""
    return {
        "sums": fixed_ring_sums, "sums_kwargs": {"kernel": ring_kernel(r_in / binsz, width / binsz)},
        "product": "ring_background", "parameters": {"ring_r_in": float(r_in), "ring_width": float(width)},
    }  # fmt: skip


def ring_products(
    counts: xr.DataArray,
    acceptance: xr.DataArray,
    *,
    exclusion=None,
    mask_safe: xr.DataArray | None = None,
    energy_edges: Sequence[float] | None = None,
    sums: Callable = fixed_ring_sums,
    sums_kwargs: dict,
    product: str,
    parameters: dict,
    zero_unsafe: Sequence[str] = (),
    dtypes: dict | None = None,
) -> xr.Dataset:
    """The lazy ring products (:data:`RING_VARIABLES`) of one observation, a dask task per few bands.

    The arguments up to ``energy_edges`` are those of :func:`make_map_ring_background`; ``sums`` and
    ``sums_kwargs`` make the OFF sums (:func:`ring_bands`); ``product`` and ``parameters`` go into
    the attrs. The variables named in ``zero_unsafe`` are set to 0 outside ``mask_safe``, and
    ``dtypes`` (name -> dtype) casts variables, both in the band tasks.
    """
    mask_safe = _check_inputs(counts, acceptance, mask_safe)
    slices, edges = _band_slices(counts, energy_edges)
    axis, summed = EnergyAxis.from_edges(edges, BAND_DIM), energy_edges is not None
    geom_attrs = _band_geom_attrs(counts.attrs.get("geom", {}), axis)
    masked = mask_safe is not None
    natural = {
        "counts_off": np.dtype(np.int64), "acceptance_off": np.dtype(np.float64),
        "alpha": np.dtype(np.float64), "mask_safe": np.dtype(bool),
        "counts": _band_dtype(counts.dtype, summed, masked, 0),
        "acceptance": _band_dtype(acceptance.dtype, summed, masked, 0.0),
    }  # fmt: skip
    dtypes = {**natural, **{k: np.dtype(v) for k, v in (dtypes or {}).items()}}
    arrays = {
        "counts": counts.data, "acceptance": acceptance.data,
        "mask_safe": None if mask_safe is None else mask_safe.data,
        "usable": exclusion_plane(exclusion, counts),
    }  # fmt: skip
    core = _band_tasks(arrays, slices, summed, sums, sums_kwargs)
    common = {"energy_type": "reco", "obs_id": counts.attrs.get("obs_id"), **parameters}
    variables = {}
    for name in RING_VARIABLES:
        zero = name in zero_unsafe
        data = _output_array(core, name, zero, dtypes[name])
        attrs = {"units": "", **common, "product": name, "geom": geom_attrs}
        variables[name] = xr.Variable((BAND_DIM, *counts.dims[1:]), data, attrs)
    attrs = {**common, "product": product, "geom": geom_attrs}
    return xr.Dataset(variables, coords=_coords(counts, axis), attrs=attrs)


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
        ``counts(energy_reco, y, x)``, integer, over the observation's cutout (as made by
        :func:`gpcube.makers.make_map_counts`).
    acceptance : xarray.DataArray
        Predicted background on the same pixels, not negative (:func:`gpcube.makers.make_map_background`
        or the FoV-normalised one).
    r_in, width : float
        Inner radius and width of the ring in deg (divided by the pixel size for pixels).
    exclusion : xarray.DataArray or sequence of circles, optional
        Boolean ``(y, x)`` mask on the mosaic geometry (or the cutout), True where pixels may
        be used, as made by :func:`gpcube.makers.exclusion_mask_from_circles`; or circles
        ``(lon, lat, radius)`` in deg in the geometry's frame, or ``(SkyCoord, radius)``.
    mask_safe : xarray.DataArray, optional
        Boolean ``(energy_reco, y, x)`` safe mask on the same pixels (e.g. from
        :func:`gpcube.makers.make_safe_mask`). Counts and acceptance outside it are not used.
    energy_edges : sequence of float, optional
        Band edges in TeV, a subset of the counts' bin edges (to a relative 1e-6): counts and
        acceptance are summed over each band first; bins outside the first and last edge are
        left out. Default: each energy bin on its own.

    Returns
    -------
    xarray.Dataset
        ``counts_off`` (int64), ``acceptance``, ``acceptance_off``, ``alpha`` (float64),
        ``mask_safe`` (bool) and ``counts`` (the ON counts of the band's safe bins), dims
        ``(energy_band, y, x)`` with coords ``energy_band`` (log-centre), ``energy_band_lo`` and
        ``energy_band_hi`` (TeV; each reco bin a band without ``energy_edges``), a dask chunk per few
        bands; the geometry attrs hold the band axis in place of ``energy_reco``; attrs ``units``,
        ``energy_type``, ``obs_id``, ``product``, ``geom`` and the ring parameters (``ring_r_in``,
        ``ring_width`` in deg).

    See Also
    --------
    make_map_adaptive_ring_background : A ring that widens where too much of it is excluded.
    gpcube.estimators.li_ma_significance : The significance of ON and OFF counts.

    Examples
    --------
    A ring of 0.5 to 0.8 deg around each pixel of a Crab run, the Crab Nebula excluded, in two bands:

    >>> import gpcube
    >>> from gpcube.data import example_data_dir
    >>> from gpcube.geom import EnergyAxis, SkyGeom
    >>> obs = gpcube.DataStore.from_dir(example_data_dir()).observation(23523)
    >>> axes = [EnergyAxis.log(0.5, 50, 4, "energy_reco")]
    >>> geom = SkyGeom.create((83.633, 22.014), binsz=0.05, width=4.0, axes=axes)
    >>> from gpcube.makers import make_map_background, make_map_counts, make_map_ring_background
    >>> counts = make_map_counts(obs, geom, max_offset=2.0)
    >>> acceptance = make_map_background(obs, geom, max_offset=2.0)
    >>> ring = make_map_ring_background(counts, acceptance, r_in=0.5, width=0.3,
    ...                                 exclusion=[(83.633, 22.014, 0.3)], energy_edges=[0.5, 5, 50])
    >>> sorted(ring.data_vars)
    ['acceptance', 'acceptance_off', 'alpha', 'counts', 'counts_off', 'mask_safe']
    >>> ring["alpha"].dims, ring["alpha"].shape
    (('energy_band', 'y', 'x'), (2, 71, 80))
    >>> ring["energy_band_lo"].values, ring["energy_band_hi"].values
    (array([0.5, 5. ]), array([ 5., 50.]))

    At the pixel of the Crab Nebula, the ON counts and the background that the ring predicts:

    >>> ix, iy = counts.sky.geom.coord_to_idx(83.633, 22.014)
    >>> ring["counts"].values[:, iy, ix], (ring["alpha"] * ring["counts_off"]).values[:, iy, ix].round(2)
    (array([16,  1]), array([1.15, 0.08]))
    """
    options = fixed_ring_options(r_in, width, pixel_size(counts.attrs.get("geom", {})))
    return ring_products(
        counts, acceptance, exclusion=exclusion, mask_safe=mask_safe, energy_edges=energy_edges, **options
    )
