"""The 36-run H.E.S.S. Galactic survey mosaic against gammapy 2.1's stacked MapDataset.

Runs: every observation of H.E.S.S. DL3 DR1 pointed within 20 deg of (l, b) = (330, 0) deg with
|b| < 5 deg. Geometry: galactic CAR centred on (333.974, -1.965) deg, 1643 x 456 px of 0.02 deg,
reco 0.5-50 TeV (10 bins), true 0.3-100 TeV (20 bins). gpcube runs the whole job (``pipeline.run``
on an embedded 2-process cluster, archive and mosaic); the reference stacks, per observation in
obs_id order, a cutout of 2 x offset-max made by ``MapDatasetMaker`` and masked by ``SafeMaskMaker``
(offset-max 2.5 deg) into ``MapDataset.create(geom)``. (``WcsGeom.create(width=32.85)`` rounds
1642.5 px half-to-even, to 1642; the reference geometry is given by ``npix`` and checked against ours.)

Counts: gammapy builds the events' ``SkyCoord`` from the float32 RA/DEC columns as they are stored,
and astropy then converts them to galactic coordinates in float32: up to ~0.1 arcsec from the exact
conversion of the same stored values (float32 spacing near 330 deg is 3e-5 deg), enough to move the
few events that lie that close to a pixel edge into the neighbouring pixel. gpcube converts in float64.
So the counts are compared, pixel by pixel and exactly, with gammapy's own counts maker and stacking
fed the same events with their columns cast to float64; the differences from the reference as it is
are checked to be only those moves.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import Table

SELECT_CENTER = (330.0, 0.0)  # galactic
SELECT_RADIUS = 20.0
SELECT_MAX_ABS_B = 5.0
N_RUNS = 36
CENTER = (333.974, -1.965)  # galactic
WIDTH = (32.85, 9.115)
NPIX = (1643, 456)
BINSZ = 0.02
OFFSET_MAX = 2.5
RECO = {"min": 0.5, "max": 50, "nbins": 10}
TRUE = {"min": 0.3, "max": 100, "nbins": 20}
SKY = ("counts", "exposure", "background", "mask_safe")


def survey_obs_ids(hess_dir) -> list[int]:
    """Runs pointed within 20 deg of (l, b) = (330, 0) with |b| < 5 deg, from the obs index."""
    table = Table.read(hess_dir / "obs-index.fits.gz")
    pointing = SkyCoord(table["RA_PNT"], table["DEC_PNT"], unit="deg", frame="icrs").galactic
    center = SkyCoord(*SELECT_CENTER, unit="deg", frame="galactic")
    keep = (pointing.separation(center).deg < SELECT_RADIUS) & (np.abs(pointing.b.deg) < SELECT_MAX_ABS_B)
    return sorted(int(i) for i in table["OBS_ID"][keep])


@pytest.fixture(scope="module")
def obs_ids(hess_dir):
    return survey_obs_ids(hess_dir)


def _float64_events(observation):
    """The observation's events with RA and DEC cast to float64 (the values as stored)."""
    from types import SimpleNamespace

    from gammapy.data import EventList

    table = observation.events.table.copy()
    for name in ("RA", "DEC"):
        table[name] = table[name].astype(np.float64)
    return SimpleNamespace(events=EventList(table))


@pytest.fixture(scope="module")
def reference(reference_store, obs_ids):
    """gammapy 2.1's stacked survey, as numpy arrays; also the counts from float64 event coordinates."""
    from gammapy.datasets import MapDataset
    from gammapy.makers import MapDatasetMaker, SafeMaskMaker
    from gammapy.maps import Map, MapAxis, WcsGeom

    energy = MapAxis.from_energy_bounds(RECO["min"], RECO["max"], RECO["nbins"], unit="TeV", name="energy")
    energy_true = MapAxis.from_energy_bounds(
        TRUE["min"], TRUE["max"], TRUE["nbins"], unit="TeV", name="energy_true"
    )
    geom = WcsGeom.create(skydir=CENTER, binsz=BINSZ, npix=NPIX, frame="galactic", proj="CAR", axes=[energy])
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stacked = MapDataset.create(geom, energy_axis_true=energy_true, name="survey")
        counts_f64 = Map.from_geom(geom)
        maker = MapDatasetMaker(selection=["counts", "exposure", "background"])
        safe = SafeMaskMaker(methods=["offset-max"], offset_max=f"{OFFSET_MAX} deg")
        for obs in reference_store.get_observations(obs_ids):
            position = obs.get_pointing_icrs(obs.tmid)
            cutout = stacked.cutout(position, width=2 * safe.offset_max, name=f"obs-{obs.obs_id}")
            dataset = safe.run(maker.run(cutout, obs), obs)
            stacked.stack(dataset)
            counts = maker.make_counts(cutout.counts.geom, _float64_events(obs))
            counts_f64.stack(counts, weights=dataset.mask_safe)
    seconds = time.perf_counter() - start
    print(f"\nreference: {len(obs_ids)} runs stacked in {seconds:.1f} s")
    return {
        "geom": geom,
        "counts": stacked.counts.data,
        "counts_f64": counts_f64.data,
        "exposure": stacked.exposure.quantity.to_value("m2 s"),
        "background": stacked.background.data,
        "mask_safe": stacked.mask_safe.data,
    }


