"""Significance maps for the docs, made at build time by the ``gpcube`` commands that the page prints.

Each job runs in a temporary directory as a user runs it (``python -m gpcube.cli`` in a subprocess),
and the page shows the commands with their standard output (the temporary directory's path taken out
of it) and the maps drawn from the archives they wrote:

* the README's Crab job (``gpcube example crab.yaml``: FoV background) and the same job with a ring
  background (``crab-ring.yaml``: ``crab.yaml`` with the keys of ``significance_crab_ring.yaml``);
* the Galactic survey of MSH 15-52 and RX J1713.7-3946 (the 36 H.E.S.S. DL3 DR1 runs of
  ``benchmarks/mosaic.py``, adaptive ring): ``survey.yaml``, on the data store linked as
  ``hess-dl3-dr1`` in the directory;
* the flux at the Crab with and without the energy-dispersion kernels (``crab-noedisp.yaml``), by the
  Python of :data:`FLUX_CODE`.

Like the makers' figures they are redrawn only when gpcube's source or this file changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

HERE = Path(__file__).parent
OUT = HERE / "_generated"
FILES = (
    "significance_crab.png",
    "significance_crab.txt",
    "significance_crab_ring.yaml",
    "significance_crab_ring.txt",
    "significance_crab_noedisp.yaml",
    "significance_crab_noedisp.txt",
    "significance_flux.py",
    "significance_flux.txt",
    "significance_survey.png",
    "significance_survey.yaml",
    "significance_survey.txt",
)
CRAB = (83.633, 22.014)
#: What ``crab-ring.yaml`` changes in the example job ``crab.yaml``.
CRAB_RING = {
    "background": {
        "method": "ring",
        "exclusion": {"circles": [[*CRAB, 0.3]]},
        "ring": {"r_in": 0.5, "width": 0.3, "energy_edges": "all"},
    },
    "output": "crab-ring.zarr",
}
#: What ``crab-noedisp.yaml`` changes in ``crab.yaml``: no energy-dispersion kernels to fold the flux with.
CRAB_NOEDISP = {"products": ["counts", "exposure", "background"], "output": "crab-noedisp.zarr"}
#: The flux at the Crab's peak with and without the kernels (run in the jobs' directory; the page shows it).
FLUX_CODE = """\
import gpcube
import numpy as np

folded = gpcube.open_archive("crab.zarr", significance=True).isel(energy_band=0)
plain = gpcube.open_archive("crab-noedisp.zarr", significance=True).isel(energy_band=0)
peak = np.unravel_index(np.nanargmax(folded["sqrt_ts"].values), folded["sqrt_ts"].shape)
print("flux_edisp:", folded["flux"].attrs["flux_edisp"], plain["flux"].attrs["flux_edisp"])
f, p = float(folded["flux"].values[peak]), float(plain["flux"].values[peak])
print(f"flux at the peak: {f:.3e} cm-2 s-1 folded, {p:.3e} without kernels ({p / f - 1:+.1%})")
"""
#: Exclusion circles (l, b, radius in deg) of the known sources in the survey region.
SURVEY_EXCLUSION = [
    [320.33, -1.19, 0.4],  # MSH 15-52
    [347.31, -0.46, 0.8],  # RX J1713.7-3946
    [331.52, -0.58, 0.4],  # HESS J1614-518
    [332.39, -0.14, 0.3],  # HESS J1616-508
    [336.38, 0.19, 0.3],  # HESS J1632-478
    [338.32, -0.02, 0.3],  # HESS J1640-465
    [339.5, -0.8, 0.6],  # Westerlund 1
    [344.3, -0.2, 0.3],  # HESS J1702-420
    [345.68, -0.47, 0.3],  # HESS J1708-410
    [327.15, -1.07, 0.2],  # G327.1-1.1
]


def _dump(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)


def _gpcube(work: Path, *args: str) -> str:
    """Run ``gpcube ARGS`` in ``work``; the command and its standard output, as a console shows them."""
    import gpcube

    root = str(Path(gpcube.__file__).parents[1])  # the gpcube this build documents
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "gpcube.cli", *args], cwd=work, env=env,
                            capture_output=True, text=True)  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"gpcube {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return f"$ gpcube {' '.join(args)}\n" + result.stdout.replace(f"{work}{os.sep}", "")


def _crab(work: Path) -> tuple[str, str, str]:
    """The README's Crab job and its ring and no-kernel variants, run; their transcripts."""
    fov = [
        _gpcube(work, "example", "crab.yaml"),
        _gpcube(work, "run", "crab.yaml"),
        _gpcube(work, "significance", "crab.zarr", "--radius", "0.1", "--fits", "crab_significance.fits"),
    ]
    job = yaml.safe_load((work / "crab.yaml").read_text())
    (work / "crab-ring.yaml").write_text(_dump({**job, **CRAB_RING}))
    ring = [
        _gpcube(work, "run", "crab-ring.yaml"),
        _gpcube(work, "significance", "crab-ring.zarr", "--radius", "0.1"),
    ]
    (work / "crab-noedisp.yaml").write_text(_dump({**job, **CRAB_NOEDISP}))
    noedisp = [
        _gpcube(work, "run", "crab-noedisp.yaml"),
        _gpcube(work, "significance", "crab-noedisp.zarr", "--radius", "0.1"),
    ]
    return "".join(fov), "".join(ring), "".join(noedisp)


