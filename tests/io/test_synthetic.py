"""Reading synthetic GADF stores written by :mod:`tests.gadf_factory`: round trips, variants, evaluation."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
import xarray as xr
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.time import Time
from numpy.testing import assert_allclose, assert_array_equal

from gpcube import DataStore, GpcubeError
from gpcube.io import fitsfile
from gpcube.irf import evaluate
from tests import gadf_factory as gf

#: Distinct axis lengths, so that any transposed reading fails on the shape.
SIZES = {"energy_true": 5, "energy_reco": 5, "offset": 4, "migra": 7, "rad": 9, "fov_lat": 3, "fov_lon": 6}
#: Output variable of each GADF data column, and its unit in gpcube.
VARIABLES = {
    "EFFAREA": ("aeff", "m2"), "MATRIX": ("migration", ""), "RPSF": ("rpsf", "sr-1"),
    "SCALE": ("scale", "sr-1"), "SIGMA_1": ("sigma_1", "deg"), "AMPL_2": ("ampl_2", ""),
    "SIGMA_2": ("sigma_2", "deg"), "AMPL_3": ("ampl_3", ""), "SIGMA_3": ("sigma_3", "deg"),
    "GAMMA": ("gamma", ""), "SIGMA": ("sigma", "deg"), "BKG": ("bkg", "s-1 TeV-1 sr-1"),
    "RAD_MAX": ("rad_max", "deg"),
}  # fmt: skip
RANGES = {"offset": (0.0, 2.5), "migra": (0.2, 3.0), "rad": (0.0, 0.9), "fov_lat": (-2.0, 2.0),
          "fov_lon": (-3.0, 3.0)}  # fmt: skip


def make_axes(irf_class: str) -> list[gf.Axis]:
    axes = []
    for dim in gf.IRF_DIMS[irf_class]:
        if dim.startswith("energy"):
            axes.append(gf.energy_axis(dim, 0.05, 80.0, SIZES[dim]))
        else:
            axes.append(gf.linear_axis(dim, *RANGES[dim], SIZES[dim]))
    return axes


def random_irf(irf_class: str, seed: int = 1, **options) -> gf.IrfHdu:
    """An IRF with random positive values (any permutation of the axes changes them)."""
    rng = np.random.default_rng(seed)
    shape = tuple(SIZES[d] for d in gf.IRF_DIMS[irf_class])
    values = {column: rng.uniform(0.5, 2.0, shape) for column in gf.GADF_CLASSES[irf_class].columns}
    return gf.make_irf(irf_class, make_axes(irf_class), values, **options)


def read_back(tmp_path, irf: gf.IrfHdu, **store_options) -> xr.Dataset:
    """Write a one-observation store holding ``irf`` and read that IRF back."""
    store = gf.write_store(
        tmp_path, [gf.ObsSpec(1, irfs=[irf], n_events=5)], **{"gzip": False, **store_options}
    )
    return getattr(DataStore.from_dir(store.root).observation(1), irf.hdu_type)


def assert_irf_matches(ds: xr.Dataset, irf: gf.IrfHdu, rtol: float = 1e-12) -> None:
    """Dims, edges, centres, values and units of ``ds`` are those written in ``irf``."""
    dims = gf.IRF_DIMS[irf.irf_class]
    assert ds.attrs["irf_class"] == irf.irf_class
    assert ds.attrs["energy_type"] == dims[0].split("_")[1]
    for dim in dims:
        axis = irf.axes[dim]
        assert_allclose(ds[f"{dim}_lo"].values, axis.lo, rtol=rtol)
        assert_allclose(ds[f"{dim}_hi"].values, axis.hi, rtol=rtol)
        assert_allclose(ds[dim].values, axis.centres, rtol=rtol)
        assert ds[dim].attrs["units"] == gf.AXIS_UNIT[dim]
    assert sorted(ds.data_vars) == sorted(VARIABLES[c][0] for c in irf.values)
    for column in irf.values:
        name, unit = VARIABLES[column]
        assert ds[name].dims == dims
        assert ds[name].attrs["units"] == unit
        assert_allclose(ds[name].values, irf.expected(column), rtol=rtol)


# --- 1. every IRF class round-trips ---------------------------------------------------------------


@pytest.mark.parametrize("irf_class", sorted(gf.IRF_DIMS))
def test_irf_roundtrip(tmp_path, irf_class):
    irf = random_irf(irf_class)
    ds = read_back(tmp_path, irf)
    assert_irf_matches(ds, irf)
    if irf_class == "bkg_3d":
        assert ds.attrs["fov_alignment"] == "RADEC"


def test_bkg_written_in_mev_is_converted(tmp_path):
    # the default file unit is GADF's s-1 MeV-1 sr-1: the file holds 1e-6 x gpcube's value
    irf = random_irf("bkg_2d")
    store = gf.write_store(tmp_path, [gf.ObsSpec(1, irfs=[irf])])
    with fits.open(store.files[1]) as hdulist:
        in_file = hdulist["BACKGROUND"].data["BKG"][0]
        assert hdulist["BACKGROUND"].columns["BKG"].unit == "s-1 MeV-1 sr-1"
    ds = DataStore.from_dir(store.root).observation(1).bkg
    assert_allclose(ds.bkg.values, in_file.T * 1e6, rtol=1e-12)


# --- 2. GADF variants ------------------------------------------------------------------------------

VARIANTS = {
    "etrue": ("aeff_2d", {"energy_column": "ETRUE"}),
    "etrue_psf": ("psf_table", {"energy_column": "ETRUE"}),
    "bgd": ("bkg_2d", {"rename": {"BKG": "BGD"}}),
    "bgd_3d": ("bkg_3d", {"rename": {"BKG": "BGD"}}),
    "division_chain_unit": ("bkg_3d", {"units": {"BKG": "1/s/MeV/sr"}}),
    "gev": ("aeff_2d", {"units": {"energy_true": "GeV"}}),
    "gev_bkg": ("bkg_2d", {"units": {"energy_reco": "GeV", "BKG": "s-1 GeV-1 sr-1"}}),
    "cm2": ("aeff_2d", {"units": {"EFFAREA": "cm2"}}),
    "arcmin": ("psf_king", {"units": {"SIGMA": "arcmin", "offset": "arcmin"}}),
    "float32": ("edisp_2d", {"dtype": ">f4"}),
    "no_cref": ("edisp_2d", {"cref": False}),
    "no_cref_hess_bkg_order": ("bkg_3d", {"cref": False}),
    "energy_slowest": ("bkg_3d", {"fits_axes": ("energy_reco", "fov_lon", "fov_lat")}),
    "cref_not_column_order": ("aeff_2d", {"column_axes": ("offset", "energy_true")}),
    "cref_not_column_order_3d": ("psf_table", {"column_axes": ("rad", "energy_true", "offset")}),
    "cref_not_column_order_bkg": (
        "bkg_3d", {"fits_axes": ("fov_lon", "fov_lat", "energy_reco"),
                   "column_axes": ("energy_reco", "fov_lon", "fov_lat")}),
    "cref_3gauss": ("psf_3gauss", {"column_axes": ("offset", "energy_true")}),
}  # fmt: skip


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant(tmp_path, variant):
    irf_class, options = VARIANTS[variant]
    irf = random_irf(irf_class, **options)
    ds = read_back(tmp_path, irf)
    # float32 columns hold the values to 1e-7
    assert_irf_matches(ds, irf, rtol=1e-6 if options.get("dtype") == ">f4" else 1e-12)


def test_cref_decides_the_axis_order(tmp_path):
    """Columns listed offset-first, data laid out energy-fastest: only CREF tells the truth."""
    irf = random_irf("aeff_2d", column_axes=("offset", "energy_true"))
    with fits.open(read_back(tmp_path / "a", irf).attrs["file"]) as hdulist:
        header = hdulist["EFFECTIVE AREA"].header
        assert header["TTYPE1"] == "THETA_LO"
        assert header["CREF5"] == "(ENERG_LO:ENERG_HI,THETA_LO:THETA_HI)"
    # the same file without CREF would be read in column order, which the data shape contradicts
    irf_no_cref = random_irf("aeff_2d", column_axes=("offset", "energy_true"), cref=False)
    with pytest.raises(GpcubeError, match="shape"):
        read_back(tmp_path / "b", irf_no_cref)


@pytest.mark.parametrize("align", ["RADEC", "ALTAZ", None])
def test_bkg_3d_alignment(tmp_path, align):
    irf = random_irf("bkg_3d", header={"FOVALIGN": align})
    ds = read_back(tmp_path, irf)
    assert ds.attrs["fov_alignment"] == (align or "RADEC")
    assert_irf_matches(ds, irf)


@pytest.mark.parametrize(
    "layout",
    [
        {},
        {"file_dir": "."},
        {"file_dir": "deep/er"},
        {"base_dir": "../elsewhere"},
        {"base_dir": "relative", "file_dir": "data"},
        {"base_dir": "ABSOLUTE", "file_dir": "data"},
        {"base_dir": "ABSOLUTE", "file_dir": "."},
    ],
    ids=lambda layout: ",".join(f"{k}={v}" for k, v in layout.items()) or "default",
)
@pytest.mark.parametrize("gzip", [True, False], ids=["gz", "fits"])
def test_store_layout(tmp_path, layout, gzip):
    layout = dict(layout)
    if layout.get("base_dir") == "ABSOLUTE":
        layout["base_dir"] = str(tmp_path / "absolute" / "base")
    obs = [gf.ObsSpec(7, irfs=[gf.aeff_2d()]), gf.ObsSpec(8, irfs=[gf.aeff_2d(2e5)])]
    store = gf.write_store(tmp_path / "store", obs, gzip=gzip, index_gzip=gzip, **layout)
    assert store.hdu_index.name == ("hdu-index.fits.gz" if gzip else "hdu-index.fits")
    with open(store.files[7], "rb") as f:
        assert (f.read(2) == b"\x1f\x8b") == gzip
    datastore = DataStore.from_dir(store.root)
    assert datastore.obs_ids == [7, 8]
    for obs_id in (7, 8):
        observation = datastore.observation(obs_id)
        assert observation.hdus["aeff"].path.resolve() == store.files[obs_id].resolve()
        assert_allclose(observation.aeff.aeff.values, store.observations[obs_id].irfs[0].expected("EFFAREA"))
        assert len(observation.events.event) == store.observations[obs_id].n_events


def _node_edges(nodes: np.ndarray) -> np.ndarray:
    mid = 0.5 * (nodes[1:] + nodes[:-1])
    return np.concatenate([[2 * nodes[0] - mid[0]], mid, [2 * nodes[-1] - mid[-1]]])


def test_node_axes(tmp_path):
    """``THETA_LO == THETA_HI`` (H.E.S.S.): nodes are the centres, edges the mid-points."""
    offsets = np.array([0.0, 0.5, 1.0, 2.0])
    energies = np.array([0.1, 0.3, 1.0, 10.0, 50.0])
    axes = [gf.Axis.from_nodes("energy_true", energies), gf.Axis.from_nodes("offset", offsets)]
    irf = gf.make_irf("aeff_2d", axes, lambda energy_true, offset: 1e4 * np.log(energy_true / 0.01) + offset)
    ds = read_back(tmp_path, irf)
    assert_array_equal(ds.offset.values, offsets)
    edges = _node_edges(offsets)
    assert_allclose(ds.offset_lo.values, edges[:-1], rtol=1e-12, atol=1e-15)
    assert_allclose(ds.offset_hi.values, edges[1:], rtol=1e-12)
    assert_allclose(ds.energy_true.values, energies, rtol=1e-12)
    log_edges = np.exp(_node_edges(np.log(energies)))
    assert_allclose(ds.energy_true_lo.values, log_edges[:-1], rtol=1e-12)
    assert_allclose(ds.energy_true_hi.values, log_edges[1:], rtol=1e-12)
    assert ds.offset.attrs["edges_from_nodes"] == 1
    assert_allclose(ds.aeff.values, irf.expected("EFFAREA"), rtol=1e-12)


def test_events_gti_and_metadata(tmp_path):
    spec = gf.ObsSpec(3, tstart=5e7, ontime=1000.0, deadc=0.8, event_units={"ENERGY": "GeV"})
    store = gf.write_store(tmp_path, [spec])
    obs = DataStore.from_dir(store.root).observation(3)
    written = spec.events()
    assert_allclose(obs.events.energy.values, written["ENERGY"], rtol=1e-6)  # float32 in the file
    assert obs.events.energy.attrs["units"] == "TeV"
    assert_allclose(obs.events.ra.values, written["RA"], rtol=1e-6)
    assert_array_equal(obs.events.time.values, written["TIME"])
    assert_array_equal(obs.events.event_id.values, written["EVENT_ID"])
    assert obs.events.attrs["energy_type"] == "reco"
    assert obs.events.attrs["obs_id"] == 3
    assert obs.events.attrs["mjdrefi"] == gf.MJDREFI
    assert_array_equal(obs.gti.start.values, [spec.tstart])
    assert_array_equal(obs.gti.stop.values, [spec.tstop])
    assert obs.pointing.ra == spec.ra_pnt and obs.pointing.dec == spec.dec_pnt
    assert obs.pointing.alt == spec.alt_pnt and obs.pointing.az == spec.az_pnt
    assert obs.livetime == pytest.approx(spec.livetime)
    assert obs.ontime == pytest.approx(spec.ontime)
    assert obs.deadc == pytest.approx(spec.deadc)


# --- 3. evaluation with answers in closed form ------------------------------------------------------


def _linear_values(irf_class: str):
    """Values linear in log(E) and in every other coordinate (log-linear for backgrounds)."""
    slopes = {"offset": 3.0, "migra": -2.0, "rad": 5.0, "fov_lat": 1.5, "fov_lon": -0.5}

    def linear(**coords):
        total = 40.0
        for dim, value in coords.items():
            total = total + (np.log(value) if dim.startswith("energy") else slopes[dim] * value)
        return total

    if irf_class.startswith("bkg"):
        return lambda **coords: np.exp(0.2 * linear(**coords))
    return linear


def _random_points(irf: gf.IrfHdu, n: int, rng, *, reach: str = "nodes") -> dict[str, np.ndarray]:
    """Random points between the first and last node (or bin edge) of every axis."""
    points = {}
    for dim in irf.dims:
        axis = irf.axes[dim]
        low, high = (axis.centres[0], axis.centres[-1]) if reach == "nodes" else (axis.lo[0], axis.hi[-1])
        if dim.startswith("energy"):
            points[dim] = np.exp(rng.uniform(np.log(low), np.log(high), n))
        else:
            points[dim] = rng.uniform(low, high, n)
    return points


TABLE_CLASSES = ["aeff_2d", "edisp_2d", "psf_table", "bkg_2d", "bkg_3d", "rad_max_2d"]


@pytest.mark.parametrize("reach", ["nodes", "edges"])
@pytest.mark.parametrize("irf_class", TABLE_CLASSES)
def test_evaluate_linear_is_exact(tmp_path, irf_class, reach):
    """Multilinear values are reproduced exactly inside, and extrapolated exactly up to the edges."""
    irf = gf.make_irf(irf_class, make_axes(irf_class), _linear_values(irf_class))
    ds = read_back(tmp_path, irf)
    points = _random_points(irf, 200, np.random.default_rng(5), reach=reach)
    expected = _linear_values(irf_class)(**points)
    assert_allclose(evaluate(ds, **points), expected, rtol=1e-10)


@pytest.mark.parametrize("irf_class", TABLE_CLASSES)
def test_evaluate_constant_inside_zero_outside(tmp_path, irf_class):
    irf = gf.make_irf(irf_class, make_axes(irf_class), 0.75)
    ds = read_back(tmp_path, irf)
    rng = np.random.default_rng(2)
    points = _random_points(irf, 100, rng, reach="edges")
    for dim in irf.dims:  # the outer edges themselves are inside
        points[dim][:2] = irf.axes[dim].lo[0], irf.axes[dim].hi[-1]
    assert_allclose(evaluate(ds, **points), 0.75, rtol=1e-12)
    for dim in irf.dims:
        axis = irf.axes[dim]
        width = axis.hi[-1] - axis.lo[0]
        for beyond in (axis.lo[0] - 1e-6 * width, axis.hi[-1] + 1e-6 * width, np.nan):
            if dim.startswith("energy") and beyond <= 0:
                continue
            outside = {d: p.copy() for d, p in points.items()}
            outside[dim][:] = beyond
            assert_array_equal(evaluate(ds, **outside), 0.0)


def test_evaluate_dataarray_coords(tmp_path):
    irf = gf.make_irf("aeff_2d", make_axes("aeff_2d"), _linear_values("aeff_2d"))
    ds = read_back(tmp_path, irf)
    energy = xr.DataArray([0.3, 1.0, 3.0], dims="energy_true")
    offset = xr.DataArray([0.5, 1.0], dims="offset")
    result = evaluate(ds, energy_true=energy, offset=offset)
    assert result.dims == ("energy_true", "offset")
    assert result.attrs["units"] == "m2"
    expected = _linear_values("aeff_2d")(energy_true=energy.values[:, None], offset=offset.values[None, :])
    assert_allclose(result.values, expected, rtol=1e-12)


def test_bkg_log_interpolation_geometric_mean(tmp_path):
    energy = gf.Axis.from_edges("energy_reco", [0.5, 2.0, 8.0])
    irf = gf.make_irf(
        "bkg_2d", [energy, gf.linear_axis("offset", 0, 2, 2)], np.array([[1e-2, 1e-2], [1e-6, 1e-6]])
    )
    ds = read_back(tmp_path, irf)
    midpoint = np.sqrt(energy.centres[0] * energy.centres[1])
    assert_allclose(evaluate(ds, energy_reco=midpoint, offset=0.7), np.sqrt(1e-2 * 1e-6), rtol=1e-12)
    quarter = np.exp(0.75 * np.log(energy.centres[0]) + 0.25 * np.log(energy.centres[1]))
    assert_allclose(evaluate(ds, energy_reco=quarter, offset=0.7), 1e-2**0.75 * 1e-6**0.25, rtol=1e-12)


def _integral_over_plane(profile_at) -> float:
    """∫ f(r) 2π sin(r) dr over r in rad, on a fine log grid to 30 deg."""
    rad_deg = np.concatenate([[0.0], np.geomspace(1e-5, 30.0, 40001)])
    rad = np.deg2rad(rad_deg)
    return float(np.trapezoid(profile_at(rad_deg) * 2 * np.pi * np.sin(rad), rad))


def test_psf_king_normalised_and_formula(tmp_path):
    irf = gf.psf_king(
        {"GAMMA": lambda energy_true, offset: 1.8 + 0.2 * offset + 0 * energy_true,
         "SIGMA": lambda energy_true, offset: 0.05 + 0.01 * np.log(energy_true / 0.01) + 0 * offset},
        offset=gf.linear_axis("offset", 0.0, 2.0, 4),
    )  # fmt: skip
    ds = read_back(tmp_path, irf)
    gamma_grid, sigma_grid = irf.expected("GAMMA"), irf.expected("SIGMA")
    energy, offset = irf.axes["energy_true"].centres, irf.axes["offset"].centres
    for i, j in [(0, 0), (2, 1), (5, 3)]:
        integral = _integral_over_plane(
            lambda r, i=i, j=j: evaluate(ds, energy_true=energy[i], offset=offset[j], rad=r)
        )
        assert integral == pytest.approx(1.0, abs=2e-3)
        # at a node the parameters are the written ones: compare with the King definition
        gamma, sigma = gamma_grid[i, j], np.deg2rad(sigma_grid[i, j])
        rad = np.linspace(0, 1.0, 11)
        king = (
            (1 - 1 / gamma)
            / (2 * np.pi * sigma**2)
            * (1 + np.deg2rad(rad) ** 2 / (2 * gamma * sigma**2)) ** -gamma
        )
        assert_allclose(evaluate(ds, energy_true=energy[i], offset=offset[j], rad=rad), king, rtol=1e-10)


def test_psf_3gauss_normalised_and_formula(tmp_path):
    irf = gf.psf_3gauss()
    ds = read_back(tmp_path, irf)
    energy, offset = irf.axes["energy_true"].centres, irf.axes["offset"].centres
    integral = _integral_over_plane(lambda r: evaluate(ds, energy_true=energy[1], offset=offset[2], rad=r))
    assert integral == pytest.approx(1.0, abs=1e-4)
    p = {name: irf.expected(name)[1, 2] for name in irf.values}
    rad = np.linspace(0, 0.5, 11)

    def gauss(sigma):
        return np.exp(-(rad**2) / (2 * sigma**2))

    expected = p["SCALE"] * (
        gauss(p["SIGMA_1"]) + p["AMPL_2"] * gauss(p["SIGMA_2"]) + p["AMPL_3"] * gauss(p["SIGMA_3"])
    )
    assert_allclose(evaluate(ds, energy_true=energy[1], offset=offset[2], rad=rad), expected, rtol=1e-12)


@pytest.mark.parametrize("scale_unit", ["", "deg-2"])
def test_psf_3gauss_is_normalised_whatever_its_scale(tmp_path, scale_unit):
    """GADF lists SCALE without a unit, and Gammapy's writer and CTA 1DC write none; such files are read.

    The SCALE of those files is not the normalisation (Gammapy and ctools normalise the profile from
    the widths and amplitudes, ignoring it): the profile integrates to 1 whatever SCALE holds.
    """
    sigmas, ampl = (0.05, 0.1, 0.2), (1.0, 0.5, 0.25)
    values = {"SCALE": 37.0, "SIGMA_1": sigmas[0], "AMPL_2": ampl[1], "SIGMA_2": sigmas[1],
              "AMPL_3": ampl[2], "SIGMA_3": sigmas[2]}  # fmt: skip
    irf = gf.psf_3gauss(values, units={"SCALE": scale_unit})
    ds = read_back(tmp_path, irf)
    assert ds["scale"].attrs["units"] == ("sr-1" if scale_unit else "")
    assert_allclose(ds["scale"].values, 37.0, rtol=1e-12)  # the factory writes 37 sr-1 in deg-2
    energy, offset = irf.axes["energy_true"].centres, irf.axes["offset"].centres
    integral = _integral_over_plane(lambda r: evaluate(ds, energy_true=energy[1], offset=offset[2], rad=r))
    assert integral == pytest.approx(1.0, abs=1e-4)
    rad = np.linspace(0, 0.5, 11)
    shape = sum(a * np.exp(-(rad**2) / (2 * s**2)) for a, s in zip(ampl, sigmas, strict=True))
    norm = 2 * np.pi * sum(a * np.deg2rad(s) ** 2 for a, s in zip(ampl, sigmas, strict=True))
    assert_allclose(evaluate(ds, energy_true=energy[1], offset=offset[2], rad=rad), shape / norm, rtol=1e-12)


def test_edisp_gaussian_integrates_to_one(tmp_path):
    migra = gf.linear_axis("migra", 0.0, 3.0, 300)
    irf = gf.edisp_2d(migra=migra)
    ds = read_back(tmp_path, irf)
    values = evaluate(ds, energy_true=1.0, offset=1.0, migra=migra.centres)
    assert float(np.sum(values * (migra.hi - migra.lo))) == pytest.approx(1.0, rel=1e-6)


# --- 4. DataStore selections -----------------------------------------------------------------------

SELECTION_OBS = [
    gf.ObsSpec(101, ra_pnt=83.633, dec_pnt=22.0145, object="Crab Nebula", tstart=1.0e8, irfs=[]),
    gf.ObsSpec(102, ra_pnt=84.633, dec_pnt=22.5, object="crab nebula", tstart=1.0e8 + 5000, irfs=[]),
    gf.ObsSpec(103, ra_pnt=228.53, dec_pnt=-59.16, object="MSH 15-52", tstart=2.0e8, irfs=[]),
    gf.ObsSpec(104, ra_pnt=329.72, dec_pnt=-30.23, object="PKS 2155-304", tstart=3.0e8, irfs=[]),
]


@pytest.fixture(scope="module")
def selection_store(tmp_path_factory) -> DataStore:
    store = gf.write_store(tmp_path_factory.mktemp("selection"), SELECTION_OBS)
    return DataStore.from_dir(store.root)


def _ids(store: DataStore) -> set[int]:
    return set(store.obs_ids)


def test_obs_ids_and_table(selection_store):
    assert selection_store.obs_ids == [o.obs_id for o in SELECTION_OBS]
    assert len(selection_store) == len(SELECTION_OBS)
    table = selection_store.obs_table
    assert list(table["OBJECT"]) == [o.object for o in SELECTION_OBS]  # padding stripped
    assert_allclose(table["TSTOP"], [o.tstop for o in SELECTION_OBS])
    assert_allclose(table["LIVETIME"], [o.livetime for o in SELECTION_OBS])
    assert table.meta["MJDREFI"] == gf.MJDREFI


def test_select_obs_ids(selection_store):
    assert selection_store.select(obs_ids=[104, 102]).obs_ids == [102, 104]
    with pytest.raises(GpcubeError, match="999"):
        selection_store.select(obs_ids=[101, 999])
    with pytest.raises(GpcubeError, match="999"):
        selection_store.observation(999)
    # an observation outside a selection is not reachable from it
    with pytest.raises(GpcubeError, match="101"):
        selection_store.select(obs_ids=[102]).observation(101)


def _within(center: SkyCoord, radius: float) -> set[int]:
    return {
        o.obs_id for o in SELECTION_OBS
        if SkyCoord(o.ra_pnt, o.dec_pnt, unit="deg").separation(center).deg <= radius
    }  # fmt: skip


@pytest.mark.parametrize("form", ["mapping", "tuple"])
@pytest.mark.parametrize("frame", ["icrs", "galactic"])
@pytest.mark.parametrize("target, radius", [(0, 0.5), (0, 1.5), (2, 3.0), (3, 200.0)])
def test_select_cone(selection_store, form, frame, target, radius):
    spec = SELECTION_OBS[target]
    center = SkyCoord(spec.ra_pnt + 0.1, spec.dec_pnt - 0.1, unit="deg").transform_to(frame)
    lon, lat = center.spherical.lon.deg, center.spherical.lat.deg
    cone = (
        {"lon": lon, "lat": lat, "radius": radius, "frame": frame}
        if form == "mapping"
        else (lon, lat, radius, frame)
    )
    expected = _within(center, radius)
    assert spec.obs_id in expected
    assert _ids(selection_store.select(cone=cone)) == expected


def test_select_cone_default_frame_is_icrs(selection_store):
    spec = SELECTION_OBS[2]
    assert _ids(selection_store.select(cone=(spec.ra_pnt, spec.dec_pnt, 1.0))) == {spec.obs_id}
    assert _ids(selection_store.select(cone={"lon": spec.ra_pnt, "lat": spec.dec_pnt, "radius": 1.0})) == {
        103
    }
    with pytest.raises(GpcubeError, match="unknown key"):
        selection_store.select(cone={"ra": 1, "dec": 2, "radius": 1})


def _overlapping(tmin: float, tmax: float) -> set[int]:
    return {o.obs_id for o in SELECTION_OBS if o.tstop >= tmin and o.tstart <= tmax}


@pytest.mark.parametrize("form", ["met", "time", "iso"])
@pytest.mark.parametrize("window", [(1.0e8 + 100, 1.0e8 + 200), (1.0e8 + 1000, 1.0e8 + 6000), (1.5e8, 3.5e8),
                                    (4e8, 5e8)])  # fmt: skip
def test_select_time(selection_store, form, window):
    reference = Time(gf.MJDREFI, gf.MJDREFF, format="mjd", scale="tt")
    if form == "met":
        arguments = window
    else:
        times = [reference + t * u.s for t in window]
        arguments = tuple(times) if form == "time" else tuple(t.tt.isot for t in times)
    assert _ids(selection_store.select(time=arguments)) == _overlapping(*window)


def test_select_time_utc_is_converted(selection_store):
    """An astropy Time in UTC is converted to the index's TT before comparing."""
    reference = Time(gf.MJDREFI, gf.MJDREFF, format="mjd", scale="tt")
    spec = SELECTION_OBS[2]
    # the 30 s before obs 103 starts, given in UTC (whose labels are about a minute behind TT):
    # misread as TT, the window would never reach the observation
    start_utc = (reference + (spec.tstart - 30) * u.s).utc
    stop_utc = (reference + (spec.tstart - 1) * u.s).utc
    assert _ids(selection_store.select(time=(start_utc, stop_utc))) == set()
    assert _ids(selection_store.select(time=(start_utc, stop_utc + 2 * u.s))) == {103}


