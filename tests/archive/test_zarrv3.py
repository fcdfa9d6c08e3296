"""The archive's own zarr v3 writer/reader, checked against zarr-python and xarray as the oracle."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import xarray as xr
import zarr

from gpcube.archive import zarrv3
from gpcube.errors import GpcubeError


@pytest.mark.parametrize(
    ("dtype", "shape", "chunks"),
    [
        ("int32", (3, 70, 45), (3, 32, 32)),  # edge chunks padded along both sky axes
        ("float32", (5, 16, 16), (5, 16, 16)),  # one chunk
        ("float64", (2, 3, 33, 10), (2, 3, 8, 8)),  # a psf-like 4-d array
        ("bool", (4, 9, 17), (4, 4, 4)),
        ("int64", (7,), (7,)),
    ],
)
def test_zarr_python_reads_what_we_write(tmp_path, dtype, shape, chunks):
    rng = np.random.default_rng(0)
    data = (rng.random(shape) * 100).astype(dtype) if dtype != "bool" else rng.random(shape) > 0.5
    data[..., :3] = 0  # some chunks hold only the fill value and are not written
    zarrv3.write_group(tmp_path / "g", {"note": "x"})
    zarrv3.write_array(
        tmp_path / "g" / "a", data, [f"d{i}" for i in range(len(shape))], {"units": "m2 s"}, chunks
    )
    array = zarr.open_array(tmp_path / "g", path="a", mode="r")
    assert array.dtype == data.dtype
    assert array.chunks == chunks
    np.testing.assert_array_equal(array[...], data)
    assert dict(array.attrs) == {"units": "m2 s"}
    np.testing.assert_array_equal(zarrv3.read_region(tmp_path / "g" / "a"), data)


def test_read_region_matches_numpy_slicing(tmp_path):
    data = np.arange(2 * 50 * 40, dtype=np.float32).reshape(2, 50, 40)
    zarrv3.write_array(tmp_path / "a", data, ("e", "lat", "lon"), chunks=(2, 16, 16))
    for region in [(slice(None), slice(3, 47), slice(15, 17)), (slice(1, 2), slice(0, 50), slice(39, 40))]:
        np.testing.assert_array_equal(zarrv3.read_region(tmp_path / "a", region), data[region])
    assert zarrv3.read_region(tmp_path / "a", (slice(None), slice(5, 5), slice(None))).shape == (2, 0, 40)


def test_writer_refuses_regions_off_chunk_boundaries(tmp_path):
    writer = zarrv3.ArrayWriter(tmp_path / "a", (10, 10), "float32", (4, 4), ("lat", "lon"))
    with pytest.raises(GpcubeError, match="chunk boundaries"):
        writer[(slice(2, 6), slice(0, 4))] = np.ones((4, 4))
    writer[(slice(8, 10), slice(4, 8))] = np.ones((2, 4))  # the last, partial chunk row is fine
    assert zarrv3.read_region(tmp_path / "a").sum() == 8


def test_we_read_only_our_own_codecs(tmp_path):
    zarr.create_array(store=tmp_path / "z", shape=(4,), dtype="f4", fill_value=0.0)  # zstd: not ours
    with pytest.raises(GpcubeError, match="not an archive array"):
        zarrv3.read_region(tmp_path / "z")


def test_consolidated_root_opens_groups_in_xarray_without_warnings(tmp_path):
    root = tmp_path / "a.zarr"
    zarrv3.write_group(root, {"format": "test"})
    zarrv3.write_group(root / "obs", {})
    zarrv3.write_group(root / "obs" / "1", {"obs_id": 1})
    zarrv3.write_array(root / "obs" / "1" / "lat", np.arange(4), ("lat",))
    zarrv3.write_array(root / "obs" / "1" / "e_lo", np.arange(3.0), ("e",), {"units": "TeV"})
    zarrv3.write_array(
        root / "obs" / "1" / "counts", np.ones((3, 4), np.int32), ("e", "lat"), {"coordinates": "e_lo"}
    )
    zarrv3.write_group(root / "_tmp-2-x", {})  # temporary groups are not listed
    zarrv3.consolidate(root)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_zarr(root, group="obs/1")
    assert ds.counts.dims == ("e", "lat") and "e_lo" in ds.coords
    assert ds.attrs == {"obs_id": 1}
    listed = json.loads((root / "zarr.json").read_text())["consolidated_metadata"]["metadata"]
    assert "_tmp-2-x" not in listed and "obs/1/counts" in listed
