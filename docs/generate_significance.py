"""Significance maps for the docs, made by gpcube jobs at build time and drawn with the ``sky`` accessor.

Two jobs on the H.E.S.S. DL3 DR1 data: the 4 Crab runs (FoV background and ring background) and the
Galactic survey of MSH 15-52 and RX J1713.7-3946 (the 36 runs of ``benchmarks/mosaic.py``, adaptive
ring). Like the makers' figures they are redrawn only when gpcube's source or this file changed.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
OUT = HERE / "_generated"
FILES = ("significance_crab.png", "significance_survey.png", "significance_crab.txt")
CRAB = (83.633, 22.014)
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


def _job(store: Path, output: Path, obs_ids, geom: dict, background: dict):
    from gpcube.workflow.config import parse_config

    return parse_config({
        "data": {"store": str(store), "obs_ids": [int(i) for i in obs_ids]},
        "geom": {**geom, "binsz": 0.02, "energy_reco": {"min": 0.5, "max": 50, "nbins": 10},
                 "energy_true": {"min": 0.3, "max": 100, "nbins": 20}},
        "products": ["counts", "exposure", "background"],
        "safe_mask": {"methods": ["offset-max"], "offset_max": 2.5},
        "background": background,
        "output": str(output),
        "cluster": {"n_workers": 1, "threads_per_worker": 2, "processes": False},
    })  # fmt: skip


def _significance(config, radius: float):
    from gpcube.workflow import pipeline

    pipeline.run(config, progress=False)
    return pipeline.significance(config.output, radius).compute()


def _crab(store: Path, work: Path) -> dict:
    geom = {"frame": "icrs", "projection": "CAR", "center": list(CRAB), "width": [5.0, 5.0]}
    exclusion = {"circles": [[*CRAB, 0.3]]}
    runs = (23523, 23526, 23559, 23592)
    backgrounds = {
        "FoV background (Cash)": {"method": "fov", "exclusion": exclusion},
        "ring background (Li & Ma)": {"method": "ring", "exclusion": exclusion,
                                      "ring": {"r_in": 0.5, "width": 0.3, "energy_edges": "all"}},
    }  # fmt: skip
    return {
        title: _significance(_job(store, work / f"crab-{i}.zarr", runs, geom, background), 0.1)
        for i, (title, background) in enumerate(backgrounds.items())
    }


def _survey(store: Path, work: Path):
    from gpcube.io import DataStore

    table = DataStore.from_dir(store).obs_table
    lon, lat = np.asarray(table["GLON_PNT"], float), np.asarray(table["GLAT_PNT"], float)
    dist = np.degrees(np.arccos(np.clip(np.cos(np.radians(lat)) * np.cos(np.radians(lon - 330.0)), -1, 1)))
    runs = np.asarray(table["OBS_ID"])[(dist < 20) & (np.abs(lat) < 5)]
    geom = {"frame": "galactic", "projection": "CAR", "center": [333.974, -1.965], "width": [32.85, 9.115]}
    background = {
        "method": "adaptive_ring",
        "exclusion": {"circles": SURVEY_EXCLUSION},
        "adaptive_ring": {"r_in": 0.7, "width": 0.3, "r_out_max": 1.7, "stepsize": 0.1,
                          "threshold_alpha": 0.2, "energy_edges": "all"},
    }  # fmt: skip
    return _significance(_job(store, work / "survey.zarr", runs, geom, background), 0.1), len(runs)


def _draw(ax, maps, title: str) -> None:
    image = maps["sqrt_ts"].sky.plot(ax=ax, cmap="RdBu_r", vmin=-6, vmax=6)
    ax.set_title(title)
    image.colorbar.set_label("significance sqrt(TS)")


def plot_crab(maps: dict, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(12, 5), layout="constrained")
    lines = []
    for i, (title, sig) in enumerate(maps.items()):
        ax = fig.add_subplot(1, len(maps), i + 1, projection=sig.sky.wcs)
        _draw(ax, sig, title)
        y, x = np.unravel_index(np.nanargmax(sig["sqrt_ts"].values[0]), sig["sqrt_ts"].shape[1:])
        lines.append(f"{title}: peak sqrt(TS) {np.nanmax(sig['sqrt_ts'].values):.2f}, "
                     f"excess there {sig['excess'].values[0, y, x]:.1f}")  # fmt: skip
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return "\n".join(lines) + "\n"


def plot_survey(sig, n_runs: int, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(15, 5), layout="constrained")
    ax = fig.add_subplot(projection=sig.sky.wcs)
    _draw(ax, sig, f"{n_runs} H.E.S.S. runs, adaptive ring background, 0.1 deg correlation radius")
    fig.savefig(path, dpi=70)
    plt.close(fig)


def generate(store: Path) -> None:
    """Draw the significance figures into ``_generated`` unless they are up to date."""
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
        (OUT / "significance_crab.txt").write_text(
            plot_crab(_crab(store, work), OUT / "significance_crab.png")
        )
        plot_survey(*_survey(store, work), OUT / "significance_survey.png")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stamp_file.write_text(stamp)
