"""Simulate one observation and stream it into one GADF file: EVENTS, GTI, AEFF, EDISP, PSF, BKG.

Random streams: every observation has its own, derived from ``(seed, observation index, stream)``
with :class:`numpy.random.SeedSequence` (stream 0: times and shuffling, 1: background, ``1 + k``:
source ``k``), so an observation's file depends only on the config and its index, never on which
worker made it or in which order.

The Poisson total of each component (background, each source) is drawn first. The on time is cut
into ``ceil(total / chunk_size)`` equal slices and each component's events are split between the
slices by a multinomial draw; a slice's events are generated, cut (source events outside
``max_offset`` or the reco-energy range are dropped), shuffled and given sorted uniform times within
the slice. So the event list is time-ordered and at most one slice is in memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import gpcube
from gpcube.simulate.background import sample_background
from gpcube.simulate.context import SimContext
from gpcube.simulate.fitswrite import StreamingTable, gzip_file, primary_header
from gpcube.simulate.irfs import IRF_TYPES, extname
from gpcube.simulate.sampling import separation, sorted_uniforms
from gpcube.simulate.sources import SourceCells, sample_source, source_cells

__all__ = ["EVENT_COLUMNS", "MJDREFF", "MJDREFI", "ObsPlan", "obs_file_name", "simulate_observation"]

#: Reference time of the simulated stores (2001-01-01 TT, as H.E.S.S. DL3 DR1).
MJDREFI, MJDREFF = 51910, 7.428703703703703e-4
#: Event columns: name, TFORM, unit. MC_ID is 0 for background, k for the k-th source.
EVENT_COLUMNS = [("EVENT_ID", "K", ""), ("TIME", "D", "s"), ("RA", "E", "deg"), ("DEC", "E", "deg"),
                 ("ENERGY", "E", "TeV"), ("MC_ID", "J", "")]  # fmt: skip
_GTI_COLUMNS = [("START", "D", "s"), ("STOP", "D", "s")]
_HDUDOC = "https://github.com/open-gamma-ray-astro/gamma-astro-data-formats"


@dataclass(frozen=True)
class ObsPlan:
    """One observation to simulate: its index in the simulation, id, pointing and times."""

    index: int
    obs_id: int
    ra: float
    dec: float
    glon: float
    glat: float
    tstart: float
    date_obs: str
    time_obs: str
    date_end: str
    time_end: str


def obs_file_name(obs_id: int, compress: bool) -> str:
    """File name of an observation in the store's ``data`` directory."""
    return f"gpcube_sim_obs_{obs_id:06d}.fits" + (".gz" if compress else "")


def _rng(seed: int, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, stream)))


def _time_cards(plan: ObsPlan, ontime: float) -> list[tuple]:
    return [
        ("MJDREFI", MJDREFI, "int part of the reference MJD"), ("MJDREFF", MJDREFF, "fractional part"),
        ("TIMEUNIT", "s"), ("TIMESYS", "TT"), ("TIMEREF", "LOCAL"),
        ("TSTART", plan.tstart, "start time (s since MJDREF)"), ("TSTOP", plan.tstart + ontime, "stop time"),
    ]  # fmt: skip


def _event_cards(ctx: SimContext, plan: ObsPlan) -> list[tuple]:
    config, obs = ctx.config, ctx.config.observation
    site = obs.observatory
    irf_obs_id = ctx.irf_set(plan.index).obs_id
    irf_card = [] if irf_obs_id is None else [("SIMIRFID", irf_obs_id, "IRFs of this obs of the IRF store")]
    return [
        ("HDUCLASS", "GADF"), ("HDUDOC", _HDUDOC), ("HDUVERS", "0.3"), ("HDUCLAS1", "EVENTS"),
        ("CREATOR", f"gpcube simulate {gpcube.__version__}"), ("TELESCOP", "SIM"),
        ("INSTRUME", "gpcube simulation"), ("OBS_ID", plan.obs_id), *_time_cards(plan, obs.ontime),
        ("DATE-OBS", plan.date_obs), ("TIME-OBS", plan.time_obs), ("DATE-END", plan.date_end),
        ("TIME-END", plan.time_end), ("ONTIME", obs.ontime, "s"), ("LIVETIME", obs.livetime, "s"),
        ("DEADC", obs.deadc, "livetime / ontime"), ("TELAPSE", obs.ontime, "s"),
        ("OBJECT", f"SIM {plan.glon:.3f}{plan.glat:+.3f}"), ("OBS_MODE", "POINTING"),
        ("RA_PNT", plan.ra, "pointing RA (deg)"), ("DEC_PNT", plan.dec, "pointing Dec (deg)"),
        ("RA_OBJ", plan.ra), ("DEC_OBJ", plan.dec), ("RADECSYS", "ICRS"), ("EQUINOX", 2000.0),
        ("GEOLON", site.lon, "deg"), ("GEOLAT", site.lat, "deg"), ("ALTITUDE", site.altitude, "m"),
        ("SIMSEED", config.seed, "gpcube simulate: seed"), ("SIMINDEX", plan.index, "observation index"),
        ("SIMBKGSC", ctx.background_scale, "background rate scale"),
        ("SIMFOV", obs.max_offset, "events within this offset (deg)"), *irf_card,
    ]  # fmt: skip


