"""The observation tables of an export (GTI, META_TABLE, live time) and the MapDatasetOnOff layout,
checked with astropy only."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from astropy import units as u
from astropy.io import fits
from astropy.time import Time

from gpcube.errors import GpcubeError
from gpcube.geom import EnergyAxis
from gpcube.io.dataset_meta import GTI_REFERENCE, ObservationMeta, gti_seconds
from gpcube.io.export import write_map_dataset, write_map_dataset_onoff
from tests.io.test_export import RECO, _array, _geom, _irf, _mosaic

UTC_2000 = (51544, 0.0, "utc")


def _obs(obs_id, start, stop, reference=UTC_2000, livetime=100.0, telescope="HESS"):
    return ObservationMeta(obs_id, livetime, 83.6 + obs_id, 22.0, telescope, (start, stop, reference))


@pytest.fixture
def inputs():
    rng = np.random.default_rng(3)
    geom = _geom()
    return geom, _mosaic(geom, rng), _irf(geom, rng)


# --------------------------------------------------------------------------------------------- GTI
def test_gti_is_the_union_of_the_observations_intervals():
    """Sorted; overlapping and touching intervals merged (gammapy's ``GTI.union``), others kept."""
    observations = [_obs(3, [30.0, 10.0], [40.0, 20.0]), _obs(1, [15.0], [25.0]), _obs(2, [40.0], [50.0])]
    start, stop = gti_seconds(observations)
    np.testing.assert_allclose(start, [10.0, 30.0], rtol=0, atol=1e-9)  # through astropy.time: ~1e-12 s
    np.testing.assert_allclose(stop, [25.0, 50.0], rtol=0, atol=1e-9)


def test_gti_times_are_converted_to_the_reference():
    """A start at MJD 51544.0 TT is 64.184 s before 2000-01-01 00:00:00 UTC (32 leap seconds + 32.184 s);
    a time in 2004 in the H.E.S.S. reference (MJD 51910.000742870370370241 TT) as astropy has it."""
    hess = (51910, 0.000742870370370241, "tt")
    start, stop = gti_seconds(
        [_obs(1, [0.0], [10.0], (51544, 0.0, "TT")), _obs(2, [1.2389e8], [1.239e8], hess)]
    )
    np.testing.assert_allclose(start[0], -64.184, rtol=0, atol=1e-6)
    np.testing.assert_allclose(stop[0] - start[0], 10.0, rtol=0, atol=1e-9)
    origin = Time(hess[0], hess[1], format="mjd", scale="tt") + 1.2389e8 * u.s
    expected = (origin - Time("2000-01-01T00:00:00", scale="utc")).to_value("s")
    np.testing.assert_allclose(start[1], expected, rtol=0, atol=1e-6)


def test_gti_meta_table_and_livetime_hdus(tmp_path, inputs):
    _, mosaic, irf = inputs
    observations = [_obs(7, [0.0], [50.0], livetime=40.5), _obs(9, [100.0], [160.0], livetime=50.25)]
    path = write_map_dataset(tmp_path / "ds.fits", mosaic, irf, observations=observations)
    with fits.open(path) as hdul:
        assert [h.name for h in hdul][-2:] == ["GTI", "META_TABLE"]
        gti = hdul["GTI"]
        assert (gti.header["MJDREFI"], gti.header["MJDREFF"], gti.header["TIMESYS"]) == GTI_REFERENCE
        assert gti.header["CREATOR"].startswith("gpcube")
        np.testing.assert_allclose(gti.data["START"], [0.0, 100.0], rtol=0, atol=1e-9)
        np.testing.assert_allclose(gti.data["STOP"], [50.0, 160.0], rtol=0, atol=1e-9)
        assert gti.columns["START"].unit == "s"
        meta = hdul["META_TABLE"].data
        assert len(meta) == 1  # several observations: one row of vectors, as gammapy stacks them
        np.testing.assert_array_equal(meta["OBS_ID"][0], [7, 9])
        np.testing.assert_array_equal(meta["TELESCOP"][0], ["HESS", "HESS"])
        np.testing.assert_array_equal(meta["OBS_MODE"][0], ["POINTING", "POINTING"])
        np.testing.assert_array_equal(meta["RA_PNT"][0], [90.6, 92.6])
        assert json.loads(hdul["EXPOSURE"].header["META"]) == {"livetime": f"{40.5 + 50.25!r} s"}
        assert hdul["COUNTS"].header["META"] == "{}"


def test_one_observation_has_a_row_of_scalars(tmp_path, inputs):
    _, mosaic, _ = inputs
    path = write_map_dataset(
        tmp_path / "ds.fits", mosaic, observations=[_obs(7, [0.0], [50.0], telescope=None)]
    )
    with fits.open(path) as hdul:
        meta = hdul["META_TABLE"]
        assert meta.data["OBS_ID"].tolist() == [7] and meta.data["TELESCOP"].tolist() == ["Unknown"]
        assert meta.columns["RA_PNT"].unit == "deg" and meta.columns["DEC_PNT"].unit == "deg"


def test_observations_without_gti_give_no_gti_table(tmp_path, inputs):
    _, mosaic, _ = inputs
    observations = [_obs(7, [0.0], [50.0]), ObservationMeta(8, 10.0, 1.0, 2.0)]
    with fits.open(write_map_dataset(tmp_path / "ds.fits", mosaic, observations=observations)) as hdul:
        assert "GTI" not in hdul and "META_TABLE" in hdul
        assert json.loads(hdul["EXPOSURE"].header["META"])["livetime"] == f"{110.0!r} s"


def test_without_observations_there_are_no_tables(tmp_path, inputs):
    _, mosaic, _ = inputs
    with fits.open(write_map_dataset(tmp_path / "ds.fits", mosaic)) as hdul:
        assert "GTI" not in hdul and "META_TABLE" not in hdul
        assert hdul["EXPOSURE"].header["META"] == "{}"


def test_an_unknown_time_scale_is_an_error_naming_the_observation(tmp_path, inputs):
    _, mosaic, _ = inputs
    with pytest.raises(GpcubeError, match="observation 5: GTI reference time"):
        write_map_dataset(
            tmp_path / "ds.fits", mosaic, observations=[_obs(5, [0.0], [1.0], (51544, 0.0, "xyz"))]
        )
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------- MapDatasetOnOff
def _onoff(geom, mosaic, rng):
    """ON/OFF maps on two bands, the reco bins [0, 1] and [2] of RECO, with the mosaic's exposure."""
    band_geom = geom.with_axes(EnergyAxis("energy_reco", RECO.edges[[0, 2, 3]]), geom.axis("energy_true"))
    shape = (2, *geom.shape)
    dims = ("energy_reco", "y", "x")
    data = {
        "counts": _array(band_geom, dims, rng.poisson(5.0, shape)),
        "counts_off": _array(band_geom, dims, rng.poisson(50.0, shape)),
        "acceptance": _array(band_geom, dims, rng.uniform(1, 2, shape)),
        "acceptance_off": _array(band_geom, dims, rng.uniform(10, 20, shape)),
        "mask_safe": _array(band_geom, dims, rng.uniform(size=shape) > 0.2),
        "alpha": _array(band_geom, dims, rng.uniform(size=shape)),  # not written: gammapy derives it
    }
    return xr.Dataset(data, attrs={"geom": band_geom.to_attrs()}).assign(exposure=mosaic["exposure"])


def test_onoff_layout_is_gammapys(tmp_path, inputs):
    """gammapy's MapDatasetOnOff order: no BACKGROUND, the OFF maps after GTI and META_TABLE."""
    geom, mosaic, irf = inputs
    onoff = _onoff(geom, mosaic, np.random.default_rng(4))
    path = write_map_dataset_onoff(tmp_path / "ds.fits", onoff, irf, observations=[_obs(1, [0.0], [1.0])])
    with fits.open(path) as hdul:
        names = [h.name for h in hdul if not h.name.endswith("_BANDS")]
        assert names == [
            "PRIMARY", "COUNTS", "EXPOSURE", "EDISP", "EDISP_EXPOSURE", "PSF", "PSF_EXPOSURE", "MASK_SAFE",
            "GTI", "META_TABLE", "COUNTS_OFF", "ACCEPTANCE", "ACCEPTANCE_OFF",
        ]  # fmt: skip
        for name in ("counts", "counts_off", "acceptance", "acceptance_off"):
            np.testing.assert_array_equal(hdul[name.upper()].data, onoff[name].values.astype(np.float32))
            np.testing.assert_array_equal(hdul[f"{name.upper()}_BANDS"].data["E_MAX"], RECO.edges[[2, 3]])
        assert hdul["COUNTS_OFF"].header["BANDSHDU"] == "COUNTS_OFF_BANDS"


def test_onoff_edisp_is_summed_into_the_bands(tmp_path, inputs):
    """The kernel's probability to land in a band is the sum over the band's reco bins."""
    geom, mosaic, irf = inputs
    onoff = _onoff(geom, mosaic, np.random.default_rng(5))
    with fits.open(write_map_dataset_onoff(tmp_path / "ds.fits", onoff, irf)) as hdul:
        kernel = irf["edisp"].values
        expected = np.stack([kernel[:, :2].sum(axis=1), kernel[:, 2]], axis=1).astype(np.float32)
        np.testing.assert_allclose(hdul["EDISP"].data, expected, rtol=1e-6)
        bands = hdul["EDISP_BANDS"].data
        np.testing.assert_array_equal(np.unique(bands["E_MIN"]), RECO.edges[[0, 2]])


def test_onoff_bands_must_be_kernel_edges(tmp_path, inputs):
    geom, mosaic, irf = inputs
    onoff = _onoff(geom, mosaic, np.random.default_rng(6))
    middle = np.sqrt(RECO.edges[0] * RECO.edges[1])
    onoff = onoff.assign_coords(energy_reco_lo=("energy_reco", [RECO.edges[0], middle]))
    onoff = onoff.assign_coords(energy_reco_hi=("energy_reco", [middle, RECO.edges[3]]))
    with pytest.raises(GpcubeError, match="are not edges of the kernel"):
        write_map_dataset_onoff(tmp_path / "ds.fits", onoff, irf)
    assert list(tmp_path.iterdir()) == []


def test_onoff_needs_the_off_maps(tmp_path, inputs):
    geom, mosaic, irf = inputs
    onoff = _onoff(geom, mosaic, np.random.default_rng(7)).drop_vars("acceptance_off")
    with pytest.raises(GpcubeError, match="acceptance_off"):
        write_map_dataset_onoff(tmp_path / "ds.fits", onoff, irf)
