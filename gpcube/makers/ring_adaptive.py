"""Adaptive ring background: the ring grows until the pixel's alpha is small enough.

A list of rings is tried in order, for every pixel and energy band on its own:

``"fixed_width"``
    inner radii ``r_in, r_in + stepsize, ...`` below ``r_out_max - width``, width ``width``;
``"fixed_r_in"``
    widths ``width, width + stepsize, ...`` below ``r_out_max - r_in``, inner radius ``r_in``.

(The lists are ``numpy.arange`` in pixel units, as the reference builds them: the last radius is
excluded, so no ring reaches ``r_out_max``.) A pixel takes the first ring whose
``acceptance / acceptance_off`` is at most ``threshold_alpha`` (``acceptance_off`` the ring's sum
of the exclusion-masked acceptance; a ring without OFF acceptance never qualifies). Its
``counts_off`` and ``acceptance_off`` are that ring's. A pixel for which no ring qualifies gets
``counts_off = acceptance_off = alpha = 0`` and ``mask_safe = False`` (the reference leaves NaN
there; it then stacks nothing from such a pixel but its ON counts).

``theta``: the reference sums the acceptance tested against the threshold over a top-hat whose
radius in pixels is ``theta`` *times* the pixel size (the numbers in deg), not divided by it; its
top-hat is the pixel alone whenever that product is below 1 (e.g. 0.22 deg and any pixel below
4.5 deg). So the default ``theta=None`` tests the pixel's own acceptance, which is what the
reference does; a value (deg) tests the acceptance summed over the disc of radius ``theta`` instead
(for choosing the ring only: the ``acceptance`` returned is always the pixel's own).

Everything else (masks, energy bands, outputs, stacking) is as for
:func:`gpcube.makers.make_map_ring_background`.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence

import numpy as np
import scipy.fft
import xarray as xr

from gpcube.errors import GpcubeError
from gpcube.makers.ring import (
    convolve_same,
    disc_kernel,
    fft_shape,
    floor_acceptance,
    pixel_size,
    ring_kernel,
    ring_products,
    round_counts,
)

__all__ = [
    "adaptive_ring_options",
    "adaptive_ring_radii",
    "adaptive_ring_sums",
    "make_map_adaptive_ring_background",
]

METHODS = ("fixed_width", "fixed_r_in")


def adaptive_ring_radii(
    r_in: float, width: float, r_out_max: float, stepsize: float, method: str
) -> list[tuple[float, float]]:
    """``(r_in, width)`` of the rings to try, in order, in the units given (pixels)."""
    if method == "fixed_width":
        r_ins, widths = np.arange(r_in, r_out_max - width, stepsize), [width]
    elif method == "fixed_r_in":
        r_ins, widths = [r_in], np.arange(width, r_out_max - r_in, stepsize)
    else:
        raise GpcubeError(f"adaptive ring method must be one of {METHODS}, got {method!r}")
    return [(float(a), float(b)) for a, b in itertools.product(r_ins, widths)]


def adaptive_ring_sums(
    ring_counts: np.ndarray,
    ring_acceptance: np.ndarray,
    acceptance_on: np.ndarray,
    kernels: Sequence[np.ndarray],
    threshold_alpha: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OFF counts, OFF acceptance and "found" of ``(ny, nx)`` planes: the first ring with alpha low enough.

    ``ring_counts`` and ``ring_acceptance`` are masked by the safe and exclusion masks;
    ``acceptance_on`` is what alpha's numerator is (the pixel's acceptance, or its disc sum).
    """
    size = max(k.shape[0] for k in kernels)
    shape = fft_shape(ring_counts.shape, size)
    planes = np.stack([np.asarray(ring_counts, np.float64), np.asarray(ring_acceptance, np.float64)])
    transformed = scipy.fft.rfft2(planes, shape)
    total = np.abs(planes[1]).sum()
    counts_off = np.zeros(ring_counts.shape, dtype=np.int64)
    acceptance_off = np.zeros(ring_counts.shape)
    found = np.zeros(ring_counts.shape, dtype=bool)
    for kernel in kernels:
        convolve = functools.partial(convolve_same, kernel=kernel, shape=shape)
        off = floor_acceptance(convolve(planes[1], transformed=transformed[1]), total)
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha = np.where(off > 0, acceptance_on / off, np.inf)
        chosen = (alpha <= threshold_alpha) & ~found
        if chosen.any():
            summed = round_counts(convolve(planes[0], transformed=transformed[0]))
            counts_off[chosen], acceptance_off[chosen] = summed[chosen], off[chosen]
            found |= chosen
        if found.all():
            break
    return counts_off, acceptance_off, found


