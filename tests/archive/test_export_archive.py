"""``gpcube export`` of an archive: the mosaic or one observation, MapDataset or MapDatasetOnOff, with
the observations' GTI, META_TABLE and live time (checked with astropy; gammapy reads them in
``tests/validation/test_export_archive_reference.py``)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

import gpcube
from gpcube.cli import main
from gpcube.errors import GpcubeError, GpcubeWarning
from gpcube.storage.layout import complete_observations as _complete_observations
from gpcube.workflow.export import export
from tests.archive.conftest import RING, built_archive
from tests.conftest import CRAB_RUNS, archive_store

RUNS = CRAB_RUNS[:2]
PRODUCTS = ["counts", "exposure", "background", "psf", "edisp"]


def complete_observations(path) -> dict:
    return _complete_observations(archive_store(path))


@pytest.fixture(scope="module")
def map_archive(tmp_path_factory):
    return built_archive(tmp_path_factory, "map", RUNS, products=PRODUCTS)


@pytest.fixture(scope="module")
def ring_archive(tmp_path_factory):
    return built_archive(tmp_path_factory, "ring", RUNS, products=PRODUCTS, background=RING)


def _names(path) -> list[str]:
    with fits.open(path) as hdul:
        return [h.name for h in hdul if not h.name.endswith("_BANDS")]


def test_reduce_stores_each_observations_gti(map_archive, hess_store):
    """The GTI table of the run's file, with its reference time, and TELESCOP."""
    for obs_id, attrs in complete_observations(map_archive).items():
        ref = hess_store.observation(obs_id).hdus["gti"]
        table = Table.read(ref.path, hdu=ref.hdu_name)
        gti = attrs["gti"]
        assert gti["start"] == [float(v) for v in table["START"]]
        assert gti["stop"] == [float(v) for v in table["STOP"]]
        assert (gti["mjdrefi"], gti["mjdreff"]) == (table.meta["MJDREFI"], table.meta["MJDREFF"])
        assert gti["timesys"] == table.meta["TIMESYS"].lower() == "tt"
        assert attrs["telescope"] == "HESS"


def test_the_mosaic_export_has_the_observations_tables(map_archive, tmp_path):
    assert main(["export", str(map_archive), str(tmp_path / "mosaic.fits")]) == 0
    observations = complete_observations(map_archive)
    with fits.open(tmp_path / "mosaic.fits") as hdul:
        assert hdul[0].header["NAME"] == "gpcube"
        assert [h.name for h in hdul][-2:] == ["GTI", "META_TABLE"]
        np.testing.assert_array_equal(hdul["META_TABLE"].data["OBS_ID"][0], list(RUNS))
        durations = hdul["GTI"].data["STOP"] - hdul["GTI"].data["START"]
        expected = [attrs["gti"]["stop"][0] - attrs["gti"]["start"][0] for attrs in observations.values()]
        np.testing.assert_allclose(durations, expected, rtol=0, atol=1e-6)
        livetime = sum(attrs["livetime"] for attrs in observations.values())
        assert json.loads(hdul["EXPOSURE"].header["META"]) == {"livetime": f"{livetime!r} s"}


def test_an_observation_exports_its_own_products(map_archive, tmp_path):
    """``--obs``: the observation's cutouts (counts, mask, IRF maps) with its own GTI and live time."""
    obs_id = RUNS[1]
    assert main(["export", str(map_archive), str(tmp_path / "obs.fits"), "--obs", str(obs_id)]) == 0
    sky = gpcube.open_archive(map_archive, obs_id=obs_id).compute()
    irf = gpcube.open_archive(map_archive, obs_id=obs_id, irf=True).compute()
    attrs = complete_observations(map_archive)[obs_id]
    with fits.open(tmp_path / "obs.fits") as hdul:
        assert hdul[0].header["NAME"] == f"gpcube-{obs_id}"
        np.testing.assert_array_equal(hdul["COUNTS"].data, sky["counts"].values)
        np.testing.assert_array_equal(hdul["MASK_SAFE"].data.astype(bool), sky["mask_safe"].values)
        np.testing.assert_array_equal(hdul["EDISP"].data, irf["edisp"].values)
        assert hdul["COUNTS"].header["CRPIX1"] == sky["counts"].sky.geom.crpix[0]
        assert hdul["META_TABLE"].data["OBS_ID"].tolist() == [obs_id]
        assert len(hdul["GTI"].data) == 1
        assert json.loads(hdul["EXPOSURE"].header["META"]) == {"livetime": f"{attrs['livetime']!r} s"}


def test_the_observations_masked_counts_sum_to_the_mosaics(map_archive, tmp_path):
    mosaic = gpcube.open_archive(map_archive)["counts"].to_numpy()
    total = np.zeros_like(mosaic)
    for obs_id, attrs in complete_observations(map_archive).items():
        path = export(map_archive, tmp_path / f"{obs_id}.fits", obs_id=obs_id)
        with fits.open(path) as hdul:
            counts = hdul["COUNTS"].data * hdul["MASK_SAFE"].data
        box = attrs["slice"]
        total[:, slice(*box["y"]), slice(*box["x"])] += counts.astype(total.dtype)
    np.testing.assert_array_equal(total, mosaic)


