"""The ``gpcube`` command end to end, in subprocesses as a user runs it."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from astropy.io import fits

from gpcube.errors import GpcubeError
from gpcube.storage.layout import complete_observations as _complete_observations
from gpcube.storage.layout import mosaic_attrs
from tests.archive.conftest import chunk_files, job_dict, open_group
from tests.conftest import CRAB_RUNS, MSH_RUNS, REPO, archive_store


def complete_observations(path) -> dict:
    return _complete_observations(archive_store(path))


GPCUBE = [sys.executable, "-m", "gpcube.cli"]


def gpcube(*args, cwd=None, check=True, timeout=300) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [*GPCUBE, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(f"gpcube {args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def write_job(path: Path, **kwargs) -> Path:
    path.write_text(yaml.safe_dump(job_dict(**kwargs)))
    return path


def test_example_run_info_export_on_the_shipped_crab_runs(tmp_path):
    """The README's main command on a fresh install: no data but what ships with gpcube."""
    gpcube("example", "crab.yaml", cwd=tmp_path)
    run = gpcube("run", "crab.yaml", cwd=tmp_path)
    assert "4 added" in run.stdout and "mosaic: 4 observations" in run.stdout
    assert "reduce: 100%" in run.stderr  # progress bars on stderr
    info = gpcube("info", "crab.zarr", cwd=tmp_path)
    for text in ("icrs CAR, 250 x 250 px", "observations: 4", "23592", "mosaic: 4 observations", "zarr"):
        assert text in info.stdout
    described = json.loads(gpcube("info", "crab.zarr", "--json", cwd=tmp_path).stdout)
    assert [o["obs_id"] for o in described["observations"]] == list(CRAB_RUNS)
    assert all(len(o["files"][0]["sha256"]) == 64 for o in described["observations"])
    gpcube("export", "crab.zarr", "crab.fits", cwd=tmp_path)
    mosaic = open_group(tmp_path / "crab.zarr", "mosaic")
    with fits.open(tmp_path / "crab.fits") as hdus:
        np.testing.assert_array_equal(hdus["COUNTS"].data, mosaic["counts"].to_numpy())
        np.testing.assert_array_equal(hdus["EXPOSURE"].data, mosaic["exposure"].to_numpy())
        assert "PSF" in hdus and "EDISP" in hdus
    again = gpcube("export", "crab.zarr", "crab.fits", cwd=tmp_path, check=False)
    assert again.returncode == 2 and "crab.fits" in again.stderr and "overwrite" in again.stderr

    # output into a reader that has stopped reading (``gpcube info crab.zarr | head -1``): no traceback
    piped = subprocess.Popen([*GPCUBE, "info", "crab.zarr"], cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    piped.stdout.close()  # before gpcube has written anything: its first write meets a broken pipe
    assert piped.wait(timeout=120) == 141 and "Traceback" not in piped.stderr.read()
    piped.stderr.close()


def readme_commands(marker: str) -> list[list[str]]:
    """The ``gpcube`` commands of the README's bash block that contains ``marker``, as argument lists."""
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), flags=re.DOTALL)
    (block,) = [b for b in blocks if marker in b]
    commands = [shlex.split(line, comments=True) for line in block.splitlines()]
    assert all(c[0] == "gpcube" for c in commands if c), block
    return [c[1:] for c in commands if c]


def test_readme_simulation_commands_on_a_fresh_install(tmp_path):
    """The README's simulation, command by command as printed: the example writes the configs it runs."""
    commands = readme_commands("gpcube simulate")
    assert [c[0] for c in commands] == ["example", "simulate", "run", "significance"]
    results = [gpcube(*command, cwd=tmp_path) for command in commands]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sim-job.yaml", "sim-store", "sim.yaml", "sim.zarr"]
    assert "gpcube simulate sim.yaml && gpcube run sim-job.yaml" in results[0].stdout
    assert "6 observations" in results[1].stdout and "point" in results[1].stdout
    assert "6 added" in results[2].stdout and "mosaic: 6 observations" in results[2].stdout
    peak = float(re.search(r"max sqrt\(TS\) ([0-9.]+)", results[3].stdout).group(1))
    assert peak > 5, results[3].stdout  # the sources are detected
    store = yaml.safe_load((tmp_path / "sim-store" / "simulation.yaml").read_text())
    assert store["irf"]["obs_ids"] == list(CRAB_RUNS)  # the IRFs of the Crab runs shipped with gpcube
    again = gpcube(*commands[0], cwd=tmp_path, check=False)
    assert again.returncode == 2 and "sim.yaml" in again.stderr and "overwrite" in again.stderr