def _adaptive_sums(
    ring_counts: np.ndarray,
    ring_acceptance: np.ndarray,
    acceptance: np.ndarray,
    *,
    kernels: list[np.ndarray],
    threshold_alpha: float,
    on_kernel: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OFF counts, OFF acceptance and "found" of ``(n_bands, ny, nx)`` planes (``sums`` of ``ring_bands``)."""
    on = acceptance if on_kernel is None else convolve_same(acceptance, on_kernel)
    per_band = [
        adaptive_ring_sums(c, a, o, kernels, threshold_alpha)
        for c, a, o in zip(ring_counts, ring_acceptance, on, strict=True)
    ]
    return tuple(np.stack(x) for x in zip(*per_band, strict=True))


def make_map_adaptive_ring_background(
    counts: xr.DataArray,
    acceptance: xr.DataArray,
    *,
    r_in: float,
    width: float,
    r_out_max: float,
    stepsize: float = 0.02,
    threshold_alpha: float = 0.1,
    theta: float | None = None,
    method: str = "fixed_width",
    exclusion=None,
    mask_safe: xr.DataArray | None = None,
    energy_edges: Sequence[float] | None = None,
) -> xr.Dataset:
    """Adaptive ring background of one observation, lazy (module docstring).

    Parameters
    ----------
    counts, acceptance, exclusion, mask_safe, energy_edges
        As for :func:`gpcube.makers.make_map_ring_background`.
    r_in, width : float
        Inner radius and width in deg of the smallest ring.
    r_out_max : float
        The rings' outer radius stays below this (deg).
    stepsize : float
        Growth of the inner radius (``"fixed_width"``) or of the width (``"fixed_r_in"``), deg.
    threshold_alpha : float
        A ring qualifies when alpha is at most this.
    theta : float, optional
        Radius (deg) of the disc over which the acceptance tested against the threshold is
        summed; default: the pixel alone (what the reference does).
    method : {"fixed_width", "fixed_r_in"}

    Returns
    -------
    xarray.Dataset
        As :func:`gpcube.makers.make_map_ring_background`, ``product`` ``"adaptive_ring_background"``,
        the parameters in attrs (``ring_*``, deg).

    See Also
    --------
    make_map_ring_background : The ring of fixed size.

    Examples
    --------
    Around the Crab Nebula, a 0.6 deg exclusion covers the whole 0.3 to 0.5 deg ring; the adaptive
    ring grows until its alpha is at most 0.1:

    >>> import gpcube
    >>> from gpcube.data import example_data_dir
    >>> from gpcube.geom import EnergyAxis, SkyGeom
    >>> obs = gpcube.DataStore.from_dir(example_data_dir()).observation(23523)
    >>> axes = [EnergyAxis.log(0.5, 50, 4, "energy_reco")]
    >>> geom = SkyGeom.create((83.633, 22.014), binsz=0.05, width=4.0, axes=axes)
    >>> from gpcube.makers import (
    ...     make_map_adaptive_ring_background, make_map_background, make_map_counts,
    ...     make_map_ring_background)
    >>> counts = make_map_counts(obs, geom, max_offset=2.0)
    >>> acceptance = make_map_background(obs, geom, max_offset=2.0)
    >>> options = dict(r_in=0.3, width=0.2, exclusion=[(83.633, 22.014, 0.6)], energy_edges=[0.5, 50])
    >>> fixed = make_map_ring_background(counts, acceptance, **options)
    >>> adaptive = make_map_adaptive_ring_background(
    ...     counts, acceptance, r_out_max=1.5, stepsize=0.1, threshold_alpha=0.1, **options)
    >>> ix, iy = counts.sky.geom.coord_to_idx(83.633, 22.014)  # the Crab Nebula's pixel
    >>> int(fixed["counts_off"][0, iy, ix]), int(adaptive["counts_off"][0, iy, ix])
    (0, 11)
    >>> round(float(adaptive["alpha"][0, iy, ix]), 3)
    0.09
    """
    options = adaptive_ring_options(
        pixel_size(counts.attrs.get("geom", {})), r_in=r_in, width=width, r_out_max=r_out_max,
        stepsize=stepsize, threshold_alpha=threshold_alpha, theta=theta, method=method,
    )  # fmt: skip
    return ring_products(
        counts, acceptance, exclusion=exclusion, mask_safe=mask_safe, energy_edges=energy_edges, **options
    )


def adaptive_ring_options(
    binsz: float,
    *,
    r_in: float,
    width: float,
    r_out_max: float,
    stepsize: float = 0.02,
    threshold_alpha: float = 0.1,
    theta: float | None = None,
    method: str = "fixed_width",
) -> dict:
    """The :func:`~gpcube.makers.ring.ring_products` options of an adaptive ring (deg; pixels ``binsz``)."""
    radii = adaptive_ring_radii(r_in / binsz, width / binsz, r_out_max / binsz, stepsize / binsz, method)
    if not radii:
        raise GpcubeError(
            f"no adaptive ring fits: r_in {r_in} + width {width} must be below r_out_max {r_out_max}"
        )
    sums_kwargs = {
        "kernels": [ring_kernel(a, b) for a, b in radii], "threshold_alpha": float(threshold_alpha),
        "on_kernel": None if theta is None else disc_kernel(theta / binsz),
    }  # fmt: skip
    parameters = {
        "ring_r_in": float(r_in), "ring_width": float(width), "ring_r_out_max": float(r_out_max),
        "ring_stepsize": float(stepsize), "ring_threshold_alpha": float(threshold_alpha),
        "ring_theta": "pixel" if theta is None else float(theta), "ring_method": method,
    }  # fmt: skip
    return {
        "sums": _adaptive_sums, "sums_kwargs": sums_kwargs, "product": "adaptive_ring_background",
        "parameters": parameters,
    }  # fmt: skip
