"""The simulation's truth: counts of simulated stores against what gpcube's makers predict from the IRFs.

Every check compares Poisson counts with a prediction made independently of the sampler (the makers,
or a direct integral of the analytic model); seeds are fixed, and the thresholds (|z| < 4, chi2
p-value > 1e-4) fail for biases of a few percent at these statistics.
"""

from __future__ import annotations

import dask
import numpy as np
import pytest
from scipy import integrate, stats

import gpcube
from gpcube.geom import EnergyAxis, SkyGeom
from gpcube.geom.frames import convert_frame
from gpcube.makers import (
    make_edisp_kernel_map,
    make_map_background,
    make_map_counts,
    make_map_exposure_true_energy,
)
from gpcube.simulate import simulate_store
from gpcube.simulate.sampling import power_law_integral, separation
from tests import gadf_factory as gf
from tests.simulate.conftest import TRUTH_CONFIG

#: Compare only pixels this far inside the simulated field of view (2.5 deg).
INSIDE = 2.3


def _chi2_pvalue(observed, predicted, minimum=10.0) -> float:
    observed, predicted = np.asarray(observed, float), np.asarray(predicted, float)
    keep = predicted >= minimum
    chi2 = np.sum((observed[keep] - predicted[keep]) ** 2 / predicted[keep])
    return float(stats.chi2.sf(chi2, keep.sum()))


def _z(observed: float, predicted: float) -> float:
    return (observed - predicted) / np.sqrt(predicted)


def _stacked(store, geom: SkyGeom, exposure: bool = False) -> dict[str, np.ndarray]:
    """Counts, background (and exposure) summed over observations, each within INSIDE of its pointing."""
    sums: dict[str, np.ndarray] = {}
    with dask.config.set(scheduler="sync"):
        for obs in store.observations():
            lon, lat = convert_frame(obs.pointing.ra, obs.pointing.dec, "icrs", geom.frame)
            inside = geom.separation(float(lon), float(lat)) <= INSIDE
            products = {"counts": make_map_counts(obs, geom), "background": make_map_background(obs, geom)}
            if exposure:
                products["exposure"] = make_map_exposure_true_energy(obs, geom)
            for name, cube in products.items():
                sums[name] = sums.get(name, 0.0) + cube.values * inside
    return sums


@pytest.fixture(scope="module")
def truth_maps(truth_store):
    path, report = truth_store
    geom = SkyGeom.create((0.0, 0.0), 0.05, width=(8.0, 6.0), frame="galactic",
                          axes=[EnergyAxis.log(0.3, 100.0, 40, "energy_reco"),
                                EnergyAxis.log(0.5, 80.0, 60, "energy_true")])  # fmt: skip
    store = gpcube.DataStore.from_dir(path)
    return store, geom, _stacked(store, geom, exposure=True), report


def test_background_counts_match_the_predicted_background(truth_maps):
    _, geom, maps, _ = truth_maps
    distance = geom.separation(0.0, 0.0)
    off = distance > 0.6  # 6 PSF sigmas from the source
    counts, background = maps["counts"][:, off], maps["background"][:, off]
    assert background.sum() > 40000
    assert abs(_z(counts.sum(), background.sum())) < 4
    assert _chi2_pvalue(counts.sum(axis=1), background.sum(axis=1)) > 1e-4
    rings = np.arange(0.6, 4.0, 0.2)
    ring_index = np.digitize(distance[off], rings)
    radial_counts = np.bincount(ring_index, weights=counts.sum(axis=0))
    radial_background = np.bincount(ring_index, weights=background.sum(axis=0))
    assert _chi2_pvalue(radial_counts, radial_background) > 1e-4


