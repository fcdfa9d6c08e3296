"""Where a data store's files are: a local path, or a URL read with fsspec.

A local path is read with :mod:`pathlib`, as it always was: the common case goes through no other
layer. A URL (``https://host/store``, ``s3://bucket/prefix``, or any protocol that fsspec knows) is read
whole with :func:`fsspec.core.url_to_fs` and ``storage_options`` (credentials, ``endpoint_url`` for an
S3-compatible server, ...; see the protocol's filesystem class, e.g. :class:`s3fs.S3FileSystem`).
fsspec and the protocol's package (``s3fs``; ``aiohttp`` for http) are imported only when a URL is read:
``pip install "gpcube[remote]"``.

A location is a :class:`~pathlib.Path` for a local file and a ``str`` for a URL, so that it pickles as
what it is and another process (a dask worker that shares nothing but the URL) reads the same file.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping
from pathlib import Path

from gpcube.errors import GpcubeError

__all__ = ["Location", "as_location", "is_url", "join", "read_bytes"]

#: A local file (:class:`~pathlib.Path`) or a URL (``str``).
Location = Path | str

#: ``protocol://`` at the start, with fsspec's chained protocols (``simplecache::s3://``) allowed.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*(::[A-Za-z][A-Za-z0-9+.-]*)*://")
_REMOTE_EXTRA = 'pip install "gpcube[remote]"'


def is_url(location) -> bool:
    """Whether ``location`` is a URL (``protocol://...``) rather than a local path."""
    return isinstance(location, str) and _URL.match(location) is not None


def as_location(location: str | os.PathLike) -> Location:
    """A URL as a string without trailing slashes; anything else as a :class:`~pathlib.Path`."""
    if is_url(location):
        scheme, sep, rest = location.partition("://")
        return scheme + sep + rest.rstrip("/")
    return Path(location)


def join(base: Location, *parts: str) -> Location:
    """``parts`` (``BASE_DIR``, ``FILE_DIR``, ``FILE_NAME`` of an index) resolved against ``base``.

    A part that is a URL replaces what came before. Locally the parts are joined as :mod:`pathlib`
    joins them (an absolute part replaces the base), as gpcube always has. In a URL a part is a
    relative path (``..`` and ``.`` resolved), or an absolute path on the URL's host or bucket
    (``/data`` under ``s3://bucket/prefix`` is ``s3://bucket/data``).

    Examples
    --------
    >>> join("s3://bucket/store/index", "..", "data", "run.fits.gz")
    's3://bucket/store/data/run.fits.gz'
    >>> join("https://host/dl3", "/other/run.fits")
    'https://host/other/run.fits'
    >>> join(Path("/store"), "data", "run.fits.gz").as_posix()
    '/store/data/run.fits.gz'
    """
    for part in parts:
        part = str(part)
        if is_url(part):
            base = as_location(part)
        elif is_url(base):
            base = _join_url(base, part)
        else:
            base = Path(base, part)
    return base


def _join_url(url: str, part: str) -> str:
    scheme, rest = url.split("://", 1)
    host, _, path = rest.partition("/")
    path = part if part.startswith("/") else posixpath.join("/" + path, part)
    path = posixpath.normpath(path).lstrip("/")
    return f"{scheme}://{host}/{path}" if path else f"{scheme}://{host}"


def read_bytes(
    location: Location, storage_options: Mapping | None = None, *, missing_ok: bool = False
) -> bytes | None:
    """The bytes of the file at ``location``, read whole.

    Parameters
    ----------
    location : Path or str
        A local file, or a URL.
    storage_options : mapping, optional
        Passed to the URL's fsspec filesystem (not used for a local file).
    missing_ok : bool
        Return None for a file that does not exist, instead of raising.

    Raises
    ------
    GpcubeError
        Naming the file or URL: not found, unreadable, an unknown protocol or one whose package is
        not installed, or options the filesystem does not accept.

    Examples
    --------
    >>> from gpcube.data import example_data_dir
    >>> from gpcube.io.location import read_bytes
    >>> data = read_bytes(example_data_dir() / "hdu-index.fits.gz")
    >>> data[:2].hex()  # the gzip magic number
    '1f8b'
    >>> read_bytes(example_data_dir() / "no-such-file.fits", missing_ok=True) is None
    True
    """
    try:
        if is_url(location):
            return _read_url(location, storage_options or {})
        return Path(location).read_bytes()
    except FileNotFoundError:
        if missing_ok:
            return None
        raise GpcubeError("file not found", path=location) from None
    except OSError as exc:
        raise GpcubeError(f"cannot read file: {exc}", path=location) from None


def _read_url(url: str, storage_options: Mapping) -> bytes:
    try:
        import fsspec.core
    except ImportError:
        raise GpcubeError(f"reading a URL needs fsspec: {_REMOTE_EXTRA}", path=url) from None
    try:
        fs, path = fsspec.core.url_to_fs(url, **storage_options)
    except ImportError as exc:
        raise GpcubeError(f"cannot read this URL: {exc} ({_REMOTE_EXTRA})", path=url) from None
    except (ValueError, TypeError) as exc:
        raise GpcubeError(f"cannot read this URL: {exc}", path=url) from None
    try:
        return fs.cat_file(path)
    except (FileNotFoundError, IsADirectoryError):
        raise FileNotFoundError(url) from None
    except Exception as exc:  # each protocol's package raises its own errors (aiohttp, botocore, ...)
        reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
        raise GpcubeError(f"cannot read this URL ({reason})", path=url) from exc
