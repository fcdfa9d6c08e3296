"""Ring background and significance on the 36-run H.E.S.S. survey: gpcube against gammapy 2.1 (issue 5).

The runs and the geometry of ``benchmarks/mosaic.py``: galactic CAR 1643 x 456 px at 0.02 deg, reco
0.5-50 TeV (10 bins), true 0.3-100 TeV (20 bins), safe mask offset-max 2.5 deg, cutouts of 2 x
offset-max, products counts, exposure and background. Ring of r_in 0.5 deg and width 0.3 deg outside
the exclusion circles ``SURVEY_EXCLUSION`` of ``docs/generate_significance.py``; correlation radius
0.1 deg; one band 0.5-50 TeV for the significance. Two measurements:

* **stage** (ring + stacking + significance; inputs already in memory; timed in process, a fresh
  process per tool and repeat):

  - gammapy: the 36 ``MapDataset`` (``MapDatasetMaker`` counts/exposure/background on the cutouts,
    ``SafeMaskMaker``) are made first, NOT timed; then timed: per run ``RingBackgroundMaker`` on
    ``dataset.to_image()`` (``image``) or on the 10-bin dataset with its safe mask applied
    (``resample_energy_axis`` onto its own axis, ``per-bin``), ``MapDatasetOnOff.stack`` into a
    survey-sized dataset, then ``ExcessMapEstimator(0.1 deg)`` on the stack (its default maps,
    with the flux).
  - gpcube: the runs' counts, background, safe mask and exposure are read into memory, NOT timed,
    from an archive that ``gpcube run`` wrote beforehand with ``background.method: model``, and the
    exclusion mask is made on the mosaic, NOT timed (as gammapy's). Then timed: each run's ring
    products, made one of two ways, ``makers``: ``make_map_ring_background`` (the mosaic's exclusion
    mask, computed) and the band's ON counts summed with numpy; or ``pipeline``:
    ``gpcube.workflow.ring.observation_ring``, what ``gpcube run`` makes per run (the circles drawn on
    each cutout, the ON counts through xarray), computed; then numpy sums into mosaic-sized arrays
    at the run's slice, as the mosaic sums them (``gpcube.workflow.mosaic.sum.ring_chunk``: counts,
    counts_off, alpha * counts_off and acceptance where the run's ring ``mask_safe``; exposure where
    the run is safe), ``combine_ring_sums``, and ``estimate_excess_map(0.1 deg)`` (with the flux),
    computed. dask's default scheduler (threads).

* **end to end** (what a user runs; wall time from launch to exit, peak of the summed RSS of the
  process tree, ``mosaic.run_sampled``):

  - gammapy: one fresh process: the makers, ring (``image``), stack and estimator per run, as above.
  - gpcube: ``gpcube run ring.yaml -q`` (``background: {method: ring, ring: {r_in: 0.5, width: 0.3,
    energy_edges: all}, exclusion: ...}``, a fresh archive, embedded LocalCluster of 2 worker
    processes; it writes the archive and its mosaic), then ``gpcube significance ARCHIVE --radius
    0.1`` (writes the maps into the archive): wall times added, peak the larger of the two; and
    ``gpcube run`` of the same job with ``significance: {radius: 0.1}``, which makes the maps at the
    end of the run (one command, one process).

Each repeat runs, in order, gammapy's stage, gpcube's stage, gammapy end to end and gpcube end to end,
so that load noise hits both; medians are printed. As a check that the work is the same, each prints
the largest sqrt(TS) within 0.4 deg of MSH 15-52 (l, b = 320.33, -1.19 deg); they must agree within
0.1 sigma. Run from the repository root::

    python benchmarks/ring.py [--repeat 3] [--no-per-bin] [--data PATH] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "docs"))
from generate_significance import SURVEY_EXCLUSION  # noqa: E402
from mosaic import (  # noqa: E402
    BINSZ,
    CENTER,
    DEFAULT_DATA,
    NPIX,
    OFFSET_MAX,
    PRODUCTS,
    RECO,
    TRUE,
    _gpcube_command,
    _maxrss_mib,
    _med,
    _since_launch,
    compile_gpcube,
    run_sampled,
    survey_obs_ids,
    warm_cache,
    write_job,
)

R_IN, WIDTH, RADIUS = 0.5, 0.3, 0.1
MSH, PEAK_RADIUS, TOLERANCE = (320.33, -1.19), 0.4, 0.1
VARIANTS = {"image": "all", "per-bin": "per-bin"}  # stage variant: the ring's energy_edges
PATHS = {
    "makers": "gpcube makers (make_map_ring_background)",
    "pipeline": "gpcube per-run path of `gpcube run` (observation_ring)",
}
RING_TERMS = ("counts_off", "alpha", "acceptance", "mask_safe")
#: Accumulators of the stacked ring sums, of the mosaic's types (``gpcube.workflow.mosaic.sum.RING_SUMS``).
SUM_TYPES = {
    "counts": np.int64,
    "counts_off": np.int64,
    "alpha_counts_off": np.float64,
    "acceptance": np.float64,
    "mask_safe": bool,
}


def write_ring_job(
    path: Path, data: Path, obs_ids: list[int], output: Path, method: str = "ring", significance: bool = False
) -> None:
    """The survey job of ``mosaic.py`` (counts, exposure, background) with a ring or model background,
    and with ``significance`` the job's ``significance`` section (the maps of ``gpcube significance``
    made by ``gpcube run``)."""
    import yaml

    write_job(path, data, obs_ids, "ceb", output, "processes")
    job = yaml.safe_load(path.read_text())
    job["background"] = {"method": method}
    if method == "ring":
        job["background"].update(
            ring={"r_in": R_IN, "width": WIDTH, "energy_edges": "all"},
            exclusion={"circles": SURVEY_EXCLUSION, "frame": "galactic"},
        )
    if significance:
        job["significance"] = {"radius": RADIUS}
    path.write_text(yaml.safe_dump(job, sort_keys=False))


def msh_peak(sqrt_ts: np.ndarray, wcs) -> dict:
    """The largest finite ``sqrt_ts (y, x)`` within :data:`PEAK_RADIUS` of MSH 15-52, and its pixel."""
    from astropy.coordinates import SkyCoord

    y, x = np.mgrid[: sqrt_ts.shape[0], : sqrt_ts.shape[1]]
    sky = wcs.pixel_to_world(x, y)
    near = sky.separation(SkyCoord(*MSH, unit="deg", frame="galactic")).deg < PEAK_RADIUS
    values = np.where(near & np.isfinite(sqrt_ts), sqrt_ts, -np.inf)
    iy, ix = np.unravel_index(np.argmax(values), values.shape)
    return {"peak": float(values[iy, ix]), "pixel": [int(iy), int(ix)]}


# ------------------------------------------------------------------------------------------- gammapy
def _gammapy_setup(data: Path) -> tuple:
    """gammapy's data store, survey geometry (10 reco bins), true-energy axis and exclusion mask."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from gammapy.data import DataStore
    from gammapy.maps import MapAxis, WcsGeom
    from regions import CircleSkyRegion

    energy, energy_true = (
        MapAxis.from_energy_bounds(e["min"], e["max"], e["nbins"], unit="TeV", name=name)
        for e, name in ((RECO, "energy"), (TRUE, "energy_true"))
    )
    geom = WcsGeom.create(skydir=CENTER, binsz=BINSZ, npix=NPIX, frame="galactic", proj="CAR", axes=[energy])
    circles = [
        CircleSkyRegion(SkyCoord(lon, lat, unit="deg", frame="galactic"), radius * u.deg)
        for lon, lat, radius in SURVEY_EXCLUSION
    ]
    exclusion = ~geom.to_image().region_mask(circles)  # True where the ring may use the pixel
    return DataStore.from_dir(data), geom, energy_true, exclusion


