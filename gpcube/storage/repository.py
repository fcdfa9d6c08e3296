"""Where an archive lives, and its transactions: an icechunk repository on a local disk or an object store.

Every change to an archive is an icechunk commit: the observations added by a batch of reduce tasks,
a mosaic built or continued, the significance maps. A commit is visible whole or not at all, and a
reader always sees one snapshot, whatever is committed meanwhile. Why icechunk rather than a design of
our own (write-once groups and a manifest swapped atomically) is measured in ``docs/archive.rst``
("Transactions").

:class:`Archive` names the repository (a local path or a URL, with ``storage_options``) and is what
travels to the workers: they open the repository again from it, so workers need to share nothing but
the location. Sessions (icechunk's) are what tasks write into: a task gets a *fork* of a session, the
caller merges the forks that come back and commits them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from gpcube.errors import GpcubeError
from gpcube.execute import mark_fork_unsafe

__all__ = [
    "Archive",
    "ArchiveConflict",
    "BRANCH",
    "as_archive",
    "drop_stale_branches",
    "fault_point",
    "process_branch",
]

#: The branch every reader and writer of an archive uses.
BRANCH = "main"
#: Chunks up to this size live inside icechunk's manifests instead of objects of their own: the
#: small coordinate arrays of an observation's groups.
INLINE_BYTES = 4096
#: In-process repositories of ``memory://`` locations, by name (for tests and notebooks: other
#: processes cannot see them).
_MEMORY: dict[str, Any] = {}
_SCHEMES = ("s3", "gs", "gcs", "memory", "file")


#: The environment variable naming a :func:`fault_point` at which the process kills itself.
FAULT_ENV = "GPCUBE_KILL_AT"
#: With this environment variable set to a file path, a :func:`fault_point` kills only once (the
#: process that creates the file): a worker killed in a task, whose task dask then runs again.
FAULT_ONCE_ENV = "GPCUBE_KILL_ONCE"


def fault_point(name: str) -> None:
    """A step boundary of a commit protocol, where a test can kill the process as SIGKILL would (no
    cleanup, no ``finally``): ``GPCUBE_KILL_AT=<name>`` in its environment (and, to kill only the
    first process that gets there, ``GPCUBE_KILL_ONCE=<marker file>``). The points are listed in
    ``docs/archive.rst`` ("Faults"); nothing happens otherwise."""
    if os.environ.get(FAULT_ENV) != name:
        return
    once = os.environ.get(FAULT_ONCE_ENV)
    if once:
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
    os._exit(137)


class ArchiveConflict(GpcubeError):
    """Another writer changed what this commit changes (the same observation, the same mosaic chunks)."""


def _is_url(location: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", location))


class Archive:
    """An archive's location: a local directory, or ``s3://bucket/prefix``, ``gs://bucket/prefix`` or
    ``memory://name``; ``storage_options`` are passed to icechunk's storage (for S3: ``endpoint_url``,
    ``region``, ``access_key_id``, ``secret_access_key``, ``session_token``, ``anonymous``,
    ``allow_http``, ``force_path_style``; credentials default to the environment's).

    A local path is made absolute here: workers on other machines must be given a location they can
    reach, which a relative path is not (see :meth:`for_workers`).

    See Also
    --------
    gpcube.open_archive : The archive's products as xarray.
    gpcube.storage.info.archive_info : What an archive holds.

    Examples
    --------
    Every change is a commit: written in a writable session, seen whole by readers once committed.

    >>> import zarr
    >>> from gpcube.storage.repository import Archive
    >>> archive = Archive("demo.zarr")
    >>> archive.exists()
    False
    >>> archive.create()
    >>> session = archive.writable()
    >>> zarr.open_group(session.store, mode="a").attrs["note"] = "hello"
    >>> snapshot = archive.commit(session, "a note")
    >>> dict(zarr.open_group(archive.readonly().store, mode="r").attrs)
    {'note': 'hello'}
    >>> archive.readonly().snapshot_id == snapshot
    True
    """

    def __init__(self, location: str | os.PathLike, storage_options: Mapping | None = None):
        text = os.fspath(location)
        if isinstance(location, Path) or not _is_url(text):
            text = str(Path(text).expanduser().absolute())
        elif text.startswith("file://"):
            text = str(Path(urlparse(text).path).absolute())
        self.location = text
        self.storage_options = dict(storage_options or {})
        scheme = urlparse(text).scheme if _is_url(text) else ""
        if scheme and scheme not in _SCHEMES:
            raise GpcubeError(f"archives can be local paths or {', '.join(s + '://' for s in _SCHEMES)} URLs",
                              path=text)  # fmt: skip
        self.scheme = scheme
        self._repo = None
        self._pid = None

    def __repr__(self) -> str:
        return f"Archive({self.location!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Archive) and (self.location, self.storage_options) == (
            other.location,
            other.storage_options,
        )

    def __hash__(self) -> int:
        return hash(self.location)

    def __getstate__(self) -> dict:
        return {"location": self.location, "storage_options": self.storage_options}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["location"], state["storage_options"])

    @property
    def local_path(self) -> Path | None:
        """The archive's directory if it is on a local filesystem, else None."""
        return None if self.scheme else Path(self.location)

    # ------------------------------------------------------------------------------------ repository
    def _storage(self):
        import icechunk

        mark_fork_unsafe()  # icechunk's runtime threads start with its first storage
        if not self.scheme:
            # its warning that local storage does not detect concurrent commits: _commit_lock does
            icechunk.set_logs_filter("warn,icechunk::storage::object_store=error")
            return icechunk.local_filesystem_storage(self.location)
        parsed = urlparse(self.location)
        bucket, prefix = parsed.netloc, parsed.path.strip("/") or None
        options = dict(self.storage_options)
        if self.scheme == "s3":
            endpoint = options.get("endpoint_url")
            if endpoint and endpoint.startswith("http://"):
                options.setdefault("allow_http", True)
                options.setdefault("force_path_style", True)
            if not any(k in options for k in ("access_key_id", "anonymous", "get_credentials")):
                options.setdefault("from_env", True)
            return icechunk.s3_storage(bucket=bucket, prefix=prefix, **options)
        if self.scheme in ("gs", "gcs"):
            if not any(k in options for k in ("service_account_file", "service_account_key", "anonymous")):
                options.setdefault("from_env", True)
            return icechunk.gcs_storage(bucket=bucket, prefix=prefix, **options)
        if self.scheme == "memory":
            name = parsed.netloc + parsed.path
            if name not in _MEMORY:
                _MEMORY[name] = icechunk.in_memory_storage()
            return _MEMORY[name]
        raise GpcubeError("unsupported archive location", path=self.location)  # pragma: no cover

    def _config(self):
        import icechunk

        config = icechunk.RepositoryConfig.default()
        config.inline_chunk_threshold_bytes = INLINE_BYTES
        return config

    def exists(self) -> bool:
        """Whether an archive (an icechunk repository) is at the location."""
        import icechunk

        if self.local_path is not None and not self.local_path.exists():
            return False
        try:
            return icechunk.Repository.exists(self._storage())
        except Exception as exc:  # noqa: BLE001 - icechunk's errors name the store's problem
            raise GpcubeError(f"cannot open the archive ({_short(exc)})", path=self.location) from None

    @property
    def repo(self):
        """The icechunk repository (opened once per process)."""
        import icechunk

        if self._repo is None or self._pid != os.getpid():
            try:
                self._repo = icechunk.Repository.open(self._storage(), config=self._config())
            except Exception as exc:  # noqa: BLE001
                raise GpcubeError(f"cannot open the archive ({_short(exc)})", path=self.location) from None
            self._pid = os.getpid()
        return self._repo

    def create(self) -> None:
        """Make an empty repository at the location (whose directory must be empty or missing).

        On a local disk, what a creation killed before it was done left (icechunk's first files, without
        the branch ref that makes them a repository) is deleted first, so that it does not block the
        location for ever; creators lock the directory, so none deletes another's files.
        """
        import icechunk

        path = self.local_path
        if path is not None:
            _check_local_output(path)
        with self._creation_lock():
            if path is not None and any(path.iterdir()):
                if self.exists():
                    raise GpcubeError("the archive was created meanwhile", path=self.location)
                _clear_interrupted_creation(path)
            try:
                self._repo = icechunk.Repository.create(self._storage(), config=self._config())
            except Exception as exc:  # noqa: BLE001
                raise GpcubeError(f"cannot create the archive ({_short(exc)})", path=self.location) from None
        self._pid = os.getpid()

    # -------------------------------------------------------------------------------------- sessions
    def readonly(self, snapshot: str | None = None):
        """A read-only session: the branch's latest snapshot, or ``snapshot``."""
        try:
            if snapshot is not None:
                return self.repo.readonly_session(snapshot_id=snapshot)
            return self.repo.readonly_session(branch=BRANCH)
        except Exception as exc:  # noqa: BLE001
            raise GpcubeError(f"cannot read the archive's {snapshot or BRANCH} ({_short(exc)})",
                              path=self.location) from None  # fmt: skip

    def writable(self, branch: str = BRANCH):
        """A writable session on ``branch``, based on its latest snapshot."""
        return self.repo.writable_session(branch)

    def head(self, branch: str = BRANCH) -> str:
        """The snapshot id ``branch`` points at."""
        return self.repo.lookup_branch(branch)

    @contextlib.contextmanager
    def _creation_lock(self) -> Iterator[None]:
        """Exclusive among the processes creating the archive on a local filesystem: a lock on its
        directory itself (icechunk creates repositories only in directories that hold no file)."""
        path = self.local_path
        if path is None:
            yield
            return
        handle = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            os.close(handle)  # and the lock with it

    @contextlib.contextmanager
    def _commit_lock(self) -> Iterator[None]:
        """Exclusive for the duration of a commit, on a local filesystem (icechunk's local storage does
        not detect concurrent commits by itself; object stores do, with conditional writes)."""
        path = self.local_path
        if path is None:
            yield
            return
        with open(path / ".gpcube-commit.lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def commit(self, session, message: str, *, rebase: bool = True) -> str:
        """Commit ``session``; returns the new snapshot id.

        With ``rebase``, commits made meanwhile by others are taken in first if they changed other
        nodes (other observations); if they changed the same ones, :class:`ArchiveConflict` is raised
        and nothing of this session is committed.
        """
        import icechunk

        try:
            with self._commit_lock():
                if rebase:
                    return session.commit(message, rebase_with=icechunk.ConflictDetector(), rebase_tries=100)
                return session.commit(message)
        except (icechunk.ConflictError, icechunk.RebaseFailedError) as exc:
            raise ArchiveConflict(f"another run changed the same part of the archive ({_short(exc)})",
                                  path=self.location) from None  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - full disk, permissions, lost connection...
            raise GpcubeError(f"cannot commit to the archive ({_short(exc)}); nothing of this change is "
                              "in it", path=self.location) from None  # fmt: skip

    def branch(self, name: str, snapshot: str) -> None:
        """Create branch ``name`` at ``snapshot``."""
        self.repo.create_branch(name, snapshot)

    def move_main(self, snapshot: str, expected: str) -> bool:
        """Point the main branch at ``snapshot`` if it still points at ``expected``; whether it did."""
        import icechunk

        try:
            with self._commit_lock():
                self.repo.reset_branch(BRANCH, snapshot, from_snapshot_id=expected)
            return True
        except icechunk.IcechunkError as exc:
            if "branch update conflict" in str(exc):
                return False
            raise GpcubeError(f"cannot update the archive ({_short(exc)})", path=self.location) from None

    def delete_branch(self, name: str) -> None:
        with contextlib.suppress(Exception):
            self.repo.delete_branch(name)

    def branches(self) -> set[str]:
        return set(self.repo.list_branches())


def as_archive(location: Archive | str | os.PathLike, storage_options: Mapping | None = None) -> Archive:
    """``location`` as an :class:`Archive` (an Archive is returned as it is)."""
    if isinstance(location, Archive):
        return location
    return Archive(location, storage_options)


def process_branch(prefix: str) -> str:
    """A new branch name that says which process made it: ``<prefix>-<host>-<pid>-<unix time>-<hex>``
    (see :func:`drop_stale_branches`)."""
    return f"{prefix}-{socket.gethostname()}-{os.getpid()}-{int(time.time())}-{uuid.uuid4().hex[:8]}"


def drop_stale_branches(archive: Archive, prefix: str, max_age: float) -> list[str]:
    """Delete the branches of :func:`process_branch` names with ``prefix`` whose work is provably over:
    made on this host by a process that is gone, or older than ``max_age`` seconds whoever made them
    (no build runs that long). Returns the names deleted; their snapshots become garbage
    (:func:`gpcube.storage.maintenance.collect_garbage`)."""
    host, dropped = socket.gethostname(), []
    for name in archive.branches():
        if not name.startswith(prefix + "-"):
            continue
        try:
            branch_host, pid, started, _ = name[len(prefix) + 1 :].rsplit("-", 3)
            pid, started = int(pid), int(started)
        except ValueError:
            continue
        if (branch_host == host and not _alive(pid)) or time.time() - started > max_age:
            archive.delete_branch(name)
            dropped.append(name)
    return dropped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: gpcube's own files in an archive's directory: the commit lock and the probe of a new one.
_OWN_FILES = (".gpcube-commit.lock", ".gpcube-write-test")
#: The directories icechunk makes in a repository; its first files when it creates one are
#: ``config.yaml``, the first snapshot and, last, the branch ref that makes them a repository.
_ICECHUNK_DIRS = ("snapshots", "refs", "chunks", "manifests", "transactions")


def _interrupted_creation(path: Path) -> bool:
    """Whether the directory holds nothing but what a creation of an archive that was killed leaves:
    gpcube's own files, icechunk's ``config.yaml`` (gpcube's settings in it), at most one snapshot,
    no branch ref, no data (and files icechunk had not finished writing, ``name#n``)."""
    for entry in path.iterdir():
        name, staged, _ = entry.name.partition("#")
        if name in _OWN_FILES or (name == "config.yaml" and staged and entry.is_file()):
            continue
        if name == "config.yaml" and entry.is_file():
            if f"inline_chunk_threshold_bytes: {INLINE_BYTES}" not in entry.read_text(errors="replace"):
                return False
        elif name in _ICECHUNK_DIRS and entry.is_dir():
            files = [f for f in entry.rglob("*") if f.is_file()]
            if len(files) > (1 if name in ("snapshots", "refs") else 0):
                return False
        else:
            return False
    return True


def _clear_interrupted_creation(path: Path) -> None:
    """Delete what a killed creation left (:func:`_interrupted_creation`)."""
    import shutil

    for entry in path.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _check_local_output(path: Path) -> None:
    """A clear error for a local output that cannot hold an archive: a plain file, a non-empty
    directory that is not an archive (nor what a killed creation of one left), a directory that
    cannot be written."""
    if path.exists() and not path.is_dir():
        raise GpcubeError("output is a file, not a directory", path=path)
    if path.is_dir() and not _interrupted_creation(path):
        raise GpcubeError("output exists and is not a gpcube archive", path=path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".gpcube-write-test"
        probe.write_bytes(b"")
        probe.unlink(missing_ok=True)  # another creator's probe may have been the same file
    except OSError as exc:
        raise GpcubeError(f"cannot write the archive here ({exc.strerror or exc})", path=path) from None


def _short(exc: BaseException) -> str:
    """The first meaningful line of an (icechunk) error."""
    lines = [line.strip(" |`->x") for line in str(exc).splitlines()]
    lines = [line for line in lines if line and not line.startswith(("context:", "at ", "with "))]
    return lines[0] if lines else type(exc).__name__
