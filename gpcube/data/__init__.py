"""Example data shipped with gpcube: the 4 Crab Nebula runs of the H.E.S.S. DL3 DR1 release.

The files are a subset of the H.E.S.S. DL3 public test data release 1 (CC BY 4.0 with the terms of use
in ``README.txt``; see ``NOTICE.md`` in the folder). Attribution: "This work made use of data from the
H.E.S.S. DL3 public test data release 1 (HESS DL3 DR1, H.E.S.S. collaboration, 2018)."

Examples
--------
>>> import gpcube
>>> from gpcube.data import EXAMPLE_OBS_IDS, example_data_dir
>>> store = gpcube.DataStore.from_dir(example_data_dir())
>>> store.obs_ids == list(EXAMPLE_OBS_IDS)
True
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = [
    "EXAMPLE_OBS_IDS",
    "example_config_text",
    "example_data_dir",
    "example_sim_config_text",
    "write_example_config",
    "write_example_sim_config",
]

#: Observation ids of the example data store (the H.E.S.S. DL3 DR1 Crab Nebula runs).
EXAMPLE_OBS_IDS = (23523, 23526, 23559, 23592)


def example_data_dir() -> Path:
    """Directory of the example GADF data store (``hdu-index.fits.gz``, ``obs-index.fits.gz``, ``data/``).

    Returns
    -------
    pathlib.Path
        ``gpcube/data/hess-dl3-dr1-crab`` in the installed package; open it with
        :meth:`gpcube.DataStore.from_dir`.

    See Also
    --------
    write_example_config : A job config that reduces these runs.

    Examples
    --------
    >>> from gpcube.data import example_data_dir
    >>> path = example_data_dir()
    >>> sorted(p.name for p in path.glob("*-index.fits.gz"))
    ['hdu-index.fits.gz', 'obs-index.fits.gz']
    >>> len(list((path / "data").glob("*.fits.gz")))  # one file per run
    4
    """
    return Path(str(files("gpcube") / "data" / "hess-dl3-dr1-crab"))


def example_config_text() -> str:
    """The example job config (``example-crab.yaml``) with ``data.store`` set to :func:`example_data_dir`."""
    template = (files("gpcube") / "data" / "example-crab.yaml").read_text()
    return template.replace("{store}", example_data_dir().as_posix())


def write_example_config(path: str | Path = "crab.yaml", overwrite: bool = False) -> Path:
    """Write the example job config to ``path`` (``gpcube example``); its output is next to it.

    Parameters
    ----------
    path : str or path-like
        The YAML file to write.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    GpcubeError
        If the file exists and ``overwrite`` is false.

    See Also
    --------
    gpcube.workflow.config.load_config : Reads it.
    gpcube.workflow.pipeline.run : Runs it (with an example).

    Examples
    --------
    >>> from gpcube.data import write_example_config
    >>> path = write_example_config("crab.yaml")
    >>> print(path.read_text().splitlines()[0])
    # gpcube example job: the 4 Crab Nebula runs of H.E.S.S. DL3 DR1 shipped with gpcube.
    >>> write_example_config("crab.yaml")
    Traceback (most recent call last):
    ...
    gpcube.errors.GpcubeError: file crab.yaml: exists already (use --overwrite)
    """
    from gpcube.errors import GpcubeError

    path = Path(path)
    if path.exists() and not overwrite:
        raise GpcubeError("exists already (use --overwrite)", path=path)
    path.write_text(example_config_text())
    return path


def example_sim_config_text(name: str = "sim") -> tuple[str, str]:
    """The example simulation config (``example-sim.yaml``) and the job config that reduces its store.

    The simulation takes the IRFs of the :data:`EXAMPLE_OBS_IDS` runs of :func:`example_data_dir`; the
    store it writes is ``<name>-store``, the job's archive ``<name>.zarr`` (both relative to the configs'
    folder).

    Parameters
    ----------
    name : str
        The stem of the file names (``sim``: ``sim.yaml``, ``sim-job.yaml``, ``sim-store``, ``sim.zarr``).

    Returns
    -------
    tuple of str
        The simulation config's text and the job config's text.
    """
    store = example_data_dir().as_posix()
    texts = []
    for template in ("example-sim.yaml", "example-sim-job.yaml"):
        text = (files("gpcube") / "data" / template).read_text()
        texts.append(text.replace("{store}", store).replace("{name}", name))
    return texts[0], texts[1]


def write_example_sim_config(path: str | Path = "sim.yaml", overwrite: bool = False) -> tuple[Path, Path]:
    """Write the example simulation config to ``path`` and its job config next to it (``gpcube example
    --kind simulate``).

    ``gpcube simulate sim.yaml`` writes the store ``sim-store``, then ``gpcube run sim-job.yaml`` reduces
    it into ``sim.zarr`` (for ``path`` ``sim.yaml``; the names follow its stem).

    Returns
    -------
    tuple of pathlib.Path
        The simulation config's path and the job config's (``<stem>-job.yaml``).

    See Also
    --------
    gpcube.simulate.load_sim_config : Reads the simulation config.

    Examples
    --------
    >>> from gpcube.data import write_example_sim_config
    >>> from gpcube.simulate import load_sim_config
    >>> from gpcube.workflow.config import load_config
    >>> sim, job = write_example_sim_config("sim.yaml")
    >>> job.name, load_config(job).output.endswith("sim.zarr")
    ('sim-job.yaml', True)
    >>> load_sim_config(sim).output.endswith("sim-store")
    True
    """
    from gpcube.errors import GpcubeError

    path = Path(path)
    job = path.with_name(f"{path.stem}-job{path.suffix or '.yaml'}")
    for target in (path, job):
        if target.exists() and not overwrite:
            raise GpcubeError("exists already (use --overwrite)", path=target)
    sim_text, job_text = example_sim_config_text(path.stem)
    path.write_text(sim_text)
    job.write_text(job_text)
    return path, job
