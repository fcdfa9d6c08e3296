"""Write FITS binary tables row block by row block, without holding the table in memory.

:class:`StreamingTable` writes a header with ``NAXIS2 = 0``, appends big-endian rows as they come,
pads the data to a 2880-byte block, then seeks back and rewrites the header with the final row count
(the header has the same cards, so the same length). Header cards are formatted here in the FITS
fixed format (astropy's ``Header`` costs tens of ms per header, which would dominate small
observations); nothing time-dependent is written, so the same rows give the same bytes.
"""

from __future__ import annotations

import gzip
import io
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
from astropy.io import fits
from astropy.table import Table

__all__ = [
    "Column", "StreamingTable", "card", "gzip_file", "header_bytes", "pad", "primary_header", "table_header",
    "write_index",
]  # fmt: skip

BLOCK = 2880
_NUMPY = {"K": ">i8", "J": ">i4", "D": ">f8", "E": ">f4"}

#: A column: (name, TFORM code of one scalar: K, J, D or E, unit).
Column = tuple[str, str, str]


def pad(nbytes: int) -> bytes:
    """Zero bytes completing ``nbytes`` of data to a whole FITS block."""
    return b"\0" * (-nbytes % BLOCK)


def _value(value) -> str:
    """A header value in the FITS fixed format (strings from column 11, numbers right-justified to 30)."""
    if isinstance(value, str):
        text = "'" + value.replace("'", "''").ljust(8) + "'"
        if len(text) > 70:
            raise ValueError(f"header string too long: {value!r}")
        return text.ljust(20)
    if isinstance(value, bool | np.bool_):
        text = "T" if value else "F"
    elif isinstance(value, int | np.integer):
        text = str(int(value))
    else:
        value = float(value)
        if not np.isfinite(value):
            raise ValueError(f"header value must be finite, got {value!r}")
        text = repr(value).upper()
        if len(text) > 20:
            text = f"{value:.15G}"
        mantissa, _, exponent = text.partition("E")
        if "." not in mantissa:
            text = mantissa + ".0" + ("E" + exponent if exponent else "")
    return text.rjust(20)


def card(key: str, value, comment: str = "") -> bytes:
    """One 80-character header card ``KEY     = value / comment`` (the comment is cut to fit)."""
    text = f"{key.upper():<8}= {_value(value)}"
    if comment:
        text += f" / {comment}"
    return text[:80].ljust(80).encode("ascii")


def header_bytes(cards: Sequence[tuple]) -> bytes:
    """A header from ``(key, value[, comment])`` tuples, with the END card, padded to whole blocks."""
    text = b"".join(card(*c) for c in cards) + b"END".ljust(80)
    return text + b" " * (-len(text) % BLOCK)


def primary_header(cards: Sequence[tuple] = ()) -> bytes:
    """An empty primary HDU (``NAXIS = 0``) with extra ``(key, value, comment)`` cards."""
    return header_bytes([("SIMPLE", True), ("BITPIX", 8), ("NAXIS", 0), ("EXTEND", True), *cards])


def table_header(extname: str, columns: Sequence[Column], nrows: int, cards: Sequence[tuple] = ()) -> bytes:
    """The header of a binary table of scalar ``columns`` with ``nrows`` rows, then ``cards``."""
    rowlen = sum(np.dtype(_NUMPY[code]).itemsize for _, code, _ in columns)
    header = [
        ("XTENSION", "BINTABLE", "binary table extension"), ("BITPIX", 8), ("NAXIS", 2),
        ("NAXIS1", rowlen, "bytes per row"), ("NAXIS2", nrows, "rows"), ("PCOUNT", 0), ("GCOUNT", 1),
        ("TFIELDS", len(columns)),
    ]  # fmt: skip
    for i, (name, code, unit) in enumerate(columns, start=1):
        header += [(f"TTYPE{i}", name), (f"TFORM{i}", f"1{code}")] + ([(f"TUNIT{i}", unit)] if unit else [])
    return header_bytes([*header, ("EXTNAME", extname), *cards])


def row_dtype(columns: Sequence[Column]) -> np.dtype:
    """The big-endian structured dtype of one row."""
    return np.dtype([(name, _NUMPY[code]) for name, code, _ in columns])


class StreamingTable:
    """A binary table written to an open, seekable file as rows arrive.

    Parameters
    ----------
    file : binary file
        Positioned where the HDU starts.
    extname, columns, cards
        As for :func:`table_header`.
    """

    def __init__(self, file: BinaryIO, extname: str, columns: Sequence[Column], cards: Sequence[tuple] = ()):
        self.file, self.extname, self.columns, self.cards = file, extname, list(columns), list(cards)
        self.dtype = row_dtype(columns)
        self.start = file.tell()
        self.header_size = len(table_header(extname, columns, 0, cards))
        file.write(table_header(extname, columns, 0, cards))
        self.nrows = 0

    def append(self, data: dict[str, np.ndarray]) -> None:
        """Append rows given as one array per column (converted to the column's type)."""
        n = len(next(iter(data.values())))
        rows = np.empty(n, dtype=self.dtype)
        for name in self.dtype.names:
            rows[name] = data[name]
        self.file.write(rows.tobytes())
        self.nrows += n

    def close(self) -> int:
        """Pad the data, write the final header; returns the HDU's size in bytes."""
        nbytes = self.nrows * self.dtype.itemsize
        self.file.write(pad(nbytes))
        end = self.file.tell()
        header = table_header(self.extname, self.columns, self.nrows, self.cards)
        if len(header) != self.header_size:
            raise RuntimeError("the final header changed length")  # cannot happen: same cards
        self.file.seek(self.start)
        self.file.write(header)
        self.file.seek(end)
        return end - self.start


def gzip_file(source: Path, target: Path, level: int = 1) -> None:
    """Compress ``source`` into ``target`` (no file name or time in the gzip header: reproducible).

    Level 1: event lists of float columns compress about as well as at level 6, twice as fast.
    """
    with open(source, "rb") as raw, open(target, "wb") as out:
        with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=level) as packed:
            shutil.copyfileobj(raw, packed, length=1 << 22)


def write_index(path: Path, table: Table, extname: str, cards: Sequence[tuple]) -> None:
    """Write ``table`` as a gzipped single-table FITS file named ``extname`` with header ``cards``."""
    hdu = fits.BinTableHDU(table, name=extname)
    for card in cards:
        hdu.header.append(card)
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buffer)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as out:
        with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as packed:
            packed.write(buffer.getvalue())
    tmp.replace(path)
