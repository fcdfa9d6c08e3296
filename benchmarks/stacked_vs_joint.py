"""Does the README's Crab job, exported, fit like the joint fit of its four runs?

Runs the README job as a user does (``gpcube example``, ``gpcube run``, ``gpcube export``), makes
Gammapy 2.1's datasets of the same four runs with the same settings, and fits a point source with a
power law and a FoV background norm per dataset to:

* ``joint``: Gammapy's four unstacked per-run datasets, jointly (the reference);
* ``gpcube``: gpcube's export;
* ``gpcube, kernel not masked per bin``: gpcube's export with the energy-dispersion kernel averaged
  over every run with any safe bin (what gpcube did before archive format 2), rebuilt from the makers;
* ``gammapy stack``: Gammapy's ``MapDataset.stack`` of its per-run datasets.

Prints the fitted parameters and their distance from the joint fit in its sigmas (positions: minimum of
a parabola through the likelihood over +-2 sigma, as in ``tests/validation/test_stacked_vs_joint.py``),
and the predicted counts of the joint fit's source model near the Crab per reco bin beside the observed
excess; ``--figure PATH`` draws them.

Command (repository root)::

    python benchmarks/stacked_vs_joint.py --figure docs/_static/validation_crab_counts.png
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord

CRAB = SkyCoord(83.633, 22.014, unit="deg")
RUNS = (23523, 23526, 23559, 23592)
HESS = Path(__file__).resolve().parents[2] / "shared" / "data" / "hess-dl3-dr1"
PARAMETERS = ("index", "amplitude", "lon_0", "lat_0")


def _models(names):
    from gammapy.modeling.models import FoVBackgroundModel, PointSpatialModel, PowerLawSpectralModel, SkyModel

    spectral = PowerLawSpectralModel(index=2.5, amplitude="3e-11 cm-2 s-1 TeV-1", reference="1 TeV")
    spatial = PointSpatialModel(lon_0=CRAB.ra + 0.02 * u.deg, lat_0=CRAB.dec, frame="icrs")
    return [SkyModel(spectral, spatial, name="crab"), *(FoVBackgroundModel(dataset_name=n) for n in names)]


def gpcube_export(folder: Path) -> Path:
    from gpcube.cli import main

    job = folder / "crab.yaml"
    for argv in (["example", str(job)], ["run", str(job), "-q"], ["export", str(folder / "crab.zarr"),
                                                                  str(folder / "crab.fits")]):  # fmt: skip
        assert main(argv) == 0
    return folder / "crab.fits"


def unmasked_kernels(folder: Path, exported: Path) -> Path:
    """The export with its EDISP replaced by the exposure-weighted mean of the runs' raw kernels."""
    from astropy.io import fits

    import gpcube
    from gpcube import makers
    from gpcube.workflow.config import load_config

    config = load_config(folder / "crab.yaml")
    geom, binsz = config.geom(), config.irf.binsz
    irf = gpcube.open_archive(folder / "crab.zarr", irf=True).load()
    store = config.data.open()
    total = np.zeros(irf["edisp"].shape)
    for obs_id in RUNS:
        obs = store.observation(obs_id)
        kernels = makers.make_edisp_kernel_map(obs, geom, binsz_irf=binsz, max_offset=config.max_offset)
        weight = gpcube.open_archive(folder / "crab.zarr", obs_id=obs_id, irf=True)["exposure_irf"]
        term = (kernels * weight).compute(scheduler="sync")
        total += term.reindex_like(irf[["irf_y", "irf_x"]], fill_value=0).transpose(*irf["edisp"].dims).values
    weight = irf["exposure_irf"].values[:, None].astype(float)
    mean = np.divide(total, weight, out=np.zeros_like(total), where=weight > 0)
    out = folder / "unmasked.fits"
    with fits.open(exported) as hdus:
        hdus["EDISP"].data = mean.astype(np.float32)  # FITS order equals the (true, reco, irf_y, irf_x) dims
        hdus.writeto(out, overwrite=True)
    return out


def per_run_datasets():
    from gammapy.data import DataStore
    from gammapy.datasets import MapDataset
    from gammapy.makers import FoVBackgroundMaker, MapDatasetMaker, SafeMaskMaker
    from gammapy.maps import MapAxis, WcsGeom
    from regions import CircleSkyRegion

    store = DataStore.from_dir(HESS)
    energy = MapAxis.from_energy_bounds(0.5, 50, 10, unit="TeV", name="energy")
    energy_true = MapAxis.from_energy_bounds(0.3, 100, 20, unit="TeV", name="energy_true")
    geom = WcsGeom.create(skydir=CRAB, binsz=0.02, width=5, frame="icrs", proj="CAR", axes=[energy])
    exclusion = ~geom.region_mask([CircleSkyRegion(CRAB, 0.3 * u.deg)])
    out = []
    for obs_id in RUNS:
        observation = store.obs(obs_id)
        dataset = MapDataset.create(
            geom, energy_axis_true=energy_true, binsz_irf=0.2 * u.deg, name=str(obs_id)
        )
        dataset = MapDatasetMaker().run(dataset, observation)
        dataset = SafeMaskMaker(["offset-max", "aeff-default"], offset_max=2.5 * u.deg).run(
            dataset, observation
        )
        out.append(FoVBackgroundMaker(method="scale", exclusion_mask=exclusion).run(dataset))
    return out


