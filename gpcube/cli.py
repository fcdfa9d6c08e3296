"""The ``gpcube`` command: run a job from a YAML config, inspect and export its archive.

::

    gpcube example crab.yaml          # an example config on the H.E.S.S. Crab runs shipped with gpcube
    gpcube run crab.yaml              # reduce every selected observation, then build the mosaic
    gpcube reduce crab.yaml           # only add missing observations to the archive
    gpcube mosaic crab.zarr           # (re)build the mosaic of an archive
    gpcube info crab.zarr             # observations, products, geometry, provenance
    gpcube export crab.zarr crab.fits # the mosaic as a FITS file that Gammapy's MapDataset.read loads
    gpcube export crab.zarr run.fits --obs 23523   # one observation's products, for a joint fit
    gpcube significance crab.zarr --radius 0.1   # excess and significance maps, into the archive
    gpcube gc crab.zarr               # delete what killed runs left and replaced versions held
    gpcube example sim.yaml --kind simulate   # an example simulation, and sim-job.yaml to reduce it
    gpcube simulate sim.yaml          # write a simulated GADF data store (events sampled from IRFs)
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys

from gpcube.errors import GpcubeError

__all__ = ["main"]


@contextlib.contextmanager
def _client(args, config=None):
    """The job's dask client; prints the dashboard's address when there is one to look at."""
    from gpcube.workflow.pipeline import job_client

    with job_client(config, scheduler=args.scheduler) as client:
        cluster = config.cluster if config is not None else None
        shown = args.scheduler or (cluster is not None and (cluster.dashboard or cluster.address))
        if shown and not args.quiet:
            if importlib.util.find_spec("bokeh") is None:
                print("dask dashboard: not available (it needs bokeh: pip install bokeh)", file=sys.stderr)
            else:
                print(f"dask dashboard: {client.dashboard_link}", file=sys.stderr)
        yield client


def _cmd_run(args, reduce_only: bool = False) -> int:
    from gpcube.workflow import pipeline
    from gpcube.workflow.config import load_config

    config = load_config(args.config)
    with _client(args, config) as client:
        func = pipeline.reduce if reduce_only else pipeline.run
        report = func(config, client, progress=not args.quiet)
    mosaic = report.pop("mosaic", None)
    maps = report.pop("significance", None)
    print(
        f"{config.output}: {report['selected']} observations selected, {report['already_done']} already "
        f"in the archive, {report['written']} added ({report['empty']} outside the geometry)"
    )
    if mosaic is not None:
        print(f"mosaic: {mosaic['n_obs']} observations, livetime {mosaic['livetime'] / 3600:.2f} h")
    if maps is not None:
        print(f"significance: {maps['statistic']} maps, radius {config.significance.radius} deg")
    return 0


def _archive(args):
    """The command's archive, with its ``--storage-option`` settings."""
    from gpcube.storage.repository import Archive

    options = {}
    for item in args.storage_option or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise GpcubeError(f"--storage-option wants KEY=VALUE, not {item!r}")
        options[key] = {"true": True, "false": False}.get(value.lower(), value)
    return Archive(args.archive, options)


def _cmd_mosaic(args) -> int:
    from gpcube.storage.layout import open_readonly, root_attrs
    from gpcube.workflow import pipeline
    from gpcube.workflow.config import parse_config

    archive = _archive(args)
    attrs = root_attrs(open_readonly(archive).store)
    config = parse_config(attrs["config"]) if "config" in attrs else None
    with _client(args, config) as client:
        mosaic = pipeline.mosaic(archive, client, chunk=args.chunk, progress=not args.quiet, full=args.full)
    print(f"mosaic: {mosaic['n_obs']} observations, livetime {mosaic['livetime'] / 3600:.2f} h")
    return 0


def _cmd_info(args) -> int:
    from gpcube.storage.info import archive_info, format_info

    info = archive_info(_archive(args))
    print(json.dumps(info, indent=1) if args.json else format_info(info, files=args.files))
    return 0


def _cmd_significance(args) -> int:
    # not through gpcube.workflow.pipeline: its imports (the makers, dask, astropy) take longer than the maps
    from gpcube.workflow.significance import significance

    maps = significance(
        _archive(args), args.radius, energy_edges=args.energy_edges, spectral_index=args.spectral_index,
        correlate_off=not args.no_correlate_off,
    )  # fmt: skip
    peak = maps["sqrt_ts"].max(["y", "x"]).values
    bands = zip(maps["energy_band_lo"].to_numpy(), maps["energy_band_hi"].to_numpy(), peak, strict=True)
    print(f"{args.archive}/significance: {maps.attrs['statistic']} significance, radius {args.radius} deg")
    for lo, hi, top in bands:
        print(f"  {lo:g}-{hi:g} TeV: max sqrt(TS) {top:.2f}")
    if args.fits:
        from gpcube.io.export import write_maps

        print(f"wrote {write_maps(args.fits, maps, overwrite=args.overwrite)}")
    return 0


