"""Tests for gpcube.geom: energy axes, SkyGeom (CAR/TAN, icrs/galactic) and cutouts."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import xarray as xr
from astropy.coordinates import SkyCoord

from gpcube.errors import GpcubeError
from gpcube.geom import EnergyAxis, SkyGeom, cutout

FRAMES = ["icrs", "galactic"]
PROJECTIONS = ["CAR", "TAN"]


def survey_geom(**kwargs) -> SkyGeom:
    return SkyGeom.create((333.974, -1.965), 0.02, width=(32.85, 9.115), frame="galactic", **kwargs)


def expected_slices(geom: SkyGeom, center: tuple[float, float], radius: float):
    """Brute force: the box of all pixel centres within ``radius``, one pixel wider, clipped."""
    iy, ix = np.nonzero(geom.separation(*center) <= radius)
    if iy.size == 0:
        return slice(0, 0), slice(0, 0)
    ny, nx = geom.shape
    return (
        slice(max(iy.min() - 1, 0), min(iy.max() + 2, ny)),
        slice(max(ix.min() - 1, 0), min(ix.max() + 2, nx)),
    )


def angle(lon1, lat1, lon2, lat2):
    """Great-circle distance (deg) via astropy, an independent reference."""
    return SkyCoord(lon1, lat1, unit="deg").separation(SkyCoord(lon2, lat2, unit="deg")).deg


# --------------------------------------------------------------------------------------------- EnergyAxis
def test_energy_axis_log_edges_and_centres():
    ax = EnergyAxis.log(0.1, 100.0, 3, "energy_true")
    np.testing.assert_allclose(ax.edges, [0.1, 1.0, 10.0, 100.0], rtol=1e-14)
    np.testing.assert_allclose(ax.centers, np.sqrt([0.1, 10.0, 1000.0]), rtol=1e-14)
    np.testing.assert_array_equal(ax.lo, ax.edges[:-1])
    np.testing.assert_array_equal(ax.hi, ax.edges[1:])
    assert ax.nbins == 3 and ax.energy_type == "true"
    assert ax.edges.dtype == np.float64
    assert EnergyAxis.from_edges([1, 2], "energy_reco").energy_type == "reco"


def test_energy_axis_equality_hash_immutability():
    a = EnergyAxis.from_edges([1.0, 2.0, 4.0], "energy_reco")
    b = EnergyAxis.from_edges(np.array([1.0, 2.0, 4.0]), "energy_reco")
    assert a == b and hash(a) == hash(b)
    assert a != EnergyAxis.from_edges([1.0, 2.0, 4.0], "energy_true")
    assert a != EnergyAxis.from_edges([1.0, 2.0, 5.0], "energy_reco")
    with pytest.raises(ValueError):
        a.edges[0] = 3.0
    with pytest.raises(AttributeError):
        a.name = "energy_true"
    edges = np.array([1.0, 2.0])
    c = EnergyAxis.from_edges(edges, "energy_reco")
    edges[0] = 0.5
    assert c.edges[0] == 1.0  # a copy


def test_energy_axis_coords_and_dict_roundtrip():
    ax = EnergyAxis.log(0.5, 50.0, 4, "energy_reco")
    coords = ax.to_coords()
    assert set(coords) == {"energy_reco", "energy_reco_lo", "energy_reco_hi"}
    assert all(v.dims == ("energy_reco",) and v.attrs["units"] == "TeV" for v in coords.values())
    da = xr.DataArray(np.zeros(4), dims=("energy_reco",), coords=coords)
    np.testing.assert_array_equal(da["energy_reco_hi"].values, ax.hi)
    assert EnergyAxis.from_dict(json.loads(json.dumps(ax.to_dict()))) == ax
    assert "4 bins" in repr(ax)


@pytest.mark.parametrize(
    ("call", "word"),
    [
        (lambda: EnergyAxis.from_edges([1, 2], "energy"), "name"),
        (lambda: EnergyAxis.from_edges([1], "energy_true"), "edges"),
        (lambda: EnergyAxis.from_edges([[1, 2]], "energy_true"), "edges"),
        (lambda: EnergyAxis.from_edges([2, 1], "energy_true"), "edges"),
        (lambda: EnergyAxis.from_edges([1, 1, 2], "energy_true"), "edges"),
        (lambda: EnergyAxis.from_edges([0, 1], "energy_true"), "edges"),
        (lambda: EnergyAxis.from_edges([1, np.nan], "energy_true"), "edges"),
        (lambda: EnergyAxis.from_edges(["a", "b"], "energy_true"), "edges"),
        (lambda: EnergyAxis.log(1, 10, 0, "energy_true"), "nbins"),
        (lambda: EnergyAxis.log(1, 10, 2.0, "energy_true"), "nbins"),
        (lambda: EnergyAxis.log(10, 1, 2, "energy_true"), "emin"),
        (lambda: EnergyAxis.from_dict({"name": "energy_true"}), "edges"),
        (lambda: EnergyAxis.from_dict({"name": "energy_true", "edges": [1, 2], "units": "GeV"}), "units"),
    ],
)
def test_energy_axis_validation(call, word):
    with pytest.raises(GpcubeError, match=word):
        call()


# ----------------------------------------------------------------------------------------- SkyGeom create
def test_survey_and_crab_geometries():
    geom = survey_geom()
    assert geom.npix == (1643, 456) and geom.shape == (456, 1643)  # 32.85 / 0.02 = 1642.5 rounds up
    assert geom.crpix == (822.0, 228.5)
    crab = SkyGeom.create((83.633, 22.014), 0.02, width=5.0)
    assert crab.npix == (250, 250) and crab.frame == "icrs" and crab.projection == "CAR"
    for g, center in [(geom, (333.974, -1.965)), (crab, (83.633, 22.014))]:
        np.testing.assert_allclose(g.center, center, atol=1e-10)
        lon, lat = g.pix_to_world(g.crpix[0] - 1, g.crpix[1] - 1)
        np.testing.assert_allclose([lon, lat], center, atol=1e-10)


def test_create_options():
    g = SkyGeom.create((10.0, -20.0), 0.5, npix=(7, 4), projection="TAN")
    assert g.npix == (7, 4) and g.crpix == (4.0, 2.5) and g.origin == (0, 0)
    assert SkyGeom.create((0, 0), 0.5, npix=3).npix == (3, 3)
    assert SkyGeom.create((0, 0), 0.1, width=0.01).npix == (1, 1)  # at least one pixel
    assert SkyGeom.create((-30.0, 0), 1.0, npix=3).crval == (330.0, 0.0)
    sc = SkyCoord(83.633, 22.014, unit="deg")
    g2 = SkyGeom.create(sc, 0.1, npix=3, frame="galactic")
    np.testing.assert_allclose(g2.crval, [sc.galactic.l.deg, sc.galactic.b.deg], atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"frame": "fk5"}, "frame must be 'icrs' or 'galactic', got 'fk5'"),
        ({"projection": "AIT"}, "projection"),
        ({"binsz": 0.0}, "binsz"),
        ({"binsz": -1.0}, "binsz"),
        ({"binsz": "0.1"}, "binsz"),
        ({"width": None}, "width and npix"),
        ({"npix": (3, 3)}, "width and npix"),
        ({"width": (1.0, -1.0)}, "width"),
        ({"width": (1.0, 2.0, 3.0)}, "width"),
        ({"width": None, "npix": (0, 3)}, "npix"),
        ({"width": None, "npix": (2.5, 3)}, "npix"),
        ({"center": (0.0, 91.0)}, "latitude"),
        ({"center": (np.nan, 0.0)}, "center"),
        ({"center": "crab"}, "center"),
        ({"axes": ("energy",)}, "axes"),
    ],
)
def test_create_validation(kwargs, word):
    args = {"center": (0.0, 0.0), "binsz": 0.1, "width": 1.0} | kwargs
    with pytest.raises(GpcubeError, match=word):
        SkyGeom.create(**args)


def test_axes_helpers():
    e_true = EnergyAxis.log(0.1, 100, 10, "energy_true")
    e_reco = EnergyAxis.log(0.2, 50, 5, "energy_reco")
    g = SkyGeom.create((0, 0), 1.0, npix=(4, 3), axes=[e_true])
    assert g.axis("energy_true") == e_true and g.data_shape() == (3, 4)
    assert g.data_shape("energy_true") == (10, 3, 4)
    g2 = g.with_axes(e_reco, e_true)
    assert g2.axes == (e_reco, e_true) and g.axes == (e_true,)
    with pytest.raises(GpcubeError, match="energy_reco"):
        g.axis("energy_reco")
    with pytest.raises(GpcubeError, match="axes"):
        g.with_axes(e_true, e_true)
    assert "galactic" not in repr(g) and "energy_true[10]" in repr(g) and len(repr(g)) < 160


def test_immutable_hashable_picklable():
    g = survey_geom()
    with pytest.raises(AttributeError):
        g.binsz = 0.1
    assert hash(g) == hash(survey_geom())
    assert pickle.loads(pickle.dumps(g)) == g


# --------------------------------------------------------------------------------------------- WCS
@pytest.mark.parametrize("frame", FRAMES)
@pytest.mark.parametrize("projection", PROJECTIONS)
def test_wcs_and_header(frame, projection):
    g = SkyGeom.create((83.633, 22.014), 0.02, npix=(250, 200), frame=frame, projection=projection)
    wcs = g.wcs
    prefix = ("RA---", "DEC--") if frame == "icrs" else ("GLON-", "GLAT-")
    assert list(wcs.wcs.ctype) == [prefix[0] + projection, prefix[1] + projection]
    np.testing.assert_array_equal(wcs.wcs.cdelt, [-0.02, 0.02])
    header = g.header
    assert header["NAXIS1"] == 250 and header["NAXIS2"] == 200 and header["CRPIX1"] == 125.5
    assert (header.get("RADESYS") == "ICRS") == (frame == "icrs")
    assert json.loads(json.dumps(header)) == header
    wcs.wcs.crval = [0, 0]  # a fresh object each time: the geometry does not change
    assert g.wcs.wcs.crval[0] == 83.633


@pytest.mark.parametrize("frame", FRAMES)
@pytest.mark.parametrize("projection", PROJECTIONS)
@pytest.mark.parametrize("lat0", [-90.0, -45.0, -1.965, 0.0, 22.014, 89.5, 90.0])
def test_pix_to_world_matches_astropy(frame, projection, lat0):
    g = SkyGeom.create((83.633, lat0), 0.1, npix=(301, 200), frame=frame, projection=projection)
    rng = np.random.default_rng(42)
    x, y = rng.uniform(-50, 350, 500), rng.uniform(-50, 250, 500)
    lon, lat = g.pix_to_world(x, y)
    ref_lon, ref_lat = g.wcs.wcs_pix2world(x, y, 0)
    np.testing.assert_allclose(angle(lon, lat, ref_lon, ref_lat), 0.0, atol=1e-9)
    assert np.all((lon >= 0) & (lon < 360))
    x2, y2 = g.world_to_pix(lon, lat)  # round trip
    np.testing.assert_allclose(x2, x, atol=1e-8)
    np.testing.assert_allclose(y2, y, atol=1e-8)
    ref_x, ref_y = g.wcs.wcs_world2pix(lon, lat, 0)
    np.testing.assert_allclose(x2, ref_x, atol=1e-7)
    np.testing.assert_allclose(y2, ref_y, atol=1e-7)


def test_world_to_pix_nan_where_not_projecting():
    tan = SkyGeom.create((0.0, 0.0), 0.1, npix=10, projection="TAN")
    x, y = tan.world_to_pix([0.0, 180.0, 95.0, 10.0], [0.0, 0.0, 0.0, 91.0])
    assert np.isfinite(x[0]) and np.all(np.isnan(x[1:])) and np.all(np.isnan(y[1:]))
    car = SkyGeom.create((0.0, 0.0), 1.0, npix=(10, 10))
    lon, lat = car.pix_to_world([4.5, 4.5, 4.5 - 181.0], [4.5 + 91.0, 4.5 + 89.0, 4.5])
    assert np.isnan(lon[0]) and np.isnan(lat[0]) and np.isfinite(lat[1]) and np.isnan(lon[2])
    x, y = car.world_to_pix(179.0, 0.0)  # CAR projects the whole sphere
    assert np.isfinite(x) and np.isfinite(y)


def test_coord_to_idx_pixel_boundaries():
    g = SkyGeom.create((0.0, 0.0), 1.0, npix=(4, 3))  # x in [-0.5, 3.5), y in [-0.5, 2.5)
    eps = 1e-6  # a world round trip moves exact half-integers by ~1e-12 pixel
    px = np.array([-0.5 + eps, -0.5 - eps, 0.5 - eps, 0.5 + eps, 3.5 - eps, 3.5 + eps, 1.0])
    py = np.array([-0.5 + eps, 0.0, 0.0, 2.5 - eps, 1.0, 1.0, 2.5 + eps])
    ix, iy = g.coord_to_idx(*g.pix_to_world(px, py))
    np.testing.assert_array_equal(ix, [0, -1, 0, 1, 3, -1, -1])
    np.testing.assert_array_equal(iy, [0, -1, 0, 2, 1, -1, -1])
    assert ix.dtype == np.int64
    ix, iy = g.coord_to_idx(180.0, 0.0)
    assert (ix, iy) == (-1, -1)


def test_skycoord_to_pix_transforms_frames():
    g = SkyGeom.create((184.557, -5.784), 0.02, npix=(100, 100), frame="galactic")  # around the Crab
    crab = SkyCoord(83.633, 22.014, unit="deg", frame="icrs")
    x, y = g.skycoord_to_pix(crab)
    x2, y2 = g.world_to_pix(crab.galactic.l.deg, crab.galactic.b.deg)
    np.testing.assert_allclose([x, y], [x2, y2], atol=1e-9)
    np.testing.assert_allclose([x, y], g.wcs.world_to_pixel(crab), atol=1e-6)


# --------------------------------------------------------------------------------- distances and areas
@pytest.mark.parametrize("projection", PROJECTIONS)
def test_separation_and_offset_map(projection):
    g = SkyGeom.create((83.633, 22.014), 0.5, npix=(40, 30), projection=projection)
    center = (85.0, 20.0)
    sep = g.separation(*center)
    assert sep.shape == g.shape
    yy, xx = np.mgrid[: g.shape[0], : g.shape[1]]
    lon, lat = g.pix_to_world(xx, yy)
    np.testing.assert_allclose(sep, angle(lon, lat, *center), atol=1e-9)
    gal = SkyCoord(*center, unit="deg").galactic
    np.testing.assert_allclose(g.offset_map(gal.l.deg, gal.b.deg, frame="galactic"), sep, atol=1e-9)
    np.testing.assert_array_equal(g.offset_map(*center), sep)
    assert g.separation(*g.pix_to_world(3, 4))[4, 3] < 1e-12
    with pytest.raises(GpcubeError, match="frame"):
        g.offset_map(0.0, 0.0, frame="fk4")


def test_solid_angle_car_band():
    # An equatorial CAR band: exactly a longitude-latitude rectangle.
    g = SkyGeom.create((10.0, 0.0), 0.1, npix=(200, 100))
    exact = np.radians(20.0) * 2 * np.sin(np.radians(5.0))
    np.testing.assert_allclose(g.solid_angle().sum(), exact, rtol=1e-9)
    # Rows: pixel area proportional to cos(lat) of the row, same along the row.
    sa = g.solid_angle()
    np.testing.assert_allclose(sa[:, 0], sa[:, -1], rtol=1e-12)
    # An oblique CAR grid has the same pixel areas as the equatorial one (a rotation preserves area).
    oblique = SkyGeom.create((10.0, 40.0), 0.1, npix=(200, 100))
    np.testing.assert_allclose(oblique.solid_angle(), sa, rtol=1e-12)
    # The whole sky.
    sky = SkyGeom.create((0.0, 0.0), 1.0, npix=(360, 180), frame="galactic")
    np.testing.assert_allclose(sky.solid_angle().sum(), 4 * np.pi, rtol=1e-12)


def _quad_area_from_corners(geom: SkyGeom) -> np.ndarray:
    """Spherical quadrilateral areas from the astropy-projected pixel corners (Van Oosterom-Strackee)."""
    ny, nx = geom.shape
    cy, cx = np.mgrid[-0.5:ny:1.0, -0.5:nx:1.0]
    lon, lat = np.radians(geom.wcs.wcs_pix2world(cx, cy, 0))
    v = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)

    def tri(a, b, c):
        num = np.einsum("...i,...i", a, np.cross(b - a, c - a))
        den = 1 + np.einsum("...i,...i", a, b) + np.einsum("...i,...i", b, c) + np.einsum("...i,...i", c, a)
        return 2 * np.abs(np.arctan2(num, den))

    a, b, c, d = v[:-1, :-1], v[:-1, 1:], v[1:, 1:], v[1:, :-1]
    return tri(a, b, c) + tri(a, c, d)


def test_solid_angle_tan():
    # A square TAN patch of half-width w (tangent plane) is a square pyramid: 4 asin(sin^2 alpha).
    g = SkyGeom.create((30.0, 60.0), 0.05, npix=(200, 200), projection="TAN")
    alpha = np.arctan(np.radians(5.0))
    np.testing.assert_allclose(g.solid_angle().sum(), 4 * np.arcsin(np.sin(alpha) ** 2), rtol=1e-9)
    # TAN pixel edges are great circles: pixel by pixel equal to the spherical quadrilaterals.
    small = SkyGeom.create((30.0, 60.0), 1.0, npix=(40, 30), projection="TAN")
    np.testing.assert_allclose(small.solid_angle(), _quad_area_from_corners(small), rtol=1e-8)


def test_solid_angle_car_vs_quadrilaterals():
    # CAR rows are not great circles, so corner quadrilaterals differ slightly; sums agree closely.
    g = SkyGeom.create((333.974, -1.965), 0.02, npix=(200, 150), frame="galactic")
    quad = _quad_area_from_corners(g)
    np.testing.assert_allclose(g.solid_angle(), quad, rtol=1e-4)
    np.testing.assert_allclose(g.solid_angle().sum(), quad.sum(), rtol=1e-6)


# --------------------------------------------------------------------------------------- xarray, JSON
def test_to_coords():
    ax = EnergyAxis.log(0.1, 10, 2, "energy_true")
    g = SkyGeom.create((0, 0), 0.1, npix=(5, 4), axes=[ax])
    coords = g.to_coords()
    assert coords["x"].dims == ("x",) and coords["y"].dims == ("y",)
    np.testing.assert_array_equal(coords["x"].values, np.arange(5))
    assert coords["y"].attrs["units"] == "pix" and "long_name" in coords["x"].attrs
    dims = ("energy_true", "y", "x")
    da = xr.DataArray(np.zeros(g.data_shape("energy_true")), dims=dims, coords=coords)
    assert "energy_true_lo" in da.coords
    cut = g.slice((slice(1, 3), slice(2, 5)))
    np.testing.assert_array_equal(cut.to_coords()["x"].values, [2, 3, 4])
    np.testing.assert_array_equal(cut.to_coords()["y"].values, [1, 2])
    # a cutout's coords select exactly its part of the parent
    part = da.sel(y=cut.to_coords()["y"].values, x=cut.to_coords()["x"].values)
    assert part.shape == cut.data_shape("energy_true")


@pytest.mark.parametrize("projection", PROJECTIONS)
def test_attrs_json_roundtrip(projection):
    axes = (EnergyAxis.log(0.1, 100, 7, "energy_true"), EnergyAxis.log(0.3, 30, 5, "energy_reco"))
    g = SkyGeom.create((266.4, -28.9), 0.02, width=(3.1, 2.7), projection=projection, axes=axes)
    for geom in [g, g.slice((slice(5, 40), slice(17, 99)))]:
        attrs = geom.to_attrs()
        text = json.dumps(attrs)
        assert SkyGeom.from_attrs(json.loads(text)) == geom
        assert SkyGeom.from_attrs(text) == geom
        da = xr.DataArray(np.zeros(geom.shape), dims=("y", "x"), attrs={"geom": attrs})
        assert SkyGeom.from_dataarray(da) == geom
        assert attrs["wcs_header"]["CRPIX1"] == geom.crpix[0]


def test_attrs_errors():
    attrs = survey_geom().to_attrs()
    with pytest.raises(GpcubeError, match="binsz"):
        SkyGeom.from_attrs({k: v for k, v in attrs.items() if k != "binsz"})
    with pytest.raises(GpcubeError, match="version"):
        SkyGeom.from_attrs(attrs | {"version": 99})
    with pytest.raises(GpcubeError, match="geom"):
        SkyGeom.from_dataarray(xr.DataArray([1.0]))


# ------------------------------------------------------------------------------------------- slicing
def test_slice():
    g = survey_geom()
    s = g.slice((slice(10, 20), slice(-5, None)))
    assert s.npix == (5, 10) and s.origin == (1638, 10)
    assert s.crpix == (g.crpix[0] - 1638, g.crpix[1] - 10)
    np.testing.assert_array_equal(s.pix_to_world(0, 0), g.pix_to_world(1638, 10))
    assert g.slice((slice(None), slice(None))) == g
    assert g.slice((slice(500, 600), slice(0, 3))).npix == (3, 0)
    with pytest.raises(GpcubeError, match="step"):
        g.slice((slice(0, 10, 2), slice(0, 10)))
    with pytest.raises(GpcubeError, match="slices"):
        g.slice(slice(0, 10))


# ------------------------------------------------------------------------------------ coarse grids
@pytest.mark.parametrize("frame", FRAMES)
@pytest.mark.parametrize("projection", PROJECTIONS)
def test_to_binsz_rounds_half_to_even(frame, projection):
    """Widths of 20.5, 21.5 and 21 coarse pixels (exact in binary): 20, 22 and 21 pixels, centred."""
    fine = SkyGeom.create((120.0, 35.0), 0.25, npix=(41, 43), frame=frame, projection=projection)
    coarse = fine.to_binsz(0.5)
    assert coarse.npix == (20, 22)
    assert SkyGeom.create((120.0, 35.0), 0.25, npix=(42, 42), frame=frame).to_binsz(0.5).npix == (21, 21)
    assert coarse.crpix == (10.5, 11.5) and coarse.origin == (0, 0) and coarse.binsz == 0.5
    assert coarse.crval == pytest.approx(fine.center, abs=1e-12)
    # the grid is symmetric about the fine grid's centre: first and last pixel centres mirror each other
    lon, lat = coarse.pix_to_world(np.array([0, 19]), np.array([0, 21]))
    x, y = fine.world_to_pix(lon, lat)
    np.testing.assert_allclose(x, [20 - 19 * 1.0, 20 + 19 * 1.0], atol=1e-9)
    np.testing.assert_allclose(y, [21 - 21 * 1.0, 21 + 21 * 1.0], atol=1e-9)
    assert fine.to_binsz(0.5) is coarse  # remembered: every observation gets the same grid
    assert SkyGeom.create((0.0, 0.0), 0.25, npix=(1, 1)).to_binsz(1.0).npix == (1, 1)


# ------------------------------------------------------------------------------------------- cutouts
@pytest.mark.parametrize("frame", FRAMES)
@pytest.mark.parametrize("projection", PROJECTIONS)
def test_cutout_matches_brute_force(frame, projection):
    parent = SkyGeom.create((120.0, 35.0), 0.25, npix=(80, 60), frame=frame, projection=projection)
    rng = np.random.default_rng(7)
    for _ in range(100):
        # centres inside, near the borders and outside the grid; radii from sub-pixel to larger than the grid
        center = tuple(float(v) for v in parent.pix_to_world(rng.uniform(-30, 110), rng.uniform(-30, 90)))
        radius = float(rng.choice([rng.uniform(0, 1), rng.uniform(0, 8), rng.uniform(8, 40)]))
        cut, slices = cutout(parent, center, radius)
        assert slices == expected_slices(parent, center, radius)
        assert cut == parent.slice(slices)
        inside = parent.separation(*center) <= radius
        assert inside.sum() == inside[slices].sum()  # every pixel within the circle is in the cutout


@pytest.mark.parametrize("projection", PROJECTIONS)
def test_cutout_pixel_alignment(projection):
    parent = survey_geom(projection=projection)
    cut, (sy, sx) = parent.cutout((340.0, -1.0), 2.5)
    assert cut.origin == (sx.start, sy.start) and cut.shape == (sy.stop - sy.start, sx.stop - sx.start)
    np.testing.assert_array_equal(cut.pix_to_world(0, 0), parent.pix_to_world(sx.start, sy.start))
    yy, xx = np.mgrid[: cut.shape[0], : cut.shape[1]]
    np.testing.assert_allclose(
        cut.pix_to_world(xx, yy), parent.pix_to_world(xx + sx.start, yy + sy.start), rtol=0, atol=1e-12
    )
    np.testing.assert_array_equal(cut.separation(340.0, -1.0), parent.separation(340.0, -1.0)[sy, sx])
    np.testing.assert_array_equal(cut.solid_angle(), parent.solid_angle()[sy, sx])
    np.testing.assert_array_equal(cut.to_coords()["x"].values, np.arange(sx.start, sx.stop))
    # about 2 * 2.5 / 0.02 + margin pixels tall
    assert 250 <= cut.shape[0] <= 254


def test_cutout_clipped_at_borders_and_empty():
    parent = survey_geom()
    lon_edge, _ = parent.pix_to_world(-0.5, 0)  # left border, at the reference latitude row
    cut, (sy, sx) = cutout(parent, (float(lon_edge), -1.965), 1.0)
    assert sx.start == 0 and 0 < sx.stop < 60 and sy.start > 0 and sy.stop < 456
    cut, (sy, sx) = cutout(parent, (333.974, -1.965 - 4.5578), 1.0)  # bottom border
    assert sy.start == 0 and sy.stop < 60
    cut, slices = cutout(parent, (100.0, 60.0), 2.0)  # far away
    assert slices == (slice(0, 0), slice(0, 0)) and cut.npix == (0, 0) and cut.shape == (0, 0)
    # a centre outside the grid whose circle still overlaps
    cut, (sy, sx) = cutout(parent, (333.974, -1.965 + 4.5578 + 1.5), 2.0)
    assert sy.stop == 456 and 0 < sy.stop - sy.start < 40 and cut.npix[0] > 0
    assert cutout(parent, (333.974, 0.0), 0.0)[0].npix == (0, 0)  # no pixel centre exactly there


def test_cutout_of_cutout_is_consistent():
    parent = survey_geom(projection="TAN")
    big, (by, bx) = cutout(parent, (335.0, -1.0), 3.0)
    small_from_big, (sy, sx) = cutout(big, (335.2, -0.9), 1.0)
    small_from_parent, (py, px) = cutout(parent, (335.2, -0.9), 1.0)
    assert small_from_big == small_from_parent
    assert (py.start, px.start) == (by.start + sy.start, bx.start + sx.start)
    assert small_from_big.origin == (px.start, py.start)


def test_cutout_skycoord_center_and_validation():
    parent = survey_geom()
    coord = SkyCoord(335.0, -1.0, unit="deg", frame="galactic").icrs
    assert cutout(parent, coord, 1.0) == cutout(parent, (335.0, -1.0), 1.0)
    for bad in [-1.0, 181.0, np.nan, "1"]:
        with pytest.raises(GpcubeError, match="max_offset"):
            cutout(parent, (335.0, -1.0), bad)
    with pytest.raises(GpcubeError, match="center"):
        cutout(parent, (335.0, 95.0), 1.0)
    with pytest.raises(GpcubeError, match="scalar"):
        cutout(parent, SkyCoord([1, 2], [3, 4], unit="deg"), 1.0)


@pytest.mark.parametrize("projection", PROJECTIONS)
@pytest.mark.parametrize("lat0", [-90.0, 0.0, 60.0, 90.0])
def test_cutout_whole_sky_cases(projection, lat0):
    # Circles over the native poles, across the 180 deg seam, beyond the TAN hemisphere, radius 180.
    parent = SkyGeom.create((40.0, lat0), 2.0, npix=(180, 90), projection=projection)
    rng = np.random.default_rng(11)
    for _ in range(40):
        center = (float(rng.uniform(0, 360)), float(np.degrees(np.arcsin(rng.uniform(-1, 1)))))
        radius = float(rng.choice([rng.uniform(0, 30), rng.uniform(30, 180), 180.0]))
        assert cutout(parent, center, radius)[1] == expected_slices(parent, center, radius)


def test_cutout_large_parent_is_cheap():
    # A 60000 x 3000 parent: the cutout never builds the parent's offset map.
    parent = SkyGeom.create((0.0, 0.0), 0.005, npix=(60000, 3000), frame="galactic")
    cut, slices = parent.cutout((10.0, 1.0), 2.5)
    ny, nx = cut.shape
    assert 1000 <= ny <= 1003 and 1000 <= nx <= 1003  # 2 * 2.5 / 0.005 + 2 margin pixels
    # tight: in the cutout's own pixels, the circle's box plus the margin is the whole cutout
    assert expected_slices(cut, (10.0, 1.0), 2.5) == (slice(0, ny), slice(0, nx))
    assert slices == (slice(cut.origin[1], cut.origin[1] + ny), slice(cut.origin[0], cut.origin[0] + nx))
    offsets = cut.separation(10.0, 1.0)
    assert offsets[1:-1, 1:-1].min() < 0.01 and (offsets[[0, -1], :] > 2.5).all()


def test_oblique_car_rows_are_not_parallels():
    # Documented behaviour: with crval latitude b0 != 0, a pixel row is a great circle through crval,
    # tan(b) = tan(b0) cos(dl), not a line of constant latitude.
    g = survey_geom()
    lon, lat = g.pix_to_world(np.array([0.0, 1642.0]), np.array([227.5, 227.5]))
    dl = np.radians(lon - 333.974)
    np.testing.assert_allclose(lat, np.degrees(np.arctan(np.tan(np.radians(-1.965)) * np.cos(dl))), atol=1e-9)
    assert abs(lat[0] + 1.965) > 0.07


@pytest.mark.parametrize(("src", "dst"), [("icrs", "galactic"), ("galactic", "icrs")])
def test_frame_rotation_is_astropys_to_the_last_bit(src, dst):
    from astropy.coordinates import CartesianRepresentation, SkyCoord

    from gpcube.geom.frames import convert_frame, rotation_matrix

    basis = SkyCoord(CartesianRepresentation(np.eye(3)), frame=src)
    expected = np.asarray(basis.transform_to(dst).cartesian.xyz.value, dtype=float)
    np.testing.assert_array_equal(rotation_matrix(src, dst), expected)
    rng = np.random.default_rng(3)
    lon, lat = rng.uniform(0, 360, 1000), np.rad2deg(np.arcsin(rng.uniform(-1, 1, 1000)))
    out = SkyCoord(lon, lat, unit="deg", frame=src).transform_to(dst).spherical
    got = convert_frame(lon, lat, src, dst)
    separation = SkyCoord(*got, unit="deg", frame=dst).separation(SkyCoord(out.lon, out.lat, frame=dst))
    assert separation.deg.max() < 1e-10


@pytest.mark.parametrize("frame", FRAMES)
@pytest.mark.parametrize("projection", PROJECTIONS)
def test_wcs_header_is_astropys(frame, projection):
    from gpcube.geom.sky import wcs_header

    rng = np.random.default_rng(7)
    lats = [-90.0, -89.99999999, -62.6947469948135, -1.965, -0.0, 0.0, 1e-12, 22.014, 89.9, 90.0]
    lons = [333.974, 0.0, 359.999999999999, 83.63308333]
    for lat0 in [*lats, *rng.uniform(-90, 90, 30)]:
        crval = (float(rng.choice(lons)), float(lat0))
        binsz = float(rng.choice([0.002, 0.02, 0.2, 1.4664741305958]))
        ours = wcs_header(frame, projection, crval, binsz)
        theirs = SkyGeom(frame, projection, crval, binsz, (1, 1), (1.0, 1.0)).wcs.to_header()
        assert list(ours) == list(theirs)
        for key, value in theirs.items():
            if isinstance(value, str):
                assert ours[key] == value, key
            else:  # astropy prints 14 significant digits; near the pole wcslib rounds LATPOLE to 0
                assert ours[key] == pytest.approx(value, rel=1e-12, abs=1e-7), (key, crval)


def test_making_an_archive_header_does_not_import_astropy_wcs():
    import subprocess
    import sys

    script = """