def _gammapy_datasets(store, obs_ids: list[int], geom, energy_true) -> Iterator:
    """Per run in obs_id order: ``MapDatasetMaker`` (counts, exposure, background) + ``SafeMaskMaker``."""
    from gammapy.datasets import MapDataset
    from gammapy.makers import MapDatasetMaker, SafeMaskMaker

    survey = MapDataset.create(geom, energy_axis_true=energy_true, name="survey")
    maker = MapDatasetMaker(selection=PRODUCTS["ceb"])
    safe = SafeMaskMaker(methods=["offset-max"], offset_max=f"{OFFSET_MAX} deg")
    for obs in store.get_observations(obs_ids):
        cutout = survey.cutout(
            obs.get_pointing_icrs(obs.tmid), width=2 * safe.offset_max, name=f"obs-{obs.obs_id}"
        )
        yield safe.run(maker.run(cutout, obs), obs)


def _gammapy_ring_maps(datasets: Iterable, geom, energy_true, exclusion, per_bin: bool):
    """Ring per run, ``MapDatasetOnOff.stack`` into a survey-sized dataset, ``ExcessMapEstimator``."""
    import astropy.units as u
    from gammapy.datasets import MapDatasetOnOff
    from gammapy.estimators import ExcessMapEstimator
    from gammapy.makers import RingBackgroundMaker

    energy = geom.axes["energy"]
    stack_geom = geom if per_bin else geom.to_image().to_cube([energy.squash()])
    stacked = MapDatasetOnOff.create(stack_geom, energy_axis_true=energy_true, name="ring")
    ring = RingBackgroundMaker(r_in=R_IN * u.deg, width=WIDTH * u.deg, exclusion_mask=exclusion)
    for dataset in datasets:
        on = dataset.resample_energy_axis(energy, name=dataset.name) if per_bin else dataset.to_image()
        stacked.stack(ring.run(on))
    return ExcessMapEstimator(RADIUS * u.deg).run(stacked)


