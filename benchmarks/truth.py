"""Injected truth: pulls of Gammapy fits of gpcube's stacked export, and gpcube's flux map, over many seeds.

For each seed, a store of 8 half-hour observations is simulated with the IRFs of 8 H.E.S.S. DL3 DR1
runs at zenith angles of 24-50 deg (aeff-default thresholds 0.33-1.07 TeV, inside the reco bins), a
point source (index 2.6) and a Gaussian one (sigma 0.2 deg, index 2.3); then ``gpcube run`` (safe mask
offset-max + aeff-default, FoV background with the sources excluded, products counts, exposure,
background, psf, edisp), ``gpcube export`` and ``gpcube significance`` (``tests/validation/truth.py``,
``BENCHMARK``). Gammapy 2.1 fits the exported ``MapDataset`` (both sources, a FoV background norm).
For the first ``--joint`` seeds, Gammapy also reduces each simulated observation with its own makers
(``MapDatasetMaker``, ``SafeMaskMaker``, ``FoVBackgroundMaker``) and fits them jointly: the reference.

Printed: per parameter, the mean pull ``(fitted - true) / error`` (with its standard error) and the
pull width (standard deviation) of both fits; the stacked fit minus the joint fit in units of the
joint fit's error, seed by seed; and the flux map at the point source (radius 0.4 deg, one band
0.3-30 TeV, the injected index) over the injected integral flux in the band, folded through the
stacked kernels (what ``gpcube significance`` does) and not (reco = true energy, the stacked
exposure). The pull histograms are drawn into ``--figure`` (default ``docs/_static/truth_pulls.png``)
and the tables written beside it (``.txt``). Run from the repository root::

    python benchmarks/truth.py [--seeds 20] [--joint 5] [--first 0] [--figure PATH] [--json PATH]
    python benchmarks/truth.py --results RUN.json [...]   # tables and figure of earlier runs
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from mosaic import DEFAULT_DATA  # noqa: E402

from tests.validation.truth import (  # noqa: E402
    BENCHMARK,
    fit_export,
    fit_joint,
    flux_ratio,
    psf_containment,
    pulls,
    run_gpcube,
    true_band_flux,
)

FIGURE = ROOT / "docs" / "_static" / "truth_pulls.png"
TARGET_MEAN, TARGET_WIDTH = 0.2, (0.8, 1.2)


def unfolded_flux_ratio(archive: Path) -> float:
    """The flux map without the stacked kernels (reco = true energy) at the point source, over the truth."""
    import gpcube
    from gpcube.estimators import estimate_excess_map

    setup = BENCHMARK
    maps = estimate_excess_map(gpcube.open_archive(archive).load(), setup.flux_radius,
                               spectral_index=setup.point.index)  # fmt: skip
    x, y = maps.sky.geom.coord_to_idx(*setup.point.position)
    return float(maps["flux"].values[0, int(y), int(x)]) / true_band_flux(setup.point, setup.energy_reco[:2])


def one_seed(seed: int, data: Path, work: Path, joint: bool) -> dict:
    """Simulate, reduce, fit (and fit jointly); the pulls, fits and flux ratios of one seed."""
    start = time.perf_counter()
    paths = run_gpcube(BENCHMARK, data, work / f"seed-{seed}", seed)
    reduced = time.perf_counter()
    fitted = fit_export(paths.export, BENCHMARK)
    out = {
        "seed": seed, "stacked": _keyed(pulls(fitted, BENCHMARK)), "stacked_fit": fitted,
        "flux_ratio": flux_ratio(paths.archive, BENCHMARK),
        "flux_unfolded": unfolded_flux_ratio(paths.archive),
        "containment": psf_containment(paths.archive, BENCHMARK), "seconds_gpcube": reduced - start,
        "seconds_fit": time.perf_counter() - reduced,
    }  # fmt: skip
    if joint:
        begin = time.perf_counter()
        out["joint_fit"] = fit_joint(paths.store, BENCHMARK, start=fitted)
        out["joint"] = _keyed(pulls(out["joint_fit"], BENCHMARK))
        out["seconds_joint"] = time.perf_counter() - begin
    shutil.rmtree(work / f"seed-{seed}", ignore_errors=True)
    return out


def _keyed(values: dict[tuple[str, str], float]) -> dict[str, float]:
    return {f"{source}.{name}": value for (source, name), value in values.items()}


def _stats(values: list[float]) -> tuple[float, float, float]:
    """Mean, its standard error, and the standard deviation (ddof 1)."""
    array = np.asarray(values, dtype=float)
    std = float(np.std(array, ddof=1)) if len(array) > 1 else float("nan")
    return float(array.mean()), std / np.sqrt(len(array)), std


def _verdict(mean: float, std: float, has_target: bool) -> str:
    if not has_target:
        return "(no target)"
    ok = abs(mean) <= TARGET_MEAN and TARGET_WIDTH[0] <= std <= TARGET_WIDTH[1]
    return "met" if ok else "NOT met"


def pull_table(results: list[dict]) -> list[str]:
    """Mean pull (+- standard error) and width per parameter, for the stacked export and the joint fit."""
    keys = list(results[0]["stacked"])
    joint = [r for r in results if "joint" in r]
    lines = [f"| parameter | gpcube export: mean pull | width | N | joint fit: mean pull | width | N | "
             f"target (mean within +-{TARGET_MEAN}, width {TARGET_WIDTH[0]}-{TARGET_WIDTH[1]}) |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for key in keys:
        mean, sem, std = _stats([r["stacked"][key] for r in results])
        row = f"| {key} | {mean:+.2f} +- {sem:.2f} | {std:.2f} | {len(results)} |"
        if joint:
            j_mean, j_sem, j_std = _stats([r["joint"][key] for r in joint])
            row += f" {j_mean:+.2f} +- {j_sem:.2f} | {j_std:.2f} | {len(joint)} |"
        else:
            row += " | | |"
        lines.append(row + f" {_verdict(mean, std, not key.endswith('sigma'))} |")
    return lines


def difference_table(results: list[dict]) -> list[str]:
    """Stacked minus joint fit, in units of the joint fit's error, for the seeds with both."""
    joint = [r for r in results if "joint_fit" in r]
    if not joint:
        return []
    lines = [f"| parameter ({len(joint)} seeds) | (export - joint) / joint error: mean | min | max | "
             "export error / joint error |", "|---|---:|---:|---:|---:|"]  # fmt: skip
    for source, params in joint[0]["joint_fit"].items():
        for name in params:
            diff = [(r["stacked_fit"][source][name][0] - r["joint_fit"][source][name][0])
                    / r["joint_fit"][source][name][1] for r in joint]  # fmt: skip
            ratio = [r["stacked_fit"][source][name][1] / r["joint_fit"][source][name][1] for r in joint]
            lines.append(f"| {source}.{name} | {np.mean(diff):+.3f} | {np.min(diff):+.3f} | "
                         f"{np.max(diff):+.3f} | {np.mean(ratio):.3f} |")  # fmt: skip
    return lines


