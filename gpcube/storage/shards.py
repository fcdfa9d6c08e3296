"""Zarr v3 shards (the ``sharding_indexed`` codec): many inner chunks in one stored object.

An observation's cutout array is written as one shard, whatever its number of chunks: a 5 deg cutout at
0.002 deg is 100 chunks of 256 px, which would otherwise be 100 objects per product per observation.
The layout is the zarr v3 specification's, which zarr-python and xarray read: the inner chunks' encoded
bytes one after the other in C order of their grid, then the index, one ``(offset, nbytes)`` pair of
little-endian uint64 per inner chunk (``2**64 - 1`` twice for an empty one), then the CRC-32C of the
index (little-endian uint32).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

from gpcube.errors import GpcubeError

__all__ = ["EMPTY", "codec_metadata", "decode_index", "encode", "inner_grid"]

#: The offset and size of an empty inner chunk in the index.
EMPTY = 2**64 - 1


def codec_metadata(chunks: Sequence[int], inner_codecs: list) -> dict:
    """The ``sharding_indexed`` codec of an array of inner ``chunks``, each encoded by ``inner_codecs``."""
    return {
        "name": "sharding_indexed",
        "configuration": {
            "chunk_shape": list(chunks),
            "codecs": inner_codecs,
            "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
            "index_location": "end",
        },
    }


def inner_grid(shard: Sequence[int], chunks: Sequence[int]) -> tuple[int, ...]:
    """The number of inner chunks along each axis of a shard."""
    return tuple(s // c for s, c in zip(shard, chunks, strict=True))


def _crc32c(data: bytes) -> bytes:
    import google_crc32c  # zarr's own dependency for this codec

    return int(google_crc32c.value(data)).to_bytes(4, "little")


def encode(pieces: Mapping[tuple[int, ...], bytes | None], grid: Sequence[int]) -> bytes:
    """A shard of the encoded inner chunks ``pieces`` (``{index within the shard: bytes}``; missing or
    None: empty)."""
    index = np.full((*grid, 2), EMPTY, dtype="<u8")
    parts, offset = [], 0
    for position in itertools.product(*(range(n) for n in grid)):
        data = pieces.get(position)
        if data is None:
            continue
        index[position] = (offset, len(data))
        parts.append(data)
        offset += len(data)
    raw_index = index.tobytes()
    return b"".join([*parts, raw_index, _crc32c(raw_index)])


def decode_index(shard: bytes, grid: Sequence[int], path: str = "") -> np.ndarray:
    """The ``(*grid, 2)`` index (offset, nbytes) of a shard, its checksum verified."""
    size = int(np.prod(grid)) * 16
    if len(shard) < size + 4:
        raise GpcubeError(f"a shard is shorter ({len(shard)} bytes) than its index", path=path)
    raw_index, crc = shard[-size - 4 : -4], shard[-4:]
    if _crc32c(raw_index) != crc:
        raise GpcubeError("a shard's index fails its checksum (the object is corrupt)", path=path)
    return np.frombuffer(raw_index, dtype="<u8").reshape(*grid, 2)
