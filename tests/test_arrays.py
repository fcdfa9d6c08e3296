"""gpcube.geom._arrays: the same numbers on numpy and on dask (classic or query-planning arrays), lazily."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

import gpcube
from gpcube.geom._arrays import band_reduce, elementwise, is_lazy, numpy_values, stack, where
from gpcube.geom.world import attach_world_coords


def _raise_on_compute(*args, **kwargs):
    raise AssertionError("a graph was computed while it was being built")


def _cube(seed: int = 0, dtype=np.float64) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(5, 8, 9)).astype(dtype)
    values[1, 2, 3] = np.nan
    return xr.DataArray(values, dims=("energy", "y", "x"), attrs={"units": "m2 s"}, name="cube")


def _lazy(array: xr.DataArray, chunks) -> xr.DataArray:
    return array.copy(data=da.from_array(array.data, chunks=chunks))


def test_where_and_elementwise_equal_numpy_and_build_lazily():
    cube = _cube()
    mask = xr.DataArray(np.arange(72).reshape(8, 9) % 3 > 0, dims=("y", "x"))
    eager = where(mask, cube)
    with dask.config.set(scheduler=_raise_on_compute):
        lazy = where(_lazy(mask, (3, 4)), _lazy(cube, (2, 4, 5)))
        ratio = elementwise(np.divide, _lazy(cube, (5, 8, 3)), _lazy(cube + 2, (1, 3, 9)), dtype=np.float64)
    assert is_lazy(lazy) and lazy.chunks == ((2, 2, 1), (4, 4), (5, 4))  # the chunks of x
    assert ratio.chunks == ((5,), (8,), (3, 3, 3))  # the first argument's, the other rechunked to them
    np.testing.assert_array_equal(lazy.to_numpy(), eager.to_numpy())
    expected = np.where(mask.values[None], cube.values, np.nan)
    np.testing.assert_array_equal(eager.to_numpy(), expected)
    np.testing.assert_array_equal(ratio.to_numpy(), cube.values / (cube.values + 2))
    assert eager.dims == cube.dims and eager.attrs == cube.attrs and eager.name == "cube"


def test_where_keeps_numpys_dtype():
    counts = xr.DataArray(np.arange(6, dtype=np.int32).reshape(2, 3), dims=("y", "x"))
    assert where(counts > 2, counts).dtype == np.float64  # NaN needs a float
    assert where(counts > 2, counts, 0).dtype == np.int32
    lazy = _lazy(counts, 1)
    assert where(lazy > 2, lazy, 0).dtype == np.int32
    np.testing.assert_array_equal(where(lazy > 2, lazy, 0).to_numpy(), [[0, 0, 0], [3, 4, 5]])


def test_elementwise_refuses_a_result_without_a_template():
    a = xr.DataArray(np.ones(3), dims="x")
    b = xr.DataArray(np.ones(2), dims="y")
    with pytest.raises(ValueError, match="no argument has all the dims"):
        elementwise(np.add, a, b, dtype=np.float64)


@pytest.mark.parametrize("how", ["sum", "nansum", "any"])
def test_band_reduce_is_numpy_exactly_on_any_chunks(how):
    cube = _cube(1) if how != "any" else _cube(1) > 0
    runs = [slice(0, 2), slice(2, 3), slice(3, 5)]
    eager = band_reduce(cube, "energy", runs, how)
    with dask.config.set(scheduler=_raise_on_compute):
        lazy = band_reduce(_lazy(cube, (2, 3, 4)), "energy", runs, how)
    expected = np.stack([getattr(np, how)(cube.values[r], axis=0) for r in runs])
    np.testing.assert_array_equal(eager.to_numpy(), expected)
    np.testing.assert_array_equal(lazy.to_numpy(), expected)  # bitwise: one block holds the whole axis
    assert lazy.dtype == eager.dtype == expected.dtype and lazy.dims == ("energy", "y", "x")


def test_band_reduce_moves_the_dim_first_and_keeps_the_world_coordinates():
    axis = gpcube.EnergyAxis.log(1, 10, 4, "energy_reco")
    geom = gpcube.SkyGeom.create((83.6, 22.0), 0.05, npix=(9, 8), axes=[axis])
    values = np.arange(4 * 72, dtype=np.float32).reshape(4, 8, 9)
    cube = xr.DataArray(values, dims=("energy_reco", "y", "x"), coords=geom.to_coords(),
                        attrs={"geom": geom.to_attrs()})  # fmt: skip
    cube = attach_world_coords(cube, geom).transpose("y", "energy_reco", "x")
    out = band_reduce(cube, "energy_reco", [slice(0, 4)])
    assert out.dims == ("energy_reco", "y", "x") and not {"energy_reco_lo", "energy_reco"} & set(out.coords)
    pixel = out.sel(lon=83.6, lat=22.0, method="nearest")
    ix, iy = geom.coord_to_idx(83.6, 22.0)
    assert float(pixel[0]) == values[:, iy, ix].sum()


def test_stack_on_numpy_and_dask():
    planes = [_cube(2).isel(energy=k) for k in range(3)]
    eager = stack(planes, "band")
    lazy = stack([_lazy(p, (4, 5)) for p in planes], "band")
    assert eager.dims == lazy.dims == ("band", "y", "x") and lazy.chunks[0] == (3,)
    np.testing.assert_array_equal(lazy.to_numpy(), eager.to_numpy())
    np.testing.assert_array_equal(eager.to_numpy(), _cube(2).values[:3])


def test_numpy_values_computes_a_lazy_array():
    cube = _cube(3)
    values = numpy_values(_lazy(cube, 2))
    assert isinstance(values, np.ndarray) and values.dtype == np.float64
    np.testing.assert_array_equal(values, cube.values)
