"""The tutorial notebook (docs/tutorial.ipynb) runs from top to bottom and shows what it says it shows."""

from __future__ import annotations

import re

import nbformat
import pytest
from nbclient import NotebookClient

import gpcube
from gpcube.data import write_example_config
from gpcube.workflow.config import load_config
from gpcube.workflow.pipeline import run
from tests.conftest import REPO

NOTEBOOK = REPO / "docs" / "tutorial.ipynb"


def _outputs(cell) -> list:
    return cell.get("outputs", [])


def _stdout(notebook) -> str:
    return "".join(
        out["text"]
        for cell in notebook.cells
        for out in _outputs(cell)
        if out["output_type"] == "stream" and out["name"] == "stdout"
    )


def test_notebook_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, "the tutorial has no code cells"
    stored = [cell.id for cell in code if cell.outputs or cell.execution_count is not None]
    assert not stored, f"clear the outputs of the tutorial before committing (cells {stored})"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The tutorial executed in a python3 kernel, with its working directory and TMPDIR in a temp dir."""
    tmp = tmp_path_factory.mktemp("tutorial")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(tmp))  # the notebook's tempfile.mkdtemp() goes here
        client = NotebookClient(
            notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp)}}
        )
        client.execute()  # raises CellExecutionError (with the traceback) if a cell fails
    return notebook, tmp


def test_notebook_runs_and_draws_its_figures(executed):
    notebook, _ = executed
    images = [
        cell.id for cell in notebook.cells for out in _outputs(cell) if "image/png" in out.get("data", {})
    ]
    # No figures at all: is MPLBACKEND set (e.g. to Agg)? The kernel then draws nowhere, as in the docs build.
    assert len(images) >= 5, f"expected the tutorial's 5 figures, got PNG outputs in cells {images}"
    errors = [cell.id for cell in notebook.cells for out in _outputs(cell) if out["output_type"] == "error"]
    assert not errors


def test_notebook_prints_no_warnings(executed):
    """stderr would show up in the docs (except in cells tagged remove-stderr, hidden there)."""
    notebook, _ = executed
    stderr = [
        (cell.id, out["text"])
        for cell in notebook.cells
        if "remove-stderr" not in cell.metadata.get("tags", [])
        for out in _outputs(cell)
        if out["output_type"] == "stream" and out["name"] == "stderr"
    ]
    assert not stderr


def test_notebook_numbers_match_the_example_job(executed, tmp_path):
    notebook, tmp = executed
    stdout = _stdout(notebook)
    config = load_config(write_example_config(tmp_path / "crab.yaml"))
    run(config, progress=False)
    mosaic = gpcube.open_archive(config.output)
    expected = int(mosaic["counts"].sum())
    assert expected > 0
    assert re.search(rf"^total counts: {expected}$", stdout, re.MULTILINE), stdout
    assert f"sum of the cutouts' safe counts: {expected}, mosaic: {expected}" in stdout
    assert list(tmp.iterdir()) == [], "the tutorial left files behind"