def test_source_excess_matches_flux_times_exposure_through_the_dispersion(truth_maps):
    store, geom, maps, report = truth_maps
    source = TRUTH_CONFIG["sources"][0]
    on = geom.separation(*source["position"]) <= 0.5  # 5 PSF sigmas
    excess = maps["counts"][:, on].sum(axis=1) - maps["background"][:, on].sum(axis=1)
    variance = maps["counts"][:, on].sum(axis=1)
    true_axis = geom.axis("energy_true")
    flux = source["amplitude"] * power_law_integral(
        true_axis.edges[:-1], true_axis.edges[1:], source["index"]
    )
    iy, ix = np.unravel_index(np.argmin(geom.separation(*source["position"])), geom.shape)
    predicted_true = flux * 1e4 * maps["exposure"][:, iy, ix]  # cm-2 s-1 * m2 s
    assert predicted_true.sum() == pytest.approx(report["expected"]["pt"], rel=0.01)  # sampler's own total
    assert abs(excess.sum() - predicted_true.sum()) < 4 * np.sqrt(variance.sum())
    with dask.config.set(scheduler="sync"):
        kernel_map = make_edisp_kernel_map(store.observation(1), geom, binsz_irf=0.5).values
    kernel = kernel_map[:, :, kernel_map.shape[2] // 2, kernel_map.shape[3] // 2]  # the same everywhere
    predicted_reco = predicted_true @ kernel
    keep = predicted_reco > 10
    chi2 = np.sum((excess[keep] - predicted_reco[keep]) ** 2 / variance[keep])
    assert stats.chi2.sf(chi2, keep.sum()) > 1e-4


def test_gaussian_source_flux_and_width_against_the_analytic_model(tmp_path):
    """Flat aeff in offset: counts = livetime * integral of flux * aeff(E); r2 ~ 2 (s2 + psf2) Exp(1)."""
    sigma, psf_sigma, plateau, threshold, index = 0.25, 0.1, 1e5, 0.3, 2.2
    config = {
        "seed": 5, "pointings": {"list": [[10.0, 0.0]]},
        "observation": {"livetime": 7200.0, "max_offset": 4.0, "energy": {"min": 0.01, "max": 300.0},
                        "energy_true": {"min": 0.1, "max": 100.0}},
        "irf": {"analytic": {"aeff": {"plateau": plateau, "threshold": threshold, "offset_sigma": None},
                             "psf": {"sigma": psf_sigma}}},
        "background": {"scale": 0.0},
        "sources": [{"name": "g", "position": [10.0, 0.0], "amplitude": 4e-10, "index": index,
                     "sigma": sigma}],
    }  # fmt: skip
    report = simulate_store(config, tmp_path / "g", progress=False)
    store = gpcube.DataStore.from_dir(tmp_path / "g")
    events = store.observation(1).events

    def rate(energy):
        return 4e-10 * energy**-index * plateau * 1e4 / (1 + (threshold / energy) ** 4)

    expected = 7200.0 * integrate.quad(rate, 0.1, 100.0, points=[0.3, 1.0], limit=200)[0]
    n = events.sizes["event"]
    assert report["events"] == {"background": 0, "g": n}
    assert abs(_z(n, expected)) < 4
    lon, lat = convert_frame(events["ra"].values, events["dec"].values, "icrs", "galactic")
    r2 = separation(lon, lat, 10.0, 0.0) ** 2
    # within 4 deg the 2-D Gaussian of width 0.27 deg is complete; its mean r2 is 2 s_tot2, std the same
    mean = 2 * (sigma**2 + psf_sigma**2)
    assert abs(r2.mean() - mean) < 4 * mean / np.sqrt(n)
    # reco energies: the true spectrum (direct integrals) folded with the edisp maker's kernel
    geom = SkyGeom.create((10.0, 0.0), 0.5, width=(1.0, 1.0), frame="galactic",
                          axes=[EnergyAxis.log(0.1, 100.0, 30, "energy_reco"),
                                EnergyAxis.log(0.1, 100.0, 90, "energy_true")])  # fmt: skip
    edges = geom.axis("energy_true").edges
    true_counts = [
        7200.0 * integrate.quad(rate, lo, hi)[0] for lo, hi in zip(edges[:-1], edges[1:], strict=True)
    ]
    with dask.config.set(scheduler="sync"):
        kernel = make_edisp_kernel_map(store.observation(1), geom, binsz_irf=0.5).values[:, :, 0, 0]
    reco_counts = np.histogram(events["energy"].values, geom.axis("energy_reco").edges)[0]
    assert _chi2_pvalue(reco_counts, np.array(true_counts) @ kernel) > 1e-4


def test_bkg_3d_orientation_follows_the_makers(tmp_path):
    """A background with strong gradients along DETX and DETY: the counts follow the maker's map."""

    def rate(energy_reco, fov_lat, fov_lon):
        return 100 * energy_reco**-2.5 * np.exp(0.6 * fov_lon + 0.3 * fov_lat)

    bkg = gf.bkg_3d(
        values=rate,
        energy=gf.energy_axis("energy_reco", 0.1, 100, 12),
        fov_lat=gf.linear_axis("fov_lat", -3, 3, 30),
        fov_lon=gf.linear_axis("fov_lon", -3, 3, 30),
    )
    gf.write_store(tmp_path / "irf", [gf.ObsSpec(7, irfs=[gf.aeff_2d(), gf.edisp_2d(), gf.psf_table(), bkg])])
    config = {"pointings": {"frame": "icrs", "list": [[30.0, 50.0]]},
              "irf": {"store": str(tmp_path / "irf"), "obs_id": 7},
              "observation": {"livetime": 20000.0, "energy": {"min": 0.5, "max": 50.0}}}  # fmt: skip
    simulate_store(config, tmp_path / "sim", progress=False)
    store = gpcube.DataStore.from_dir(tmp_path / "sim")
    assert store.observation(1).bkg.attrs["irf_class"] == "bkg_3d"
    geom = SkyGeom.create((30.0, 50.0), 0.25, width=(6.0, 6.0), frame="icrs",
                          axes=[EnergyAxis.log(0.5, 50, 4, "energy_reco")])  # fmt: skip
    maps = _stacked(store, geom)
    counts, background = maps["counts"].sum(axis=0), maps["background"].sum(axis=0)
    inside = geom.separation(30.0, 50.0) <= INSIDE
    assert background[inside].sum() > 20000
    assert _chi2_pvalue(counts[inside], background[inside], minimum=5) > 1e-4
    mirrored = background[:, ::-1]  # the east-west mirror image is far off
    assert _chi2_pvalue(counts[inside], mirrored[inside], minimum=5) < 1e-10


def test_hess_irfs_are_copied_and_their_background_is_reproduced(tmp_path, hess_dir):
    config = {"seed": 2, "pointings": {"list": [[0.0, 0.0], [1.0, 0.0]]},
              "irf": {"store": str(hess_dir), "obs_id": 23523},
              "observation": {"livetime": 7200.0, "energy": {"min": 1.0, "max": 100.0}}}  # fmt: skip
    simulate_store(config, tmp_path / "sim", progress=False)
    store = gpcube.DataStore.from_dir(tmp_path / "sim")
    original = gpcube.DataStore.from_dir(hess_dir).observation(23523)
    simulated = store.observation(2)
    for name in ("aeff", "edisp", "psf", "bkg"):
        np.testing.assert_array_equal(getattr(simulated, name).to_array().values,
                                      getattr(original, name).to_array().values)  # fmt: skip
    geom = SkyGeom.create((0.5, 0.0), 0.05, width=(7.0, 6.0), frame="galactic",
                          axes=[EnergyAxis.log(1.0, 100.0, 20, "energy_reco")])  # fmt: skip
    maps = _stacked(store, geom)
    counts, background = maps["counts"], maps["background"]
    assert abs(_z(counts.sum(), background.sum())) < 4
    assert _chi2_pvalue(counts.sum(axis=(1, 2)), background.sum(axis=(1, 2))) > 1e-4


def test_observations_take_the_irfs_of_obs_ids_in_turn(tmp_path, hess_dir):
    """Observation i has the IRFs (and the safe threshold) of obs_ids[i % n]; one background scale."""
    from astropy.io import fits

    from gpcube.makers.safe import aeff_default_thresholds

    runs = (23523, 23559)
    config = {"seed": 4, "pointings": {"list": [[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]]},
              "irf": {"store": str(hess_dir), "obs_ids": list(runs)}, "background": {"events": 3000},
              "observation": {"livetime": 600.0, "energy": {"min": 1.0, "max": 100.0}}}  # fmt: skip
    report = simulate_store(config, tmp_path / "sim", progress=False)
    store = gpcube.DataStore.from_dir(tmp_path / "sim")
    original = gpcube.DataStore.from_dir(hess_dir)
    expected = []
    for obs_id, run in zip((1, 2, 3), (*runs, runs[0]), strict=True):
        simulated, source = store.observation(obs_id), original.observation(run)
        for name in ("aeff", "edisp", "psf"):
            np.testing.assert_array_equal(getattr(simulated, name).to_array().values,
                                          getattr(source, name).to_array().values)  # fmt: skip
        # the copied AEFF header's LO_THRES (the original store's obs-index has it in float32)
        assert aeff_default_thresholds(simulated) == pytest.approx(aeff_default_thresholds(source), rel=1e-7)
        assert fits.getheader(simulated.hdus["events"].path, "EVENTS")["SIMIRFID"] == run
        geom = SkyGeom.create(simulated.pointing.radec, 0.05, width=5.2, frame="icrs",
                              axes=[EnergyAxis.log(1.0, 100.0, 40, "energy_reco")])  # fmt: skip
        inside = geom.separation(simulated.pointing.ra, simulated.pointing.dec) <= 2.5  # the simulated FoV
        with dask.config.set(scheduler="sync"):
            expected.append(float((make_map_background(simulated, geom).values * inside).sum()))
    first, second = (aeff_default_thresholds(store.observation(i))[0] for i in (1, 2))
    assert first != pytest.approx(second, rel=0.1)
    # one scale for all: the mean over the IRF sets is 3000, the runs' models keep their ratio
    assert expected[0] != pytest.approx(expected[1], rel=0.05)
    assert expected[0] == pytest.approx(expected[2], rel=1e-6)
    assert (expected[0] + expected[1]) / 2 == pytest.approx(3000, rel=0.01)
    assert report["expected"]["background"] == pytest.approx(2 * expected[0] + expected[1], rel=0.01)
    assert abs(_z(report["n_events"], report["expected"]["background"])) < 4
