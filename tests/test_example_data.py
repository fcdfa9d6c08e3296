"""The example data shipped in gpcube/data: the 4 Crab runs of H.E.S.S. DL3 DR1, equal to the full store's."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import xarray as xr
from astropy.io import fits

import gpcube
from gpcube.data import EXAMPLE_OBS_IDS, example_data_dir
from tests.conftest import CRAB_RUNS

INDEX_FILES = ("hdu-index.fits.gz", "obs-index.fits.gz")


@pytest.fixture(scope="module")
def example_store():
    return gpcube.DataStore.from_dir(example_data_dir())


def test_example_store_has_the_crab_runs(example_store):
    assert EXAMPLE_OBS_IDS == CRAB_RUNS
    assert example_store.obs_ids == list(EXAMPLE_OBS_IDS)
    assert set(example_store.obs_table["OBJECT"]) == {"Crab Nebula"}
    files = sorted(p.name for p in (example_data_dir() / "data").iterdir())
    assert files == [f"hess_dl3_dr1_obs_id_{i:06d}.fits.gz" for i in EXAMPLE_OBS_IDS]


@pytest.mark.parametrize("obs_id", EXAMPLE_OBS_IDS)
def test_files_and_events_equal_the_full_store(obs_id, example_store, hess_store, hess_dir):
    name = f"data/hess_dl3_dr1_obs_id_{obs_id:06d}.fits.gz"
    assert (example_data_dir() / name).read_bytes() == (hess_dir / name).read_bytes()
    ours, full = example_store.observation(obs_id), hess_store.observation(obs_id)
    xr.testing.assert_identical(ours.events.drop_attrs(), full.events.drop_attrs())
    assert {k: v for k, v in ours.events.attrs.items() if k != "file"} == {
        k: v for k, v in full.events.attrs.items() if k != "file"
    }
    assert ours.obs_info == full.obs_info
    assert ours.livetime == full.livetime


@pytest.mark.parametrize("name", INDEX_FILES)
def test_index_rows_and_headers_equal_the_originals(name, hess_dir):
    with fits.open(example_data_dir() / name) as ours, fits.open(hess_dir / name) as full:
        assert [h.name for h in ours] == [h.name for h in full]
        table, original = ours[1], full[1]
        keep = np.isin(original.data["OBS_ID"], EXAMPLE_OBS_IDS)
        assert set(table.data["OBS_ID"]) == set(EXAMPLE_OBS_IDS)
        assert table.data.tobytes() == original.data[keep].tobytes()  # same rows, same order, same bytes
        for attr in ("names", "formats", "units"):
            assert getattr(table.columns, attr) == getattr(original.columns, attr)
        for hdu, orig in zip(ours, full, strict=True):  # card for card, NAXIS2 aside
            cards = [c.image for c in hdu.header.cards if c.keyword != "NAXIS2"]
            assert cards == [c.image for c in orig.header.cards if c.keyword != "NAXIS2"]
        assert table.header["NAXIS2"] == keep.sum()
        assert table.header["HDUCLASS"] == "GADF" and table.header["HDUCLAS1"] == "INDEX"
    assert gzip.decompress((example_data_dir() / name).read_bytes())[:6] == b"SIMPLE"


def test_readme_and_notice(hess_dir):
    assert (example_data_dir() / "README.txt").read_bytes() == (hess_dir / "README.txt").read_bytes()
    notice = (example_data_dir() / "NOTICE.md").read_text()
    for text in ("CC BY 4.0", "https://www.mpi-hd.mpg.de/hfm/HESS/pages/dl3-dr1/", "HESS DL3 DR1", "gpcube"):
        assert text in notice
    assert all(str(i) in notice for i in EXAMPLE_OBS_IDS)