def flux_table(results: list[dict]) -> list[str]:
    """The flux map at the point source over the injected flux in the band."""
    band = f"{BENCHMARK.energy_reco[0]:g}-{BENCHMARK.energy_reco[1]:g} TeV"
    lines = [f"| flux map at the point source / injected flux {band} (radius {BENCHMARK.flux_radius} deg) "
             "| mean | std | N |", "|---|---:|---:|---:|"]  # fmt: skip
    for label, key in (("gpcube significance (folded through the stacked kernels)", "flux_ratio"),
                       ("reco = true energy, stacked exposure (before)", "flux_unfolded"),
                       ("PSF containment within the radius (expected ratio)", "containment")):  # fmt: skip
        mean, sem, std = _stats([r[key] for r in results])
        lines.append(f"| {label} | {mean:.4f} +- {sem:.4f} | {std:.4f} | {len(results)} |")
    return lines


def draw(results: list[dict], path: Path) -> None:
    """Pull histograms (gpcube export, joint fit) per source (row) and parameter, with the unit normal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ("index", "amplitude", "lon_0", "lat_0", "sigma")
    sources = list(dict.fromkeys(key.split(".")[0] for key in results[0]["stacked"]))
    fig, axes = plt.subplots(len(sources), len(names), figsize=(2.7 * len(names), 2.5 * len(sources)),
                             squeeze=False)  # fmt: skip
    bins, x = np.linspace(-4, 4, 17), np.linspace(-4, 4, 200)
    joint = [r for r in results if "joint" in r]
    for row, source in zip(axes, sources, strict=True):
        for ax, name in zip(row, names, strict=True):
            key = f"{source}.{name}"
            if key not in results[0]["stacked"]:
                ax.axis("off")
                continue
            ax.hist([r["stacked"][key] for r in results], bins=bins, density=True, color="C0", alpha=0.6,
                    label=f"gpcube export ({len(results)} seeds)")  # fmt: skip
            if joint:
                ax.hist([r["joint"][key] for r in joint], bins=bins, density=True, histtype="step",
                        color="C1", lw=2, label=f"joint fit ({len(joint)} seeds)")  # fmt: skip
            ax.plot(x, np.exp(-0.5 * x**2) / np.sqrt(2 * np.pi), "k-", lw=1, label="unit normal")
            ax.set_title(key, fontsize=9)
            ax.set_xlabel("(fitted - true) / error", fontsize=8)
            ax.tick_params(labelsize=7)
    blank = [ax for ax in axes.flat if not ax.axison]  # the legend goes into the first empty panel
    holder = blank[0] if blank else axes[0, 0]
    holder.legend(*axes[0, 0].get_legend_handles_labels(), loc="center" if blank else "best", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="number of seeds")
    parser.add_argument("--first", type=int, default=0, help="first seed")
    parser.add_argument("--joint", type=int, default=5, help="the first N seeds also get the joint fit")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the H.E.S.S. DL3 DR1 store")
    parser.add_argument("--work", type=Path, default=None, help="parent of the work dir (default: /tmp)")
    parser.add_argument("--figure", type=Path, default=FIGURE, help="the pull histograms (PNG)")
    parser.add_argument("--json", type=Path, default=None, help="also write every seed's results here")
    parser.add_argument("--results", type=Path, nargs="*", default=[],
                        help="only print the tables and draw the figure of earlier --json files")  # fmt: skip
    args = parser.parse_args()
    if args.results:
        results = [r for path in args.results for r in json.loads(path.read_text())]
    else:
        results = []
        work = Path(tempfile.mkdtemp(prefix="gpcube-truth-", dir=args.work))
        try:
            for seed in range(args.first, args.first + args.seeds):
                results.append(one_seed(seed, args.data, work, seed - args.first < args.joint))
                r = results[-1]
                print(f"seed {seed}: gpcube {r['seconds_gpcube']:.1f} s, fit {r['seconds_fit']:.1f} s"
                      + (f", joint {r['seconds_joint']:.1f} s" if "joint" in r else "")
                      + f"; flux {r['flux_ratio']:.3f}; pulls "
                      + " ".join(f"{v:+.2f}" for v in r["stacked"].values()), flush=True)  # fmt: skip
                if args.json:
                    args.json.write_text(json.dumps(results))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    tables = "\n\n".join("\n".join(t) for t in (pull_table(results), difference_table(results),
                                                      flux_table(results)) if t)  # fmt: skip
    print("\n" + tables)
    draw(results, args.figure)
    args.figure.with_suffix(".txt").write_text(tables + "\n")
    print(f"\nwrote {args.figure} and {args.figure.with_suffix('.txt')}")


if __name__ == "__main__":
    main()