@pytest.mark.parametrize(
    "pattern", ["crab nebula", "CRAB*", "*nebula", "msh 15-52", "MSH*", "*15-5?", "pks*304", "nothing*", "*"]
)
def test_select_target(selection_store, pattern):
    import fnmatch

    expected = {o.obs_id for o in SELECTION_OBS if fnmatch.fnmatchcase(o.object.lower(), pattern.lower())}
    assert _ids(selection_store.select(target=pattern)) == expected


def test_select_combined(selection_store):
    crab = SELECTION_OBS[0]
    selected = selection_store.select(target="crab*", time=(crab.tstart, crab.tstop))
    assert _ids(selected) == {101}
    selected = selection_store.select(cone=(crab.ra_pnt, crab.dec_pnt, 5.0), obs_ids=[102, 103, 104])
    assert _ids(selected) == {102}
    # selections chain
    assert _ids(selection_store.select(target="crab*").select(time=(crab.tstop + 1, 2e8))) == {102}


# --- 6. the fast FITS reader -----------------------------------------------------------------------


def _all_types_hdu() -> fits.BinTableHDU:
    rng = np.random.default_rng(3)
    n = 7
    columns = [
        fits.Column("L", format="L", array=rng.integers(0, 2, n).astype(bool)),
        fits.Column("B", format="B", array=rng.integers(0, 256, n).astype(np.uint8)),
        fits.Column("I", format="I", array=rng.integers(-(2**15), 2**15, n).astype(np.int16)),
        fits.Column("J", format="J", array=rng.integers(-(2**31), 2**31, n).astype(np.int32)),
        fits.Column("K", format="K", array=rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64)),
        fits.Column("UI", format="I", bzero=2**15, array=rng.integers(0, 2**16, n).astype(np.uint16)),
        fits.Column("UJ", format="J", bzero=2**31,
                    array=np.array([0, 2**32 - 1, 2**31, 2**31 - 1, 5, 6, 7], dtype=np.uint32)),
        fits.Column("UK", format="K", bzero=2**63,
                    array=np.array([0, 2**64 - 1, 2**63, 2**63 - 1, 1, 2, 3], dtype=np.uint64)),
        fits.Column("E", format="E", unit="TeV", array=rng.normal(size=n).astype(np.float32)),
        fits.Column("D", format="D", unit="deg", array=rng.normal(size=n)),
        fits.Column("A", format="12A", array=["Crab", "MSH 15-52  ", "", "x" * 12, "a b", "PKS", "z"]),
        fits.Column("CELL", format="24D", dim="(4,3,2)", array=rng.normal(size=(n, 2, 3, 4))),
        fits.Column("CELLJ", format="6J", dim="(3,2)",
                    array=rng.integers(-100, 100, (n, 2, 3)).astype(np.int32)),
        fits.Column("VEC", format="3E", array=rng.normal(size=(n, 3)).astype(np.float32)),
    ]  # fmt: skip
    return fits.BinTableHDU.from_columns(columns, name="ALLTYPES")