def gammapy_stage_child(data: Path, obs_ids: list[int], variants: list[str]) -> dict:
    """The datasets made untimed, then the timed ring + stack + estimator of each variant."""
    import gammapy.datasets
    import gammapy.estimators
    import gammapy.makers  # noqa: F401  (imported before the timing)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store, geom, energy_true, exclusion = _gammapy_setup(data)
        t0 = time.perf_counter()
        datasets = list(_gammapy_datasets(store, obs_ids, geom, energy_true))
        out = {"setup": time.perf_counter() - t0, "setup_peak_mib": _maxrss_mib()}
        for variant in variants:
            t0 = time.perf_counter()
            maps = _gammapy_ring_maps(datasets, geom, energy_true, exclusion, variant == "per-bin")
            seconds = time.perf_counter() - t0
            out[variant] = {"stage": seconds, **msh_peak(maps.sqrt_ts.data[0], maps.sqrt_ts.geom.wcs)}
    return {**out, "peak_mib": _maxrss_mib()}


def gammapy_e2e_child(data: Path, obs_ids: list[int]) -> dict:
    """The whole chain in one go: store to significance maps (image ring), each run made and stacked."""
    startup = _since_launch()
    t0 = time.perf_counter()
    import gammapy.datasets
    import gammapy.estimators
    import gammapy.makers  # noqa: F401

    t1 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store, geom, energy_true, exclusion = _gammapy_setup(data)
        datasets = _gammapy_datasets(store, obs_ids, geom, energy_true)
        maps = _gammapy_ring_maps(datasets, geom, energy_true, exclusion, per_bin=False)
    t2 = time.perf_counter()
    return {
        "startup": startup,
        "import": t1 - t0,
        "work": t2 - t1,
        **msh_peak(maps.sqrt_ts.data[0], maps.sqrt_ts.geom.wcs),
    }


# -------------------------------------------------------------------------------------------- gpcube
def _gpcube_inputs(archive: Path) -> tuple[list, object]:
    """Each run's counts, background, mask_safe and exposure in memory (attrs: its slice); the mosaic."""
    import gpcube

    mosaic = gpcube.open_archive(archive)
    names = ["counts", "background", "mask_safe", "exposure"]
    runs = [gpcube.open_archive(archive, obs_id=i)[names].load() for i in mosaic.attrs["obs_ids"]]
    return runs, mosaic


