"""make_map_background: lazy, closed-form answers on synthetic models, orientation, ALTAZ rotation."""

from __future__ import annotations

import dask
import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import AltAz, SkyCoord, SkyOffsetFrame

import gpcube
from gpcube.errors import GpcubeError
from gpcube.makers import make_map_background
from gpcube.makers.altaz import observation_location, observation_start, radec_to_altaz_matrices
from gpcube.makers.background import fill_energy_gaps, integrate_loglog, pad_offset_axis
from gpcube.makers.fov import auto_orientation, offset_frame_vectors, resolve_orientation
from tests import gadf_factory as gf

RATE = 2e-4  # s-1 TeV-1 sr-1 (written in s-1 MeV-1 sr-1 by the factory)
HESS_LOCATION = {"GEOLON": 16.5002222222222, "GEOLAT": -23.2717777777778, "ALTITUDE": 1835.0}


def _geom(center=(83.633, 22.0145), width=4.0, binsz=0.1, frame="icrs"):
    axis = gpcube.EnergyAxis.log(0.5, 50, 6, "energy_reco")
    return gpcube.SkyGeom.create(center, binsz, width=width, frame=frame, axes=[axis])


def _store(tmp_path, irf, **spec):
    spec = {"irfs": [irf], **spec}
    store = gf.write_store(tmp_path, [gf.ObsSpec(1, **spec)])
    return gpcube.DataStore.from_dir(store.root).observation(1)


def _fov_axes(n=30):
    return {"fov_lat": gf.linear_axis("fov_lat", -3, 3, n), "fov_lon": gf.linear_axis("fov_lon", -3, 3, n)}


def test_lazy_and_typed(hess_store):
    def raise_on_compute(*args, **kwargs):
        raise AssertionError("computed while building")

    with dask.config.set(scheduler=raise_on_compute):
        cube = make_map_background(hess_store.observation(23523), _geom(binsz=0.05), chunk=30)
    assert cube.dims == ("energy_reco", "y", "x")
    assert cube.attrs["energy_type"] == "reco" and cube.attrs["units"] == ""
    assert len(cube.chunks[1]) == 3


def test_flat_rate_is_rate_times_bin_width_solid_angle_and_ontime(tmp_path):
    obs = _store(tmp_path, gf.bkg_3d(RATE, **_fov_axes()), ontime=1200.0)
    geom = _geom(width=2.0)
    result = make_map_background(obs, geom).compute(scheduler="sync").values
    widths = np.diff(geom.axis("energy_reco").edges)
    expected = RATE * widths[:, None, None] * geom.solid_angle()[None] * 1200.0
    np.testing.assert_allclose(result, expected, rtol=1e-10)


def test_power_law_in_energy_integrates_exactly(tmp_path):
    def power_law(energy_reco, fov_lat, fov_lon):
        return RATE * energy_reco**-2.7 + 0 * fov_lat * fov_lon

    obs = _store(tmp_path, gf.bkg_3d(power_law, **_fov_axes()))
    geom = _geom(width=1.0)
    result = make_map_background(obs, geom).compute(scheduler="sync").values
    lo, hi = geom.axis("energy_reco").lo, geom.axis("energy_reco").hi
    integral = RATE * (lo**-1.7 - hi**-1.7) / 1.7
    expected = integral[:, None, None] * geom.solid_angle()[None] * obs.ontime
    np.testing.assert_allclose(result, expected, rtol=1e-9)


def test_bkg_2d_radial_profile(tmp_path):
    def radial(energy_reco, offset):
        return RATE * np.exp(-offset) + 0 * energy_reco

    offset_axis = gf.linear_axis("offset", 0, 4, 40)
    obs = _store(tmp_path, gf.bkg_2d(radial, offset=offset_axis))
    geom = _geom(width=3.0)
    result = make_map_background(obs, geom).compute(scheduler="sync").values
    offset = geom.separation(obs.pointing.ra, obs.pointing.dec)
    rate = gpcube.irf.evaluate(obs.bkg, energy_reco=1.0, offset=offset)
    expected = rate * np.diff(geom.axis("energy_reco").edges)[:, None, None] * geom.solid_angle() * obs.ontime
    np.testing.assert_allclose(result, expected, rtol=1e-9)
    assert result[0, 15, 15] > result[0, 0, 0]


