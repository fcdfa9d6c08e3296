"""PSF map and kernel against gammapy 2.1 (MapDatasetMaker "psf", PSFMap.get_psf_kernel), 4 Crab runs."""

from __future__ import annotations

import warnings

import astropy.units as u
import numpy as np
import pytest

from gpcube.makers.psf import make_psf_map, psf_kernel
from tests.conftest import CRAB_RUNS

BINSZ_IRF = 0.2
#: The reference normalises the profile with r in deg (unit deg-2); gpcube works in sr-1.
DEG2_PER_SR = (180 / np.pi) ** 2


def reference_psf_map(reference_store, crab_geoms, obs_id):
    """gammapy's PSFMap for one run, on the 0.2 deg IRF grid with its default rad axis."""
    from gammapy.datasets import MapDataset
    from gammapy.makers import MapDatasetMaker

    _, ref_geom, energy_true = crab_geoms
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        empty = MapDataset.create(ref_geom, energy_axis_true=energy_true, binsz_irf=BINSZ_IRF * u.deg)
        return MapDatasetMaker(selection=["psf"]).run(empty, reference_store.obs(obs_id)).psf


@pytest.fixture(scope="module")
def reference_23523(reference_store, crab_geoms):
    return reference_psf_map(reference_store, crab_geoms, 23523)


@pytest.fixture(scope="module")
def ours_23523(hess_store, crab_geoms):
    return make_psf_map(hess_store.observation(23523), crab_geoms[0], binsz_irf=BINSZ_IRF).compute()


@pytest.mark.parametrize("obs_id", CRAB_RUNS)
def test_psf_map_matches_reference(hess_store, reference_store, crab_geoms, obs_id):
    """Every value within rtol 1e-3 where the reference is above 1e-3 of its maximum (measured: 3e-13)."""
    psf = reference_psf_map(reference_store, crab_geoms, obs_id)
    assert psf.psf_map.unit == u.Unit("deg-2")
    reference = psf.psf_map.data * DEG2_PER_SR
    ours = make_psf_map(hess_store.observation(obs_id), crab_geoms[0], binsz_irf=BINSZ_IRF).compute()
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours["rad"], psf.psf_map.geom.axes["rad"].center.to_value("deg"))
    significant = reference > 1e-3 * reference.max()
    np.testing.assert_allclose(ours.values[significant], reference[significant], rtol=1e-3)
    np.testing.assert_allclose(ours.values[significant], reference[significant], rtol=1e-9)
    assert np.all(ours.values[~significant] < 1.001e-3 * reference.max())


def _reference_kernel(reference, crab_geoms, binsz):
    from gammapy.irf.psf.map import _psf_upsampling_factor
    from gammapy.maps import WcsGeom

    _, _, energy_true = crab_geoms
    geom = WcsGeom.create(skydir=(83.633, 22.014), binsz=binsz, width=5, frame="icrs", axes=[energy_true])
    factors = [int(f) for f in _psf_upsampling_factor(reference, geom, geom.center_skydir)]
    return reference.get_psf_kernel(geom).psf_kernel_map.data, factors


def _on_disc(kernel, binsz, radius):
    """The kernel restricted to pixel centres within ``radius`` deg, renormalised to sum 1 per energy."""
    half = kernel.shape[-1] // 2
    y, x = np.mgrid[-half : half + 1, -half : half + 1] * binsz
    kernel = np.where(np.hypot(y, x) <= radius, kernel, 0.0)
    return kernel / kernel.sum(axis=(1, 2), keepdims=True)


def test_kernel_matches_reference_with_its_oversampling(reference_23523, ours_23523, crab_geoms):
    """Same sub-pixel sampling as the reference (its per-energy factors): equal within 1e-3 on the core.

    The comparison is restricted to a 0.5 deg disc (renormalised) because the two kernels differ on
    purpose beyond it; see test_kernel_differences_from_reference_are_bounded. Measured: 1.1e-4.
    """
    binsz = 0.02
    reference, factors = _reference_kernel(reference_23523, crab_geoms, binsz)
    ours = psf_kernel(ours_23523, binsz, oversample=factors)
    assert ours.shape == reference.shape == (20, 67, 67)
    ref, got = _on_disc(reference, binsz, 0.5), _on_disc(ours.values, binsz, 0.5)
    significant = ref > 1e-3 * ref.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(got[significant], ref[significant], rtol=1e-3)


def test_kernel_differences_from_reference_are_bounded(reference_23523, ours_23523, crab_geoms):
    """The default kernel is converged in oversampling; the reference's (1-2 sub-pixels) is not.

    Measured on run 23523, 0.02 deg pixels: our default (8 x 8 sub-pixels) is within 1.1e-3 of the
    peak of a 16 x 16 sampling; the reference differs from it by up to 12 % of its peak (the central
    pixel of the sharply peaked H.E.S.S. PSF), and puts up to 2.9 % of the kernel beyond the 0.66 deg
    end of the rad axis, where it extrapolates the profile and gpcube takes 0.
    """
    binsz = 0.02
    reference, _ = _reference_kernel(reference_23523, crab_geoms, binsz)
    ours = psf_kernel(ours_23523, binsz).values
    converged = psf_kernel(ours_23523, binsz, oversample=16).values
    peak = converged.max(axis=(1, 2))
    assert np.all(np.abs(ours - converged).max(axis=(1, 2)) < 2e-3 * peak)
    difference = np.abs(ours - reference).max(axis=(1, 2)) / reference.max(axis=(1, 2))
    assert 0.05 < difference.max() < 0.13
    half = ours.shape[-1] // 2
    y, x = np.mgrid[-half : half + 1, -half : half + 1] * binsz
    distance = np.hypot(y, x)
    assert np.all(ours[:, distance > 0.66 + binsz / np.sqrt(2)] == 0)  # whole pixels beyond 0.66 deg
    assert reference[:, distance > 0.66].sum(axis=1).max() < 0.03
