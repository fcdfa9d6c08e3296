"""make_safe_mask: lazy, known thresholds on synthetic IRFs, a disc for offset-max, AND of methods."""

from __future__ import annotations

import dask
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

import gpcube
from gpcube.errors import GpcubeError, GpcubeWarning
from gpcube.io import Observation
from gpcube.makers.edisp import edisp_kernels
from gpcube.makers.safe import (
    METHODS,
    aeff_max_threshold,
    background_spectrum,
    bkg_peak_threshold,
    edisp_bias_threshold,
    energy_range_mask,
    first_crossing,
    make_safe_mask,
    mean_bias,
    probe_pixel,
    safe_energy_thresholds,
)
from tests import gadf_factory as gf

TRUE_EDGES = np.geomspace(0.1, 100.0, 31)
PLATEAU = 10.0  # TeV: the synthetic effective area rises as E**2 below, flat above


def _aeff(energy_true, offset):
    return 1e5 * np.minimum(energy_true / PLATEAU, 1.0) ** 2 + 0 * offset


def _geom(width=3.0, binsz=0.1):
    reco = gpcube.EnergyAxis.log(0.5, 50, 8, "energy_reco")
    true = gpcube.EnergyAxis.from_edges(TRUE_EDGES, "energy_true")
    return gpcube.SkyGeom.create((83.633, 22.0145), binsz, width=width, axes=[reco, true])


@pytest.fixture(scope="module")
def obs(tmp_path_factory):
    energy = gf.Axis.from_edges("energy_true", TRUE_EDGES)
    irfs = [gf.aeff_2d(_aeff, energy=energy), gf.edisp_2d(), gf.bkg_3d()]
    store = gf.write_store(tmp_path_factory.mktemp("safe"), [gf.ObsSpec(1, irfs=irfs)])
    return gpcube.DataStore.from_dir(store.root).observation(1)


def _with_info(observation, **info):
    return Observation(observation.obs_id, observation.hdus, {**observation.obs_info, **info})


def _mask(observation, geom, **kwargs):
    return make_safe_mask(observation, geom, **kwargs).compute(scheduler="sync").values


def test_lazy_and_typed(obs):
    def raise_on_compute(*args, **kwargs):
        raise AssertionError("computed while building")

    with dask.config.set(scheduler=raise_on_compute):
        mask = make_safe_mask(obs, _geom(), methods=METHODS, chunk=12, max_offset=1.5)
    assert mask.dims == ("energy_reco", "y", "x") and mask.dtype == bool
    assert mask.attrs["energy_type"] == "reco" and mask.attrs["units"] == ""
    assert mask.attrs["methods"] == ",".join(METHODS) and mask.attrs["position"] == "geometry centre"
    assert len(mask.chunks[1]) == 3


def test_energy_range_mask_keeps_whole_bins_only():
    edges = np.array([1.0, 2.0, 4.0, 8.0])
    np.testing.assert_array_equal(energy_range_mask(edges, 2.0, 8.0), [False, True, True])
    np.testing.assert_array_equal(energy_range_mask(edges, 1.5, 7.0), [False, True, False])
    np.testing.assert_array_equal(energy_range_mask(edges, np.inf), [False, False, False])


def test_first_crossing_of_a_power_law_is_exact():
    energy = np.geomspace(0.1, 100, 13)
    np.testing.assert_allclose(first_crossing(energy, energy**2, 4.0, 0.1, 100), 2.0, rtol=1e-12)
    assert np.isnan(first_crossing(energy, energy**2, 1e6, 0.1, 100))


def test_aeff_max_threshold_of_a_rising_area():
    centres = np.sqrt(TRUE_EDGES[:-1] * TRUE_EDGES[1:])
    aeff = _aeff(centres, 0.0)
    # 10 % of the plateau is reached where (E / 10 TeV)**2 = 0.1
    np.testing.assert_allclose(aeff_max_threshold(centres, aeff, 10), PLATEAU * 0.1**0.5, rtol=1e-10)
    assert aeff_max_threshold(centres, np.zeros_like(centres), 10) == np.inf
    assert aeff_max_threshold(centres, np.ones_like(centres), 10) == centres[0]  # never below: no cut


def test_aeff_max_on_synthetic_irf(obs):
    geom = _geom()
    (threshold, _) = safe_energy_thresholds(obs, geom, methods=["aeff-max"])["aeff-max"]
    np.testing.assert_allclose(threshold, PLATEAU * 0.1**0.5, rtol=1e-10)
    mask = _mask(obs, geom, methods=["aeff-max"])
    expected = geom.axis("energy_reco").lo >= threshold
    assert expected.any() and not expected.all()
    np.testing.assert_array_equal(mask, np.broadcast_to(expected[:, None, None], mask.shape))


def _kernel_with_mean(targets, reco_centres):
    """Rows putting their mass on two neighbouring reco bins so that the mean reco energy is ``targets``."""
    kernel = np.zeros((len(targets), len(reco_centres)))
    for i, target in enumerate(targets):
        j = np.searchsorted(reco_centres, target) - 1
        w = (reco_centres[j + 1] - target) / (reco_centres[j + 1] - reco_centres[j])
        kernel[i, j], kernel[i, j + 1] = w, 1 - w
    return kernel