def _zeros(ring: dict, mosaic) -> dict:
    """Mosaic-sized accumulators, of the mosaic's types (``gpcube.workflow.mosaic.sum``)."""
    shape = (ring["counts"].shape[0], *mosaic["counts"].shape[1:])
    sums = {name: np.zeros(shape, dtype) for name, dtype in SUM_TYPES.items()}
    sums["exposure"] = np.zeros(mosaic["exposure"].shape, np.float64)
    return sums


def _add_run(sums: dict, ring: dict, run) -> None:
    """Add one run at its slice: ring terms where its ring mask_safe, exposure where any bin is safe."""
    rows, cols = run.attrs["slice"]["y"], run.attrs["slice"]["x"]
    at = (slice(None), slice(*rows), slice(*cols))
    mask = ring["mask_safe"]
    sums["mask_safe"][at] |= mask
    terms = {
        "counts": ring["counts"],
        "counts_off": ring["counts_off"],
        "alpha_counts_off": ring["alpha"].astype(np.float64) * ring["counts_off"],
        "acceptance": ring["acceptance"],
    }
    for name, values in terms.items():
        view = sums[name][at]
        np.add(view, values, out=view, where=mask)
    view = sums["exposure"][at]
    np.add(view, run["exposure"].values, out=view, where=run["mask_safe"].values.any(axis=0))


def _band_edges(mosaic, variant: str) -> np.ndarray:
    """The ring's energy bands: the whole reco axis (``image``) or each reco bin (``per-bin``)."""
    lo, hi = mosaic["energy_reco_lo"].values, mosaic["energy_reco_hi"].values
    return np.array([lo[0], hi[-1]]) if variant == "image" else np.append(lo, hi[-1])


def _stacked_dataset(sums: dict, mosaic, variant: str):
    """The in-memory stacked ring mosaic (the variables ``gpcube significance`` reads) with exposure."""
    import xarray as xr

    from gpcube import EnergyAxis
    from gpcube.makers import combine_ring_sums

    alpha, acceptance_off = combine_ring_sums(
        sums["counts_off"], sums["alpha_counts_off"], sums["acceptance"]
    )
    dims = ("energy_reco", "y", "x")
    coords = {k: v for k, v in mosaic.coords.items() if "energy_reco" not in v.dims}
    coords.update(EnergyAxis.from_edges(_band_edges(mosaic, variant), "energy_reco").to_coords())
    variables = {name: (dims, sums[name]) for name in ("counts", "counts_off", "acceptance", "mask_safe")}
    variables.update(alpha=(dims, alpha), acceptance_off=(dims, acceptance_off))
    exposure = mosaic["exposure"]
    variables["exposure"] = (exposure.dims, sums["exposure"], exposure.attrs)
    return xr.Dataset(variables, coords=coords, attrs={"geom": mosaic.attrs["geom"]})


def _ring_makers(run, mosaic, variant: str, exclusion) -> dict:
    """``make_map_ring_background`` (computed; exclusion mask on the mosaic) and the ON counts, numpy."""
    from gpcube.makers import make_map_ring_background

    edges = _band_edges(mosaic, variant) if variant == "image" else None
    ring = make_map_ring_background(
        run["counts"],
        run["background"],
        r_in=R_IN,
        width=WIDTH,
        exclusion=exclusion,
        mask_safe=run["mask_safe"],
        energy_edges=edges,
    ).compute()
    on = np.where(run["mask_safe"].values, run["counts"].values, 0)
    on = on.sum(axis=0, keepdims=True) if variant == "image" else on
    return {"counts": on, **{name: ring[name].values for name in RING_TERMS}}


def _ring_pipeline(run, mosaic, config) -> dict:
    """What ``gpcube run`` makes per run (``observation_ring``: circles drawn on the cutout), computed."""
    import dask

    from gpcube.workflow.ring import observation_ring

    ring = observation_ring(run["counts"], run["background"], run["mask_safe"], config, mosaic.sky.geom)
    (ring,) = dask.compute(ring)
    return {name: ring[name].values for name in ("counts", *RING_TERMS)}


