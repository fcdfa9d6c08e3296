"""Tests for the ``sky`` accessor (gpcube.accessor): geometry of slices, world coordinates, images, plots."""

from __future__ import annotations

import sys

import astropy.units as u
import dask
import dask.array as dsa
import matplotlib
import numpy as np
import pytest
import xarray as xr

import gpcube.accessor  # noqa: F401  (registers the accessor)
from gpcube.errors import GpcubeError
from gpcube.geom import EnergyAxis, SkyGeom
from gpcube.geom.world import world_coords

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from astropy.visualization.wcsaxes import WCSAxes  # noqa: E402

EDGES = [0.1, 1.0, 10.0, 100.0]  # three energy_reco bins, log-centres 0.316, 3.16, 31.6 TeV


def make_geom(frame: str = "galactic", projection: str = "CAR") -> SkyGeom:
    axis = EnergyAxis.from_edges(EDGES, "energy_reco")
    return SkyGeom.create((10.0, 20.0), 0.5, npix=(12, 9), frame=frame, projection=projection, axes=[axis])


def make_cube(geom: SkyGeom, *, lazy: bool = False, name: str = "counts", units: str = "") -> xr.DataArray:
    """``(energy_reco, y, x)`` with value ``100 * ie + 10 * parent_iy + parent_ix`` (known per pixel), and
    the world coordinates, as the makers give them."""
    coords = geom.to_coords()
    ie, iy, ix = np.meshgrid(
        np.arange(geom.axes[0].nbins), coords["y"].to_numpy(), coords["x"].to_numpy(), indexing="ij"
    )
    data = (100 * ie + 10 * iy + ix).astype(float)
    data = dsa.from_array(data, chunks=(1, 4, 5)) if lazy else data
    attrs = {"units": units, "geom": geom.to_attrs()}
    cube = xr.DataArray(data, dims=("energy_reco", "y", "x"), coords=coords, name=name, attrs=attrs)
    return cube.assign_coords(world_coords(geom))


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# -------------------------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("frame", ["icrs", "galactic"])
@pytest.mark.parametrize("projection", ["CAR", "TAN"])
def test_geom_of_isel_slice_is_on_the_parent_pixels(frame, projection):
    parent = make_geom(frame, projection)
    cube = make_cube(parent)
    assert cube.sky.geom == parent
    sub = cube.isel(y=slice(3, 8), x=slice(2, 7))
    geom = sub.sky.geom
    assert geom.npix == (5, 5) and geom.origin == (2, 3)
    assert geom == parent.slice((slice(3, 8), slice(2, 7)))
    x, y = np.meshgrid(np.arange(5), np.arange(5))
    np.testing.assert_allclose(geom.pix_to_world(x, y), parent.pix_to_world(x + 2, y + 3), rtol=0, atol=1e-12)
    world = sub.sky.wcs.pixel_to_world_values(x, y)
    np.testing.assert_allclose(world, parent.pix_to_world(x + 2, y + 3), rtol=0, atol=1e-9)


def test_geom_of_a_cutout_sliced_again_and_of_sel():
    parent = make_geom()
    cutout = parent.slice((slice(2, 9), slice(4, 12)))  # origin (4, 2)
    cube = make_cube(cutout)
    assert cube.sky.geom == cutout
    # sel uses the parent-grid pixel indices (labels, inclusive)
    assert cube.sel(x=slice(6, 9), y=slice(3, 5)).sky.geom == parent.slice((slice(3, 6), slice(6, 10)))
    assert cube.isel(y=slice(1, 3)).sky.geom == parent.slice((slice(3, 5), slice(4, 12)))


@pytest.mark.parametrize(
    "selection",
    [{"x": [0, 2, 3]}, {"y": slice(None, None, -1)}, {"x": slice(0, 8, 2)}],
    ids=["fancy", "reversed", "strided"],
)
def test_geom_of_non_contiguous_selection_raises(selection):
    with pytest.raises(GpcubeError, match="contiguous"):
        _ = make_cube(make_geom()).isel(selection).sky.geom


def test_geom_energy_axes_follow_the_energy_bins():
    cube = make_cube(make_geom())
    np.testing.assert_array_equal(cube.isel(energy_reco=slice(1, 3)).sky.geom.axes[0].edges, EDGES[1:])
    assert cube.isel(energy_reco=0).sky.geom.axes == ()
    assert cube.sum("energy_reco", keep_attrs=True).sky.geom.axes == ()
    with pytest.raises(GpcubeError, match="not contiguous"):
        _ = cube.isel(energy_reco=[0, 2]).sky.geom


