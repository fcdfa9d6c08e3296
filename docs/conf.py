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
]
autosummary_generate = True
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
autodoc_typehints = "none"
default_role = "py:obj"
nitpicky = False
exclude_patterns = ["_build", "api/generated/*.rst.bak"]
html_theme = "pydata_sphinx_theme"
html_static_path = ["_static"]
html_title = "gpcube"
intersphinx_mapping = {}
