"""The flux map folded through the stacked edisp kernels, against gammapy 2.1's ExcessMapEstimator.

Two Crab runs whose aeff-default thresholds (0.87 and 0.71 TeV) fall in different reco bins; gpcube's
job (FoV background, products with ``edisp``), ``gpcube significance`` and ``gpcube export``. Gammapy's
``ExcessMapEstimator`` on the exported ``MapDataset`` folds the power law through the dataset's kernel
at the map centre (``estimate_exposure_reco_energy``) for every pixel; gpcube folds each pixel through
the kernel of its own coarse pixel. Where the two kernels are the same (the fine pixels of that coarse
pixel whose correlation disc stays inside it) the fluxes must agree to float32 rounding. (Whether the
folded flux is the true one is ``tests/validation/test_truth.py``'s question.)
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gpcube
from gpcube.estimators.reco_exposure import coarse_pixel_index
from gpcube.io.export import write_map_dataset
from gpcube.workflow import pipeline
from tests.archive.conftest import job
from tests.conftest import CRAB_RUNS

#: One fine pixel (0.04 deg): the disc is 5 pixels wide, inside a coarse pixel (5 x 5 fine ones).
RADIUS, INDEX = 0.04, 2.6
OVERRIDES = {
    "products": ["counts", "exposure", "background", "edisp"],
    "safe_mask": {"methods": ["offset-max", "aeff-default"], "offset_max": 2.0},
    "background": {"method": "fov", "exclusion": {"circles": [[83.633, 22.014, 0.3]]}},
}


@pytest.fixture(scope="module")
def fluxes(tmp_path_factory):
    """(gpcube's significance maps, gammapy's flux map, the compared pixels)."""
    from gammapy.datasets import MapDataset
    from gammapy.estimators import ExcessMapEstimator
    from gammapy.modeling.models import PowerLawSpectralModel

    work = tmp_path_factory.mktemp("flux")
    config = job(work / "crab.zarr", (CRAB_RUNS[0], CRAB_RUNS[1]), **OVERRIDES)
    pipeline.run(config, progress=False)
    ours = pipeline.significance(config.output, RADIUS, spectral_index=INDEX)
    irf = gpcube.open_archive(config.output, irf=True)
    path = write_map_dataset(work / "crab.fits", gpcube.open_archive(config.output), irf, name="crab")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = MapDataset.read(path, name="crab")
        estimator = ExcessMapEstimator(f"{RADIUS} deg", spectral_model=PowerLawSpectralModel(index=INDEX))
        theirs = estimator.run(dataset)
        centre_kernel = dataset.edisp.get_edisp_kernel().data
    kernels = irf["edisp"].values.astype(np.float32)
    same = [
        (y, x) for y in range(kernels.shape[2]) for x in range(kernels.shape[3])
        if np.array_equal(kernels[:, :, y, x], centre_kernel.astype(np.float32))
    ]  # fmt: skip
    assert len(same) == 1, "gammapy's kernel is one of the coarse pixels'"
    geom, coarse = ours.sky.geom, irf.sky.geom
    iy, ix = coarse_pixel_index(geom, coarse, 1), coarse_pixel_index(geom, coarse, 0)
    rows, cols = np.flatnonzero(iy == same[0][0]), np.flatnonzero(ix == same[0][1])
    pixels = (slice(rows[1], rows[-1]), slice(cols[1], cols[-1]))  # the disc of 1 pixel stays inside
    return ours, theirs.flux.data, pixels


def test_the_folded_flux_is_gammapys_where_the_kernels_agree(fluxes):
    ours, theirs, (rows, cols) = fluxes
    assert ours.attrs["flux_edisp"]
    got, want = ours["flux"].values[0, rows, cols], theirs[0, rows, cols]
    assert got.size == 9 and np.isfinite(want).all()
    print(f"\nflux at the centre coarse pixel: gpcube {got.mean():.5g}, gammapy {want.mean():.5g} cm-2 s-1")
    np.testing.assert_allclose(got, want, rtol=2e-5)
