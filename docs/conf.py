"""Sphinx configuration for gpcube's documentation."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import gpcube  # noqa: E402

project = "gpcube"
author = "the gpcube developers"
copyright = "2026, the gpcube developers"
release = version = gpcube.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "generate_examples",
    "registry_tables",
    "myst_nb",
]
autosummary_generate = True
# _templates/autosummary/class.rst: a class's page shows its methods and properties in full (their
# Parameters, Returns and Examples), not only a table of their names.
templates_path = ["_templates"]
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
autodoc_typehints = "none"
default_role = "py:obj"
nitpicky = False
# jupyter_execute and .jupyter_cache: what myst-nb writes next to the output folder of a build into docs/.
exclude_patterns = [
    "_build",
    "api/generated/*.rst.bak",
    "jupyter_execute",
    ".jupyter_cache",
    "**.ipynb_checkpoints",
]
html_theme = "pydata_sphinx_theme"
html_static_path = ["_static"]
html_title = "gpcube"
intersphinx_mapping = {}

# Notebooks (myst-nb): the tutorial is executed at every build, so its outputs and figures are real; a
# failing cell fails the build (its traceback is in the sphinx-err-*.log file the build names; run
# tests/test_tutorial.py to see it directly). It runs in a temporary directory and writes only there.
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_timeout = 300
nb_execution_in_temp = True
