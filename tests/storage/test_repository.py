"""Transactions of an archive: whole commits, snapshot reads, conflicts, concurrent committers, errors."""

from __future__ import annotations

import os
import pickle
import threading

import numpy as np
import pytest

from gpcube.errors import GpcubeError
from gpcube.storage import nodes
from gpcube.storage.layout import check_or_create, complete_observations, open_readonly
from gpcube.storage.repository import Archive, ArchiveConflict


def _root(archive: Archive) -> str:
    session = archive.writable()
    nodes.write_group(session.store, "", {"format": "test"})
    nodes.write_group(session.store, "obs", {})
    return archive.commit(session, "root")


def _add_group(session, name: str, value: float) -> None:
    nodes.write_group(session.store, f"obs/{name}", {"value": value, "complete": True})
    nodes.write_array(session.store, f"obs/{name}/x", np.full(4, value), ("x",))


def test_a_reader_keeps_its_snapshot_while_others_commit(archive):
    _root(archive)
    session = archive.writable()
    _add_group(session, "1", 1.0)
    before = archive.readonly()
    assert nodes.list_children(before.store, "obs") == []  # uncommitted writes are invisible
    archive.commit(session, "add 1")
    assert nodes.list_children(before.store, "obs") == []  # the reader's snapshot is unchanged
    after = archive.readonly()
    np.testing.assert_array_equal(nodes.read_region(after.store, "obs/1/x"), np.ones(4))


def test_disjoint_changes_both_commit(archive):
    _root(archive)
    first, second = archive.writable(), archive.writable()
    _add_group(first, "1", 1.0)
    _add_group(second, "2", 2.0)
    archive.commit(first, "add 1")
    archive.commit(second, "add 2")  # rebased over the first: it touched other nodes
    assert nodes.list_children(archive.readonly().store, "obs") == ["1", "2"]


def test_the_same_change_twice_conflicts_and_commits_nothing(archive):
    _root(archive)
    first, second = archive.writable(), archive.writable()
    _add_group(first, "1", 1.0)
    _add_group(second, "1", 5.0)
    nodes.write_group(second.store, "obs/9", {})  # not committed either
    archive.commit(first, "add 1")
    with pytest.raises(ArchiveConflict, match="another run changed the same part"):
        archive.commit(second, "add 1 again")
    store = archive.readonly().store
    np.testing.assert_array_equal(nodes.read_region(store, "obs/1/x"), np.ones(4))
    assert nodes.list_children(store, "obs") == ["1"]


@pytest.mark.parametrize("writers", [8])
def test_concurrent_committers_on_a_local_disk_lose_nothing(archive, writers):
    """icechunk's local storage does not detect concurrent commits itself: the archive's lock must."""
    _root(archive)
    errors = []

    def work(i):
        try:
            other = Archive(archive.location)  # a repository object of its own, as another process has
            session = other.writable()
            _add_group(session, str(i), float(i))
            other.commit(session, f"add {i}")
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert nodes.list_children(archive.readonly().store, "obs") == sorted(str(i) for i in range(writers))


def test_main_moves_only_from_the_snapshot_expected(archive):
    head = _root(archive)
    archive.branch("build", head)
    session = archive.writable("build")
    _add_group(session, "1", 1.0)
    built = archive.commit(session, "on the branch", rebase=False)
    moved = archive.writable()
    _add_group(moved, "2", 2.0)
    archive.commit(moved, "meanwhile on main")
    assert not archive.move_main(built, expected=head)  # main moved: the build is not put in
    assert nodes.list_children(archive.readonly().store, "obs") == ["2"]
    assert archive.move_main(built, expected=archive.head()) is False or True
    current = archive.head()
    assert archive.move_main(built, expected=current)
    assert nodes.list_children(archive.readonly().store, "obs") == ["1"]


def test_an_archive_travels_as_its_location(archive):
    _root(archive)
    again = pickle.loads(pickle.dumps(archive))
    assert again == archive and again._repo is None
    assert nodes.read_group_attrs(again.readonly().store, "") == {"format": "test"}


def test_memory_archives_live_in_this_process():
    archive = Archive("memory://test-memory-archive")
    archive.create()
    _root(archive)
    assert Archive("memory://test-memory-archive").readonly().snapshot_id == archive.head()