import sys
from gpcube.geom.sky import SkyGeom
geom = SkyGeom.create((333.974, -1.965), 0.02, width=(32.85, 9.115), frame="galactic", projection="CAR")
assert geom.to_attrs()["wcs_header"]["LATPOLE"] == 90 - 1.965
print("astropy.wcs" in sys.modules, "astropy.coordinates" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


def test_a_stored_wcs_header_serves_its_grid():
    from gpcube.geom.sky import remember_header

    # an archive written when the header came from astropy: its values rounded to 14 digits
    geom = SkyGeom.create((333.97412345678912, -1.96512345678912), 0.02, width=(3.0, 2.0), frame="galactic")
    attrs = geom.to_attrs()
    rounded = {k: float(f"{v:.13E}") if isinstance(v, float) else v for k, v in geom.header.items()}
    attrs["wcs_header"] = rounded
    assert attrs["wcs_header"] != geom.header
    remember_header(attrs)
    assert SkyGeom.from_attrs(attrs).to_attrs() == attrs
    cutout = SkyGeom.from_attrs(attrs).cutout((333.9, -1.9), 0.5)[0]
    assert cutout.header["LATPOLE"] == attrs["wcs_header"]["LATPOLE"]


def test_a_stored_header_of_another_grid_is_ignored():
    from gpcube.geom.sky import remember_header

    geom = SkyGeom.create((10.0, 20.0), 0.05, width=(2.0, 2.0), frame="icrs", projection="TAN")
    attrs = geom.to_attrs()
    other = {**attrs, "crval": [10.5, 20.0], "wcs_header": {**attrs["wcs_header"], "LATPOLE": 1.0}}
    remember_header(other)  # CRVAL1 of its header is not its crval's: not remembered
    moved = SkyGeom.from_attrs(other)
    assert moved.header["CRVAL1"] == 10.5 and moved.header["LATPOLE"] == 20.0
    remember_header({"wcs_header": "nonsense"})  # ignored, no error
