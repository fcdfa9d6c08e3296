"""Top-hat correlation: the sum of the pixels whose centres lie within a radius, on the sky pixel grid.

The kernel is a disc on the pixel grid: offset ``(dy, dx)`` (integer pixels) is inside when
``dx**2 + dy**2 <= r**2`` with ``r = radius / binsz`` (the pixel size of the geometry, not the angular
distance on the sky: CAR pixels away from the projection's equator are not square on the sky). This
is the disc that astropy's ``Tophat2DKernel(r)`` samples at pixel centres, as Gammapy's
``ExcessMapEstimator`` uses it (divided by its peak, so all weights are 1): the same pixels are summed.

The sum is exact arithmetic's, not an FFT's: per kernel row, a box sum along lon from cumulative
sums (cost per pixel ~ the number of kernel rows, not the disc's area), in int64 for integer and bool
inputs (exact integer sums) and in float64 otherwise (equal to a direct convolution to float rounding;
a box over zeros is exactly 0). Other kernels go through ``scipy.ndimage.correlate``. Outside the
image counts as zeros. On dask arrays each block is correlated with an overlap of the kernel's
half-size taken from its neighbours (zeros at the image edges), so the result equals the in-memory
one (exactly for integers) and no task needs more than a block and its rim.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from gpcube.errors import GpcubeError
from gpcube.geom import IRF_DIMS, SKY_DIMS

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["correlate", "correlate_array", "radius_to_pixels", "tophat_kernel"]


def tophat_kernel(radius_pix: float) -> np.ndarray:
    """The disc of pixel offsets within ``radius_pix`` pixels of the centre.

    Parameters
    ----------
    radius_pix : float
        Radius in pixels, positive and finite.

    Returns
    -------
    numpy.ndarray
        Float64 weights (1 inside, 0 outside) of odd shape ``(2h + 1, 2h + 1)``, ``h = floor(radius_pix)``;
        offset ``(dy, dx)`` is inside when ``dx**2 + dy**2 <= radius_pix**2``. Always holds the centre.

    See Also
    --------
    correlate_array : Correlates an array with the kernel.

    Examples
    --------
    >>> from gpcube.estimators import tophat_kernel
    >>> tophat_kernel(2.0)
    array([[0., 0., 1., 0., 0.],
           [0., 1., 1., 1., 0.],
           [1., 1., 1., 1., 1.],
           [0., 1., 1., 1., 0.],
           [0., 0., 1., 0., 0.]])
    >>> int(tophat_kernel(1.5).sum())  # the corners are within 1.5 pixels (sqrt(2) = 1.41)
    9
    """
    if isinstance(radius_pix, bool) or not np.isfinite(radius_pix) or radius_pix <= 0:
        raise GpcubeError(f"the correlation radius must be positive and finite, got {radius_pix!r} pixels")
    half = math.ceil(radius_pix)
    offset = np.arange(-half, half + 1, dtype=np.float64)
    inside = offset[:, None] ** 2 + offset[None, :] ** 2 <= float(radius_pix) ** 2
    rows = np.flatnonzero(inside.any(axis=1))
    trim = rows[0]  # the disc is symmetric: trim the same empty border on all sides
    inside = inside[trim : inside.shape[0] - trim, trim : inside.shape[1] - trim]
    return inside.astype(np.float64)


def _row_half_widths(kernel: np.ndarray) -> np.ndarray | None:
    """Half-widths ``w[i]`` if each kernel row is a centred run of ones (a disc); None otherwise."""
    if not np.all((kernel == 0) | (kernel == 1)):
        return None
    half = kernel.shape[1] // 2
    widths = (kernel.sum(axis=1).astype(int) - 1) // 2
    offset = np.abs(np.arange(kernel.shape[1]) - half)
    expected = offset[None, :] <= widths[:, None]
    return widths if np.array_equal(expected & (widths[:, None] >= 0), kernel == 1) else None


def _correlate_rows(block: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Disc correlation as, per kernel row, a box sum along lon from cumulative sums (zeros outside).

    The box sums of each distinct half-width are made once, over all rows; each kernel row then
    adds its box, shifted. Cost per pixel ~ the number of kernel rows, not the kernel area. Integers
    and bools are summed in int64 (exact), floats in float64; a box over zeros is exactly zero.
    """
    exact = block.dtype.kind in "biu"
    data = block.astype(np.int64 if exact else np.float64, copy=False)
    h, w = len(widths) // 2, int(widths.max())
    ny, nx = data.shape[-2:]
    pad = [(0, 0)] * (data.ndim - 2) + [(h, h), (w + 1, w)]  # one extra zero column: the cumsum's start
    csum = np.cumsum(np.pad(data, pad), axis=-1)
    boxes = {  # pixel x sits at x + w + 1 in the padded, cumulated rows
        half: csum[..., w + 1 + half : w + 1 + half + nx] - csum[..., w - half : w - half + nx]
        for half in np.unique(widths[widths >= 0]).tolist()
    }
    out = np.zeros(data.shape, dtype=csum.dtype)
    for row, half in enumerate(widths.tolist()):
        if half >= 0:
            out += boxes[half][..., row : row + ny, :]
    return out.astype(np.float64, copy=False)