def test_example_sim_names_follow_the_config(tmp_path):
    from gpcube.data import write_example_sim_config

    path, job = write_example_sim_config(tmp_path / "plane.yaml")
    assert job == tmp_path / "plane-job.yaml"
    assert yaml.safe_load(path.read_text())["output"] == "plane-store"
    described = yaml.safe_load(job.read_text())
    assert (described["data"]["store"], described["output"]) == ("plane-store", "plane.zarr")


def test_bad_config_names_the_key_and_writes_nothing(tmp_path):
    job = job_dict(tmp_path / "out.zarr")
    job["geom"]["energy_reco"]["nbins"] = 0
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    result = gpcube("run", tmp_path / "job.yaml", check=False)
    assert result.returncode == 2
    assert "geom.energy_reco.nbins" in result.stderr and "positive integer" in result.stderr
    assert not (tmp_path / "out.zarr").exists()


def test_run_on_an_existing_cluster(tmp_path, dask_cluster):
    address, worker_pids = dask_cluster
    config = write_job(tmp_path / "job.yaml", output=tmp_path / "out.zarr")
    result = gpcube("run", config, "--scheduler", address, "--quiet")
    assert "2 added" in result.stdout
    done = complete_observations(tmp_path / "out.zarr")
    assert {a["provenance"]["worker"]["pid"] for a in done.values()} == worker_pids


def test_sigkill_halfway_then_rerun_gives_the_same_mosaic_bytes(tmp_path):
    runs = MSH_RUNS[:6]
    geom = {"frame": "galactic", "center": [320.3, -1.2], "width": [5.0, 4.0], "binsz": 0.02}
    single = {"n_workers": 1, "threads_per_worker": 1, "processes": False}
    killed = write_job(tmp_path / "killed.yaml", output=tmp_path / "killed.zarr", obs_ids=runs, geom=geom,
                       cluster=single, products=["counts", "exposure", "background", "psf"],
                       commit={"observations": 1})  # fmt: skip
    clean = write_job(tmp_path / "clean.yaml", output=tmp_path / "clean.zarr", obs_ids=runs, geom=geom,
                      cluster=single, products=["counts", "exposure", "background", "psf"])  # fmt: skip
    proc = subprocess.Popen([*GPCUBE, "run", str(killed), "--quiet"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (tmp_path / "killed.zarr" / "refs").is_dir():
            try:
                if len(complete_observations(tmp_path / "killed.zarr")) >= 2:
                    break
            except GpcubeError:  # not created yet
                pass
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    interrupted = complete_observations(tmp_path / "killed.zarr")
    assert 2 <= len(interrupted) < len(runs), "the kill should land halfway through the reduction"
    assert mosaic_attrs(archive_store(tmp_path / "killed.zarr")) is None
    rerun = gpcube("run", killed, "--quiet")
    assert f"{len(interrupted)} already in the archive" in rerun.stdout
    gpcube("run", clean, "--quiet")
    for kind in ("mosaic", "mosaic/irf"):
        expected = chunk_files(tmp_path / "clean.zarr", kind)
        assert expected and chunk_files(tmp_path / "killed.zarr", kind) == expected  # byte for byte


def test_dashboard_address_is_printed(tmp_path, capsys):
    from gpcube.cli import main

    cluster = {"n_workers": 1, "threads_per_worker": 1, "processes": False, "dashboard": True}
    config = write_job(
        tmp_path / "job.yaml", output=tmp_path / "out.zarr", obs_ids=CRAB_RUNS[:1], cluster=cluster
    )
    assert main(["run", str(config)]) == 0
    err = capsys.readouterr().err
    assert "dask dashboard: " in err
    assert ("http" in err) or ("pip install bokeh" in err)
