"""Point-like IRFs (``HDUCLAS3 = POINT-LIKE``, with a ``RAD_MAX``): refused by the sky-cube makers that need
a full-enclosure response, with the file and HDU named; counts and background are still made."""

from __future__ import annotations

import numpy as np
import pytest

import gpcube
from gpcube import GpcubeError
from gpcube.makers import make_map_background, make_map_counts, make_map_exposure_true_energy
from gpcube.makers.edisp import make_edisp_kernel_map
from gpcube.makers.exposure import make_map_exposure_reco_energy
from gpcube.makers.psf import make_psf_map
from tests import gadf_factory as gf

POINT_LIKE = {"HDUCLAS3": "POINT-LIKE"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Run 1 point-like (aeff, edisp and a RAD_MAX HDU), run 2 the same IRFs full-enclosure."""
    point_like = [gf.aeff_2d(header=POINT_LIKE), gf.edisp_2d(header=POINT_LIKE),
                  gf.psf_table(header=POINT_LIKE), gf.bkg_2d(), gf.rad_max_2d(header=POINT_LIKE)]  # fmt: skip
    full = [gf.aeff_2d(), gf.edisp_2d(), gf.psf_table(), gf.bkg_2d()]
    written = gf.write_store(
        tmp_path_factory.mktemp("point_like"), [gf.ObsSpec(1, irfs=point_like), gf.ObsSpec(2, irfs=full)]
    )
    return gpcube.DataStore.from_dir(written.root), written


@pytest.fixture(scope="module")
def geom():
    reco, true = (
        gpcube.EnergyAxis.log(0.5, 50, 4, "energy_reco"),
        gpcube.EnergyAxis.log(0.3, 80, 6, "energy_true"),
    )
    axes = [reco, true]
    return gpcube.SkyGeom.create((83.633, 22.0145), 0.1, width=3, axes=axes)


MAKERS = {
    "exposure": (make_map_exposure_true_energy, "EFFECTIVE AREA"),
    "exposure_reco": (make_map_exposure_reco_energy, "EFFECTIVE AREA"),
    "edisp": (make_edisp_kernel_map, "ENERGY DISPERSION"),
    "psf": (make_psf_map, "PSF"),
}


@pytest.mark.parametrize("product", sorted(MAKERS))
def test_full_enclosure_products_refuse_point_like_irfs(store, geom, product):
    data_store, written = store
    maker, hdu = MAKERS[product]
    lazy = maker(data_store.observation(1), geom)  # building reads nothing: the refusal comes on computing
    with pytest.raises(GpcubeError, match="point-like") as info:
        lazy.compute(scheduler="sync")
    assert info.value.path == str(written.files[1]) and info.value.hdu == hdu
    assert "HDUCLAS3 = POINT-LIKE" in str(info.value) and "full-enclosure" in str(info.value)
    assert np.all(np.isfinite(maker(data_store.observation(2), geom).compute(scheduler="sync").values))


def test_counts_background_and_irfs_of_point_like_observations(store, geom):
    obs = store[0].observation(1)
    assert obs.aeff.attrs["hduclas3"] == "POINT-LIKE" and obs.rad_max.attrs["hduclas3"] == "POINT-LIKE"
    assert obs.rad_max["rad_max"].dims == ("energy_reco", "offset")
    counts = make_map_counts(obs, geom).compute(scheduler="sync")
    assert counts.sum() > 0
    background = make_map_background(obs, geom).compute(scheduler="sync").values
    full = make_map_background(store[0].observation(2), geom).compute(scheduler="sync").values
    np.testing.assert_allclose(background, full * obs.ontime / store[0].observation(2).ontime, rtol=1e-12)