def _cmd_export(args) -> int:
    from gpcube.io.export import write_maps
    from gpcube.workflow.export import export
    from gpcube.workflow.open import open_archive

    if args.significance:
        if args.obs is not None or args.dataset != "auto":
            raise GpcubeError(
                "--significance writes the significance maps of the mosaic: no --obs or --dataset"
            )
        path = write_maps(
            args.output, open_archive(_archive(args), significance=True), overwrite=args.overwrite
        )
        print(f"wrote {path}")
        return 0
    path = export(
        _archive(args), args.output, obs_id=args.obs, dataset=args.dataset, name=args.name,
        overwrite=args.overwrite,
    )  # fmt: skip
    print(f"wrote {path}")
    return 0


def _cmd_gc(args) -> int:
    from gpcube.storage.maintenance import collect_garbage

    report = collect_garbage(_archive(args), older_than_hours=args.older_than, history=args.history)
    deleted = f"{report['objects_deleted']} unreferenced objects deleted ({report['bytes_deleted']} bytes)"
    print(f"{args.archive}: {report['expired_snapshots']} old snapshots expired, {deleted}")
    return 0


def _cmd_example(args) -> int:
    from gpcube.data import write_example_config, write_example_sim_config

    if args.kind == "simulate":
        path, job = write_example_sim_config(args.path or "sim.yaml", overwrite=args.overwrite)
        print(f"wrote {path} and {job}; run them with: gpcube simulate {path} && gpcube run {job}")
        return 0
    path = write_example_config(args.path or "crab.yaml", overwrite=args.overwrite)
    print(f"wrote {path}; run it with: gpcube run {path}")
    return 0


def _cmd_simulate(args) -> int:
    import contextlib

    from gpcube.execute import cluster_client
    from gpcube.simulate import load_sim_config, simulate_store

    config = load_sim_config(args.config)
    if args.scheduler or args.workers > 1:
        context = cluster_client(args.scheduler, n_workers=args.workers)
    else:
        context = contextlib.nullcontext(None)
    with context as client:
        report = simulate_store(config, args.out, seed=args.seed, client=client, progress=not args.quiet,
                                overwrite=args.overwrite)  # fmt: skip
    parts = ", ".join(f"{name} {n}" for name, n in report["events"].items())
    print(f"{report['output']}: {report['n_obs']} observations, {report['n_events']} events ({parts}) "
          f"in {report['seconds']:.1f} s")  # fmt: skip
    return 0


