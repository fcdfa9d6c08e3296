"""The archive's zarr v3 arrays, written and read through a zarr Store, checked against zarr-python."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from gpcube.errors import GpcubeError
from gpcube.storage import nodes


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
def test_zarr_python_reads_what_we_write(store, dtype, shape, chunks):
    rng = np.random.default_rng(0)
    data = (rng.random(shape) * 100).astype(dtype) if dtype != "bool" else rng.random(shape) > 0.5
    data[..., :3] = 0  # some chunks hold only the fill value and are not written
    nodes.write_group(store, "", {})
    nodes.write_group(store, "g", {"note": "x"})
    nodes.write_array(store, "g/a", data, [f"d{i}" for i in range(len(shape))], {"units": "m2 s"}, chunks)
    array = zarr.open_array(store, path="g/a", mode="r")
    assert array.dtype == data.dtype
    assert array.chunks == chunks
    np.testing.assert_array_equal(array[...], data)
    assert dict(array.attrs) == {"units": "m2 s"}
    np.testing.assert_array_equal(nodes.read_region(store, "g/a"), data)
    assert nodes.read_group_attrs(store, "g") == {"note": "x"}
    assert nodes.list_children(store, "") == ["g"] and nodes.list_children(store, "g") == ["a"]


def test_read_region_matches_numpy_slicing(store):
    data = np.arange(2 * 50 * 40, dtype=np.float32).reshape(2, 50, 40) + 1
    data[:, 16:32, 0:16] = 0  # a chunk of fill values: not written
    nodes.write_group(store, "", {})
    nodes.write_array(store, "a", data, ("e", "y", "x"), chunks=(2, 16, 16))
    assert not nodes.aio.run(store.exists("a/c/0/1/0")) and nodes.aio.run(store.exists("a/c/0/1/1"))
    regions = [
        (slice(None), slice(3, 47), slice(15, 17)),
        (slice(1, 2), slice(0, 50), slice(39, 40)),
        (slice(None), slice(16, 32), slice(16, 32)),  # exactly one chunk: decoded in place
        (slice(None), slice(16, 32), slice(0, 16)),  # exactly the missing chunk
        (slice(None), slice(10, 40), slice(5, 30)),  # across the missing chunk
    ]
    for region in regions:
        np.testing.assert_array_equal(nodes.read_region(store, "a", region), data[region])
    assert nodes.read_region(store, "a", (slice(None), slice(5, 5), slice(None))).shape == (2, 0, 40)


def test_an_opened_array_drops_a_chunk_that_becomes_fill_values(store):
    nodes.write_group(store, "", {})
    nodes.write_array(store, "a", np.ones((4, 4), np.float32), ("y", "x"), chunks=(2, 2))
    writer = nodes.ArrayWriter.open(store, "a")
    writer[(slice(0, 2), slice(0, 2))] = np.zeros((2, 2))
    assert not nodes.aio.run(store.exists("a/c/0/0"))
    assert nodes.read_region(store, "a").sum() == 12


def test_writer_refuses_regions_off_chunk_boundaries(store):
    nodes.write_group(store, "", {})
    writer = nodes.ArrayWriter(store, "a", (10, 10), "float32", (4, 4), ("y", "x"))
    with pytest.raises(GpcubeError, match="chunk boundaries"):
        writer[(slice(2, 6), slice(0, 4))] = np.ones((4, 4))
    writer[(slice(8, 10), slice(4, 8))] = np.ones((2, 4))  # the last, partial chunk row is fine
    assert nodes.read_region(store, "a").sum() == 8


def test_we_read_only_our_own_codecs(store):
    zarr.create_array(store=store, name="z", shape=(4,), dtype="f4", fill_value=0.0)  # zstd: not ours
    with pytest.raises(GpcubeError, match="not an archive array"):
        nodes.read_region(store, "z")


def test_a_corrupt_chunk_is_named(store):
    nodes.write_group(store, "", {})
    nodes.write_array(store, "obs/1/counts", np.arange(1, 17, dtype=np.int32).reshape(4, 4), ("y", "x"),
                      chunks=(2, 2))  # fmt: skip
    nodes.aio.run(store.set("obs/1/counts/c/1/0", nodes._buffer(b"not blosc at all")))
    with pytest.raises(GpcubeError, match=r"obs/1/counts: chunk \(1, 0\) of the array is corrupt"):
        nodes.read_region(store, "obs/1/counts")


def test_missing_and_corrupt_metadata_are_named():
    """On a plain zarr store (icechunk refuses bad metadata when it is set: see test_repository)."""
    from zarr.storage import MemoryStore

    store = MemoryStore()
    nodes.write_group(store, "", {})
    with pytest.raises(GpcubeError, match="mosaic/zarr.json: no such group"):
        nodes.read_group_attrs(store, "mosaic")
    nodes.write_group(store, "mosaic", {})
    nodes.aio.run(store.set("mosaic/zarr.json", nodes._buffer(b'{"zarr_format":3,"node_type":"group","attr')))
    with pytest.raises(GpcubeError, match="mosaic/zarr.json: cannot read zarr metadata"):
        nodes.read_group_attrs(store, "mosaic")


def test_attributes_with_nan_are_written_as_strict_json(store):
    """An observation index row may hold NaN (H.E.S.S. DL3 DR1 does): stored as null, not refused."""
    nodes.write_group(store, "", {})
    attrs = {"obs_info": {"ZEN_PNT": float("nan"), "N_TELS": np.int64(4), "x": [1.0, float("inf")]}}
    nodes.write_group(store, "obs", attrs)
    assert nodes.read_group_attrs(store, "obs") == {
        "obs_info": {"ZEN_PNT": None, "N_TELS": 4, "x": [1.0, None]}
    }


@pytest.mark.parametrize(
    ("dtype", "shape", "chunks", "shards"),
    [
        ("float32", (10, 70, 45), (10, 16, 16), None),  # one shard: the whole array, rounded up
        ("int32", (3, 70, 45), (3, 32, 32), (3, 64, 32)),  # several shards, edge ones partly outside
        ("bool", (4, 9, 17), (4, 4, 4), None),
    ],
)
def test_zarr_python_reads_our_shards(store, dtype, shape, chunks, shards):
    rng = np.random.default_rng(1)
    data = (rng.random(shape) * 100).astype(dtype) if dtype != "bool" else rng.random(shape) > 0.5
    data[..., : shape[1] // 3, :] = 0  # whole inner chunks of fill values: empty in the index
    shards = shards or nodes.whole_shard(shape, chunks)
    nodes.write_group(store, "", {})
    writer = nodes.ArrayWriter(
        store, "a", shape, dtype, chunks, [f"d{i}" for i in range(len(shape))], shards=shards
    )
    for y in range(0, shape[1], chunks[1]):  # block by block, as dask's store writes
        for x in range(0, shape[2], chunks[2]):
            region = (slice(None), slice(y, y + chunks[1]), slice(x, x + chunks[2]))
            writer[region] = data[region]
    array = zarr.open_array(store, path="a", mode="r")
    assert array.shards == shards and array.chunks == chunks
    np.testing.assert_array_equal(array[...], data)
    np.testing.assert_array_equal(nodes.read_region(store, "a"), data)
    region = (slice(None), slice(5, 60), slice(17, 40))
    np.testing.assert_array_equal(nodes.read_region(store, "a", region), data[region])
    objects = [key for key in nodes.aio.run(_keys(store, "a/")) if "/c/" in key]
    assert len(objects) == np.prod([-(-n // s) for n, s in zip(shape, shards, strict=True)])


async def _keys(store, prefix):
    return [key async for key in store.list_prefix(prefix)]


def test_a_corrupt_shard_index_is_named(store):
    nodes.write_group(store, "", {})
    data = np.arange(1, 65, dtype=np.float32).reshape(8, 8)
    writer = nodes.ArrayWriter(store, "obs/1/counts", (8, 8), "float32", (4, 4), ("y", "x"), shards=(8, 8))
    writer[:, :] = data
    raw = nodes.aio.run(nodes._get(store, "obs/1/counts/c/0/0"))
    nodes.aio.run(store.set("obs/1/counts/c/0/0", nodes._buffer(raw[:-3] + b"xyz")))
    with pytest.raises(GpcubeError, match="obs/1/counts: chunk .* cannot be read .*index fails its checksum"):
        nodes.read_region(store, "obs/1/counts")


def test_a_region_of_a_large_shard_fetches_its_index_and_chunks_only(store, monkeypatch):
    """A mosaic region over a corner of an observation's cutout (one shard of many inner chunks) reads
    the shard's index and the chunks it needs, not the whole shard (the out-of-core run's 2500 x 2500 px
    cutouts were fetched whole for each of ~25 regions each)."""
    data = np.arange(2 * 64 * 64, dtype=np.float32).reshape(2, 64, 64) + 1
    data[:, 16:32, 0:16] = 0  # an empty inner chunk
    nodes.write_group(store, "", {})
    writer = nodes.ArrayWriter(store, "a", data.shape, "float32", (2, 16, 16), ("e", "y", "x"), shards=True)
    writer[:, :, :] = data
    fetched = []
    get = nodes._get

    async def recording(store_, key, byte_range=None):
        raw = await get(store_, key, byte_range)
        if "/c/" in key:  # the shard (not the array's metadata)
            fetched.append((byte_range, 0 if raw is None else len(raw)))
        return raw

    monkeypatch.setattr(nodes, "_get", recording)
    shard_size = len(nodes.aio.run(get(store, "a/c/0/0/0")))
    for region in [(slice(None), slice(3, 20), slice(5, 30)), (slice(None), slice(16, 32), slice(0, 16))]:
        fetched.clear()
        np.testing.assert_array_equal(nodes.read_region(store, "a", region), data[region])
        assert fetched[0][0] is not None and fetched[0][1] == 16 * 16 + 4  # the index: 16 chunks
        assert sum(size for _, size in fetched) < shard_size / 2
    fetched.clear()
    np.testing.assert_array_equal(nodes.read_region(store, "a"), data)  # all chunks: the whole shard once
    assert fetched == [(None, shard_size)]
