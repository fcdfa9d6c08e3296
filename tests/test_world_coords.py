"""World coordinates of sky products: lazy ``lon``/``lat`` over the pixel dims ``(y, x)``, selection by
degrees, slicing, alignment of cutouts with the mosaic, plots, interpolation, and the archive as a
DataTree (:mod:`gpcube.geom.world`, :func:`gpcube.open_datatree`)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import gpcube
from gpcube.errors import GpcubeError
from gpcube.geom import IRF_DIMS, EnergyAxis, SkyGeom
from gpcube.geom.world import SkyWorldIndex, WorldSelectionError, world_coords
from tests.conftest import archive_store

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CRAB = (83.633, 22.014)
RECO = EnergyAxis.from_edges([0.5, 5.0, 50.0], "energy_reco")
#: (frame, projection, centre): both projections, both frames, a CAR grid off the equator (whose
#: rows are not parallels, so lon and lat both vary along x and along y) and one across lon = 0.
GRIDS = [
    ("icrs", "CAR", CRAB),
    ("icrs", "TAN", CRAB),
    ("galactic", "CAR", (184.557, -5.784)),
    ("galactic", "TAN", (184.557, -5.784)),
    ("galactic", "CAR", (0.0, 0.0)),
    ("icrs", "CAR", (150.0, 60.0)),
]
IDS = ["icrs-CAR", "icrs-TAN", "gal-CAR-off-equator", "gal-TAN", "gal-CAR-across-0", "icrs-CAR-dec60"]


def cube(frame="icrs", projection="CAR", center=CRAB, npix=(40, 30), binsz=0.1) -> xr.DataArray:
    """``(energy_reco, y, x)`` with value ``100 * ie + 1000 * y + x`` in parent pixel indices, as a maker
    would give it (pixel-index coords, world coords, geometry attrs)."""
    geom = SkyGeom.create(center, binsz, npix=npix, frame=frame, projection=projection, axes=[RECO])
    coords = geom.to_coords()
    ie, iy, ix = np.meshgrid(np.arange(RECO.nbins), coords["y"].values, coords["x"].values, indexing="ij")
    data = (100 * ie + 1000 * iy + ix).astype(float)
    da = xr.DataArray(data, dims=("energy_reco", "y", "x"), coords=coords, name="counts",
                      attrs={"geom": geom.to_attrs(), "units": ""})  # fmt: skip
    return da.assign_coords(world_coords(geom))


# ------------------------------------------------------------------------------------------ coordinates
@pytest.mark.parametrize(("frame", "projection", "center"), GRIDS, ids=IDS)
def test_coordinates_are_the_grid_world_coordinates(frame, projection, center):
    da = cube(frame, projection, center)
    geom = da.sky.geom
    assert da["lon"].dims == da["lat"].dims == ("y", "x")
    assert da["lon"].attrs == {"units": "deg", "frame": frame, "long_name": da["lon"].attrs["long_name"]}
    assert isinstance(da.xindexes["lon"], SkyWorldIndex) and da.xindexes["lon"] is da.xindexes["lat"]
    x, y = np.meshgrid(np.arange(geom.npix[0]), np.arange(geom.npix[1]))
    lon, lat = geom.pix_to_world(x, y)
    np.testing.assert_allclose((da["lon"].values - lon + 180) % 360 - 180, 0, atol=1e-10)
    np.testing.assert_allclose(da["lat"].values, lat, atol=1e-10)
    assert np.ptp(da["lon"].values) < 180, "lon is continuous over the grid"
    if frame == "galactic" and projection == "CAR" and center[1] != 0:  # off the equator: 2-D
        assert np.ptp(da["lat"].values, axis=1).max() > 1e-3 and np.ptp(da["lon"].values, axis=0).max() > 1e-3


def test_a_grid_across_longitude_zero_has_negative_longitudes_not_a_jump():
    lon = cube("galactic", "CAR", (0.0, 0.0))["lon"].values
    assert lon.min() < 0 < lon.max() < 5
    assert np.all(np.diff(lon, axis=1) < 0), "longitude decreases along x, without a 360 deg jump"


# ------------------------------------------------------------------------------------------- selection
@pytest.mark.parametrize(("frame", "projection", "center"), GRIDS, ids=IDS)
def test_pixel_to_world_to_sel_is_the_same_pixel(frame, projection, center):
    da = cube(frame, projection, center)
    rng = np.random.default_rng(0)
    for iy, ix in zip(rng.integers(0, 30, 12), rng.integers(0, 40, 12), strict=True):
        lon, lat = float(da["lon"][iy, ix]), float(da["lat"][iy, ix])
        got = da.sel(lon=lon, lat=lat, method="nearest")
        assert (int(got["y"]), int(got["x"])) == (iy, ix)
        np.testing.assert_array_equal(got.values, da.isel(y=iy, x=ix).values)
    # anywhere inside a pixel (not only at its centre) selects it: 0.4 pixel off the centre
    x, y = 17.4, 11.6
    lon, lat = da.sky.geom.pix_to_world(x, y)
    got = da.sel(lon=float(lon), lat=float(lat), method="nearest")
    assert (int(got["y"]), int(got["x"])) == (12, 17)


@pytest.mark.parametrize(("frame", "projection", "center"), GRIDS[:3], ids=IDS[:3])
def test_sel_of_several_points_is_pointwise(frame, projection, center):
    da = cube(frame, projection, center)
    iy, ix = np.array([0, 5, 29]), np.array([39, 0, 20])
    lon = xr.DataArray(da["lon"].values[iy, ix], dims="source")
    lat = xr.DataArray(da["lat"].values[iy, ix], dims="source")
    got = da.sel(lon=lon, lat=lat, method="nearest")
    assert got.dims == ("energy_reco", "source")
    np.testing.assert_array_equal(got["y"].values, iy)
    np.testing.assert_array_equal(got["x"].values, ix)


def test_selections_that_cannot_be_honoured_raise_key_errors():
    da = cube()
    with pytest.raises(KeyError, match="outside the grid"):
        da.sel(lon=CRAB[0] + 10, lat=CRAB[1], method="nearest")
    with pytest.raises(WorldSelectionError, match="'lat' is missing"):
        da.sel(lon=CRAB[0], method="nearest")
    with pytest.raises(KeyError, match="method='nearest'"):
        da.sel(lon=CRAB[0], lat=CRAB[1])
    with pytest.raises(KeyError, match="outside the grid"):  # one point of several outside
        da.sel(lon=xr.DataArray([CRAB[0], 0.0], dims="p"), lat=xr.DataArray([CRAB[1], 0.0], dims="p"),
               method="nearest")  # fmt: skip
    with pytest.raises(KeyError, match="DataArrays"):
        da.sel(lon=[CRAB[0]], lat=[CRAB[1]], method="nearest")
    tan = cube("icrs", "TAN")
    with pytest.raises(KeyError, match="outside the grid"):  # the other hemisphere does not project
        tan.sel(lon=CRAB[0] + 180, lat=-CRAB[1], method="nearest")
    assert isinstance(WorldSelectionError("x"), GpcubeError)


def test_tolerance_bounds_the_distance_to_the_pixel_centre():
    da = cube()
    lon, lat = (float(v) for v in da.sky.geom.pix_to_world(10.45, 7.0))  # 0.045 deg from pixel 10's centre
    assert int(da.sel(lon=lon, lat=lat, method="nearest", tolerance=0.05)["x"]) == 10
    with pytest.raises(KeyError, match="tolerance=0.01"):
        da.sel(lon=lon, lat=lat, method="nearest", tolerance=0.01)


@pytest.mark.parametrize(("frame", "projection", "center"), GRIDS, ids=IDS)
def test_isel_keeps_a_shifted_index(frame, projection, center):
    da = cube(frame, projection, center)
    sub = da.isel(y=slice(5, 20), x=slice(12, 31))
    index = sub.xindexes["lon"]
    assert isinstance(index, SkyWorldIndex) and index.geom.origin == (12, 5) and index.geom.npix == (19, 15)
    np.testing.assert_array_equal(sub["lon"].values, da["lon"].values[5:20, 12:31])
    lon, lat = float(da["lon"][9, 20]), float(da["lat"][9, 20])
    got = sub.sel(lon=lon, lat=lat, method="nearest")
    assert (int(got["y"]), int(got["x"])) == (9, 20)  # parent pixel indices, as in the mosaic
    with pytest.raises(KeyError, match="outside the grid"):  # in the mosaic, not in the sub-region
        sub.sel(lon=float(da["lon"][2, 2]), lat=float(da["lat"][2, 2]), method="nearest")
    assert sub.isel(y=slice(3, 6)).sel(lon=lon, lat=lat, method="nearest")["x"] == 20
    # stepped or fancy indexing drops the index; the coordinate values stay right
    strided = da.isel(x=slice(0, 40, 2))
    assert "lon" not in strided.xindexes
    np.testing.assert_array_equal(strided["lon"].values, da["lon"].values[:, ::2])
    assert float(da.isel(y=3, x=4)["lat"]) == float(da["lat"][3, 4])


# ------------------------------------------------------------------------------------------- alignment
def test_a_cutout_and_the_mosaic_align_by_pixel():
    mosaic = cube()
    cutout = mosaic.isel(y=slice(4, 14), x=slice(20, 35)) + 0.5  # the same pixels, as a cutout is
    inner = mosaic + cutout
    assert inner.sizes == cutout.sizes and inner.xindexes["lon"].equals(cutout.xindexes["lon"])
    np.testing.assert_array_equal(inner.values, 2 * cutout.values - 0.5)
    np.testing.assert_array_equal(inner["lat"].values, cutout["lat"].values)
    _, outer = xr.align(mosaic, cutout, join="outer")
    assert outer.sizes == mosaic.sizes and np.isnan(outer.isel(y=0, x=0)).all()
    np.testing.assert_array_equal(outer.isel(y=slice(4, 14), x=slice(20, 35)).values, cutout.values)
    point = {"lon": float(mosaic["lon"][8, 25]), "lat": float(mosaic["lat"][8, 25]), "method": "nearest"}
    assert float(outer.sel(**point).isel(energy_reco=0)) == float(cutout.sel(**point).isel(energy_reco=0))
    # two cutouts that overlap in part: the overlap
    other = mosaic.isel(y=slice(10, 30), x=slice(0, 25))
    both = cutout + other
    assert (both["y"].values.tolist(), both["x"].values.tolist()) == (
        list(range(10, 14)),
        list(range(20, 25)),
    )
    assert both.xindexes["lon"].geom.origin == (20, 10)


def test_products_of_different_grids_do_not_align_silently():
    fine, coarse = cube(binsz=0.1), cube(binsz=0.2, npix=(20, 15))
    with pytest.raises(GpcubeError, match="different pixel grids"):
        fine + coarse


# ------------------------------------------------------------------------------- plots, interpolation
def test_plot_on_the_world_coordinates():
    image = cube("galactic", "CAR", (184.557, -5.784)).isel(energy_reco=0)
    mesh = image.plot(x="lon", y="lat")
    assert type(mesh).__name__ == "QuadMesh"
    ax = plt.gca()
    assert ax.get_xlabel().startswith("Galactic longitude") and ax.get_ylabel().startswith(
        "Galactic latitude"
    )
    plt.close("all")


@pytest.mark.parametrize(("frame", "projection", "center"), GRIDS[:4], ids=IDS[:4])
def test_interp_world(frame, projection, center):
    da = cube(frame, projection, center)
    geom = da.sky.geom
    lon, lat = (float(v) for v in geom.pix_to_world(7.0, 9.0))
    at_centre = da.sky.interp_world(lon, lat)
    np.testing.assert_allclose(at_centre.values, da.isel(y=9, x=7).values, rtol=1e-9)
    assert float(at_centre["lon"]) == lon
    # values are linear in the pixel indices: interpolation in pixels gives them exactly
    x, y = 7.3, 9.6
    lon, lat = (
        xr.DataArray(v, dims="p") for v in geom.pix_to_world(np.array([x, 3.5]), np.array([y, 20.25]))
    )
    got = da.sky.interp_world(lon, lat)
    assert got.dims == ("energy_reco", "p")
    np.testing.assert_allclose(got.isel(energy_reco=1).values, [100 + 1000 * y + x, 100 + 1000 * 20.25 + 3.5])
    outside = da.sky.interp_world(CRAB[0] + 90, 0.0) if projection == "CAR" else None
    if outside is not None:
        assert np.isnan(outside.values).all()


# ------------------------------------------------------------------------------------------ IRF grid
def test_dask_tokenises_a_product_by_its_grid_without_computing_the_coordinates(monkeypatch):
    from dask.base import tokenize

    from gpcube.geom.world import SkyTransform

    a, same, shifted = cube(), cube(), cube(center=(83.733, 22.014))
    tokens = [tokenize(a), tokenize(same), tokenize(shifted), tokenize(a.isel(x=slice(1, 5)))]

    def fail(self, dim_positions):
        raise AssertionError("world coordinates computed to tokenise")

    monkeypatch.setattr(SkyTransform, "forward", fail)
    assert [tokenize(a), tokenize(same), tokenize(shifted)] == tokens[:3]
    assert tokens[0] == tokens[1] and len(set(tokens)) == 3  # another grid or a slice: another token
    # the slice kept a shifted index, hence its own lazy coordinates: tokenised by its grid too
    tokenize(a.isel(x=slice(1, 5)))


def test_the_coarse_irf_grid_has_its_own_names():
    fine = SkyGeom.create(CRAB, 0.02, npix=(250, 250), axes=[RECO])
    coarse = fine.to_binsz(0.2)
    assert coarse.dims == IRF_DIMS and coarse.world_names == ("irf_lon", "irf_lat")
    assert SkyGeom.from_attrs(coarse.to_attrs()) == coarse
    sky = cube(npix=(250, 250), binsz=0.02)
    pixels = {k: v for k, v in coarse.to_coords().items() if v.dims[0] in IRF_DIMS}
    irf = xr.DataArray(np.ones(coarse.shape), dims=IRF_DIMS, coords=pixels, name="exposure_irf",
                       attrs={"geom": coarse.to_attrs()}).assign_coords(world_coords(coarse))  # fmt: skip
    ds = xr.Dataset({"counts": sky, "exposure_irf": irf})
    both = ds.sel(lon=CRAB[0], lat=CRAB[1], irf_lon=CRAB[0], irf_lat=CRAB[1], method="nearest")
    assert (int(both["y"]), int(both["x"])) == (125, 124)
    assert (int(both["irf_y"]), int(both["irf_x"])) == tuple(int(v) for v in coarse.coord_to_idx(*CRAB)[::-1])


def test_dims_must_be_a_prefixed_pair():
    with pytest.raises(GpcubeError, match="dims must be"):
        SkyGeom.create(CRAB, 0.1, npix=10).with_dims(("lat", "lon"))


# ------------------------------------------------------------------------------------ the Crab job
@pytest.fixture(scope="module")
def crab(tmp_path_factory):
    """The README's job: ``gpcube example crab.yaml && gpcube run crab.yaml``."""
    from gpcube.data import write_example_config
    from gpcube.workflow.config import load_config
    from gpcube.workflow.pipeline import run

    config = load_config(write_example_config(tmp_path_factory.mktemp("crab") / "crab.yaml"))
    run(config, progress=False)
    return config.output


