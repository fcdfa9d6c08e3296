"""Sphinx extension: before a build, write text outputs of real data that the pages include.

The data-model page shows reprs of a real H.E.S.S. observation; generating them at build time
keeps the page true to the code. The data directory is ``GPCUBE_HESS_DL3_DR1`` or
``../shared/data/hess-dl3-dr1`` beside the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

import xarray as xr

HERE = Path(__file__).parent
OUT = HERE / "_generated"
HESS = Path(os.environ.get("GPCUBE_HESS_DL3_DR1", HERE.parent.parent / "shared" / "data" / "hess-dl3-dr1"))


def _write(name: str, text: str) -> None:
    path = OUT / name
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def generate(app=None) -> None:
    import gpcube

    OUT.mkdir(exist_ok=True)
    store = gpcube.DataStore.from_dir(HESS)
    obs = store.observation(23523)
    with xr.set_options(display_width=100, display_max_rows=40):
        _write(
            "store.txt",
            f"{store!r}\n{store.obs_table['OBS_ID', 'OBJECT', 'RA_PNT', 'DEC_PNT', 'LIVETIME'][:5]}\n",
        )
        _write("events.txt", repr(obs.events) + "\n")
        _write("pointing.txt", f"{obs.pointing!r}\nlivetime={obs.livetime} s, ontime={obs.ontime} s\n")
        for part in ("aeff", "edisp", "psf", "bkg"):
            _write(f"{part}.txt", repr(getattr(obs, part)) + "\n")


def setup(app):
    app.connect("builder-inited", generate)
    return {"parallel_read_safe": True}