def _slice_events(ctx, plan, cells, rngs, counts) -> dict[str, np.ndarray]:
    """The events of one time slice (unshuffled): RA, DEC, ENERGY, MC_ID."""
    obs, pointing, irfs = ctx.config.observation, (plan.ra, plan.dec), ctx.irf_set(plan.index)
    ra, dec, energy = sample_background(irfs.background, rngs[0], counts[0], pointing)
    parts = [(ra, dec, energy, np.zeros(len(ra), dtype=np.int32))]
    for k, (source, n) in enumerate(zip(cells, counts[1:], strict=True), start=1):
        if n == 0:
            continue
        ra, dec, energy = sample_source(source, irfs.psf, irfs.edisp, rngs[k], n, pointing)
        with np.errstate(invalid="ignore"):
            keep = (energy >= obs.energy.min) & (energy < obs.energy.max)
        keep &= separation(ra, dec, *pointing) <= obs.max_offset
        parts.append((ra[keep], dec[keep], energy[keep], np.full(int(keep.sum()), k, dtype=np.int32)))
    columns = [np.concatenate(column) for column in zip(*parts, strict=True)]
    return dict(zip(("RA", "DEC", "ENERGY", "MC_ID"), columns, strict=True))


def _write_events(
    file, ctx: SimContext, plan: ObsPlan, cells: list[SourceCells]
) -> tuple[int, list[int], int]:
    """Stream the EVENTS HDU; returns its size, the events per component and the total."""
    config, ontime = ctx.config, ctx.config.observation.ontime
    rngs = [_rng(config.seed, plan.index, 1 + k) for k in range(1 + len(cells))]
    time_rng = _rng(config.seed, plan.index, 0)
    expected = [ctx.irf_set(plan.index).background.rate * ontime] + [c.expected for c in cells]
    totals = [int(rng.poisson(mu)) for rng, mu in zip(rngs, expected, strict=True)]
    n_slices = max(1, math.ceil(sum(totals) / config.chunk_size))
    split = [time_rng.multinomial(n, np.full(n_slices, 1.0 / n_slices)) for n in totals]
    table = StreamingTable(file, "EVENTS", EVENT_COLUMNS, _event_cards(ctx, plan))
    per_component = np.zeros(len(totals), dtype=np.int64)
    duration = ontime / n_slices
    for s in range(n_slices):
        events = _slice_events(ctx, plan, cells, rngs, [int(counts[s]) for counts in split])
        m = len(events["RA"])
        order = time_rng.permutation(m)
        events = {name: values[order] for name, values in events.items()}
        events["TIME"] = plan.tstart + (s + sorted_uniforms(time_rng, m)) * duration
        events["EVENT_ID"] = np.arange(table.nrows + 1, table.nrows + m + 1)
        per_component += np.bincount(events["MC_ID"], minlength=len(totals))
        table.append(events)
    return table.close(), per_component.tolist(), table.nrows


def _write_gti(file, plan: ObsPlan, ontime: float) -> int:
    cards = [("HDUCLASS", "GADF"), ("HDUDOC", _HDUDOC), ("HDUVERS", "0.3"), ("HDUCLAS1", "GTI"),
             *_time_cards(plan, ontime)]  # fmt: skip
    table = StreamingTable(file, "GTI", _GTI_COLUMNS, cards)
    table.append({"START": np.array([plan.tstart]), "STOP": np.array([plan.tstart + ontime])})
    return table.close()


def simulate_observation(ctx: SimContext, plan: ObsPlan, data_dir: str | Path) -> dict:
    """Simulate observation ``plan`` and write its file into ``data_dir``; returns a summary.

    The file is written under a temporary name and renamed when complete (gzipped first with
    ``compress``), so a killed run never leaves a truncated file under the final name.

    Returns
    -------
    dict
        ``obs_id``, ``file`` (name), ``n_events``, ``events`` (per component: background, then each
        source), ``expected`` (mean counts per component before the cuts), ``sizes`` (HDU type ->
        bytes, uncompressed), ``hdu_names`` and ``hdu_classes`` (HDU type -> EXTNAME, GADF class).
    """
    config, obs, irfs = ctx.config, ctx.config.observation, ctx.irf_set(plan.index)
    pointing = (plan.ra, plan.dec)
    cells = [
        source_cells(src, irfs.irfs["aeff"], pointing, obs.livetime, irfs.energy_true)
        for src in config.sources
    ]
    data_dir = Path(data_dir)
    name = obs_file_name(plan.obs_id, config.compress)
    tmp = data_dir / f".{name}.{plan.index}.tmp"
    sizes = {}
    with open(tmp, "wb") as file:
        file.write(primary_header([("CREATOR", f"gpcube simulate {gpcube.__version__}")]))
        sizes["events"], per_component, n_events = _write_events(file, ctx, plan, cells)
        sizes["gti"] = _write_gti(file, plan, obs.ontime)
        for hdu_type in IRF_TYPES:
            file.write(irfs.raw[hdu_type])
            sizes[hdu_type] = len(irfs.raw[hdu_type])
    if config.compress:
        gzip_file(tmp, data_dir / name)
        tmp.unlink()
    else:
        tmp.replace(data_dir / name)
    expected = [irfs.background.rate * obs.ontime] + [c.expected for c in cells]
    hdu_names = {t: extname(t) for t in IRF_TYPES}
    return {"obs_id": plan.obs_id, "file": name, "n_events": n_events, "events": per_component,
            "expected": expected, "sizes": sizes, "hdu_names": hdu_names,
            "hdu_classes": dict(irfs.classes)}  # fmt: skip
