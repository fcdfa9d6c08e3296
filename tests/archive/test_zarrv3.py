"""The archive's own zarr v3 writer/reader, checked against zarr-python and xarray as the oracle."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import xarray as xr
import zarr

from gpcube.errors import GpcubeError
from gpcube.storage import consolidated, zarrv3


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
    data = np.arange(2 * 50 * 40, dtype=np.float32).reshape(2, 50, 40) + 1
    data[:, 16:32, 0:16] = 0  # a chunk of fill values: no file
    zarrv3.write_array(tmp_path / "a", data, ("e", "lat", "lon"), chunks=(2, 16, 16))
    assert not (tmp_path / "a" / "c.0.1.0").exists()
    regions = [
        (slice(None), slice(3, 47), slice(15, 17)),
        (slice(1, 2), slice(0, 50), slice(39, 40)),
        (slice(None), slice(16, 32), slice(16, 32)),  # exactly one chunk: decoded in place
        (slice(None), slice(16, 32), slice(0, 16)),  # exactly the missing chunk
        (slice(None), slice(10, 40), slice(5, 30)),  # across the missing chunk
    ]
    for region in regions:
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
    consolidated.consolidate(root)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_zarr(root, group="obs/1")
    assert ds.counts.dims == ("e", "lat") and "e_lo" in ds.coords
    assert ds.attrs == {"obs_id": 1}
    listed = json.loads((root / "zarr.json").read_text())["consolidated_metadata"]["metadata"]
    assert "_tmp-2-x" not in listed and "obs/1/counts" in listed


def _listed(root) -> dict:
    return json.loads((root / "zarr.json").read_text())["consolidated_metadata"]["metadata"]


def _obs_group(root, obs_id: int, value: float) -> None:
    zarrv3.write_group(root / "obs" / str(obs_id), {"obs_id": obs_id, "value": value})
    zarrv3.write_array(root / "obs" / str(obs_id) / "x", np.full(3, value), ("x",))


def test_consolidate_reads_only_what_changed_and_matches_a_fresh_walk(tmp_path, monkeypatch):
    root = tmp_path / "a.zarr"
    zarrv3.write_group(root, {"format": "test"})
    zarrv3.write_group(root / "obs", {})
    for i in (1, 2):
        _obs_group(root, i, float(i))
    consolidated.consolidate(root)
    _obs_group(root, 3, 3.0)  # added
    shutil.rmtree(root / "obs" / "1")  # removed
    _obs_group(root, 2, 20.0)  # replaced: its zarr.json differs from the consolidated one
    zarrv3.write_group(root / "mosaic", {"n": 2})

    read = []
    original = consolidated.Path.read_text

    def spy(self, *args, **kwargs):
        read.append(self.relative_to(root).as_posix())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(zarrv3.Path, "read_text", spy)
    consolidated.consolidate(root)
    monkeypatch.undo()
    incremental = _listed(root)
    assert "obs/3/x/zarr.json" in read and "obs/2/x/zarr.json" in read

    top = json.loads((root / "zarr.json").read_text())
    del top["consolidated_metadata"]
    (root / "zarr.json").write_text(json.dumps(top))
    consolidated.consolidate(root)
    assert incremental == _listed(root)
    assert "obs/1" not in incremental and incremental["obs/2"]["attributes"]["value"] == 20.0

    read.clear()
    monkeypatch.setattr(zarrv3.Path, "read_text", spy)
    consolidated.consolidate(root)  # nothing changed: the observations' arrays are not read again
    monkeypatch.undo()
    assert not [p for p in read if p.startswith("obs/") and p.count("/") > 2]


def test_group_attrs_of_a_large_consolidated_root_are_read_without_the_listing(tmp_path):
    root = tmp_path / "a.zarr"
    zarrv3.write_group(root, {"format": "test", "nested": {"attributes": [1, 2]}})
    zarrv3.write_group(root / "g", {"k": 1})
    consolidated.consolidate(root)
    assert zarrv3.read_group_attrs(root) == {"format": "test", "nested": {"attributes": [1, 2]}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert xr.open_zarr(root, group="g").attrs == {"k": 1}
    written_by_others = {"attributes": {"a": 1}, "zarr_format": 3, "node_type": "group"}
    (root / "zarr.json").write_text(json.dumps(written_by_others, indent=2))
    assert zarrv3.read_group_attrs(root) == {"a": 1}


@pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part")
def test_a_listing_written_by_another_tool_is_read_and_rewritten(tmp_path):
    root = tmp_path / "a.zarr"
    group = zarr.open_group(root, mode="w", zarr_format=3, attributes={"format": "test"})
    group.create_group("obs").create_group("7", attributes={"obs_id": 7})
    zarr.consolidate_metadata(root)
    before = consolidated.listing(root)
    assert "obs/7" in before
    consolidated.consolidate(root)
    after = consolidated.listing(root)  # the same nodes, without zarr-python's nested copies
    plain = {key: {k: v for k, v in d.items() if k != "consolidated_metadata"} for key, d in before.items()}
    assert after == plain and zarrv3.read_group_attrs(root) == {"format": "test"}
    assert zarr.open_consolidated(root)["obs/7"].attrs["obs_id"] == 7