def _parser() -> argparse.ArgumentParser:
    from gpcube import __version__

    parser = argparse.ArgumentParser(
        prog="gpcube", description="DL3 event lists and IRFs into DL4 sky cubes."
    )
    parser.add_argument("--version", action="version", version=f"gpcube {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, help_text, func):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    def archive_argument(p):
        p.add_argument("archive", help="the archive: a local path, or s3://, gs:// URL")
        p.add_argument("--storage-option", action="append", metavar="KEY=VALUE",
                       help="a storage option, e.g. endpoint_url=http://host:9000")  # fmt: skip

    def cluster_options(p):
        p.add_argument("--scheduler", metavar="ADDRESS", help="run on the dask scheduler at ADDRESS "
                       "(overrides cluster.address)")  # fmt: skip
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    for name, text, reduce_only in (
        ("run", "reduce the selected observations into the archive, then build the mosaic", False),
        ("reduce", "add the selected observations that the archive lacks (no mosaic)", True),
    ):
        p = add(name, text, lambda a, r=reduce_only: _cmd_run(a, r))
        p.add_argument("config", help="the job's YAML config")
        cluster_options(p)
    p = add("mosaic", "bring the mosaic of an archive up to date with its observations", _cmd_mosaic)
    archive_argument(p)
    p.add_argument("--chunk", type=int, default=None, help="mosaic chunk in pixels (default: the config's)")
    p.add_argument("--full", action="store_true", help="recompute every chunk, not only those that "
                   "observations added since the last mosaic overlap")  # fmt: skip
    cluster_options(p)
    p = add("info", "describe an archive: geometry, products, observations, provenance", _cmd_info)
    archive_argument(p)
    p.add_argument("--json", action="store_true", help="print the description as JSON")
    p.add_argument("--files", action="store_true", help="list the input files and their checksums")
    p = add("significance", "excess, significance and flux maps of the mosaic, into the archive",
            _cmd_significance)  # fmt: skip
    archive_argument(p)
    p.add_argument("--radius", type=float, required=True, help="correlation radius in deg (top-hat)")
    p.add_argument("--energy-edges", type=float, nargs="+", metavar="E", default=None,
                   help="energy band edges in TeV, each a reco bin edge (default: with a ring background "
                   "the ring's own bands, else one band over all bins)")  # fmt: skip
    p.add_argument("--spectral-index", type=float, default=2.0, help="power-law index for the flux")
    p.add_argument("--no-correlate-off", action="store_true",
                   help="ring background: do not correlate the OFF counts (ring sums) again")  # fmt: skip
    p.add_argument("--fits", metavar="OUT.fits", help="also write the maps to this FITS file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --fits file")
    p = add("export", "write the mosaic (or one observation) to a FITS file that gammapy's MapDataset.read "
            "(MapDatasetOnOff.read for a ring background) loads", _cmd_export)  # fmt: skip
    archive_argument(p)
    p.add_argument("output", help="the FITS file to write")
    p.add_argument("--obs", type=int, metavar="OBS_ID", help="export this observation's own products (its "
                   "cutout, safe mask and IRF maps) instead of the mosaic")  # fmt: skip
    p.add_argument("--dataset", choices=["auto", "map", "onoff"], default="auto",
                   help="map: a MapDataset (model background); onoff: a MapDatasetOnOff of the ring "
                   "background (OFF counts, acceptances on the ring's energy bands); auto (default): onoff "
                   "if the archive has ring products, else map")  # fmt: skip
    p.add_argument("--name", help="the dataset's name (default: gpcube, or gpcube-OBS_ID with --obs)")
    p.add_argument("--significance", action="store_true",
                   help="write the significance maps (of `gpcube significance`) instead")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p = add("gc", "delete what no snapshot of an archive refers to any more (killed runs' leftovers, "
            "replaced mosaics)", _cmd_gc)  # fmt: skip
    archive_argument(p)
    p.add_argument("--older-than", type=float, default=24.0, metavar="HOURS",
                   help="only objects written at least this long ago (default 24): a run still writing "
                   "keeps its own")  # fmt: skip
    p.add_argument("--history", action="store_true", help="keep every snapshot of the main branch "
                   "(default: only the latest is kept, older ones expire)")  # fmt: skip
    p = add("example", "write an example config on the Crab runs shipped with gpcube: a job (default), or "
            "a simulation and the job that reduces its store (--kind simulate)", _cmd_example)  # fmt: skip
    p.add_argument("path", nargs="?", help="the config to write (default: crab.yaml, or sim.yaml with "
                   "--kind simulate, whose job is written next to it as <stem>-job.yaml)")  # fmt: skip
    p.add_argument("--kind", choices=["job", "simulate"], default="job",
                   help="job: a job on the 4 Crab runs (gpcube run); simulate: a simulation with their "
                   "IRFs (gpcube simulate) and a job on the simulated store")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace existing files")
    p = add("simulate", "write a simulated GADF DL3 data store from a simulation config", _cmd_simulate)
    p.add_argument("config", help="the simulation's YAML config")
    p.add_argument("--out", metavar="DIR", help="the output data store directory (overrides output)")
    p.add_argument("--seed", type=int, metavar="N", help="the random seed (overrides seed)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="simulate on a local dask cluster "
                   "of N worker processes (default 1: in this process)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="write into a directory holding a data store")
    p.add_argument("--scheduler", metavar="ADDRESS", help="simulate on the dask scheduler at ADDRESS")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``gpcube`` command; returns the exit status (2 for a gpcube error).

    Called without ``argv`` (the command line), the process ends here, without the interpreter's
    finalisation: icechunk's runtime threads may still be winding down then, and one that calls into a
    finalising interpreter aborts the process (seen once in ~10 runs, after the work was done and its
    output printed); the finalisation also took ~0.4 s collecting the objects of numpy, pandas,
    xarray, dask, distributed and astropy again and again. Standard output and error are flushed
    first; everything else (the cluster, the files) is closed by the command itself.
    """
    status = 1
    try:
        status = _main(argv)
        return status
    finally:
        if argv is None:  # the process ends next
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(status)


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except GpcubeError as exc:
        print(f"gpcube {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gpcube {args.command}: interrupted; finished observations are kept", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped (``gpcube info A | head``)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit's flush
        return 141


if __name__ == "__main__":
    sys.exit(main())
