"""``gpcube export`` of a job's archive, read by gammapy 2.1: the mosaic and each observation as a
``MapDataset`` (live time, GTI, a light curve per run), a ring job as a ``MapDatasetOnOff`` (alpha,
OFF counts and gammapy's Li & Ma significance against gpcube's own).

The jobs: the first two Crab runs on a 4 x 3 deg icrs grid of 0.04 deg pixels (``tests.archive.conftest``),
counts, exposure, background, PSF and edisp; the ring job with a ring of 0.4-0.6 deg on the bands
0.5-5-50 TeV around a 0.3 deg exclusion of the Crab.
"""

from __future__ import annotations

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

import gpcube
from gpcube.storage.layout import complete_observations as _complete_observations
from gpcube.workflow import pipeline
from gpcube.workflow.export import export
from tests.archive.conftest import RING, built_archive
from tests.conftest import CRAB_RUNS, archive_store
from tests.validation.conftest import CRAB_CENTER

RUNS = CRAB_RUNS[:2]
PRODUCTS = ["counts", "exposure", "background", "psf", "edisp"]
RADIUS = 0.1


def _read(cls, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls.read(path)


def complete_observations(path) -> dict:
    return _complete_observations(archive_store(path))


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """(archive, the mosaic's MapDataset, {obs_id: the observation's MapDataset}) as gammapy reads them."""
    from gammapy.datasets import MapDataset

    archive = built_archive(tmp_path_factory, "map", RUNS, products=PRODUCTS)
    out = tmp_path_factory.mktemp("exports")
    mosaic = _read(MapDataset, export(archive, out / "mosaic.fits"))
    runs = {i: _read(MapDataset, export(archive, out / f"{i}.fits", obs_id=i)) for i in RUNS}
    return archive, mosaic, runs


@pytest.fixture(scope="module")
def ring_export(tmp_path_factory):
    """(archive, the MapDatasetOnOff that gammapy reads of its mosaic)."""
    from gammapy.datasets import MapDatasetOnOff

    archive = built_archive(tmp_path_factory, "ring", RUNS, products=PRODUCTS, background=RING)
    path = export(archive, tmp_path_factory.mktemp("ring") / "ring.fits")
    return archive, _read(MapDatasetOnOff, path)


def test_gammapy_reads_each_observation(exports, hess_store):
    """Each run's own maps, with its live time and GTI; the mosaic's live time is their sum."""
    archive, mosaic, runs = exports
    observations = complete_observations(archive)
    for obs_id, dataset in runs.items():
        assert dataset.name == f"gpcube-{obs_id}"
        assert dataset.info_dict()["livetime"].to_value("s") == observations[obs_id]["livetime"]
        obs = hess_store.observation(obs_id)
        assert dataset.gti.time_sum.to_value("s") == pytest.approx(obs.ontime, rel=1e-12)
        sky = gpcube.open_archive(archive, obs_id=obs_id)
        np.testing.assert_array_equal(dataset.counts.data, sky["counts"].values)
        assert dataset.psf is not None and dataset.edisp is not None
    livetime = sum(attrs["livetime"] for attrs in observations.values())
    assert mosaic.info_dict()["livetime"].to_value("s") == pytest.approx(livetime, rel=1e-12)


def test_the_observations_masked_counts_stack_to_the_mosaics(exports):
    """Placed by gammapy on the mosaic's grid by their WCS: the cutouts line up with its pixels."""
    _, mosaic, runs = exports
    total = mosaic.counts.copy(data=np.zeros(mosaic.counts.data.shape))
    for dataset in runs.values():
        total.stack(dataset.counts, weights=dataset.mask_safe)
    np.testing.assert_array_equal(total.data, mosaic.counts.data)
    assert total.data.sum() > 1000


def _light_curve(datasets):
    """LightCurveEstimator over the whole reco range, a Crab point source of fixed position and index."""
    from gammapy.datasets import Datasets
    from gammapy.estimators import LightCurveEstimator
    from gammapy.modeling.models import FoVBackgroundModel, PointSpatialModel, PowerLawSpectralModel, SkyModel

    crab = SkyCoord(*CRAB_CENTER, unit="deg")
    spatial = PointSpatialModel(lon_0=crab.ra, lat_0=crab.dec, frame="icrs")
    spatial.lon_0.frozen = spatial.lat_0.frozen = True
    spectral = PowerLawSpectralModel(index=2.6, amplitude="3.5e-11 cm-2 s-1 TeV-1", reference="1 TeV")
    datasets = Datasets([dataset.copy(name=dataset.name) for dataset in datasets])
    datasets.models = [SkyModel(spectral, spatial, name="crab")] + [
        FoVBackgroundModel(dataset_name=name) for name in datasets.names
    ]
    estimator = LightCurveEstimator(energy_edges=[0.5, 50] * u.TeV, source="crab", selection_optional=[])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return datasets, estimator.run(datasets).to_table(format="lightcurve", sed_type="flux")


def test_a_light_curve_of_the_observations(exports):
    """LightCurveEstimator on the per-observation exports: one bin per run, at the run's GTI, each
    run's flux near that of the mosaic's single bin (the same Crab, half an hour apart)."""
    _, mosaic, runs = exports
    datasets, table = _light_curve(runs.values())
    assert len(table) == len(RUNS)
    for row, dataset in enumerate(datasets):  # the light curve's times are MJD in TT
        assert abs(table["time_min"][row] - dataset.gti.time_start[0].tt.mjd) < 1e-9
        assert abs(table["time_max"][row] - dataset.gti.time_stop[-1].tt.mjd) < 1e-9
    _, whole = _light_curve([mosaic])
    assert len(whole) == 1
    ratio = np.asarray(table["flux"], dtype=float).ravel() / float(np.ravel(whole["flux"])[0])
    print(f"\nper-run light-curve flux / the mosaic's: {ratio}")
    assert np.all((ratio > 2 / 3) & (ratio < 1.5)), ratio


def test_gammapy_reads_the_ring_background_as_onoff(ring_export):
    """OFF counts exactly, alpha (acceptance / acceptance_off as gammapy derives it) to float32 rounding,
    the ring's bands and safe mask."""
    from gammapy.datasets import MapDatasetOnOff

    archive, dataset = ring_export
    assert type(dataset) is MapDatasetOnOff and dataset.background is not None
    ring = gpcube.open_archive(archive, ring=True).compute()
    np.testing.assert_array_equal(dataset.counts_off.data, ring["counts_off"].values)
    np.testing.assert_array_equal(dataset.counts.data, ring["counts"].values)
    np.testing.assert_array_equal(dataset.mask_safe.data, ring["mask_safe"].values)
    np.testing.assert_allclose(dataset.alpha.data, ring["alpha"].values, rtol=1e-6, atol=0)
    edges = dataset.counts.geom.axes["energy"].edges.to_value("TeV")
    np.testing.assert_allclose(edges, RING["ring"]["energy_edges"], rtol=1e-12)
    assert dataset.info_dict()["livetime"].to_value("s") == pytest.approx(
        sum(a["livetime"] for a in complete_observations(archive).values()), rel=1e-12
    )
    assert dataset.edisp.edisp_map.geom.axes["energy"] == dataset.counts.geom.axes["energy"]


def test_gammapys_li_ma_on_the_export_is_gpcubes(ring_export):
    """ExcessMapEstimator (WStat, OFF counts correlated again as by default) on the export against
    ``gpcube significance`` on the archive, per band: every finite pixel, and at the Crab."""
    from gammapy.estimators import ExcessMapEstimator

    archive, dataset = ring_export
    bands = RING["ring"]["energy_edges"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = ExcessMapEstimator(RADIUS * u.deg, energy_edges=bands * u.TeV).run(dataset)
    ours = pipeline.significance(archive, RADIUS, energy_edges=bands).compute()
    sqrt_ts = np.asarray(theirs.sqrt_ts.data, dtype=float)
    finite = np.isfinite(sqrt_ts) & np.isfinite(ours["sqrt_ts"].values)
    assert finite.sum() > 0.5 * sqrt_ts.size
    np.testing.assert_allclose(ours["sqrt_ts"].values[finite], sqrt_ts[finite], rtol=0, atol=1e-3)
    crab = SkyCoord(*CRAB_CENTER, unit="deg")
    iy, ix = (int(np.ravel(i)[0]) for i in dataset.counts.geom.to_image().coord_to_idx(crab)[::-1])
    at_crab = [(float(sqrt_ts[b, iy, ix]), float(ours["sqrt_ts"].values[b, iy, ix])) for b in range(2)]
    print(f"\nLi & Ma at the Crab per band (gammapy on the export, gpcube): {at_crab}")
    assert at_crab[0][0] > 10
    for theirs_value, ours_value in at_crab:
        assert abs(theirs_value - ours_value) < 1e-3