def test_a_ring_archive_exports_a_mapdatasetonoff(ring_archive, tmp_path):
    """By default: ON/OFF maps on the ring's bands, the edisp kernel summed into them, no BACKGROUND."""
    assert main(["export", str(ring_archive), str(tmp_path / "ring.fits")]) == 0
    assert _names(tmp_path / "ring.fits") == [
        "PRIMARY", "COUNTS", "EXPOSURE", "EDISP", "EDISP_EXPOSURE", "PSF", "PSF_EXPOSURE", "MASK_SAFE",
        "GTI", "META_TABLE", "COUNTS_OFF", "ACCEPTANCE", "ACCEPTANCE_OFF",
    ]  # fmt: skip
    ring = gpcube.open_archive(ring_archive, ring=True).compute()
    irf = gpcube.open_archive(ring_archive, irf=True).compute()
    bands = RING["ring"]["energy_edges"]
    with fits.open(tmp_path / "ring.fits") as hdul:
        for name in ("counts", "counts_off", "acceptance", "acceptance_off"):
            np.testing.assert_array_equal(hdul[name.upper()].data, ring[name].values.astype(np.float32))
        np.testing.assert_array_equal(hdul["MASK_SAFE"].data.astype(bool), ring["mask_safe"].values)
        edges = hdul["COUNTS_BANDS"].data
        np.testing.assert_allclose(np.append(edges["E_MIN"], edges["E_MAX"][-1]), bands, rtol=1e-12)
        reco = irf["energy_reco_lo"].values
        split = np.searchsorted(reco, bands[1] * (1 - 1e-9))
        kernel = irf["edisp"].transpose("energy_true", "energy_reco", "irf_y", "irf_x").values
        kernel = kernel.astype(np.float64)
        expected = np.stack([kernel[:, :split].sum(axis=1), kernel[:, split:].sum(axis=1)], axis=1)
        np.testing.assert_allclose(hdul["EDISP"].data, expected, rtol=1e-6, atol=1e-7)
    assert main(["export", str(ring_archive), str(tmp_path / "map.fits"), "--dataset", "map"]) == 0
    assert "BACKGROUND" in _names(tmp_path / "map.fits") and "COUNTS_OFF" not in _names(tmp_path / "map.fits")


def test_an_observation_of_a_ring_archive_exports_its_ring_products(ring_archive, tmp_path):
    obs_id = RUNS[0]
    path = export(ring_archive, tmp_path / "obs.fits", obs_id=obs_id, name="run")
    ring = gpcube.open_archive(ring_archive, obs_id=obs_id, ring=True).compute()
    with fits.open(path) as hdul:
        assert hdul[0].header["NAME"] == "run"
        np.testing.assert_array_equal(hdul["ACCEPTANCE_OFF"].data, ring["acceptance_off"].values)
        np.testing.assert_array_equal(hdul["COUNTS_OFF"].data, ring["counts_off"].values)


def test_export_errors(map_archive, tmp_path, capsys):
    assert main(["export", str(map_archive), str(tmp_path / "a.fits"), "--dataset", "onoff"]) == 2
    assert "no ring background products" in capsys.readouterr().err
    assert main(["export", str(map_archive), str(tmp_path / "a.fits"), "--obs", "1"]) == 2
    assert "observation 1 is not in the archive" in capsys.readouterr().err
    assert main(["export", str(map_archive), str(tmp_path / "a.fits"), "--obs", "1", "--significance"]) == 2
    assert "--significance" in capsys.readouterr().err
    with pytest.raises(GpcubeError, match="dataset must be one of"):
        export(map_archive, tmp_path / "a.fits", dataset="onof")
    assert list(tmp_path.iterdir()) == []


def test_observations_without_a_stored_gti_warn_and_give_no_gti_table(map_archive, tmp_path):
    """An archive whose observations were reduced before gpcube stored their GTI."""
    import shutil

    from gpcube.storage.nodes import read_group_attrs, write_group
    from gpcube.storage.repository import Archive

    old = tmp_path / "old.zarr"
    shutil.copytree(map_archive, old)
    archive = Archive(old)
    session = archive.writable()
    stored = read_group_attrs(session.store, f"obs/{RUNS[0]}")
    del stored["gti"]
    write_group(session.store, f"obs/{RUNS[0]}", stored)
    archive.commit(session, "an observation without its GTI")
    with pytest.warns(GpcubeWarning, match=rf"observations \[{RUNS[0]}\] have no stored good time intervals"):
        path = export(old, tmp_path / "old.fits")
    names = _names(path)
    assert "GTI" not in names and "META_TABLE" in names
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        export(old, tmp_path / "new.fits", obs_id=RUNS[1])


def test_the_archive_stores_each_product_as_the_registry_says(map_archive):
    """Type, grid, dims and units of every product in an observation's groups and the mosaic's
    (:mod:`gpcube.makers.registry`; the types are pinned in tests/makers/test_registry.py)."""
    from gpcube.makers.registry import PRODUCTS, products_on
    from gpcube.storage.layout import obs_path
    from tests.conftest import stored_arrays

    obs = obs_path(RUNS[0])
    for grid, groups in {"sky": (obs, "mosaic"), "irf": (f"{obs}/irf", "mosaic/irf")}.items():
        for group in groups:
            arrays = {n: a for n, a in stored_arrays(map_archive, group).items() if n in PRODUCTS}
            assert sorted(arrays) == sorted(products_on(grid)), group
            for name, (values, meta) in arrays.items():
                product, label = PRODUCTS[name], f"{group}/{name}"
                assert values.dtype == np.dtype(product.dtype) and meta["data_type"] == product.dtype, label
                assert tuple(meta["dimension_names"][:-2]) == product.axes, label
                assert meta["attributes"]["units"] == product.units, label