def _correlate_block(block: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlate every ``(y, x)`` plane of a numpy block with a 2-D kernel (zeros outside)."""
    widths = _row_half_widths(kernel)
    if widths is not None:
        return _correlate_rows(block, widths)
    import scipy.ndimage

    weights = kernel.reshape((1,) * (block.ndim - 2) + kernel.shape)
    return scipy.ndimage.correlate(block.astype(np.float64, copy=False), weights, mode="constant", cval=0.0)


def correlate_array(data: np.ndarray | da.Array, kernel: np.ndarray) -> np.ndarray | da.Array:
    """Correlate the last two axes of a numpy or dask array with ``kernel``.

    Parameters
    ----------
    data : numpy.ndarray or dask.array.Array
        ``(..., ny, nx)``; any numeric or bool dtype (summed as float64).
    kernel : numpy.ndarray
        2-D weights of odd shape, e.g. :func:`tophat_kernel`.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        Float64, same shape; lazy for a dask input (``map_overlap`` with depth = kernel half-size,
        zero boundary), equal to the in-memory result.

    See Also
    --------
    tophat_kernel : The disc kernel.
    correlate : The same on a sky product, with the radius in deg.

    Examples
    --------
    >>> import numpy as np
    >>> from gpcube.estimators import correlate_array, tophat_kernel
    >>> image = np.zeros((5, 7), dtype=int)
    >>> image[2, 3] = 1
    >>> correlate_array(image, tophat_kernel(1.0))
    array([[0., 0., 0., 0., 0., 0., 0.],
           [0., 0., 0., 1., 0., 0., 0.],
           [0., 0., 1., 1., 1., 0., 0.],
           [0., 0., 0., 1., 0., 0., 0.],
           [0., 0., 0., 0., 0., 0., 0.]])

    On a dask array, block by block with the rims the kernel needs, the result is the same:

    >>> import dask.array as da
    >>> data = np.arange(100).reshape(10, 10)
    >>> lazy = correlate_array(da.from_array(data, chunks=5), tophat_kernel(2.0))
    >>> np.array_equal(lazy.compute(), correlate_array(data, tophat_kernel(2.0)))
    True
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
        raise GpcubeError(f"the kernel must be 2-D with odd sizes, got shape {kernel.shape}")
    if data.ndim < 2:
        raise GpcubeError(f"correlate needs (..., y, x) data, got {data.ndim} dims")
    if not hasattr(data, "__dask_graph__"):  # numpy (dask is imported only for dask inputs)
        return _correlate_block(np.asarray(data), kernel)
    depth = {axis: 0 for axis in range(data.ndim - 2)}
    depth.update({data.ndim - 2: kernel.shape[0] // 2, data.ndim - 1: kernel.shape[1] // 2})
    return data.map_overlap(
        _correlate_block, depth=depth, boundary=0, dtype=np.float64, meta=np.array((), np.float64),
        kernel=kernel,
    )  # fmt: skip


def radius_to_pixels(geom_binsz: float, radius: float) -> float:
    """The radius in pixels of the grid: ``radius / binsz`` (both in deg)."""
    if isinstance(radius, bool) or not isinstance(radius, int | float | np.number) or not np.isfinite(radius):
        raise GpcubeError(f"the correlation radius must be a number of deg, got {radius!r}")
    if radius <= 0:
        raise GpcubeError(f"the correlation radius must be positive, got {radius!r} deg")
    return float(radius) / float(geom_binsz)


def correlate(image: xr.DataArray, radius: float) -> xr.DataArray:
    """Sum of the pixels within ``radius`` deg of each pixel (top-hat correlation); lazy if the input is.

    Parameters
    ----------
    image : xarray.DataArray
        A sky product with dims ``(..., y, x)`` and the geometry in its attrs (``.sky.geom``).
    radius : float
        Correlation radius in deg; the disc of pixel centres within ``radius / binsz`` pixels is summed
        (see the module docstring).

    Returns
    -------
    xarray.DataArray
        Float64, same dims, coords and attrs, plus ``attrs["correlation_radius"]`` (deg).

    See Also
    --------
    estimate_excess_map : Correlated counts, background, excess and significance of a mosaic.

    Examples
    --------
    The counts of a Crab run within 0.1 deg (2 pixels) of each pixel:

    >>> import gpcube
    >>> from gpcube.data import example_data_dir
    >>> from gpcube.geom import EnergyAxis, SkyGeom
    >>> obs = gpcube.DataStore.from_dir(example_data_dir()).observation(23523)
    >>> axes = [EnergyAxis.log(0.5, 50, 4, "energy_reco")]
    >>> geom = SkyGeom.create((83.633, 22.014), binsz=0.05, width=4.0, axes=axes)
    >>> from gpcube.estimators import correlate
    >>> from gpcube.makers import make_map_counts
    >>> counts = make_map_counts(obs, geom, max_offset=2.0)
    >>> correlated = correlate(counts, radius=0.1)  # lazy, as the counts are
    >>> ix, iy = counts.sky.geom.coord_to_idx(83.633, 22.014)  # the Crab Nebula's pixel
    >>> correlated.values[:, iy, ix]
    array([99., 50.,  8.,  1.])
    >>> correlated.shape == counts.shape, correlated.attrs["correlation_radius"]
    (True, 0.1)
    """
    if tuple(image.dims[-2:]) not in (SKY_DIMS, IRF_DIMS):
        raise GpcubeError(f"correlate needs the last dims to be ('y', 'x'), got {tuple(image.dims)}")
    kernel = tophat_kernel(radius_to_pixels(image.sky.geom.binsz, radius))
    out = image.copy(data=correlate_array(image.data, kernel))
    out.attrs["correlation_radius"] = float(radius)
    return out