@pytest.mark.parametrize("suffix", [".fits", ".fits.gz"])
def test_fast_reader_matches_astropy(tmp_path, suffix):
    path = tmp_path / f"types{suffix}"
    fits.HDUList([fits.PrimaryHDU(), _all_types_hdu()]).writeto(path)
    table = fitsfile.open_fits(path).table("alltypes")
    with fits.open(path) as hdulist:
        reference = hdulist["ALLTYPES"]
        assert table.names == reference.columns.names
        for column in reference.columns:
            expected = np.asarray(reference.data[column.name])
            got = table.data[column.name]
            assert got.shape == expected.shape, column.name
            if column.name == "A":
                assert list(got) == [s.rstrip() for s in expected]
            else:
                assert got.dtype == expected.dtype.newbyteorder("="), column.name
                assert_array_equal(got, expected, err_msg=column.name)
            assert table.units[column.name] == (column.unit or "")
        assert table.header["EXTNAME"] == "ALLTYPES"
        assert len(table) == reference.header["NAXIS2"]


def test_fast_reader_falls_back_to_astropy_for_variable_length(tmp_path, monkeypatch):
    path = tmp_path / "vla.fits"
    arrays = [np.arange(3.0), np.arange(5.0), np.array([7.0])]
    columns = [
        fits.Column("ID", format="J", array=[1, 2, 3]),
        fits.Column("VLA", format="PD()", array=np.array(arrays, dtype=object)),
    ]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(columns, name="VLA")]).writeto(path)
    calls = []
    fallback = fitsfile._astropy_table
    monkeypatch.setattr(fitsfile, "_astropy_table", lambda *a: calls.append(a) or fallback(*a))
    table = fitsfile.open_fits(path).table("VLA")
    assert len(calls) == 1
    assert_array_equal(table.data["ID"], [1, 2, 3])
    for got, expected in zip(table.data["VLA"], arrays, strict=True):
        assert_array_equal(got, expected)
