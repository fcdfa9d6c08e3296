"""``gpcube significance``: maps of the mosaic written into the archive and to FITS."""

from __future__ import annotations

import shutil

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from astropy import units as u
from astropy.io import fits

import gpcube
from gpcube.cli import main
from gpcube.errors import GpcubeError
from gpcube.estimators import estimate_excess_map
from gpcube.storage import nodes
from gpcube.storage.nodes import read_group_attrs
from gpcube.storage.repository import Archive
from gpcube.workflow import pipeline
from gpcube.workflow import significance as significance_module
from tests.archive.conftest import RING, built_archive, job
from tests.conftest import CRAB_RUNS, archive_store, stored_arrays

FOV = {"method": "fov", "exclusion": {"circles": [[83.633, 22.014, 0.3]]}}


@pytest.fixture(scope="module")
def fov_archive(tmp_path_factory):
    return built_archive(tmp_path_factory, "sig", CRAB_RUNS[:2], background=FOV)


def test_significance_group_holds_the_estimator_maps(fov_archive):
    written = pipeline.significance(fov_archive, 0.12, energy_edges=[0.5, 5.0, 50.0])
    expected = estimate_excess_map(gpcube.open_archive(fov_archive), 0.12, energy_edges=[0.5, 5.0, 50.0])
    assert written.attrs["statistic"] == "cash" and written.attrs["background_method"] == "fov"
    assert set(written.data_vars) == set(expected.data_vars) >= {"counts", "excess", "sqrt_ts", "flux"}
    for name in expected.data_vars:
        got, want = written[name].to_numpy(), expected[name].to_numpy().astype(np.float32)
        np.testing.assert_array_equal(got, want, err_msg=name)
    np.testing.assert_array_equal(written["energy_band_lo"], [0.5, 5.0])
    assert all(written[name].dims == ("energy_band", "y", "x") for name in written.data_vars)
    assert np.nanmax(written["sqrt_ts"].values) > 10  # the Crab
    # again: replaced, not added to, in one commit
    head = Archive(fov_archive).head()
    pipeline.significance(fov_archive, 0.2)
    again = gpcube.open_archive(fov_archive, significance=True)
    assert again.sizes["energy_band"] == 1 and again.attrs["correlation_radius"] == 0.2
    assert set(again.data_vars) == set(expected.data_vars)
    history = [s.message for s in Archive(fov_archive).repo.ancestry(branch="main")]
    assert history[0] == "significance maps" and Archive(fov_archive).repo.lookup_snapshot(head).id == head


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
        np.testing.assert_array_equal(hdul["SQRT_TS"].data, maps["sqrt_ts"].to_numpy())
        assert u.Unit(hdul["FLUX"].header["BUNIT"]) == u.Unit("cm-2 s-1")
    again = tmp_path / "again.fits"
    assert main(["export", str(fov_archive), str(again), "--significance"]) == 0
    with fits.open(again) as hdul:
        np.testing.assert_array_equal(hdul["EXCESS"].data, maps["excess"].to_numpy())


def test_significance_errors(tmp_path, fov_archive):
    out = tmp_path / "copy.zarr"
    shutil.copytree(fov_archive, out)
    archive = Archive(out)
    session = archive.writable()
    if "significance" in nodes.list_children(session.store, ""):
        nodes.delete(session.store, "significance")
        archive.commit(session, "no maps")
    head = archive.head()
    with pytest.raises(GpcubeError, match="run `gpcube significance`"):
        gpcube.open_archive(out, significance=True)
    with pytest.raises(GpcubeError, match="not a bin edge of energy_reco"):
        pipeline.significance(out, 0.1, energy_edges=[0.7, 50.0])
    assert archive.head() == head  # nothing committed
    with pytest.raises(GpcubeError, match="one part at a time"):
        gpcube.open_archive(out, irf=True, significance=True)


@pytest.fixture(scope="module")
def ring_archive(tmp_path_factory):
    """A ring background on bands of the reco bins, with the edisp kernels (the flux folds through them)."""
    products = ["counts", "exposure", "background", "edisp"]
    return built_archive(tmp_path_factory, "sig-ring", CRAB_RUNS[:2], background=RING, products=products)


def _stored(archive, group):
    """Every array of a group (values and metadata) and the group's attrs without its time stamp."""
    attrs = read_group_attrs(archive_store(archive), group)
    attrs.pop("made_at")
    return stored_arrays(archive, group), attrs