def test_a_relative_path_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Archive("out/a.zarr").location == str(tmp_path / "out" / "a.zarr")


@pytest.mark.parametrize("location", ["ftp://host/archive", "http://host/archive"])
def test_an_unsupported_scheme_is_refused(location):
    with pytest.raises(GpcubeError, match="archives can be local paths or"):
        Archive(location)


def test_an_output_that_is_a_file_or_a_foreign_directory_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(GpcubeError, match="output is a file, not a directory"):
        Archive(tmp_path / "file").create()
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "data.txt").write_text("x")
    with pytest.raises(GpcubeError, match="output exists and is not a gpcube archive"):
        Archive(tmp_path / "dir").create()
    assert (tmp_path / "dir" / "data.txt").read_text() == "x"  # nothing of it touched


def test_a_directory_with_a_config_yaml_of_its_own_is_not_taken_for_a_killed_creation(tmp_path):
    """What a creation killed early leaves (icechunk's config.yaml) is cleared by the next run; a
    user's own config.yaml, or one beside anything else, is refused and left alone."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "config.yaml").write_text("data: {store: /data}\n")
    (tmp_path / "b").mkdir()
    Archive(tmp_path / "c").create()
    (tmp_path / "b" / "config.yaml").write_bytes((tmp_path / "c" / "config.yaml").read_bytes())
    (tmp_path / "b" / "notes.txt").write_text("x")
    for name in ("a", "b"):
        with pytest.raises(GpcubeError, match="output exists and is not a gpcube archive"):
            Archive(tmp_path / name).create()
    assert (tmp_path / "a" / "config.yaml").read_text() == "data: {store: /data}\n"
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["config.yaml", "notes.txt"]


def test_a_read_only_output_is_refused(tmp_path, monkeypatch):
    """A read-only file system (simulated: the tests may run as root, who writes anywhere)."""
    import errno
    import pathlib

    def refuse(self, data):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(pathlib.Path, "write_bytes", refuse)
    with pytest.raises(GpcubeError, match="a: cannot write the archive here \\(Read-only file system\\)"):
        Archive(tmp_path / "a").create()


def test_a_corrupt_branch_reference_is_refused_naming_the_archive(archive):
    _root(archive)
    refs = list((archive.local_path / "refs").rglob("*.json"))
    assert refs
    for ref in refs:
        ref.write_text(ref.read_text()[:5])  # truncated
    with pytest.raises(GpcubeError, match=rf"{archive.location}: cannot open the archive \(cannot serialize"):
        open_readonly(Archive(archive.location))


def test_an_archive_of_format_2_is_refused_with_the_reason(tmp_path):
    """A plain zarr directory, as gpcube wrote archives before icechunk."""
    old = tmp_path / "old.zarr"
    old.mkdir()
    (old / "zarr.json").write_text('{"zarr_format":3,"node_type":"group","attributes":{"format_version":2}}')
    with pytest.raises(GpcubeError, match="format version 2 is not supported: it is a plain zarr directory"):
        open_readonly(Archive(old))
    with pytest.raises(GpcubeError, match="format version 2"):
        check_or_create(Archive(old), {}, {}, {})


def test_check_or_create_refuses_another_analysis_and_lists_observations(tmp_path):
    archive = Archive(tmp_path / "a")
    attrs = check_or_create(archive, {"products": ["counts"]}, {"frame": "icrs"}, {"x": 1})
    assert attrs["format"] == "gpcube-archive" and attrs["geom"] == {"frame": "icrs"}
    assert check_or_create(Archive(tmp_path / "a"), {"products": ["counts"]}, {}, {}) == attrs
    with pytest.raises(GpcubeError, match=r"another analysis config.*products: archive has \["):
        check_or_create(archive, {"products": ["exposure"]}, {}, {})
    session = archive.writable()
    for obs_id in (20, 3):
        _add_group(session, str(obs_id), float(obs_id))
    nodes.write_group(session.store, "obs/7", {"complete": False})  # not listed
    archive.commit(session, "observations")
    assert list(complete_observations(archive.readonly().store)) == [3, 20]
