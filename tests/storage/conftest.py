"""Stores for the storage tests: a plain zarr MemoryStore and an icechunk session's store."""

from __future__ import annotations

import pytest

from gpcube.storage.repository import Archive


@pytest.fixture(params=["zarr-memory", "icechunk"])
def store(request, tmp_path):
    """A writable zarr store: zarr-python's MemoryStore, or a writable icechunk session's store."""
    if request.param == "zarr-memory":
        from zarr.storage import MemoryStore

        return MemoryStore()
    archive = Archive(tmp_path / "repo")
    archive.create()
    return archive.writable().store


@pytest.fixture
def archive(tmp_path):
    """A new, empty archive repository on the local disk."""
    archive = Archive(tmp_path / "archive")
    archive.create()
    return archive