def _gradient(energy_reco, fov_lat, fov_lon):
    """A rate growing along the table's DETX (fov_lon) axis only."""
    return RATE * np.exp(0.5 * fov_lon) + 0 * energy_reco * fov_lat


@pytest.mark.parametrize(
    ("orientation", "grows_towards"),
    [("gadf", "west"), ("hess-dr1", "north"), ({"fov_lon": "+lon", "fov_lat": "+lat"}, "east")],
)
def test_orientation_decides_where_the_table_axes_point(tmp_path, orientation, grows_towards):
    obs = _store(tmp_path, gf.bkg_3d(_gradient, **_fov_axes()))
    geom = _geom(center=(obs.pointing.ra, obs.pointing.dec), width=2.0)
    image = make_map_background(obs, geom, orientation=orientation).compute(scheduler="sync").values[0]
    centre = image.shape[0] // 2
    # CAR in icrs: +x is west (RA decreasing), +y is north
    steps = {"west": image[centre, -3] / image[centre, 2], "east": image[centre, 2] / image[centre, -3]}
    steps["north"] = image[-3, centre] / image[2, centre]
    assert steps[grows_towards] > 2.0
    others = [v for k, v in steps.items() if k != grows_towards]
    assert all(v < 1.0 + 1e-2 for v in others)


def test_auto_orientation_follows_the_exporter():
    assert auto_orientation({"creator": "SASH FITS::EventListWriter", "hduvers": "0.2"}) == "hess-dr1"
    assert auto_orientation({"creator": "SASH FITS::EventListWriter", "hduvers": "0.3"}) == "gadf"
    assert auto_orientation({}) == "gadf"
    with pytest.raises(GpcubeError, match="unknown background orientation"):
        resolve_orientation("sideways")
    with pytest.raises(GpcubeError, match="must map"):
        resolve_orientation({"fov_lon": "+lon", "fov_lat": "-lon"})


def test_offset_frame_vectors_agree_with_astropy():
    rng = np.random.default_rng(3)
    ra, dec = rng.uniform(0, 360, 50), rng.uniform(-80, 80, 50)
    ra0, dec0 = 120.0, -35.0
    x, east, north = offset_frame_vectors(ra, dec, ra0, dec0)
    frame = SkyOffsetFrame(origin=SkyCoord(ra0, dec0, unit="deg"))
    offset = SkyCoord(ra, dec, unit="deg").transform_to(frame)
    lon = offset.lon.wrap_at(180 * u.deg).deg
    np.testing.assert_allclose(np.rad2deg(np.arctan2(east, x)), lon, atol=1e-9)
    np.testing.assert_allclose(np.rad2deg(np.arcsin(north)), offset.lat.deg, atol=1e-9)


def test_altaz_matrices_agree_with_astropy_offsets(tmp_path):
    obs = _store(tmp_path, gf.bkg_3d(RATE), extra_header=HESS_LOCATION)
    location, start = observation_location(obs), observation_start(obs)
    ra, dec = obs.pointing.ra, obs.pointing.dec
    (matrix,) = radec_to_altaz_matrices(ra, dec, start[None], location)
    point = SkyCoord(ra + 0.3, dec + 0.2, unit="deg")
    _, east, north = offset_frame_vectors(point.ra.deg, point.dec.deg, ra, dec)
    frame = AltAz(obstime=start, location=location)
    origin = SkyCoord(ra, dec, unit="deg").transform_to(frame)
    offset = point.transform_to(frame).transform_to(SkyOffsetFrame(origin=origin))
    az_offset, alt_offset = matrix @ np.array([east, north])
    np.testing.assert_allclose(np.rad2deg(az_offset), offset.lon.deg, atol=2e-4)
    np.testing.assert_allclose(np.rad2deg(alt_offset), offset.lat.deg, atol=2e-4)