def test_sel_by_degrees_finds_the_crab(crab):
    mosaic = gpcube.open_archive(crab)
    geom = mosaic.sky.geom
    ix, iy = (int(v) for v in geom.coord_to_idx(*CRAB))
    x, y = geom.world_to_pix(*CRAB)
    assert abs(x - ix) <= 0.5 and abs(y - iy) <= 0.5
    at = mosaic.sel(lon=CRAB[0], lat=CRAB[1], method="nearest")
    assert (int(at["y"]), int(at["x"])) == (iy, ix)
    np.testing.assert_array_equal(at["counts"].to_numpy(), mosaic["counts"].to_numpy()[:, iy, ix])
    # the cutout of an observation selects the same pixel, and sums with the mosaic by pixel
    obs = gpcube.open_archive(crab, obs_id=23523)
    assert isinstance(obs.xindexes["lon"], SkyWorldIndex)
    at_obs = obs.sel(lon=CRAB[0], lat=CRAB[1], method="nearest")
    assert (int(at_obs["y"]), int(at_obs["x"])) == (iy, ix)
    total = mosaic["counts"] - obs["counts"]
    assert total.sizes == obs["counts"].sizes
    irf = gpcube.open_archive(crab, irf=True)
    at_irf = irf.sel(irf_lon=CRAB[0], irf_lat=CRAB[1], method="nearest")
    coarse = SkyGeom.from_attrs(irf.attrs["geom"])
    assert (int(at_irf["irf_x"]), int(at_irf["irf_y"])) == tuple(int(v) for v in coarse.coord_to_idx(*CRAB))


