"""Make the example data shipped in ``gpcube/data/hess-dl3-dr1-crab``: the 4 Crab runs of H.E.S.S. DL3 DR1.

Usage::

    python tools/make_crab_subset.py /work/shared/data/hess-dl3-dr1 gpcube/data/hess-dl3-dr1-crab

Copies the runs' files byte for byte, writes the HDU and observation indexes with only their rows (the
original HDUs otherwise untouched: column formats, units and header keywords), copies ``README.txt``
verbatim and writes ``NOTICE.md``. The output is reproducible: the gzip streams carry no time stamp.
"""

from __future__ import annotations

import argparse
import gzip
import io
import shutil
import sys
from pathlib import Path

import numpy as np
from astropy.io import fits

CRAB_OBS_IDS = (23523, 23526, 23559, 23592)
INDEX_FILES = ("hdu-index.fits.gz", "obs-index.fits.gz")

NOTICE = """\
# H.E.S.S. DL3 DR1: the 4 Crab Nebula runs

This folder is a subset of the **H.E.S.S. DL3 public test data release 1** (HESS DL3 DR1,
H.E.S.S. collaboration, 2018), <https://www.mpi-hd.mpg.de/hfm/HESS/pages/dl3-dr1/>,
<https://zenodo.org/record/1421099>. It holds the four Crab Nebula observations, obs_ids
{obs_ids}, so that gpcube's examples and tests run without downloading anything.

## Contents and provenance

- `data/hess_dl3_dr1_obs_id_0XXXXX.fits.gz`: byte-for-byte copies of the release files, as
  distributed in the Gammapy data repository (<https://github.com/gammapy/gammapy-data>, folder
  `hess-dl3-dr1`), which adds to each run the background model IRF released later by
  L. Mohrmann et al. (2019, A&A 632, A72, <https://doi.org/10.1051/0004-6361/201936452>;
  <https://github.com/lmohrmann/hess_ost_paper_material>).
- `hdu-index.fits.gz`, `obs-index.fits.gz`: the index files of that copy, filtered by gpcube to the rows of
  these four runs; column formats, units and header keywords are unchanged.
- `README.txt`: the release's README with its terms of use, copied verbatim. Those terms must be included
  in all copies in full or part of the data.

The subset was made by gpcube's `tools/make_crab_subset.py`.

## Licence and attribution

The release is licensed under the Creative Commons Attribution 4.0 International licence (CC BY 4.0,
<https://creativecommons.org/licenses/by/4.0/>), with the terms of use in `README.txt`: no scientific
publications may be derived from the data, and using the data for new claims about the astrophysical
sources is not permitted. Changes made here: only the selection of four runs and the filtering of the
index files described above; the data files are unmodified.

When using this data, please include the following attribution:

    This work made use of data from the H.E.S.S. DL3 public test
    data release 1 (HESS DL3 DR1, H.E.S.S. collaboration, 2018).

or the shorter version, e.g. for presentations: *HESS DL3 DR1, H.E.S.S. collaboration*.
"""


def filter_index(path: Path, obs_ids: tuple[int, ...]) -> tuple[bytes, list[str]]:
    """The index file at ``path`` with only the rows of ``obs_ids`` in its tables that have OBS_ID.

    The filtered tables keep their header card for card (NAXIS2 aside) and their rows byte for byte;
    other HDUs are copied as they are.

    Returns
    -------
    bytes, list of str
        The new (uncompressed) FITS file; the ``FILE_DIR/FILE_NAME`` paths of the kept HDU-index rows.
    """
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    out, files = io.BytesIO(), []
    with fits.open(io.BytesIO(raw)) as hdus:
        for hdu in hdus:
            info = hdu.fileinfo()
            if not (isinstance(hdu, fits.BinTableHDU) and "OBS_ID" in hdu.columns.names):
                out.write(raw[info["hdrLoc"] : info["datLoc"] + info["datSpan"]])
                continue
            if hdu.header["PCOUNT"] != 0:
                raise SystemExit(f"{path}: HDU {hdu.name} has a heap, not supported")
            keep = np.isin(hdu.data["OBS_ID"], obs_ids)
            missing = sorted(set(obs_ids) - set(int(i) for i in hdu.data["OBS_ID"][keep]))
            if missing:
                raise SystemExit(f"{path}: HDU {hdu.name} has no rows for obs_ids {missing}")
            width, start = hdu.header["NAXIS1"], info["datLoc"]
            data = b"".join(raw[start + i * width : start + (i + 1) * width] for i in np.flatnonzero(keep))
            header = hdu.header.copy()
            header["NAXIS2"] = int(keep.sum())
            out.write(header.tostring().encode("ascii") + data + bytes(-len(data) % 2880))
            if "FILE_NAME" in hdu.columns.names:
                rows = hdu.data[keep]
                files += [
                    f"{d.strip()}/{n.strip()}"
                    for d, n in zip(rows["FILE_DIR"], rows["FILE_NAME"], strict=True)
                ]
    with fits.open(io.BytesIO(out.getvalue())) as check:
        check.verify("exception")
    return out.getvalue(), sorted(set(files))


def write_gzip(data: bytes, path: Path) -> None:
    """Write ``data`` gzip-compressed without a time stamp or file name (reproducible bytes)."""
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(data)


def make_subset(src: Path, dst: Path, obs_ids: tuple[int, ...] = CRAB_OBS_IDS) -> list[Path]:
    """Write the subset of the data store ``src`` for ``obs_ids`` into ``dst``; return the files written."""
    (dst / "data").mkdir(parents=True, exist_ok=True)
    written = []
    files: list[str] = []
    for name in INDEX_FILES:
        data, referenced = filter_index(src / name, obs_ids)
        files += referenced
        write_gzip(data, dst / name)
        written.append(dst / name)
    for rel in sorted(set(files)):
        if not rel.startswith("data/") or "/" in rel.removeprefix("data/"):
            raise SystemExit(f"unexpected file location in the HDU index: {rel}")
        shutil.copyfile(src / rel, dst / rel)
        written.append(dst / rel)
    shutil.copyfile(src / "README.txt", dst / "README.txt")
    (dst / "NOTICE.md").write_text(NOTICE.format(obs_ids=", ".join(str(i) for i in obs_ids)))
    return [*written, dst / "README.txt", dst / "NOTICE.md"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="the full H.E.S.S. DL3 DR1 data store")
    parser.add_argument("dst", type=Path, help="output folder")
    parser.add_argument("--obs-ids", type=int, nargs="+", default=list(CRAB_OBS_IDS))
    args = parser.parse_args(argv)
    for path in make_subset(args.src, args.dst, tuple(args.obs_ids)):
        print(f"{path.stat().st_size:>10,d}  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
