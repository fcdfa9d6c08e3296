"""write_map_dataset against gammapy 2.1: a two-run Crab mosaic made by gpcube's makers, read by gammapy."""

from __future__ import annotations

import json
import warnings

import astropy.units as u
import numpy as np
import pytest
import xarray as xr
from astropy.coordinates import SkyCoord
from astropy.io import fits

from gpcube.io.dataset_meta import ObservationMeta
from gpcube.io.export import write_map_dataset
from gpcube.makers import (
    make_edisp_kernel_map,
    make_map_background,
    make_map_counts,
    make_map_exposure_true_energy,
    make_psf_map,
    make_safe_mask,
)
from tests.conftest import CRAB_RUNS
from tests.validation.conftest import CRAB_CENTER

RUNS = CRAB_RUNS[:2]
BINSZ_IRF = 0.2


def _weighted(maps, weights):
    """Exposure-weighted mean of per-run IRF maps (0 where no run has exposure), and the summed weights."""
    total = sum(weights)
    mean = sum(m * w for m, w in zip(maps, weights, strict=True)) / total.where(total > 0)
    return mean.fillna(0.0), total


def _mosaic_and_irf(hess_store, geom):
    """Sums over the runs by hand, as a mosaic would hold them; IRF maps weighted by their exposure."""
    observations = [hess_store.observation(obs_id) for obs_id in RUNS]
    per_run = {
        "counts": [make_map_counts(obs, geom) for obs in observations],
        "exposure": [make_map_exposure_true_energy(obs, geom) for obs in observations],
        "background": [make_map_background(obs, geom) for obs in observations],
        "mask_safe": [make_safe_mask(obs, geom) for obs in observations],
        "psf": [make_psf_map(obs, geom, binsz_irf=BINSZ_IRF) for obs in observations],
        "edisp": [make_edisp_kernel_map(obs, geom, binsz_irf=BINSZ_IRF) for obs in observations],
        "weight": [make_map_exposure_true_energy(obs, geom.to_binsz(BINSZ_IRF)) for obs in observations],
    }
    per_run = {k: [v.compute(scheduler="sync") for v in maps] for k, maps in per_run.items()}
    mosaic = xr.Dataset(
        {
            "counts": sum(per_run["counts"]).assign_attrs(units=""),
            "exposure": sum(per_run["exposure"]).assign_attrs(units="m2 s"),
            "background": sum(per_run["background"]).assign_attrs(units=""),
            "mask_safe": np.logical_or(*per_run["mask_safe"]).assign_attrs(units=""),
        },
        attrs={"geom": geom.to_attrs()},
    )
    psf, weight = _weighted(per_run["psf"], per_run["weight"])
    edisp, _ = _weighted(per_run["edisp"], per_run["weight"])
    irf = xr.Dataset(
        {
            "psf": psf.assign_attrs(units="sr-1"),
            "edisp": edisp.assign_attrs(units=""),
            "exposure_irf": weight.assign_attrs(units="m2 s"),
        },
        attrs={"geom": geom.to_binsz(BINSZ_IRF).to_attrs()},
    )
    return mosaic, irf


@pytest.fixture(scope="module")
def exported(hess_store, crab_geoms, tmp_path_factory):
    """(mosaic, irf, path of the file written, dataset read back by gammapy)."""
    from gammapy.datasets import MapDataset

    mosaic, irf = _mosaic_and_irf(hess_store, crab_geoms[0])
    observations = [ObservationMeta.from_observation(hess_store.observation(obs_id)) for obs_id in RUNS]
    path = tmp_path_factory.mktemp("export") / "crab.fits"
    path = write_map_dataset(path, mosaic, irf, name="crab", observations=observations)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = MapDataset.read(path)
    return mosaic, irf, path, dataset


def test_gammapy_reads_the_maps(exported):
    mosaic, _, _, dataset = exported
    assert dataset.name == "crab"
    np.testing.assert_array_equal(dataset.counts.data, mosaic["counts"].values)
    assert dataset.counts.data.sum() > 1000
    np.testing.assert_array_equal(dataset.exposure.data, mosaic["exposure"].values.astype(np.float32))
    assert dataset.exposure.unit == u.Unit("m2 s")
    np.testing.assert_array_equal(dataset.background.data, mosaic["background"].values.astype(np.float32))
    assert dataset.mask_safe.data.dtype == bool
    np.testing.assert_array_equal(dataset.mask_safe.data, mosaic["mask_safe"].values)
    assert 0 < dataset.mask_safe.data.mean() < 1


