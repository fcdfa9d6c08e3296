"""The one exception type gpcube raises for bad input, and its warning class."""

from __future__ import annotations

__all__ = ["GpcubeError", "GpcubeWarning"]


class GpcubeError(Exception):
    """Bad input: a missing or unreadable file, a missing HDU, a wrong unit, a bad config key.

    The message names where the problem is (file, HDU, column or config key).
    ``path`` and ``hdu`` hold the same information for programs.

    Parameters
    ----------
    message : str
        What is wrong.
    path : str or path-like, optional
        The file, directory or URL it is in.
    hdu : str, optional
        The HDU it is in.

    Examples
    --------
    >>> import gpcube
    >>> try:
    ...     gpcube.DataStore.from_dir("no-such-store")
    ... except gpcube.GpcubeError as error:
    ...     print(error)
    ...     print(error.path)
    file no-such-store: data store directory not found
    no-such-store
    """

    def __init__(self, message: str, *, path: str | None = None, hdu: str | None = None):
        where = []
        if path is not None:
            where.append(f"file {path!s}")
        if hdu is not None:
            where.append(f"HDU {hdu!r}")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(prefix + message)
        self.path = None if path is None else str(path)
        self.hdu = hdu


class GpcubeWarning(UserWarning):
    """Something in the input was accepted but deserves attention."""