def fit(datasets):
    """({parameter: (value, error)}, seconds, the fitted Datasets)."""
    from gammapy.datasets import Datasets
    from gammapy.modeling import Fit

    datasets = Datasets(datasets)
    datasets.models = _models(datasets.names)
    start = time.perf_counter()
    assert Fit().run(datasets).success
    seconds = time.perf_counter() - start
    parameters = datasets.models["crab"].parameters
    result = {name: (parameters[name].value, parameters[name].error) for name in PARAMETERS}
    for name in ("lon_0", "lat_0"):
        parameter, best = parameters[name], parameters[name].value
        steps = np.linspace(-2, 2, 9) * parameter.error
        stat = []
        for step in steps:
            parameter.value = best + step
            stat.append(datasets.stat_sum())
        parameter.value = best
        a, b, _ = np.polyfit(steps, stat, 2)
        result[name] = (best - b / (2 * a), parameter.error)
    return result, seconds, datasets


def near_crab_per_bin(datasets, model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(observed counts, fitted background, predicted source counts of ``model``) within 0.3 deg of the
    Crab per reco bin, summed over ``datasets`` inside their safe masks."""
    from regions import CircleSkyRegion

    counts = background = source = 0.0
    for dataset in datasets:
        region = dataset.counts.geom.to_image().region_mask([CircleSkyRegion(CRAB, 0.3 * u.deg)]).data
        mask = dataset.mask_safe.data * region
        counts = counts + (dataset.counts.data * mask).sum(axis=(1, 2))
        background = background + (dataset.npred_background().data * mask).sum(axis=(1, 2))
        copy = dataset.copy(name=f"{dataset.name}-source")
        copy.models = [model.copy(name="crab")]
        source = source + (copy.npred_signal().data * mask).sum(axis=(1, 2))
    return counts, background, source


def figure(path: Path, edges: np.ndarray, rows: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centres = np.sqrt(edges[:-1] * edges[1:])
    fig, ax = plt.subplots(figsize=(7, 4.2))
    counts, background = rows["observed"]
    excess = counts - background
    ax.errorbar(centres, excess, yerr=np.sqrt(counts), fmt="ko", label="observed excess (4 runs)")
    styles = {
        "joint": "C0-",
        "gpcube": "C2--",
        "gpcube, kernel not masked per bin": "C3:",
        "gammapy stack": "C1-.",
    }
    for label, style in styles.items():
        ax.step(
            edges, np.append(rows[label], rows[label][-1]), style, where="post", label=f"predicted: {label}"
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(0.5, None)
    ax.set_xlabel("reconstructed energy (TeV)")
    ax.set_ylabel("counts within 0.3 deg of the Crab")
    ax.set_title("README Crab job: the joint fit's source model, predicted per reco bin")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--figure", type=Path, help="draw the per-bin predicted counts to this PNG")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from gammapy.datasets import MapDataset

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        exported = gpcube_export(folder)
        unmasked = unmasked_kernels(folder, exported)
        runs = per_run_datasets()
        stack = runs[0].to_masked(name="gammapy-stack")
        for dataset in runs[1:]:
            stack.stack(dataset)
        candidates = {
            "joint": [d.copy(name=d.name) for d in runs],
            "gpcube": [MapDataset.read(exported, name="gpcube")],
            "gpcube, kernel not masked per bin": [MapDataset.read(unmasked, name="unmasked")],
            "gammapy stack": [stack],
        }
        results, fitted = {}, {}
        for label, datasets in candidates.items():
            results[label], seconds, fitted[label] = fit(datasets)
            print(f"fitted {label} in {seconds:.1f} s", flush=True)
        joint = results["joint"]
        print("\n| dataset | index | amplitude (1e-11 cm-2 s-1 TeV-1) | lon (deg) | lat (deg) | "
              "from the joint fit (sigma): index, amplitude, lon, lat |")  # fmt: skip
        print("|---|---|---|---|---|---|")
        for label, res in results.items():
            pulls = ", ".join(f"{(res[n][0] - joint[n][0]) / joint[n][1]:+.2f}" for n in PARAMETERS)
            print(f"| {label} | {res['index'][0]:.3f} ± {res['index'][1]:.3f} | "
                  f"{res['amplitude'][0] / 1e-11:.2f} ± {res['amplitude'][1] / 1e-11:.2f} | "
                  f"{res['lon_0'][0]:.4f} | {res['lat_0'][0]:.4f} | {pulls} |")  # fmt: skip
        model = fitted["joint"].models["crab"]
        counts, background, _ = near_crab_per_bin(runs, model)
        rows = {"observed": (counts, background)}
        for label in candidates:
            datasets = runs if label == "joint" else fitted[label]
            rows[label] = near_crab_per_bin(datasets, model)[2]
        edges = runs[0].counts.geom.axes["energy"].edges.to_value("TeV")
        print("\nwithin 0.3 deg of the Crab, the joint fit's source model; counts per reco bin")
        print("| reco bin (TeV) | observed | background | excess | " + " | ".join(candidates) + " |")
        print("|---" * (4 + len(candidates)) + "|")
        for i in range(len(edges) - 1):
            values = " | ".join(f"{rows[label][i]:.1f}" for label in candidates)
            print(f"| {edges[i]:.2f}-{edges[i + 1]:.2f} | {counts[i]:.0f} | {background[i]:.1f} | "
                  f"{counts[i] - background[i]:.1f} | {values} |")  # fmt: skip
        if args.figure:
            figure(args.figure, edges, rows)


if __name__ == "__main__":
    main()