def test_gammapy_reads_the_geometry(exported, crab_geoms):
    geom = crab_geoms[0]
    _, _, _, dataset = exported
    assert dataset.counts.geom.data_shape == (10, *geom.shape)
    x, y = np.meshgrid([0, 17, geom.npix[0] - 1], [0, 101, geom.npix[1] - 1])
    for m in (dataset.counts, dataset.exposure, dataset.mask_safe):
        coord = m.geom.wcs.pixel_to_world(x, y)
        lon, lat = geom.pix_to_world(x, y)
        np.testing.assert_allclose(coord.ra.deg, lon, rtol=0, atol=1e-10)
        np.testing.assert_allclose(coord.dec.deg, lat, rtol=0, atol=1e-10)
    energy = dataset.counts.geom.axes["energy"].edges.to_value("TeV")
    energy_true = dataset.exposure.geom.axes["energy_true"].edges.to_value("TeV")
    np.testing.assert_allclose(energy, geom.axis("energy_reco").edges, rtol=1e-15)
    np.testing.assert_allclose(energy_true, geom.axis("energy_true").edges, rtol=1e-15)
    coarse = geom.to_binsz(BINSZ_IRF)
    assert dataset.psf.psf_map.geom.data_shape[-2:] == coarse.shape
    coord = dataset.psf.psf_map.geom.wcs.pixel_to_world(3, 4)
    np.testing.assert_allclose([coord.ra.deg, coord.dec.deg], coarse.pix_to_world(3, 4), atol=1e-10)


def test_gammapy_reads_the_irf_maps(exported):
    from gammapy.irf import EDispKernelMap, PSFMap

    _, irf, _, dataset = exported
    assert type(dataset.psf) is PSFMap and type(dataset.edisp) is EDispKernelMap
    psf = dataset.psf.psf_map
    assert psf.geom.axes.names == ["rad", "energy_true"] and psf.unit == u.Unit("sr-1")
    np.testing.assert_array_equal(psf.data, irf["psf"].values.astype(np.float32))
    np.testing.assert_allclose(psf.geom.axes["rad"].edges.to_value("deg")[-1], irf["rad_hi"].values[-1])
    edisp = dataset.edisp.edisp_map
    assert edisp.geom.axes.names == ["energy", "energy_true"]
    np.testing.assert_array_equal(edisp.data, irf["edisp"].values.astype(np.float32))
    weight = irf["exposure_irf"].values.astype(np.float32)[:, None]
    np.testing.assert_array_equal(dataset.psf.exposure_map.data, weight)
    np.testing.assert_array_equal(dataset.edisp.exposure_map.data, weight)


def test_the_psf_has_a_sensible_containment_radius(exported):
    """The PSF (in sr-1) read back by gammapy: 68 % containment at 1 TeV between 0.05 and 0.2 deg.

    The fit of an export against the joint fit of its runs: test_stacked_vs_joint.py."""
    _, _, _, dataset = exported
    crab = SkyCoord(*CRAB_CENTER, unit="deg")
    radius = dataset.psf.containment_radius(0.68, energy_true=1 * u.TeV, position=crab)
    assert 0.05 * u.deg < radius < 0.2 * u.deg


def test_gammapy_summaries(exported):
    mosaic, _, _, dataset = exported
    npred_background = dataset.npred_background().data
    np.testing.assert_allclose(npred_background.sum(), mosaic["background"].values.sum(), rtol=1e-5)
    info = dataset.info_dict()
    mask = mosaic["mask_safe"].values
    assert info["counts"] == mosaic["counts"].values[mask].sum()
    assert info["background"] == pytest.approx(mosaic["background"].values[mask].sum(), rel=1e-5)
    assert info["npred_background"] == pytest.approx(info["background"], rel=1e-5)


@pytest.fixture(scope="module")
def gammapy_stacked(reference_store, crab_geoms, tmp_path_factory):
    """gammapy's own stacked dataset of the runs (MapDatasetMaker, then MapDataset.stack), written by it."""
    from gammapy.datasets import MapDataset
    from gammapy.makers import MapDatasetMaker

    _, ref_geom, energy_true = crab_geoms
    path = tmp_path_factory.mktemp("reference") / "stacked.fits"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stacked = MapDataset.create(ref_geom, energy_axis_true=energy_true, binsz_irf=BINSZ_IRF * u.deg)
        for obs_id in RUNS:
            empty = MapDataset.create(ref_geom, energy_axis_true=energy_true, binsz_irf=BINSZ_IRF * u.deg)
            stacked.stack(MapDatasetMaker().run(empty, reference_store.obs(obs_id)))
        stacked.write(path)
    return path