def test_edisp_bias_threshold_of_a_falling_bias():
    energy_true = np.geomspace(0.3, 30, 21)
    reco_centres = np.geomspace(0.01, 1000, 50)
    bias = 0.5 * (energy_true / energy_true[0]) ** -1.0  # 10 % at 5 x 0.3 TeV
    kernel = _kernel_with_mean(energy_true * (1 + bias), reco_centres)
    np.testing.assert_allclose(mean_bias(kernel, energy_true, reco_centres), bias, rtol=1e-12)
    threshold = edisp_bias_threshold(kernel, energy_true, reco_centres, 10)
    np.testing.assert_allclose(threshold, 5 * 0.3 * 1.1, rtol=1e-10)  # a reco energy: (1 + bias) E_true


def test_edisp_bias_on_synthetic_irf_uses_the_kernel_at_the_coarse_centre(obs):
    geom = _geom()
    (threshold, _) = safe_energy_thresholds(obs, geom, methods=["edisp-bias"])["edisp-bias"]
    coarse = geom.to_binsz(0.2)
    ix, iy = probe_pixel(coarse, (obs.pointing.ra, obs.pointing.dec), _options())
    offset = coarse.separation(obs.pointing.ra, obs.pointing.dec)[iy, ix]
    true, reco = geom.axis("energy_true"), geom.axis("energy_reco")
    kernel = edisp_kernels(obs.edisp, true, reco, np.array(offset))
    assert threshold == edisp_bias_threshold(kernel, true.centers, reco.centers, 10)
    mask = _mask(obs, geom, methods=["edisp-bias"])
    np.testing.assert_array_equal(mask[:, 0, 0], reco.lo >= threshold)


def _options(**kwargs):
    from gpcube.makers.safe import SafeOptions

    return SafeOptions(("aeff-max",), **kwargs)


def test_probe_pixel_rounds_halves_down_and_clips():
    geom = gpcube.SkyGeom.create((83.633, 22.0145), 0.1, width=(1.0, 0.5))  # 10 x 5 pixels
    assert probe_pixel(geom, (83.633, 22.0145), _options()) == (4, 2)
    far = _options(position=(83.633, 30.0))
    assert probe_pixel(geom, (83.633, 22.0145), far)[1] == 4
    north = probe_pixel(geom, (83.633, 22.0145 - 0.2), _options(fixed_offset=0.2))
    assert north[1] == 2  # 0.2 deg north of a pointing 0.2 deg south of the centre


def test_offset_max_is_a_disc(obs):
    geom = _geom()
    mask = _mask(obs, geom, methods=["offset-max"], offset_max=0.75, chunk=7)
    disc = geom.separation(obs.pointing.ra, obs.pointing.dec) < 0.75
    assert 0 < disc.sum() < disc.size
    np.testing.assert_array_equal(mask, np.broadcast_to(disc, mask.shape))


def test_aeff_default_from_the_obs_index(obs):
    geom = _geom()
    observation = _with_info(obs, safe_energy_lo=1.0, safe_energy_hi=20.0)
    mask = _mask(observation, geom, methods=["aeff-default"])
    axis = geom.axis("energy_reco")
    np.testing.assert_array_equal(mask[:, 3, 3], (axis.lo >= 1.0) & (axis.hi <= 20.0))
    with pytest.warns(GpcubeWarning, match="no default (lower|upper) safe energy"):
        assert _mask(obs, geom, methods=["aeff-default"]).all()


def test_bkg_peak_and_bkg_invalid(obs):
    geom = _geom(width=6.0, binsz=0.2)
    assert bkg_peak_threshold(np.array([1.0, 5.0, 3.0, 5.0]), np.arange(5.0)) == 1.0
    spectrum = background_spectrum(obs, geom)
    edges = geom.axis("energy_reco").edges
    mask = _mask(obs, geom, methods=["bkg-peak"])
    np.testing.assert_array_equal(mask[:, 0, 0], edges[:-1] >= edges[np.argmax(spectrum)])
    invalid = _mask(obs, geom, methods=["bkg-invalid"])
    background = gpcube.makers.make_map_background(obs, geom).compute(scheduler="sync").values
    np.testing.assert_array_equal(invalid, background > 0)
    assert not invalid.all()  # the synthetic model ends at 2 deg in fov_lat


def test_combination_is_and(obs):
    geom = _geom()
    observation = _with_info(obs, safe_energy_lo=0.7, safe_energy_hi=100.0)
    methods = ("offset-max", "aeff-default", "aeff-max", "edisp-bias", "bkg-peak")
    combined = _mask(observation, geom, methods=methods, offset_max=1.0, aeff_percent=5)
    singles = [_mask(observation, geom, methods=[m], offset_max=1.0, aeff_percent=5) for m in methods]
    np.testing.assert_array_equal(combined, np.logical_and.reduce(singles))
    assert sum(bool((s & ~combined).any()) for s in singles) >= 3  # several methods do cut


def test_bad_input_is_named():
    with pytest.raises(GpcubeError, match=r"'aeff-min'.*valid methods are \['offset-max'"):
        make_safe_mask(None, _geom(), methods=["aeff-min"])
    with pytest.raises(GpcubeError, match="position and fixed_offset"):
        make_safe_mask(None, _geom(), position=SkyCoord(0, 0, unit="deg"), fixed_offset=1.0)