def _flux(work: Path) -> str:
    """What :data:`FLUX_CODE` prints, run in ``work``."""
    import contextlib
    import io

    out = io.StringIO()
    cwd = Path.cwd()
    try:
        os.chdir(work)
        with contextlib.redirect_stdout(out):
            exec(FLUX_CODE, {})
    finally:
        os.chdir(cwd)
    return out.getvalue()


def survey_job(store: Path) -> dict:
    """The survey job: the runs within 20 deg of (l, b) = (330, 0) deg and within 5 deg of the plane."""
    from gpcube.io import DataStore

    table = DataStore.from_dir(store).obs_table
    lon, lat = np.asarray(table["GLON_PNT"], float), np.asarray(table["GLAT_PNT"], float)
    dist = np.degrees(np.arccos(np.clip(np.cos(np.radians(lat)) * np.cos(np.radians(lon - 330.0)), -1, 1)))
    runs = np.asarray(table["OBS_ID"])[(dist < 20) & (np.abs(lat) < 5)]
    return {
        "data": {"store": "hess-dl3-dr1", "obs_ids": [int(i) for i in runs]},
        "geom": {"frame": "galactic", "projection": "CAR", "center": [333.974, -1.965],
                 "width": [32.85, 9.115], "binsz": 0.02, "energy_reco": {"min": 0.5, "max": 50, "nbins": 10},
                 "energy_true": {"min": 0.3, "max": 100, "nbins": 20}},
        "products": ["counts", "exposure", "background"],
        "safe_mask": {"methods": ["offset-max"], "offset_max": 2.5},
        "background": {
            "method": "adaptive_ring",
            "exclusion": {"circles": SURVEY_EXCLUSION},
            "adaptive_ring": {"r_in": 0.7, "width": 0.3, "r_out_max": 1.7, "stepsize": 0.1,
                              "threshold_alpha": 0.2, "energy_edges": "all"},
        },
        "output": "survey.zarr",
        "cluster": {"n_workers": 1, "threads_per_worker": 2, "processes": False},
    }  # fmt: skip


def _survey(store: Path, work: Path) -> tuple[str, str, int]:
    """The survey job, run; its config's text, its transcript and its number of runs."""
    (work / "hess-dl3-dr1").symlink_to(Path(store).resolve(), target_is_directory=True)
    job = survey_job(store)
    text = _dump(job)
    (work / "survey.yaml").write_text(text)
    transcript = _gpcube(work, "run", "survey.yaml") + _gpcube(
        work, "significance", "survey.zarr", "--radius", "0.1"
    )
    return text, transcript, len(job["data"]["obs_ids"])


def _maps(path: Path):
    import gpcube

    return gpcube.open_archive(path, significance=True).compute()


def _draw(ax, maps, title: str) -> None:
    image = maps["sqrt_ts"].sky.plot(ax=ax, cmap="RdBu_r", vmin=-6, vmax=6)
    ax.set_title(title)
    image.colorbar.set_label("significance sqrt(TS)")


def plot_crab(maps: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(12, 5), layout="constrained")
    for i, (title, sig) in enumerate(maps.items()):
        ax = fig.add_subplot(1, len(maps), i + 1, projection=sig.sky.wcs)
        _draw(ax, sig, title)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_survey(sig, n_runs: int, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(15, 5), layout="constrained")
    ax = fig.add_subplot(projection=sig.sky.wcs)
    _draw(ax, sig, f"{n_runs} H.E.S.S. runs, adaptive ring background, 0.1 deg correlation radius")
    fig.savefig(path, dpi=70)
    plt.close(fig)


def generate(store: Path) -> None:
    """Run the jobs and draw the significance figures into ``_generated`` unless they are up to date."""
    stamp_file = OUT / "significance.stamp"
    from generate_examples import source_stamp

    stamp = source_stamp(__file__)
    if stamp_file.exists() and stamp_file.read_text() == stamp and all((OUT / f).exists() for f in FILES):
        return
    import matplotlib

    matplotlib.use("Agg")
    OUT.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpcube-docs-"))
    try:
        fov, ring, noedisp = _crab(work)
        (OUT / "significance_crab.txt").write_text(fov)
        (OUT / "significance_crab_ring.yaml").write_text(_dump(CRAB_RING))
        (OUT / "significance_crab_ring.txt").write_text(ring)
        (OUT / "significance_crab_noedisp.yaml").write_text(_dump(CRAB_NOEDISP))
        (OUT / "significance_crab_noedisp.txt").write_text(noedisp)
        (OUT / "significance_flux.py").write_text(FLUX_CODE)
        (OUT / "significance_flux.txt").write_text(_flux(work))
        maps = {
            "crab.zarr: FoV background (Cash)": _maps(work / "crab.zarr"),
            "crab-ring.zarr: ring background (Li & Ma)": _maps(work / "crab-ring.zarr"),
        }
        plot_crab(maps, OUT / "significance_crab.png")
        text, transcript, n_runs = _survey(store, work)
        (OUT / "significance_survey.yaml").write_text(text)
        (OUT / "significance_survey.txt").write_text(transcript)
        plot_survey(_maps(work / "survey.zarr"), n_runs, OUT / "significance_survey.png")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stamp_file.write_text(stamp)