def _gpcube_ring_maps(runs: list, mosaic, variant: str, make_ring: Callable) -> object:
    """``make_ring(run)`` per run, summed at the runs' slices; the significance maps, computed."""
    from gpcube.estimators import estimate_excess_map

    sums = None
    for run in runs:
        ring = make_ring(run)
        sums = _zeros(ring, mosaic) if sums is None else sums
        _add_run(sums, ring, run)
    return estimate_excess_map(_stacked_dataset(sums, mosaic, variant), RADIUS).compute()


def _background_config(job: Path, variant: str):
    """The ring job's background section with the variant's energy_edges."""
    import dataclasses

    from gpcube.workflow.config import load_config

    background = load_config(job).background
    ring = dataclasses.replace(background.ring, energy_edges=VARIANTS[variant])
    return dataclasses.replace(background, ring=ring)


def gpcube_stage_child(archive: Path, ring_job: Path, variants: list[str]) -> dict:
    """The runs read and the exclusion mask made untimed, then the timed stage per variant and path."""
    import gpcube.estimators  # noqa: F401  (imported before the timing)
    from gpcube.makers import exclusion_mask_from_circles

    runs, mosaic = _gpcube_inputs(archive)
    exclusion = exclusion_mask_from_circles(mosaic.sky.geom, SURVEY_EXCLUSION)
    out = {"setup_peak_mib": _maxrss_mib()}
    for variant in variants:
        make_ring = {
            "makers": partial(_ring_makers, mosaic=mosaic, variant=variant, exclusion=exclusion),
            "pipeline": partial(_ring_pipeline, mosaic=mosaic, config=_background_config(ring_job, variant)),
        }
        for path in PATHS:
            t0 = time.perf_counter()
            maps = _gpcube_ring_maps(runs, mosaic, variant, make_ring[path])
            seconds = time.perf_counter() - t0
            out[f"{variant}/{path}"] = {"stage": seconds, **msh_peak(maps["sqrt_ts"].values[0], maps.sky.wcs)}
    return {**out, "peak_mib": _maxrss_mib()}


def gpcube_archive_peak(archive: Path) -> dict:
    """MSH 15-52's peak in the significance maps that ``gpcube significance`` wrote."""
    import gpcube

    maps = gpcube.open_archive(archive, significance=True)
    return msh_peak(maps["sqrt_ts"].values[0], maps.sky.wcs)


# ------------------------------------------------------------------------------------------ measuring
def _child(args, kind: str, *extra: str) -> list[str]:
    ids = [str(i) for i in args.obs_ids]
    return [sys.executable, __file__, "--child", kind, "--data", str(args.data), "--obs-ids", *ids, *extra]


def _sampled_child(command: list[str], log: Path) -> dict:
    """Wall time and peak RSS of a child, with the JSON it printed last."""
    row = run_sampled(command, log)
    printed = json.loads(row.pop("stdout"))
    return {**row, **printed}


def measure_once(args, work: Path, results: dict) -> None:
    """One repeat: gammapy's stage, gpcube's stage, gammapy end to end, gpcube end to end."""
    log, variants = work / "log.txt", ["--variants", *args.variants]
    results["gammapy-stage"].append(_sampled_child(_child(args, "gammapy-stage", *variants), log))
    inputs = ["--archive", str(args.model_archive), "--job", str(args.ring_job)]
    results["gpcube-stage"].append(_sampled_child(_child(args, "gpcube-stage", *variants, *inputs), log))
    results["gammapy-e2e"].append(_sampled_child(_child(args, "gammapy-e2e"), log))
    archive = work / "ring.zarr"
    write_ring_job(work / "ring-e2e.yaml", args.data, args.obs_ids, archive)
    run = run_sampled([args.gpcube, "run", str(work / "ring-e2e.yaml"), "-q"], log)
    sig = run_sampled([args.gpcube, "significance", str(archive), "--radius", str(RADIUS)], log)
    row = {"wall": run["wall"] + sig["wall"], "run": run["wall"], "significance": sig["wall"]}
    row["peak_mib"] = max(run["peak_mib"], sig["peak_mib"])
    results["gpcube-e2e"].append({**row, **gpcube_archive_peak(archive)})
    shutil.rmtree(archive)
    write_ring_job(work / "ring-one.yaml", args.data, args.obs_ids, archive, significance=True)
    one = run_sampled([args.gpcube, "run", str(work / "ring-one.yaml"), "-q"], log)
    results["gpcube-one"].append(
        {"wall": one["wall"], "peak_mib": one["peak_mib"], **gpcube_archive_peak(archive)}
    )
    shutil.rmtree(archive)


