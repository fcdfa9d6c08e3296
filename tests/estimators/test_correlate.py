"""Top-hat correlation: the kernel's pixels, sums against a direct convolution, dask against numpy."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.signal
import xarray as xr
from astropy.convolution import Tophat2DKernel

import gpcube
from gpcube.errors import GpcubeError
from gpcube.estimators import correlate, correlate_array, tophat_kernel


def _raise_on_compute(*args, **kwargs):
    raise AssertionError("computed while building")


def test_kernel_holds_the_pixel_centres_within_the_radius_boundary_included():
    kernel = tophat_kernel(5.0)
    assert kernel.shape == (11, 11) and kernel.dtype == np.float64
    assert set(np.unique(kernel)) == {0.0, 1.0}
    dy, dx = np.mgrid[-5:6, -5:6]
    np.testing.assert_array_equal(kernel, (dx**2 + dy**2 <= 25).astype(float))
    assert (
        kernel.sum() == 81
    )  # integer points in a disc of radius 5, (3, 4) and (5, 0) on the circle included
    assert kernel[5 + 3, 5 + 4] == 1 and kernel[5, 10] == 1 and kernel[5 + 4, 5 + 4] == 0


@pytest.mark.parametrize("radius", [0.3, 0.7, 1.0, 1.5, 2.5, 4.999, 5.0, 5.3, 7.9, 10.0])
def test_kernel_support_is_astropys_tophat_sampled_at_pixel_centres(radius):
    """The pixels gammapy's ExcessMapEstimator sums: Tophat2DKernel(r) (mode "center") non-zero."""
    ours = tophat_kernel(radius) > 0
    ref = Tophat2DKernel(radius).array > 0
    pad = (ref.shape[0] - ours.shape[0]) // 2
    assert pad >= 0 and not ref[:pad].any()
    np.testing.assert_array_equal(np.pad(ours, pad), ref)


@pytest.mark.parametrize("radius", [0.0, -1.0, np.nan, np.inf])
def test_kernel_rejects_bad_radii(radius):
    with pytest.raises(GpcubeError, match="radius"):
        tophat_kernel(radius)


def test_numpy_equals_a_direct_convolution_exactly_for_counts():
    counts = np.random.default_rng(1).poisson(3.0, (3, 37, 52))
    kernel = tophat_kernel(4.2)
    ours = correlate_array(counts, kernel)
    for plane, image in zip(ours, counts, strict=True):
        ref = scipy.signal.convolve(image.astype(float), kernel, mode="same", method="direct")
        np.testing.assert_array_equal(plane, ref)
    assert ours.dtype == np.float64


def test_numpy_equals_a_direct_convolution_for_floats():
    image = np.random.default_rng(2).random((41, 29)).astype(np.float32)
    kernel = tophat_kernel(3.0)
    ref = scipy.signal.convolve(image.astype(float), kernel, mode="same", method="direct")
    np.testing.assert_allclose(correlate_array(image, kernel), ref, rtol=1e-13, atol=1e-12)


def test_a_point_gives_the_kernel_and_the_edges_are_zero_padded():
    image = np.zeros((20, 30))
    image[10, 15] = 2.0
    kernel = tophat_kernel(3.5)
    out = correlate_array(image, kernel)
    np.testing.assert_array_equal(out[7:14, 12:19], 2 * kernel)
    assert out.sum() == 2 * kernel.sum()
    corner = np.zeros((20, 30))
    corner[0, 0] = 1.0
    assert correlate_array(corner, kernel).sum() == kernel[3:, 3:].sum()  # the quarter inside the image


@pytest.mark.parametrize("chunks", [(1, 8, 8), (2, 3, 4), (1, 40, 100)])
def test_dask_equals_numpy_whatever_the_chunks(chunks):
    rng = np.random.default_rng(4)
    floats, ints = rng.random((2, 40, 60)), rng.poisson(5.0, (2, 40, 60)).astype(np.int32)
    kernel = tophat_kernel(5.0)
    with dask.config.set(scheduler=_raise_on_compute):
        lazy = [correlate_array(da.from_array(data, chunks=chunks), kernel) for data in (floats, ints)]
    assert all(isinstance(x, da.Array) and x.dtype == np.float64 for x in lazy)
    np.testing.assert_allclose(lazy[0].compute(scheduler="sync"), correlate_array(floats, kernel), rtol=1e-14)
    np.testing.assert_array_equal(lazy[1].compute(scheduler="sync"), correlate_array(ints, kernel))


def test_zero_regions_stay_exactly_zero_next_to_large_values():
    image = np.zeros((30, 80))
    image[:, :20] = np.random.default_rng(6).random((30, 20)) * 1e10
    out = correlate_array(image, tophat_kernel(5.0))
    assert (out[:, 25:] == 0).all() and (out[:, :24] > 0).all()


def test_any_other_kernel_is_a_direct_correlation():
    image = np.random.default_rng(7).random((25, 31))
    kernel = np.array([[0.0, 1.0, 0.0], [2.0, 0.5, 0.0], [0.0, 0.0, 3.0]])
    ref = scipy.signal.correlate(image, kernel, mode="same", method="direct")
    np.testing.assert_allclose(correlate_array(image, kernel), ref, rtol=1e-13)
    with pytest.raises(GpcubeError, match="odd"):
        correlate_array(image, np.ones((2, 3)))


def test_dataarray_radius_in_degrees_of_the_geometry():
    axis = gpcube.EnergyAxis.log(1, 10, 2, "energy_reco")
    geom = gpcube.SkyGeom.create((83.6, 22.0), 0.05, npix=(30, 20), axes=[axis])
    data = np.random.default_rng(5).poisson(1.0, geom.data_shape("energy_reco")).astype(np.int32)
    image = xr.DataArray(
        data, dims=("energy_reco", "y", "x"), coords=geom.to_coords(), name="counts",
        attrs={"units": "", "geom": geom.to_attrs()},
    )  # fmt: skip
    out = correlate(image.chunk({"y": 7, "x": 9}), 0.2)  # 4 pixels
    assert out.dims == image.dims and out.name == "counts" and out.attrs["correlation_radius"] == 0.2
    assert out.attrs["geom"] == geom.to_attrs() and out.chunks is not None
    np.testing.assert_array_equal(out.to_numpy(), correlate_array(data, tophat_kernel(4.0)))
    with pytest.raises(GpcubeError, match="y"):
        correlate(image.transpose("y", "x", "energy_reco"), 0.2)