def test_altaz_of_a_radially_symmetric_model_equals_radec(tmp_path):
    def radial(energy_reco, fov_lat, fov_lon):
        return RATE * np.exp(-0.3 * (fov_lat**2 + fov_lon**2)) + 0 * energy_reco

    # on a square grid bilinear interpolation is rotation invariant only to second order in the bin size
    altaz = gf.bkg_3d(radial, **_fov_axes(120), header={"FOVALIGN": "ALTAZ"})
    obs_altaz = _store(tmp_path / "a", altaz, extra_header=HESS_LOCATION, ontime=3600.0)
    obs_radec = _store(tmp_path / "r", gf.bkg_3d(radial, **_fov_axes(120)), extra_header=HESS_LOCATION)
    geom = _geom(width=2.0)
    a = make_map_background(obs_altaz, geom).compute(scheduler="sync").values
    r = make_map_background(obs_radec, geom).compute(scheduler="sync").values * 2  # ontime 3600 vs 1800
    np.testing.assert_allclose(a, r, rtol=5e-4)


def test_altaz_smears_an_asymmetric_model_as_the_field_turns(tmp_path):
    altaz = gf.bkg_3d(_gradient, **_fov_axes(), header={"FOVALIGN": "ALTAZ"})
    obs = _store(tmp_path, altaz, extra_header=HESS_LOCATION, ontime=3 * 3600.0)
    geom = _geom(center=(obs.pointing.ra, obs.pointing.dec), width=2.0)
    coarse = make_map_background(obs, geom, fov_rotation_step=30.0).compute(scheduler="sync").values
    fine = make_map_background(obs, geom, fov_rotation_step=0.5).compute(scheduler="sync").values
    total = fine.sum()
    np.testing.assert_allclose(coarse.sum(), total, rtol=0.05)
    assert np.abs(coarse - fine).max() > 1e-3 * fine.max()  # the averaging does something


def test_altaz_without_location_names_the_file(tmp_path):
    altaz = gf.bkg_3d(RATE, header={"FOVALIGN": "ALTAZ"})
    obs = _store(tmp_path, altaz)
    with pytest.raises(GpcubeError, match="GEOLON"):
        make_map_background(obs, _geom(width=1.0)).compute(scheduler="sync")


def test_integrate_loglog_closed_forms():
    edges = np.array([1.0, 2.0, 4.0])
    np.testing.assert_allclose(integrate_loglog(edges, 3.0 * np.ones(3)), [3.0, 6.0])
    np.testing.assert_allclose(integrate_loglog(edges, edges**-1.0), np.log([2.0, 2.0]))
    np.testing.assert_allclose(integrate_loglog(edges, edges**-3.0), [(1 - 2**-2) / 2, (2**-2 - 4**-2) / 2])
    np.testing.assert_array_equal(integrate_loglog(edges, np.zeros(3)), [0.0, 0.0])


def test_fill_energy_gaps_interpolates_holes_only():
    energies = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    column = np.array([0.0, 8.0, 0.0, 2.0, 0.0])
    filled = fill_energy_gaps(column[:, None], energies)[:, 0]
    np.testing.assert_allclose(filled, [0.0, 8.0, 4.0, 2.0, 0.0])


def test_pad_offset_holds_the_edge_rates_one_bin_further(tmp_path):
    def falling(energy_reco, offset):
        return RATE * (3.0 - offset) + 0 * energy_reco

    obs = _store(tmp_path, gf.bkg_2d(falling, offset=gf.linear_axis("offset", 0, 2.0, 4)))
    padded = pad_offset_axis(obs.bkg)
    np.testing.assert_allclose(padded["offset_lo"].values, [-0.5, 0, 0.5, 1.0, 1.5, 2.0])
    np.testing.assert_allclose(padded["offset"].values, [-0.25, 0.25, 0.75, 1.25, 1.75, 2.25])
    last = obs.bkg["bkg"].isel(offset=-1).values
    np.testing.assert_allclose(padded["bkg"].isel(offset=-1).values, last)
    geom = _geom(width=5.0)
    offset = geom.separation(obs.pointing.ra, obs.pointing.dec)
    with_pad = make_map_background(obs, geom).compute(scheduler="sync").values
    without = make_map_background(obs, geom, pad_offset=False).compute(scheduler="sync").values
    beyond_last_node = (offset > 1.75) & (offset < 2.0)
    assert np.all(with_pad[:, beyond_last_node] > without[:, beyond_last_node])
    assert np.all(with_pad[:, offset > 2.5] == 0) and np.any(with_pad[:, (offset > 2.0) & (offset < 2.5)] > 0)
