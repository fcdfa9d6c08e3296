"""The H.E.S.S. DL3 DR1 store: every observation loads, equals its raw FITS columns, and is physical."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.io import fits

import gpcube
from gpcube.irf import evaluate
from tests.conftest import CRAB_RUNS


def test_store_contents(hess_store):
    assert len(hess_store) == 105
    assert hess_store.obs_ids[:2] == [20136, 20137]
    assert set(CRAB_RUNS) <= set(hess_store.obs_ids)
    assert "OBJECT" in hess_store.obs_table.colnames


def test_every_observation_loads_without_warnings(hess_store):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for obs in hess_store.observations():
            obs.load()
            assert obs.events.sizes["event"] > 0
            assert obs.aeff.attrs["irf_class"] == "aeff_2d"
            assert obs.bkg.attrs["fov_alignment"] == "RADEC"
            assert obs.rad_max is None
            assert 0 < obs.livetime <= obs.ontime


def test_events_equal_raw_columns(hess_store):
    obs = hess_store.observation(23523)
    with fits.open(obs.hdus["events"].path) as hdulist:
        raw = hdulist["EVENTS"].data
        for column in raw.columns.names:
            np.testing.assert_array_equal(obs.events[column.lower()].values, raw[column])
        assert obs.events.attrs["livetime"] == hdulist["EVENTS"].header["LIVETIME"]
    events = obs.events
    assert events["energy"].attrs == {"units": "TeV", "energy_type": "reco"}
    assert events.attrs["obs_id"] == 23523
    assert events["time"].dtype == np.float64


@pytest.mark.parametrize(
    ("part", "hdu", "column", "dims_fits_order"),
    [
        ("aeff", "AEFF", "EFFAREA", ("energy_true", "offset")),
        ("edisp", "EDISP", "MATRIX", ("energy_true", "migra", "offset")),
        ("psf", "PSF", "RPSF", ("energy_true", "offset", "rad")),
        ("bkg", "BKG", "BKG", ("fov_lon", "fov_lat", "energy_reco")),
    ],
)
def test_irfs_equal_raw_columns(hess_store, part, hdu, column, dims_fits_order):
    """Values equal the FITS cell, with dims in the reverse of the TDIM (FITS) order."""
    obs = hess_store.observation(23592)
    irf = getattr(obs, part)
    (var,) = irf.data_vars
    with fits.open(obs.hdus[part].path) as hdulist:
        cell = hdulist[hdu].data[column][0]
        unit = hdulist[hdu].columns[column].unit
    factor = 1e6 if part == "bkg" else 1.0  # MeV-1 -> TeV-1
    values = irf[var].transpose(*dims_fits_order[::-1]).values
    np.testing.assert_allclose(values, cell * factor, rtol=1e-7)
    assert irf[var].attrs["units"] == ("" if part == "edisp" else irf[var].attrs["units"])
    assert (unit is None) == (part == "edisp")


def test_node_axis_edges(hess_store):
    """H.E.S.S. THETA_LO == THETA_HI: nodes at 0, 0.5 ... 2.5 deg, edges half-way between."""
    offset = hess_store.observation(23523).aeff["offset"]
    np.testing.assert_allclose(offset.values, np.arange(6) * 0.5)
    np.testing.assert_allclose(offset["offset_lo"].values, np.arange(6) * 0.5 - 0.25)
    np.testing.assert_allclose(offset["offset_hi"].values, np.arange(6) * 0.5 + 0.25)
    assert offset.attrs["edges_from_nodes"] == 1


def test_energy_axes_are_typed(hess_store):
    obs = hess_store.observation(23523)
    assert "energy_true" in obs.aeff.dims and obs.aeff.attrs["energy_type"] == "true"
    assert "energy_reco" in obs.bkg.dims and obs.bkg.attrs["energy_type"] == "reco"
    energy = obs.aeff["energy_true"]
    np.testing.assert_allclose(energy, np.sqrt(energy["energy_true_lo"] * energy["energy_true_hi"]))


def test_physical_sanity(hess_store):
    for obs_id in CRAB_RUNS:
        obs = hess_store.observation(obs_id)
        # H.E.S.S. I: a few 1e5 m2 at 10 TeV near the centre of the field of view.
        aeff_max = float(obs.aeff["aeff"].max())
        assert 1e5 < aeff_max < 2e6
        # PSF table normalised over the plane: sum 2 pi sin(r) dr rpsf ~ 1 inside 0.67 deg at 1 TeV.
        psf = obs.psf.sel(energy_true=1.0, method="nearest").isel(offset=1)
        rad = np.deg2rad(psf["rad"].values)
        width = np.deg2rad(psf["rad_hi"].values - psf["rad_lo"].values)
        integral = np.sum(2 * np.pi * np.sin(rad) * psf["rpsf"].values * width)
        assert integral == pytest.approx(1.0, abs=0.02)
        # Edisp: the migration probability density integrates to ~1 where the IRF is defined.
        edisp = obs.edisp.sel(energy_true=3.0, method="nearest").isel(offset=1)
        dmigra = edisp["migra_hi"] - edisp["migra_lo"]
        assert float((edisp["migration"] * dmigra).sum()) == pytest.approx(1.0, abs=0.05)
        assert obs.pointing.radec.separation(obs.pointing.radec).deg == 0
        assert abs(obs.deadc - obs.livetime / obs.ontime) < 1e-3


def test_evaluate_at_nodes_returns_the_table(hess_store):
    obs = hess_store.observation(23523)
    aeff = obs.aeff
    energy = aeff["energy_true"].values[:, None]
    offset = aeff["offset"].values[None, :]
    np.testing.assert_allclose(
        evaluate(aeff, energy_true=energy, offset=offset), aeff["aeff"].values, rtol=1e-12
    )
    bkg = obs.bkg
    values = evaluate(
        bkg,
        energy_reco=bkg["energy_reco"].values[:, None, None],
        fov_lat=bkg["fov_lat"].values[None, :, None],
        fov_lon=bkg["fov_lon"].values[None, None, :],
    )
    np.testing.assert_allclose(values, bkg["bkg"].values, rtol=1e-9)


def test_evaluate_with_dataarrays(hess_store):
    import xarray as xr

    aeff = hess_store.observation(23523).aeff
    energy = xr.DataArray([1.0, 10.0], dims="energy_true", coords={"energy_true": [1.0, 10.0]})
    offset = xr.DataArray([0.0, 0.5, 1.0], dims="offset", coords={"offset": [0.0, 0.5, 1.0]})
    result = evaluate(aeff, energy_true=energy, offset=offset)
    assert result.dims == ("energy_true", "offset")
    assert result.attrs["units"] == "m2"
    assert float(result.sel(energy_true=10.0, offset=0.0)) > 1e5
    with pytest.raises(TypeError, match="missing"):
        evaluate(aeff, energy_true=1.0)
    with pytest.raises(gpcube.GpcubeError):
        evaluate(xr.Dataset(), offset=1.0)


def test_known_unit_factors_are_astropys():
    import astropy.units as u

    from gpcube.io.gadf import KNOWN_FACTORS, parse_unit

    for target, factors in KNOWN_FACTORS.items():
        target_unit = u.Unit(target) if target else u.dimensionless_unscaled
        for raw, factor in factors.items():
            assert factor == float(parse_unit(raw).to(target_unit)), (raw, target)


def test_reading_the_hess_files_does_not_import_astropy_units(hess_dir):
    import subprocess
    import sys

    script = f"""
import sys
import gpcube
obs = gpcube.DataStore.from_dir({str(hess_dir)!r}).observation({CRAB_RUNS[0]})
obs.events, obs.aeff, obs.edisp, obs.psf, obs.bkg, obs.gti
print("astropy.units" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
