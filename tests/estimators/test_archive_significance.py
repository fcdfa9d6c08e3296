"""``gpcube significance``: maps of the mosaic written into the archive and to FITS."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits

import gpcube
from gpcube import pipeline
from gpcube.cli import main
from gpcube.errors import GpcubeError
from gpcube.estimators import estimate_excess_map
from tests.archive.conftest import job
from tests.conftest import CRAB_RUNS

FOV = {"method": "fov", "exclusion": {"circles": [[83.633, 22.014, 0.3]]}}


@pytest.fixture(scope="module")
def fov_archive(tmp_path_factory):
    out = tmp_path_factory.mktemp("sig") / "crab.zarr"
    pipeline.run(job(out, CRAB_RUNS[:2], background=FOV), progress=False)
    return out


def test_significance_group_holds_the_estimator_maps(fov_archive):
    written = pipeline.significance(fov_archive, 0.12, energy_edges=[0.5, 5.0, 50.0])
    expected = estimate_excess_map(gpcube.open_archive(fov_archive), 0.12, energy_edges=[0.5, 5.0, 50.0])
    assert written.attrs["statistic"] == "cash" and written.attrs["background_method"] == "fov"
    assert set(written.data_vars) == set(expected.data_vars) >= {"counts", "excess", "sqrt_ts", "flux"}
    for name in expected.data_vars:
        got, want = written[name].values, expected[name].values.astype(np.float32)
        np.testing.assert_array_equal(got, want, err_msg=name)
    np.testing.assert_array_equal(written["energy_reco_lo"], [0.5, 5.0])
    assert np.nanmax(written["sqrt_ts"].values) > 10  # the Crab
    # again: replaced, not added to; the temporary group is gone
    pipeline.significance(fov_archive, 0.2)
    again = gpcube.open_archive(fov_archive, significance=True)
    assert again.sizes["energy_reco"] == 1 and again.attrs["correlation_radius"] == 0.2
    assert not [p for p in fov_archive.iterdir() if p.name.startswith("_tmp")]


def test_cli_significance_and_fits_export(fov_archive, tmp_path, capsys):
    out = tmp_path / "sig.fits"
    assert main(["significance", str(fov_archive), "--radius", "0.1", "--fits", str(out)]) == 0
    text = capsys.readouterr().out
    assert "cash significance, radius 0.1 deg" in text and "max sqrt(TS)" in text
    maps = gpcube.open_archive(fov_archive, significance=True)
    with fits.open(out) as hdul:
        names = [h.name for h in hdul]
        for var in maps.data_vars:
            assert var.upper() in names and f"{var.upper()}_BANDS" in names
        np.testing.assert_array_equal(hdul["SQRT_TS"].data, maps["sqrt_ts"].values)
        assert u.Unit(hdul["FLUX"].header["BUNIT"]) == u.Unit("cm-2 s-1")
    again = tmp_path / "again.fits"
    assert main(["export", str(fov_archive), str(again), "--significance"]) == 0
    with fits.open(again) as hdul:
        np.testing.assert_array_equal(hdul["EXCESS"].data, maps["excess"].values)


def test_significance_errors(tmp_path, fov_archive):
    out = tmp_path / "copy.zarr"
    shutil.copytree(fov_archive, out)
    shutil.rmtree(out / "significance", ignore_errors=True)
    with pytest.raises(GpcubeError, match="run `gpcube significance`"):
        gpcube.open_archive(out, significance=True)
    with pytest.raises(GpcubeError, match="not a bin edge of energy_reco"):
        pipeline.significance(out, 0.1, energy_edges=[0.7, 50.0])
    assert not (out / "significance").exists()
    with pytest.raises(GpcubeError, match="one part at a time"):
        gpcube.open_archive(out, irf=True, significance=True)