@pytest.mark.parametrize("name", ["fov_archive", "ring_archive"])
@pytest.mark.parametrize("options", [{}, {"energy_edges": [0.5, 50.0], "correlate_off": False}])
def test_in_memory_and_lazy_maps_are_the_same(name, options, request):
    archive = request.getfixturevalue(name)
    if name == "fov_archive" and "correlate_off" in options:
        options = {"energy_edges": options["energy_edges"]}
    lazy = pipeline.significance(archive, 0.12, in_memory=False, **options)
    assert isinstance(lazy["sqrt_ts"].data, da.Array)
    lazy_arrays, lazy_attrs = _stored(archive, "significance")
    maps = pipeline.significance(archive, 0.12, in_memory=True, **options)
    arrays, attrs = _stored(archive, "significance")
    assert attrs == lazy_attrs and arrays.keys() == lazy_arrays.keys()
    for key, (values, meta) in arrays.items():
        np.testing.assert_array_equal(values, lazy_arrays[key][0], err_msg=key)
        assert meta == lazy_arrays[key][1], key
    # the returned maps: in memory, and what the archive holds
    assert isinstance(maps["sqrt_ts"].data, np.ndarray)
    assert maps.attrs["flux_edisp"] == (name == "ring_archive")  # folded when the archive has kernels
    xr.testing.assert_identical(maps, gpcube.open_archive(archive, significance=True).load())


@pytest.mark.parametrize("in_memory", [True, False])
def test_ring_maps_default_to_the_rings_bands(ring_archive, in_memory, capsys):
    """OFF counts and alpha exist per ring band: by default the maps are per ring band, as documented."""
    ring = gpcube.open_archive(ring_archive, ring=True)
    lo, hi = ring["energy_band_lo"].values, ring["energy_band_hi"].values
    maps = pipeline.significance(ring_archive, 0.12, in_memory=in_memory).load()
    assert maps.sizes["energy_band"] == ring.sizes["energy_band"] > 1
    np.testing.assert_array_equal(maps["energy_band_lo"].values, lo)
    np.testing.assert_array_equal(maps["energy_band_hi"].values, hi)
    explicit = pipeline.significance(ring_archive, 0.12, energy_edges=[*lo, hi[-1]], in_memory=in_memory)
    for name in maps.data_vars:
        np.testing.assert_array_equal(maps[name].to_numpy(), explicit[name].to_numpy(), err_msg=name)
    one = pipeline.significance(ring_archive, 0.12, energy_edges=[lo[0], hi[-1]], in_memory=in_memory)
    assert one.sizes["energy_band"] == 1
    assert main(["significance", str(ring_archive), "--radius", "0.12"]) == 0
    bands = [line.split(":")[0].strip() for line in capsys.readouterr().out.splitlines()[1:]]
    assert bands == [f"{a:g}-{b:g} TeV" for a, b in zip(lo, hi, strict=True)]


def test_in_memory_by_size(fov_archive, monkeypatch):
    assert isinstance(pipeline.significance(fov_archive, 0.1)["flux"].data, np.ndarray)
    monkeypatch.setattr(significance_module, "IN_MEMORY_BYTES", 1000)
    assert isinstance(pipeline.significance(fov_archive, 0.1)["flux"].data, da.Array)


def test_read_group_is_open_archive_loaded(ring_archive):
    names = ["counts", "counts_off", "alpha_counts_off", "mask_safe"]
    got = significance_module.read_group(archive_store(ring_archive), "mosaic/ring", names)
    want = gpcube.open_archive(ring_archive, ring=True)[names].load()
    del want.attrs["archive"]
    xr.testing.assert_identical(got, want)


def test_run_with_a_significance_section_makes_the_maps_and_keeps_them_current(tmp_path, monkeypatch):
    out = tmp_path / "run.zarr"
    section = {"radius": 0.12, "energy_edges": [0.5, 5.0, 50.0]}
    first = pipeline.run(job(out, CRAB_RUNS[:1], background=FOV, significance=section), progress=False)
    assert first["significance"]["statistic"] == "cash"
    written = gpcube.open_archive(out, significance=True)
    expected = pipeline.significance(out, 0.12, energy_edges=[0.5, 5.0, 50.0], in_memory=True)
    np.testing.assert_array_equal(written["sqrt_ts"].to_numpy(), expected["sqrt_ts"].to_numpy())

    made = []
    original = pipeline.significance
    monkeypatch.setattr(pipeline, "significance", lambda *a, **k: made.append(k) or original(*a, **k))
    pipeline.run(job(out, CRAB_RUNS[:1], background=FOV, significance=section), progress=False)
    assert made == []  # nothing changed: the maps are current
    wider = {**section, "radius": 0.2}
    pipeline.run(job(out, CRAB_RUNS[:1], background=FOV, significance=wider), progress=False)
    assert len(made) == 1 and gpcube.open_archive(out, significance=True).attrs["correlation_radius"] == 0.2
    pipeline.run(job(out, CRAB_RUNS[:2], background=FOV, significance=wider), progress=False)
    assert len(made) == 2  # the mosaic changed: new maps
    maps = gpcube.open_archive(out, significance=True)
    assert maps.attrs["correlation_radius"] == 0.2 and list(maps["energy_band_lo"].values) == [0.5, 5.0]