@pytest.fixture(scope="module")
def survey(hess_dir, obs_ids, tmp_path_factory):
    """gpcube's mosaic of the survey (``pipeline.run`` on a 2-process local cluster), loaded."""
    from gpcube.workflow import pipeline
    from gpcube.workflow.config import parse_config

    config = parse_config({
        "data": {"store": str(hess_dir), "obs_ids": obs_ids},
        "geom": {"frame": "galactic", "projection": "CAR", "center": list(CENTER), "width": list(WIDTH),
                 "binsz": BINSZ, "energy_reco": RECO, "energy_true": TRUE},
        "products": ["counts", "exposure", "background"],
        "safe_mask": {"methods": ["offset-max"], "offset_max": OFFSET_MAX},
        "output": str(tmp_path_factory.mktemp("survey") / "survey.zarr"),
        "cluster": {"n_workers": 2, "processes": True},
    })  # fmt: skip
    start = time.perf_counter()
    with pipeline.job_client(config) as client:
        report = pipeline.run(config, client, progress=False)
    print(f"\ngpcube: {report['written']} runs reduced and mosaicked in {time.perf_counter() - start:.1f} s")
    mosaic = pipeline.open_archive(config.output).load()
    return {"config": config, "report": report, "mosaic": mosaic, **{n: mosaic[n].values for n in SKY}}


def test_selection_has_36_runs(obs_ids):
    assert len(obs_ids) == N_RUNS


def test_geometry_and_runs_match(survey, reference, obs_ids):
    mosaic, geom = survey["mosaic"], reference["geom"]
    assert survey["report"]["written"] == N_RUNS and survey["report"]["empty"] == 0
    assert mosaic.attrs["obs_ids"] == obs_ids
    assert tuple(mosaic.sizes[d] for d in ("x", "y")) == NPIX == tuple(int(np.ravel(n)[0]) for n in geom.npix)
    ours = mosaic.sky.wcs.wcs
    np.testing.assert_allclose(ours.crpix, geom.wcs.wcs.crpix)
    np.testing.assert_allclose(ours.crval, geom.wcs.wcs.crval)
    np.testing.assert_allclose(ours.cdelt, geom.wcs.wcs.cdelt)
    assert list(ours.ctype) == list(geom.wcs.wcs.ctype)
    for name in SKY:
        assert survey[name].shape == reference[name].shape, name
    assert survey["counts"].dtype == np.int32


def test_counts_identical_with_float64_event_coordinates(survey, reference):
    """Every pixel equal to gammapy's counts maker + safe mask + stacking on float64 coordinates."""
    ours = survey["counts"]
    np.testing.assert_array_equal(ours, reference["counts_f64"])
    print(f"\ncounts: {ours.sum()} events, identical in all {ours.size} pixels")


def test_counts_differ_from_reference_only_by_float32_rounding(survey, reference):
    """The reference as it is differs from the float64 one, and from gpcube, by the same few moves."""
    ours, ref = survey["counts"].astype(np.int64), reference["counts"].astype(np.int64)
    float32_effect = ref - reference["counts_f64"].astype(np.int64)
    np.testing.assert_array_equal(ref - ours, float32_effect)
    n_pixels = np.count_nonzero(float32_effect)
    moved = np.abs(float32_effect).sum()
    print(f"\ncounts vs the reference as it is: {n_pixels} pixels differ (|diff| summed {moved}), "
          f"total {ref.sum()} vs {ours.sum()}")  # fmt: skip
    assert moved <= 1e-3 * ours.sum()