def test_world_coordinates_are_not_stored(crab):
    raw = xr.open_datatree(archive_store(crab), engine="zarr", consolidated=False)
    for node in raw.subtree:
        assert not {"lon", "lat", "irf_lon", "irf_lat"} & set(node.variables), node.path
    assert raw["mosaic"].sizes["y"] == 250 and raw["mosaic/irf"].sizes["irf_y"] == 25


def test_the_archive_opens_as_a_datatree_like_open_archive(crab):
    tree = gpcube.open_datatree(crab)
    assert {"mosaic", "obs"} <= set(tree.children) and set(tree["mosaic"].children) == {"irf"}
    pairs = [("mosaic", {}), ("mosaic/irf", {"irf": True}), ("obs/23523", {"obs_id": 23523}),
             ("obs/23523/irf", {"obs_id": 23523, "irf": True})]  # fmt: skip
    for path, kwargs in pairs:
        want = gpcube.open_archive(crab, **kwargs)
        got = tree[path].to_dataset()
        assert set(got.data_vars) == set(want.data_vars), path
        for name in want.data_vars:
            xr.testing.assert_identical(got[name], want[name])
    at = tree["mosaic"].to_dataset().sel(lon=CRAB[0], lat=CRAB[1], method="nearest")
    assert int(at["x"]) == int(gpcube.open_archive(crab).sky.geom.coord_to_idx(*CRAB)[0])
    assert set(gpcube.open_datatree(crab, observations=False).children) == {"mosaic"}


def test_an_archive_of_format_version_3_is_refused_with_the_reason(crab, tmp_path):
    import shutil

    from gpcube.storage.layout import open_readonly
    from gpcube.storage.repository import Archive
    from tests.conftest import set_format_version

    copy = tmp_path / "old.zarr"
    shutil.copytree(crab, copy)
    archive = Archive(copy)
    set_format_version(archive, 3)
    with pytest.raises(GpcubeError, match="version 3 is not supported: its sky products have pixel dims"):
        open_readonly(archive)
    with pytest.raises(GpcubeError, match="version 3"):
        gpcube.open_archive(copy)
