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
    figure = OUT / "irfs_23523.png"
    if not figure.exists():
        plot_irfs(obs, figure)


def plot_irfs(obs, path: Path) -> None:
    """Four panels of one observation's IRFs, drawn from the xarray objects gpcube returns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6), layout="constrained")
    aeff = obs.aeff["aeff"]
    for offset in aeff["offset"].values[::2]:
        aeff.sel(offset=offset).plot(ax=axes[0], xscale="log", label=f"{offset:.1f} deg")
    axes[0].set(title="aeff_2d", ylabel="effective area [m2]", xlabel="true energy [TeV]")
    axes[0].legend(fontsize="small")
    migration = obs.edisp["migration"].isel(offset=1).T
    migration.plot(ax=axes[1], xscale="log", cmap="viridis", cbar_kwargs={"label": "dP/dmigra"})
    axes[1].set(
        title="edisp_2d (offset 0.5 deg)", xlabel="true energy [TeV]", ylabel="migra = E_reco / E_true"
    )
    rpsf = obs.psf["rpsf"].isel(offset=1)
    for energy in (0.5, 2.0, 10.0):
        rpsf.sel(energy_true=energy, method="nearest").plot(ax=axes[2], yscale="log", label=f"{energy} TeV")
    axes[2].set(title="psf_table (offset 0.5 deg)", xlabel="rad [deg]", ylabel="dP/dOmega [sr-1]")
    axes[2].legend(fontsize="small")
    bkg = obs.bkg["bkg"].sel(energy_reco=1.0, method="nearest")
    np.log10(bkg.where(bkg > 0)).plot(
        ax=axes[3], cmap="magma", cbar_kwargs={"label": "log10 rate [s-1 TeV-1 sr-1]"}
    )
    axes[3].set(title="bkg_3d at 1 TeV", xlabel="fov_lon [deg]", ylabel="fov_lat [deg]", aspect="equal")
    fig.suptitle(f"IRFs of H.E.S.S. run {obs.obs_id} (DL3 DR1), as read by gpcube")
    fig.savefig(path, dpi=80)
    plt.close(fig)


def setup(app):
    app.connect("builder-inited", generate)
    return {"parallel_read_safe": True}
