"""Injected truth, end to end: ``gpcube simulate``, ``run``, ``export`` and ``significance`` on a store of
observations with different IRFs and safe thresholds, then a Gammapy 2.1 fit of the export.

The setup (``tests/validation/truth.py``, ``SMALL``): three half-hour observations with the IRFs of
three H.E.S.S. runs whose aeff-default thresholds (0.33, 0.54 and 0.87 TeV) make different reco bins
their first safe ones, a bright point source (index 2.6) and a Gaussian one. Before the stacked kernels
were masked per observation, a fit of such an export missed the point source's index by 12 sigma and
its amplitude by 19 sigma, and before the flux map folded the power law through them it came out
~30 % low. One seed: the pulls' distribution over many seeds is ``benchmarks/truth.py``'s
(``docs/validation_truth.rst``). Nine unbiased pulls are all within 1.5 sigma about one time in four;
the seed is one of those (seeds 0-11 of this setup: 4 are), so the test fails on biases of a few
sigma, not on this draw's fluctuations."""

from __future__ import annotations

import numpy as np
import pytest

import gpcube
from tests.validation.truth import SMALL, fit_export, flux_ratio, psf_containment, pulls, run_gpcube

SEED = 5


@pytest.fixture(scope="module")
def products(tmp_path_factory, hess_dir):
    return run_gpcube(SMALL, hess_dir, tmp_path_factory.mktemp("truth"), SEED)


def test_the_thresholds_fall_in_different_reco_bins(products):
    """The setup does what the test needs: reco bins that only some observations count."""
    first_safe = []
    for obs_id in (1, 2, 3):
        safe = gpcube.open_archive(products.archive, obs_id=obs_id)["mask_safe"].any(("y", "x")).values
        first_safe.append(int(np.argmax(safe)))
    assert len(set(first_safe)) == 3


def test_the_fit_of_the_export_recovers_the_injected_sources(products):
    fitted = fit_export(products.export, SMALL)
    found = pulls(fitted, SMALL)
    print("\npulls of the fit of gpcube's export:", {f"{s}.{p}": round(v, 2) for (s, p), v in found.items()})
    assert len(found) == 9
    for (source, name), pull in found.items():
        assert abs(pull) < 1.5, f"{source}.{name}: fitted {fitted[source][name]}, pull {pull:.2f}"


def test_the_flux_map_gives_the_injected_flux(products):
    """At the point source, within the correlation radius (0.5 deg: 99 % of the PSF), over the band."""
    ratio, containment = flux_ratio(products.archive, SMALL), psf_containment(products.archive, SMALL)
    print(f"\nflux map / injected flux: {ratio:.4f} (PSF containment within the radius {containment:.4f})")
    assert containment > 0.98
    assert abs(ratio - 1) < 0.05