def test_missing_geom_attrs_raise():
    cube = make_cube(make_geom())
    bare = cube.copy()
    bare.attrs = {}
    with pytest.raises(GpcubeError, match="no 'geom'"):
        _ = bare.sky.geom
    with pytest.raises(GpcubeError, match="no 'geom'"):
        bare.sky.plot()
    with pytest.raises(GpcubeError, match="no 'geom'"):
        _ = xr.Dataset({"counts": bare}).sky.wcs
    with pytest.raises(GpcubeError, match="'x' dimension"):
        _ = cube.isel(x=0).sky.geom


# ------------------------------------------------------------------------------------ world coordinates
@pytest.mark.parametrize("projection", ["CAR", "TAN"])
def test_world_coords_match_pix_to_world(projection):
    parent = make_geom("icrs", projection)
    sub = make_cube(parent).isel(y=slice(1, 6), x=slice(3, 11))
    lon, lat = sub.sky.world_coords()
    assert lon.dims == lat.dims == ("y", "x") and lon.shape == (5, 8)
    assert lon.name == "lon" and lat.attrs["units"] == "deg" and lat.attrs["frame"] == "icrs"
    np.testing.assert_array_equal(lon["x"], sub["x"])
    x, y = np.meshgrid(np.arange(3, 11), np.arange(1, 6))
    expected_lon, expected_lat = parent.pix_to_world(x, y)
    np.testing.assert_allclose((lon - expected_lon + 180) % 360 - 180, 0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(lat, expected_lat, rtol=0, atol=1e-12)

    bare = sub.drop_vars(["lon", "lat"])
    with_coords = bare.sky.with_world_coords()
    np.testing.assert_array_equal(with_coords["lat"], lat)
    assert with_coords["lon"].dims == ("y", "x") and "lon" in with_coords.xindexes
    ds = xr.Dataset({"counts": bare}).sky.with_world_coords()
    np.testing.assert_array_equal(ds["lon"], lon)
    assert sub.sky.with_world_coords() is sub  # already there: unchanged


# ------------------------------------------------------------------------------------------- images
@pytest.mark.parametrize(
    ("energy", "index"),
    [
        (0, 0),
        (2, 2),
        (-1, 2),
        (np.int64(1), 1),
        (0.5, 0),
        (1.0, 1),
        (50.0, 2),
        (1.0 * u.TeV, 1),
        (500 * u.GeV, 0),
    ],
)
def test_to_image_energy_bin(energy, index):
    cube = make_cube(make_geom())
    image = cube.sky.to_image(energy)
    assert image.dims == ("y", "x")
    np.testing.assert_array_equal(image, cube.isel(energy_reco=index))
    assert (
        float(image["energy_reco_lo"]) == EDGES[index] and float(image["energy_reco_hi"]) == EDGES[index + 1]
    )
    assert image.attrs["geom"] == cube.attrs["geom"]


@pytest.mark.parametrize("energy", [None, "sum"])
def test_to_image_sum(energy):
    cube = make_cube(make_geom())
    image = cube.sky.to_image(energy)
    np.testing.assert_array_equal(image, cube.to_numpy().sum(axis=0))
    assert (float(image["energy_reco_lo"]), float(image["energy_reco_hi"])) == (0.1, 100.0)
    assert image.sky.geom.npix == (12, 9)


def test_to_image_errors_and_2d():
    cube = make_cube(make_geom())
    for energy, match in [
        (3, "out of range"),
        (200.0, "outside"),
        (0.05 * u.TeV, "outside"),
        ("max", "must be"),
    ]:
        with pytest.raises(GpcubeError, match=match):
            cube.sky.to_image(energy)
    with_rad = cube.expand_dims(rad=3)
    with pytest.raises(GpcubeError, match="rad"):
        with_rad.sky.to_image()
    image = cube.isel(energy_reco=1)
    np.testing.assert_array_equal(image.sky.to_image(), image)  # no energy dim: as is
    with pytest.raises(GpcubeError, match="no energy dim"):
        image.sky.to_image(0)
    np.testing.assert_array_equal(cube.transpose("x", "y", ...).sky.to_image(0), cube.isel(energy_reco=0))


# -------------------------------------------------------------------------------------------- plots
def test_plot_draws_the_image_on_wcs_axes():
    parent = make_geom("galactic")
    sub = make_cube(parent, units="cm-2 s-1").isel(y=slice(2, 7), x=slice(1, 9))
    im = sub.sky.plot(energy=1.0 * u.TeV)
    ax = im.axes
    assert isinstance(ax, WCSAxes)
    assert ax.wcs.wcs.compare(sub.sky.wcs.wcs)
    assert im.get_transform() == ax.transData  # pixels of the array's WCS
    np.testing.assert_array_equal(im.get_array(), sub.isel(energy_reco=1).to_numpy())
    assert im.get_extent() == [-0.5, 7.5, -0.5, 4.5] and im.origin == "lower"
    assert ax.coords[0].get_axislabel() == "Galactic longitude"
    assert ax.coords[1].get_axislabel() == "Galactic latitude"
    assert ax.get_title() == "counts, reco energy 1-10 TeV"
    assert ax.figure.axes[-1].get_ylabel() == "counts [cm-2 s-1]"  # the colorbar


def test_plot_on_given_axes_stretches_and_errors():
    parent = make_geom("icrs")
    cube = make_cube(parent)
    fig = plt.figure()
    ax = fig.add_subplot(projection=parent.wcs)
    im = cube.isel(y=slice(2, 5), x=slice(3, 6)).sky.plot(ax, stretch="log", add_colorbar=False)
    assert im.axes is ax and len(fig.axes) == 1
    assert im.get_extent() == [2.5, 5.5, 1.5, 4.5]  # placed on the parent grid
    assert isinstance(im.norm, matplotlib.colors.LogNorm) and im.norm.vmin == cube.to_numpy().sum(0)[2, 3]
    assert ax.coords[0].get_axislabel() == "RA (ICRS)"
    im = cube.sky.plot(energy=0, stretch="sqrt", vmax=50.0)
    assert isinstance(im.norm, matplotlib.colors.PowerNorm) and (im.norm.vmin, im.norm.vmax) == (0.0, 50.0)
    with pytest.raises(GpcubeError, match="stretch"):
        cube.sky.plot(stretch="asinh")
    with pytest.raises(GpcubeError, match="WCSAxes"):
        cube.sky.plot(plt.figure().add_subplot())
    other = fig.add_subplot(projection=make_geom("galactic").wcs)
    with pytest.raises(GpcubeError, match="another pixel grid"):
        cube.sky.plot(other)


def test_plot_dataset_variable():
    geom = make_geom()
    counts = make_cube(geom)
    ds = xr.Dataset({"counts": counts.drop_attrs(), "other": counts * 2}, attrs={"geom": geom.to_attrs()})
    assert ds.sky.geom == geom
    im = ds.sky.plot("counts", energy=0)
    np.testing.assert_array_equal(im.get_array(), counts.isel(energy_reco=0).to_numpy())
    np.testing.assert_array_equal(ds.sky.to_image("counts", energy="sum"), counts.sum("energy_reco"))
    ds_var_attrs = xr.Dataset({"counts": counts}).isel(x=slice(4, 8))
    assert ds_var_attrs.sky.geom == geom.slice((slice(None), slice(4, 8)))


def test_plot_computes_a_lazy_array_once():
    cube = make_cube(make_geom(), lazy=True)
    calls = []

    def counting_scheduler(dsk, keys, **kwargs):
        calls.append(keys)
        return dask.get(dsk, keys, **kwargs)

    with dask.config.set(scheduler=counting_scheduler):
        image = cube.sky.to_image("sum")
        assert calls == []  # lazy
        im = cube.sky.plot(stretch="sqrt")
    assert len(calls) == 1
    np.testing.assert_array_equal(im.get_array(), image.to_numpy())


def test_plot_without_matplotlib_raises_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install gpcube\[plot\]"):
        make_cube(make_geom()).sky.plot()


# ------------------------------------------------------------------------------------- a real product
def test_real_counts_product(hess_store):
    from gpcube.makers import make_map_counts

    axis = EnergyAxis.log(0.5, 50.0, 6, "energy_reco")
    parent = SkyGeom.create((83.633, 22.014), 0.05, width=(8.0, 6.0), frame="icrs", axes=[axis])
    counts = make_map_counts(hess_store.observation(23523), parent, max_offset=2.0)
    cutout = SkyGeom.from_dataarray(counts)
    assert counts.sky.geom == cutout and cutout.origin != (0, 0)
    sub = counts.isel(y=slice(10, 30), x=slice(5, 40))
    x, y = np.meshgrid(np.arange(35), np.arange(20))
    np.testing.assert_allclose(
        sub.sky.geom.pix_to_world(x, y),
        parent.pix_to_world(x + cutout.origin[0] + 5, y + cutout.origin[1] + 10),
    )
    im = counts.sky.plot(energy=2.0)  # bins 0.5, 1.077, 2.321, 5 ... TeV
    np.testing.assert_array_equal(im.get_array(), counts.isel(energy_reco=1).to_numpy())
    assert im.axes.get_title() == "counts, reco energy 1.08-2.32 TeV"
    total = int(counts.sky.to_image().to_numpy().sum())
    assert total == int(counts.to_numpy().sum()) > 1000
