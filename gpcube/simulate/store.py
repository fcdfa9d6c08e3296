"""``simulate_store``: a whole simulated GADF data store, one task per observation, then the indexes."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import yaml
from astropy.table import Table

import gpcube
from gpcube._schema import ConfigError
from gpcube.errors import GpcubeError
from gpcube.execute import raise_failures, run_tasks
from gpcube.simulate.config import SimConfig, load_sim_config, parse_sim_config
from gpcube.simulate.context import context_for
from gpcube.simulate.fitswrite import write_index
from gpcube.simulate.observation import MJDREFF, MJDREFI, ObsPlan, simulate_observation
from gpcube.simulate.pointings import plan_observations

__all__ = ["simulate_store"]

_INDEX_CARDS = [("HDUCLASS", "GADF"), ("HDUDOC", "https://github.com/open-gamma-ray-astro/gamma-astro-data-formats"),
                ("HDUVERS", "0.3"), ("HDUCLAS1", "INDEX")]  # fmt: skip


def _resolve(config, out_dir, seed) -> SimConfig:
    if isinstance(config, SimConfig):
        pass
    elif isinstance(config, str | os.PathLike):
        config = load_sim_config(config)
    else:
        config = parse_sim_config(config)
    changes = {}
    if out_dir is not None:
        changes["output"] = os.path.abspath(os.fspath(out_dir))
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ConfigError("seed", f"expected a non-negative integer, got {seed!r}", config.source)
        changes["seed"] = int(seed)
    config = dataclasses.replace(config, **changes)
    if config.output is None:
        raise ConfigError("output", "required key missing (or give the output directory); expected the path "
                          "of the output data store directory", config.source)  # fmt: skip
    return config


def _prepare_output(root: Path, overwrite: bool) -> Path:
    existing = [p.name for p in (root / "hdu-index.fits.gz", root / "obs-index.fits.gz") if p.exists()]
    if existing and not overwrite:
        raise GpcubeError(f"a data store ({', '.join(existing)}) is already there; choose another output "
                          "directory, or overwrite (--overwrite)", path=root)  # fmt: skip
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    for index in existing:
        (root / index).unlink()  # no stale index while the new files are written
    return data


def _simulate_task(config_json: str, plan: ObsPlan, data_dir: str) -> dict:
    return simulate_observation(context_for(config_json), plan, data_dir)


def _hdu_index(results: list[dict]) -> Table:
    rows = []
    for r in results:
        names = {"events": ("events", "EVENTS"), "gti": ("gti", "GTI")}
        names.update({t: (hdu_class, r["hdu_names"][t]) for t, hdu_class in r["hdu_classes"].items()})
        for hdu_type, (hdu_class, hdu_name) in names.items():
            rows.append((r["obs_id"], hdu_type, hdu_class, "data", r["file"], hdu_name, r["sizes"][hdu_type]))
    names = ("OBS_ID", "HDU_TYPE", "HDU_CLASS", "FILE_DIR", "FILE_NAME", "HDU_NAME", "SIZE")
    return Table(rows=rows, names=names,
                 dtype=(np.int64, str, str, str, str, str, np.int64))  # fmt: skip


def _obs_index(config: SimConfig, plans: list[ObsPlan], results: list[dict]) -> Table:
    obs = config.observation
    table = Table()
    table["OBS_ID"] = np.array([p.obs_id for p in plans], dtype=np.int64)
    for name, attr in (("RA_PNT", "ra"), ("DEC_PNT", "dec"), ("GLON_PNT", "glon"), ("GLAT_PNT", "glat")):
        table[name] = np.array([getattr(p, attr) for p in plans])
        table[name].unit = "deg"
    table["OBJECT"] = [f"SIM {p.glon:.3f}{p.glat:+.3f}" for p in plans]
    table["OBS_MODE"] = ["POINTING"] * len(plans)
    table["TSTART"] = np.array([p.tstart for p in plans])
    table["TSTOP"] = table["TSTART"] + obs.ontime
    table["ONTIME"] = np.full(len(plans), obs.ontime)
    table["LIVETIME"] = np.full(len(plans), obs.livetime)
    for name in ("TSTART", "TSTOP", "ONTIME", "LIVETIME"):
        table[name].unit = "s"
    table["DEADC"] = np.full(len(plans), obs.deadc)
    for name in ("date_obs", "time_obs", "date_end", "time_end"):
        table[name.upper().replace("_", "-")] = [getattr(p, name) for p in plans]
    table["EVENT_COUNT"] = np.array([r["n_events"] for r in results], dtype=np.int64)
    return table


def _write_indexes(root: Path, config: SimConfig, plans: list[ObsPlan], results: list[dict]) -> None:
    site = config.observation.observatory
    time_cards = [
        ("MJDREFI", MJDREFI),
        ("MJDREFF", MJDREFF),
        ("TIMEUNIT", "s"),
        ("TIMESYS", "TT"),
        ("TIMEREF", "LOCAL"),
        ("GEOLON", site.lon),
        ("GEOLAT", site.lat),
        ("ALTITUDE", site.altitude),
    ]
    creator = [("CREATOR", f"gpcube simulate {gpcube.__version__}")]
    write_index(
        root / "obs-index.fits.gz",
        _obs_index(config, plans, results),
        "OBS_INDEX",
        [*_INDEX_CARDS, ("HDUCLAS2", "OBS"), *time_cards, *creator],
    )
    write_index(root / "hdu-index.fits.gz", _hdu_index(results), "HDU_INDEX",
                [*_INDEX_CARDS, ("HDUCLAS2", "HDU"), *creator])  # fmt: skip


def _report(config: SimConfig, root: Path, results: list[dict], seconds: float, scale: float) -> dict:
    names = ["background", *(s.name for s in config.sources)]
    events = np.sum([r["events"] for r in results], axis=0)
    expected = np.sum([r["expected"] for r in results], axis=0)
    n_events = int(events.sum())
    return {
        "output": str(root), "n_obs": len(results), "n_events": n_events,
        "events": dict(zip(names, map(int, events), strict=True)),
        "expected": dict(zip(names, map(float, expected), strict=True)),
        "background_scale": scale, "seconds": seconds, "events_per_second": n_events / max(seconds, 1e-9),
    }  # fmt: skip


def simulate_store(
    config,
    out_dir=None,
    *,
    seed: int | None = None,
    client=None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict:
    """Simulate a GADF DL3 data store: one file per observation, ``hdu-index`` and ``obs-index``.

    Parameters
    ----------
    config : SimConfig, mapping or path-like
        The simulation (``docs/simulate.rst``): a parsed config, a mapping or a YAML file.
    out_dir : path-like, optional
        The store directory; overrides the config's ``output``.
    seed : int, optional
        Overrides the config's ``seed``.
    client : distributed.Client, optional
        Simulate the observations on this dask cluster (the IRF store must be readable from the
        workers, and ``out_dir`` writable); default: one after the other in this process. The files do
        not depend on the number of workers.
    progress : bool
        Show a progress bar.
    overwrite : bool
        Allow writing into a directory that already holds a data store (its index files are replaced;
        observation files of the same name are overwritten, others are left alone).

    Returns
    -------
    dict
        ``output``, ``n_obs``, ``n_events``, ``events`` and ``expected`` per component
        (``background`` and each source by name; expected counts are before the field-of-view and
        energy cuts), ``background_scale``, ``seconds`` and ``events_per_second``.

    Raises
    ------
    ConfigError
        For a bad config key (before anything is written).
    GpcubeError
        If the output already holds a data store (without ``overwrite``), or observations failed (the
        index files are then not written).
    """
    start = time.perf_counter()
    config = _resolve(config, out_dir, seed)
    config_json = config.to_json()
    try:
        ctx = context_for(config_json)  # checks the IRFs before anything is written
    except ConfigError as error:  # name the config file, which the cached context does not know
        raise ConfigError(error.key, error._message, config.source) from error
    plans = plan_observations(config)
    root = Path(config.output)
    data_dir = _prepare_output(root, overwrite)
    saved = {key: value for key, value in config.to_dict().items() if key != "output"}  # relocatable
    (root / "simulation.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    calls = [(str(p.obs_id), (config_json, p, str(data_dir))) for p in plans]
    results, failures = run_tasks(_simulate_task, calls, client, desc="simulate", progress=progress)
    raise_failures(failures, "observations")
    _write_indexes(root, config, plans, results)
    return _report(config, root, results, time.perf_counter() - start, ctx.background_scale)
