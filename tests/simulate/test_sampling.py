"""Sampling primitives and the FITS card writer, on inputs with known answers."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from scipy import stats

from gpcube.makers.fov import offset_frame_vectors
from gpcube.simulate.fitswrite import header_bytes
from gpcube.simulate.sampling import (
    GroupedCdf,
    destination,
    power_law_integral,
    power_law_sample,
    sample_flat_cdf,
    separation,
    sorted_uniforms,
)

RNG_SEED = 20240601


def test_sorted_uniforms_are_sorted_and_uniform():
    u_ = sorted_uniforms(np.random.default_rng(RNG_SEED), 20000)
    assert np.all(np.diff(u_) >= 0) and 0 < u_[0] and u_[-1] < 1
    assert stats.kstest(u_, "uniform").pvalue > 1e-3


@pytest.mark.parametrize("index", [2.7, 1.0, 0.0, -1.5])
def test_power_law_sample_follows_the_power_law(index):
    rng = np.random.default_rng(RNG_SEED)
    edges = np.array([1.0, 10.0])
    energy = power_law_sample(edges, index, np.zeros(20000, dtype=int), rng.random(20000))
    assert energy.min() >= 1.0 and energy.max() <= 10.0

    def cdf(e):
        return power_law_integral(1.0, e, index) / power_law_integral(1.0, 10.0, index)

    assert stats.kstest(energy, cdf).pvalue > 1e-3


def test_power_law_integral_known_values():
    assert power_law_integral(1.0, 2.0, 2.0) == pytest.approx(0.5)
    assert power_law_integral(1.0, np.e, 1.0) == pytest.approx(1.0)
    # (E / E0)^-2 from 1 to 2 with E0 = 2: 4 * (1 - 1/2)
    assert power_law_integral(1.0, 2.0, 2.0, reference=2.0) == pytest.approx(2.0)


def test_flat_cdf_picks_cells_with_their_probabilities():
    p = np.array([0.1, 0.0, 0.6, 0.3])
    cells = sample_flat_cdf(np.cumsum(p), sorted_uniforms(np.random.default_rng(RNG_SEED), 50000))
    counts = np.bincount(cells, minlength=4)
    assert counts[1] == 0
    assert stats.chisquare(counts[[0, 2, 3]], 50000 * p[[0, 2, 3]]).pvalue > 1e-3


def test_destination_agrees_with_astropy():
    rng = np.random.default_rng(RNG_SEED)
    lon0, lat0 = rng.uniform(0, 360, 50), rng.uniform(-89, 89, 50)
    rad, psi = rng.uniform(0, 5, 50), rng.uniform(0, 2 * np.pi, 50)
    lon, lat = destination(lon0, lat0, rad, psi)
    centre = SkyCoord(lon0, lat0, unit="deg")
    expected = centre.directional_offset_by(psi * u.rad, rad * u.deg)
    assert np.all(expected.separation(SkyCoord(lon, lat, unit="deg")).deg < 1e-9)
    np.testing.assert_allclose(separation(lon0, lat0, lon, lat), rad, atol=1e-9)
    lon_c, lat_c = destination(lon0, lat0, None, psi, cos_rad=np.cos(np.deg2rad(rad)))
    np.testing.assert_allclose(separation(lon, lat, lon_c, lat_c), 0.0, atol=1e-7)


def test_position_angle_matches_the_makers_fov_frame():
    """psi = 0 is towards +lat and psi = 90 deg towards +lon in the makers' offset frame."""
    for psi, component in ((0.0, 2), (np.pi / 2, 1)):
        lon, lat = destination(40.0, 30.0, 1.0, psi)
        vector = offset_frame_vectors(lon, lat, 40.0, 30.0)
        assert vector[component] == pytest.approx(np.sin(np.deg2rad(1.0)))


def test_grouped_cdf_interpolates_node_distributions():
    """Two energy nodes with distributions on disjoint bins: the mixture follows the log-energy weight."""
    masses = np.zeros((2, 1, 4))
    masses[0, 0, 0] = 1.0  # node 1 TeV: all in bin 0
    masses[1, 0, 3] = 1.0  # node 100 TeV: all in bin 3
    sampler = GroupedCdf.from_masses([1.0, 100.0], [0.0], np.arange(5.0), masses)
    rng = np.random.default_rng(RNG_SEED)
    values = sampler.sample(rng, np.full(40000, 10.0), np.zeros(40000))  # 10 TeV: weight 1/2 each
    assert np.all((values < 1) | (values >= 3))
    assert np.mean(values >= 3) == pytest.approx(0.5, abs=0.01)
    values = sampler.sample(rng, np.full(40000, 1000.0), np.zeros(40000))  # beyond the nodes: nearest
    assert np.all(values >= 3)
    empty = GroupedCdf.from_masses([1.0], [0.0], np.arange(3.0), np.zeros((1, 1, 2)))
    assert np.all(np.isnan(empty.sample(rng, np.ones(5), np.zeros(5))))


def test_area_weighted_bins_give_a_uniform_disc():
    sampler = GroupedCdf.from_masses([1.0], [0.0], np.array([0.0, 1.0]), np.ones((1, 1, 1)), area=True)
    r = sampler.sample(np.random.default_rng(RNG_SEED), np.ones(20000), np.zeros(20000))
    assert stats.kstest(r**2, "uniform").pvalue > 1e-3


def test_header_cards_read_back_by_astropy():
    cards = [("SIMPLE", True), ("BITPIX", 8), ("NAXIS", 0), ("STR", "it's"), ("INT", -12), ("FLT", 1e-5),
             ("BIG", 725761735.8160002), ("TINY", -1.2345678901234567e-300), ("WHOLE", 3.0), ("NO", False),
             ("LONG", "x" * 60, "a comment that is cut to fit the card " * 3)]  # fmt: skip
    raw = header_bytes(cards)
    assert len(raw) % 2880 == 0
    header = fits.Header.fromstring(raw.decode("ascii"))
    for key, value, *_ in cards:
        assert (
            header[key] == pytest.approx(value, rel=1e-14)
            if isinstance(value, float)
            else header[key] == value
        )
    for card in header.cards:
        card.verify("exception")  # fixed-format, legal values