def prepare(args, work: Path) -> dict:
    """Warm the page cache; write the ring job and the model-background archive (its wall and peak)."""
    warm_cache(args.data, args.obs_ids)
    args.ring_job = work / "ring-stage.yaml"
    write_ring_job(args.ring_job, args.data, args.obs_ids, work / "unused.zarr")
    args.model_archive = work / "model.zarr"
    write_ring_job(work / "model.yaml", args.data, args.obs_ids, args.model_archive, method="model")
    return run_sampled([args.gpcube, "run", str(work / "model.yaml"), "-q"], work / "log.txt")


# ------------------------------------------------------------------------------------------- printing
def _row(*cells) -> None:
    print("| " + " | ".join(str(c) for c in cells) + " |")


def _peak(rows: list[dict]) -> str:
    """sqrt(TS) at MSH 15-52 (the range over repeats if it varies) and its pixel."""
    lo, hi = min(r["peak"] for r in rows), max(r["peak"] for r in rows)
    value = f"{lo:.3f}" if lo == hi else f"{lo:.3f}-{hi:.3f}"
    return f"{value} at {tuple(rows[-1]['pixel'])}"


def print_stage(results: dict, variants: list[str]) -> list[tuple[str, float, float]]:
    """The stage table; returns (what, gammapy's peak, gpcube's peak) to check."""
    refs, ours_all = results["gammapy-stage"], results["gpcube-stage"]
    print("\n### Ring + stack + significance (the stage; its inputs in memory, not timed)\n")
    _row("variant", "tool", "stage s", "speed-up", "process peak MiB", "sqrt(TS) at MSH 15-52 (y, x)")
    _row("---", "---", "---:", "---:", "---:", "---:")
    checks = []
    for variant in variants:
        ref = [r[variant] for r in refs]
        ref_s = _med(ref, "stage")
        _row(variant, "gammapy 2.1", f"{ref_s:.2f}", "", f"{_med(refs, 'peak_mib'):.0f}", _peak(ref))
        for path, label in PATHS.items():
            ours = [r[f"{variant}/{path}"] for r in ours_all]
            s = _med(ours, "stage")
            peak = f"{_med(ours_all, 'peak_mib'):.0f}"
            _row(variant, label, f"{s:.2f}", f"{ref_s / s:.1f}x", peak, _peak(ours))
            checks.append((f"stage, {variant}, {path}", _med(ref, "peak"), _med(ours, "peak")))
    print(
        f"\nNot timed: gammapy's makers ({_med(refs, 'setup'):.1f} s; peak "
        f"{_med(refs, 'setup_peak_mib'):.0f} MiB with the 36 datasets); gpcube's reading of the runs "
        f"(peak {_med(ours_all, 'setup_peak_mib'):.0f} MiB). Process peak: the whole child, inputs included."
    )
    return checks