def test_float32_rounding_of_event_coordinates(reference_store, obs_ids):
    """The cause of those moves: gammapy's galactic event coordinates are float32-rounded."""
    from gpcube.geom.frames import convert_frame

    worst = 0.0
    for obs_id in obs_ids[:4]:
        events = reference_store.obs(obs_id).events
        galactic = events.radec.galactic
        lon, lat = convert_frame(
            np.asarray(events.table["RA"], dtype=float),
            np.asarray(events.table["DEC"], dtype=float),
            "icrs",
            "galactic",
        )
        exact = SkyCoord(lon, lat, unit="deg", frame="galactic")
        worst = max(worst, float(galactic.separation(exact).to_value("arcsec").max()))
    spacing = float(np.spacing(np.float32(360.0))) * 3600
    print(f"\nworst float32 rounding of gammapy's galactic event coordinates: {worst:.3f} arcsec")
    assert 0.001 < worst < spacing


def test_counts_equal_a_plain_histogram_of_the_events(survey, reference_store, obs_ids):
    """Σ counts = events in [0.5, 50) TeV binned by astropy's WCS in pixels within offset-max."""
    wcs = survey["mosaic"].sky.wcs
    total = 0
    for obs_id in obs_ids:
        obs = reference_store.obs(obs_id)
        table = obs.events.table
        ra, dec = (np.asarray(table[c], dtype=np.float64) for c in ("RA", "DEC"))
        energy = np.asarray(table["ENERGY"].quantity.to_value("TeV"), dtype=np.float64)
        galactic = SkyCoord(ra, dec, unit="deg", frame="icrs").galactic
        x, y = wcs.world_to_pixel(galactic)
        ix, iy = np.floor(x + 0.5).astype(int), np.floor(y + 0.5).astype(int)
        inside = (ix >= 0) & (ix < NPIX[0]) & (iy >= 0) & (iy < NPIX[1])
        inside &= (energy >= RECO["min"]) & (energy < RECO["max"])
        centre = wcs.pixel_to_world(ix[inside], iy[inside])
        offset = centre.separation(obs.get_pointing_icrs(obs.tmid)).deg
        total += int(np.count_nonzero(offset < OFFSET_MAX))
    assert survey["counts"].sum() == total


def _relative(ours, ref, name):
    significant = ref > 1e-3 * ref.max()
    rel = np.abs(ours[significant].astype(np.float64) / ref[significant] - 1)
    total = abs(ours.sum(dtype=np.float64) / ref.sum(dtype=np.float64) - 1)
    outside = ours[~significant].max() / ref.max()
    print(f"\n{name}: max relative difference {rel.max():.2e} in {significant.sum()} pixels (ref > 1e-3 "
          f"max), totals {total:.2e}, ours where ref is not: <= {outside:.2e} of max")  # fmt: skip
    return significant


def test_exposure_matches_reference(survey, reference):
    ours, ref = survey["exposure"], reference["exposure"]
    significant = _relative(ours, ref, "exposure")
    np.testing.assert_allclose(ours[significant], ref[significant], rtol=1e-5)
    assert np.all(ours[~significant] < 2e-3 * ref.max())
    np.testing.assert_allclose(ours.sum(dtype=np.float64), ref.sum(dtype=np.float64), rtol=1e-4)


def test_background_matches_reference(survey, reference):
    ours, ref = survey["background"], reference["background"]
    significant = _relative(ours, ref, "background")
    np.testing.assert_allclose(ours[significant], ref[significant], rtol=1e-3)
    assert np.all(ours[~significant] < 2e-3 * ref.max())
    np.testing.assert_allclose(ours.sum(dtype=np.float64), ref.sum(dtype=np.float64), rtol=1e-4)


def test_mask_safe_equals_reference(survey, reference):
    """The OR of the per-observation offset-max masks, as gammapy's stacked mask_safe."""
    ours, ref = survey["mask_safe"], reference["mask_safe"]
    assert ours.dtype == bool
    np.testing.assert_array_equal(ours, ref)
    print(f"\nmask_safe: {ours.sum()} safe of {ours.size}, identical")
