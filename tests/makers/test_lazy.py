"""lazy_cube: several leading dims, extra (non-energy) axes, blocks stitched in the right places."""

from __future__ import annotations

import dask
import numpy as np
import xarray as xr

import gpcube
from gpcube.makers._lazy import lazy_cube


def _block(loaded, block_geom):
    scale, n_rad = loaded
    energy = block_geom.axis("energy_true").centers
    lat = block_geom.origin[1] + np.arange(block_geom.shape[0])
    lon = block_geom.origin[0] + np.arange(block_geom.shape[1])
    rad = np.arange(n_rad)
    return scale * (energy[:, None, None, None] + rad[None, :, None, None] * 1000) + (
        lat[:, None] * 100 + lon[None, :]
    )


def test_two_leading_dims_with_an_extra_axis():
    axis = gpcube.EnergyAxis.log(1, 10, 3, "energy_true")
    geom = gpcube.SkyGeom.create((0, 0), 0.1, npix=(7, 5), axes=[axis])
    rad = {"rad": xr.Variable(("rad",), np.array([0.0, 0.1]), {"units": "deg"})}
    cube = lazy_cube(
        lambda: (2.0, 2), (), _block, geom, ("energy_true", "rad"),
        name="t", dtype=float, attrs={}, chunk=3, extra_axes={"rad": rad},
    )  # fmt: skip
    assert cube.dims == ("energy_true", "rad", "y", "x")
    assert cube.shape == (3, 2, 5, 7)
    assert len(cube.chunks[2]) == 2 and len(cube.chunks[3]) == 3
    np.testing.assert_array_equal(cube["rad"].values, [0.0, 0.1])
    expected = _block((2.0, 2), geom)
    np.testing.assert_allclose(cube.compute(scheduler="sync").values, expected)


def test_the_load_runs_once_for_all_blocks():
    """dask's blockwise optimisation must not fuse the load into (and re-run it in) each block task."""
    calls = []

    def load():
        calls.append(1)
        return 1.0, 1

    def block(loaded, block_geom):
        return _block(loaded, block_geom)[:, 0]

    axis = gpcube.EnergyAxis.log(1, 10, 2, "energy_true")
    geom = gpcube.SkyGeom.create((0, 0), 0.1, npix=(7, 5), axes=[axis])
    cube = lazy_cube(load, (), block, geom, "energy_true", name="t", dtype=float, attrs={}, chunk=2)
    assert len(cube.chunks[1]) * len(cube.chunks[2]) == 12
    (computed,) = dask.compute(cube.data + 1, scheduler="sync")
    np.testing.assert_allclose(computed, _block((1.0, 1), geom)[:, 0] + 1)
    assert len(calls) == 1