def print_e2e(results: dict, model_run: dict) -> list[tuple[str, float, float]]:
    """The end-to-end table; returns (what, gammapy's peak, gpcube's peak) to check."""
    ref, ours = results["gammapy-e2e"], results["gpcube-e2e"]
    wall, work, ours_wall = _med(ref, "wall"), _med(ref, "work"), _med(ours, "wall")
    print("\n### End to end with the ring (one band): wall from launch to exit\n")
    header = ["tool", "wall s", "of which (s)", "peak MiB", "speed-up (wall)", "vs gammapy's work"]
    _row(*header, "sqrt(TS) at MSH 15-52 (y, x)")
    _row("---", "---:", "---", "---:", "---:", "---:", "---:")
    phases = ", ".join(f"{k} {_med(ref, k):.2f}" for k in ("startup", "import", "work"))
    tool = "gammapy 2.1 (makers + ring + stack + estimator)"
    _row(tool, f"{wall:.2f}", phases, f"{_med(ref, 'peak_mib'):.0f}", "", "", _peak(ref))
    phases = ", ".join(f"{k} {_med(ours, k):.2f}" for k in ("run", "significance"))
    ratios = f"{wall / ours_wall:.1f}x", f"{work / ours_wall:.1f}x"
    tool = "`gpcube run` + `gpcube significance`"
    _row(tool, f"{ours_wall:.2f}", phases, f"{_med(ours, 'peak_mib'):.0f}", *ratios, _peak(ours))
    one = results["gpcube-one"]
    one_wall = _med(one, "wall")
    tool = "`gpcube run` with the job's `significance: {radius: 0.1}` (one command)"
    ratios = f"{wall / one_wall:.1f}x", f"{work / one_wall:.1f}x"
    _row(tool, f"{one_wall:.2f}", "", f"{_med(one, 'peak_mib'):.0f}", *ratios, _peak(one))
    tool = "for scale: `gpcube run` with `background: {method: model}` (no ring; once, before the repeats)"
    _row(tool, f"{model_run['wall']:.2f}", "", f"{model_run['peak_mib']:.0f}", "", "", "")
    return [
        ("end to end", _med(ref, "peak"), _med(ours, "peak")),
        ("one command", _med(ref, "peak"), _med(one, "peak")),
    ]


def print_checks(checks: list[tuple[str, float, float]]) -> bool:
    """The peak sqrt(TS) of both tools, and whether they agree within :data:`TOLERANCE`."""
    print(
        f"\nMSH 15-52: largest sqrt(TS) within {PEAK_RADIUS} deg of (l, b) = {MSH} deg, "
        f"tolerance {TOLERANCE} sigma"
    )
    ok = True
    for what, ref, ours in checks:
        good = abs(ref - ours) <= TOLERANCE
        ok &= good
        verdict = "ok" if good else "FAIL"
        print(f"- {what}: gammapy {ref:.4f}, gpcube {ours:.4f}, difference {ours - ref:+.4f} ({verdict})")
    return ok


# ----------------------------------------------------------------------------------------------- main
def _run_child(args) -> None:
    if args.child == "gammapy-stage":
        print(json.dumps(gammapy_stage_child(args.data, args.obs_ids, args.variants)))
    elif args.child == "gammapy-e2e":
        print(json.dumps(gammapy_e2e_child(args.data, args.obs_ids)))
    else:
        print(json.dumps(gpcube_stage_child(args.archive, args.job, args.variants)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-per-bin", action="store_true", help="only the image (one band) stage")
    parser.add_argument("--gpcube", default=_gpcube_command(), help="gpcube command (default: beside python)")
    parser.add_argument("--json", type=Path, help="also write every measurement to this JSON file")
    parser.add_argument(
        "--child", choices=["gammapy-stage", "gammapy-e2e", "gpcube-stage"], help=argparse.SUPPRESS
    )
    parser.add_argument("--obs-ids", type=int, nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--archive", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--job", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _run_child(args)
        return
    args.obs_ids = survey_obs_ids(args.data)
    compile_gpcube()
    args.variants = ["image"] if args.no_per_bin else list(VARIANTS)
    results = {k: [] for k in ("gammapy-stage", "gpcube-stage", "gammapy-e2e", "gpcube-e2e", "gpcube-one")}
    with tempfile.TemporaryDirectory(prefix="gpcube-bench-ring-") as tmp:
        model_run = prepare(args, Path(tmp))
        for i in range(args.repeat):
            measure_once(args, Path(tmp), results)
            walls = ", ".join(f"{k} {v[-1]['wall']:.1f} s" for k, v in results.items())
            print(f"repeat {i + 1}/{args.repeat}: {walls}", file=sys.stderr, flush=True)
    print(f"\n{len(args.obs_ids)} runs, {args.repeat} repeats, medians")
    checks = print_stage(results, args.variants) + print_e2e(results, model_run)
    ok = print_checks(checks)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if not ok:
        sys.exit("the significance at MSH 15-52 differs by more than the tolerance")


if __name__ == "__main__":
    main()