def test_the_layout_is_gammapys_own(exported, gammapy_stacked):
    """Same HDUs, header keywords and values, bands columns, GTI and META_TABLE as gammapy's file of a
    stacked dataset.

    Known differences: masks are uint8 where gammapy writes int64, and the live time in the exposure's
    META is the sum of the runs' LIVETIME keywords (float32 in the files), where gammapy multiplies the
    GTI duration by DEADC: 2e-8 apart.
    """
    _, _, path, _ = exported
    with fits.open(gammapy_stacked) as theirs, fits.open(path) as ours:
        assert [h.name for h in theirs] == [h.name for h in ours]
        for hdu in ours:
            other = theirs[hdu.name]
            assert list(hdu.header) == list(other.header), hdu.name
            different = {k for k in hdu.header if hdu.header[k] != other.header[k]}
            expected = {"CREATOR", "CREATED", "NAME"}
            expected |= {"BITPIX"} if hdu.name == "MASK_SAFE" else set()
            expected |= {"META"} if hdu.name == "EXPOSURE" else set()
            assert different <= expected, (hdu.name, different)
            if isinstance(hdu, fits.BinTableHDU):
                for column in hdu.columns.names:
                    if hdu.data[column].dtype.kind in "SU":
                        np.testing.assert_array_equal(hdu.data[column], other.data[column], err_msg=column)
                    else:
                        np.testing.assert_allclose(hdu.data[column], other.data[column], rtol=1e-12)
        np.testing.assert_array_equal(ours["COUNTS"].data, theirs["COUNTS"].data)
        livetime = (json.loads(h["EXPOSURE"].header["META"])["livetime"] for h in (ours, theirs))
        ours_s, theirs_s = (u.Quantity(value).to_value("s") for value in livetime)
        assert ours_s == pytest.approx(theirs_s, rel=1e-7)


def test_livetime_and_gti_of_the_runs(exported, hess_store, reference_store):
    """gammapy's info_dict gives the summed live time of the runs; the GTI rows are the runs' GTIs."""
    _, _, _, dataset = exported
    livetime = sum(hess_store.observation(obs_id).livetime for obs_id in RUNS)
    assert dataset.info_dict()["livetime"].to_value("s") == pytest.approx(livetime, rel=1e-12)
    assert dataset.gti.time_sum.to_value("s") == pytest.approx(
        sum(hess_store.observation(obs_id).ontime for obs_id in RUNS), rel=1e-12
    )
    runs = [reference_store.obs(obs_id).gti for obs_id in RUNS]
    assert len(dataset.gti.table) == len(RUNS)
    for row, run in enumerate(runs):
        assert abs((dataset.gti.time_start[row] - run.time_start[0]).to_value("s")) < 1e-6
        assert abs((dataset.gti.time_stop[row] - run.time_stop[0]).to_value("s")) < 1e-6
    assert list(dataset.meta_table["OBS_ID"][0]) == list(RUNS)


def test_gammapy_light_curve_runs_on_the_export(exported):
    """LightCurveEstimator needs the GTI: one time bin over the two runs, a Crab flux of the right size."""
    from gammapy.estimators import LightCurveEstimator
    from gammapy.modeling.models import FoVBackgroundModel, PointSpatialModel, PowerLawSpectralModel, SkyModel

    _, _, _, dataset = exported
    dataset = dataset.copy(name="lc")
    crab = SkyCoord(*CRAB_CENTER, unit="deg")
    spatial = PointSpatialModel(lon_0=crab.ra, lat_0=crab.dec, frame="icrs")
    spatial.lon_0.frozen = spatial.lat_0.frozen = True
    spectral = PowerLawSpectralModel(index=2.6, amplitude="3.5e-11 cm-2 s-1 TeV-1", reference="1 TeV")
    dataset.models = [SkyModel(spectral, spatial, name="crab"), FoVBackgroundModel(dataset_name="lc")]
    estimator = LightCurveEstimator(energy_edges=[1, 10] * u.TeV, source="crab", selection_optional=[])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        curve = estimator.run([dataset])
    table = curve.to_table(format="lightcurve", sed_type="flux")
    assert len(table) == 1
    start, stop = dataset.gti.time_start[0], dataset.gti.time_stop[-1]
    # the light curve's times are MJD in TT
    assert abs(table["time_min"][0] - start.tt.mjd) < 1e-9 and abs(table["time_max"][0] - stop.tt.mjd) < 1e-9
    flux = float(np.ravel(table["flux"][0])[0])
    expected = spectral.integral(1 * u.TeV, 10 * u.TeV).to_value("cm-2 s-1")
    assert 0.5 < flux / expected < 2, flux
