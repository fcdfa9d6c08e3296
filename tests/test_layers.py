"""gpcube's imports point one way through its layers and form no cycle (docs/internals.rst, "Layers").

Every ``import`` of a gpcube module is read with :mod:`ast`: those at module level, inside functions
and under ``if TYPE_CHECKING``, relative ones resolved. A module may import its own layer and those
below; storage knows no makers, estimators, workflow or CLI; the module graph is acyclic (a package
importing its own modules, or they it, does not count: that is how a package is built).
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "gpcube"

#: Module prefix -> (rank, layer), the first match wins: a module imports only ranks <= its own.
LAYERS = [
    ("gpcube.errors", 0, "base"),
    ("gpcube._schema", 0, "base"),
    ("gpcube.execute", 0, "base"),  # running tasks on dask: knows no products
    ("gpcube._worker", 0, "base"),
    ("gpcube.data", 0, "base"),
    ("gpcube.geom", 1, "geom"),
    ("gpcube.accessor", 1, "geom"),  # the xarray ``.sky`` accessor: geometry of a DataArray
    ("gpcube.io.export", 6, "export"),  # writes products (reads the makers' registry): above makers
    ("gpcube.io", 2, "io"),
    ("gpcube.irf", 3, "irf"),
    ("gpcube.makers", 4, "makers"),
    ("gpcube.estimators", 4, "estimators"),
    ("gpcube.storage", 5, "storage"),
    ("gpcube.simulate", 6, "simulate"),
    ("gpcube.workflow", 7, "workflow"),
    ("gpcube.cli", 8, "cli"),
    ("gpcube.conftest", 9, "doctest set-up"),  # pytest's set-up of the docstring examples; imported by nobody
    ("gpcube", 9, "package"),  # the package itself only: each new subpackage gets a line above
]
#: Layers that storage never imports, whatever their rank.
STORAGE_NEVER = ("makers", "estimators", "export", "simulate", "workflow", "cli")


def layer(module: str) -> tuple[int, str]:
    """The (rank, layer) of a gpcube module."""
    for prefix, rank, name in LAYERS:
        if module == prefix or (module.startswith(prefix + ".") and name != "package"):
            return rank, name
    raise AssertionError(f"{module} is in no layer of LAYERS: place it there")


def modules(root: Path) -> dict[str, Path]:
    """Every module of the package at ``root`` by dotted name."""
    out = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imported(path: Path, module: str, known: dict[str, Path]) -> set[tuple[str, int]]:
    """``(module, line)`` of each package module that ``path`` imports, anywhere in its code."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            while name not in known and "." in name:  # an attribute of a module: the module
                name = name.rpartition(".")[0]
            if name in known and name != module:
                found.add((name, node.lineno))
    return found


def related(a: str, b: str) -> bool:
    """Whether one module is a package holding the other."""
    return a.startswith(b + ".") or b.startswith(a + ".")


def check(root: Path) -> tuple[list[str], list[str]]:
    """The imports pointing up (``file:line: ...``) and one import cycle if any (as a list of modules)."""
    known = modules(root)
    wrong, graph = [], {}
    for module, path in sorted(known.items()):
        rank, name = layer(module)
        for target, line in sorted(imported(path, module, known)):
            graph.setdefault(module, set())
            if not related(module, target):
                graph[module].add(target)
            if target == root.name:  # the package itself (its version, say)
                continue
            other_rank, other = layer(target)
            if other != name and (other_rank > rank or (name == "storage" and other in STORAGE_NEVER)):
                wrong.append(f"{path.relative_to(root.parent)}:{line}: {name} imports {target} ({other})")
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return wrong, list(error.args[1])
    return wrong, []


def test_gpcube_imports_point_down_and_form_no_cycle():
    wrong, cycle = check(ROOT)
    assert not wrong, "imports pointing up through the layers:\n" + "\n".join(wrong)
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_config_and_storage_import_no_maker():
    """The config reads product and method names from the registry, not from the makers' modules."""
    known = modules(ROOT)
    config = {t for t, _ in imported(known["gpcube.workflow.config"], "gpcube.workflow.config", known)}
    assert {t for t in config if t.startswith("gpcube.makers")} == {"gpcube.makers.registry"}
    for module in (m for m in known if m.startswith("gpcube.storage")):
        targets = {t for t, _ in imported(known[module], module, known)}
        assert not {t for t in targets if t.startswith(("gpcube.makers", "gpcube.workflow"))}, module


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "gpcube"
    for name, text in {"__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


_TYPE_ONLY = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    "
UPWARD = [
    ({"geom/__init__.py": "", "geom/sky.py": "def f():\n    from gpcube.workflow import x\n",
      "workflow/__init__.py": "x = 1\n"}, "geom imports gpcube.workflow (workflow)"),
    ({"storage/__init__.py": "", "storage/a.py": "from gpcube.makers.registry import PRODUCTS\n",
      "makers/__init__.py": "", "makers/registry.py": "PRODUCTS = ()\n"}, "storage imports gpcube.makers"),
    ({"io/__init__.py": "", "io/a.py": _TYPE_ONLY + "from ..irf import b\n", "irf/__init__.py": "",
      "irf/b.py": ""}, "io imports gpcube.irf.b (irf)"),
]  # fmt: skip


@pytest.mark.parametrize(("files", "expected"), UPWARD)
def test_an_upward_import_is_found(tmp_path, files, expected):
    wrong, cycle = check(_package(tmp_path, files))
    assert len(wrong) == 1 and expected in wrong[0] and not cycle


def test_a_cycle_is_found_even_under_type_checking(tmp_path):
    files = {
        "geom/__init__.py": "",
        "geom/sky.py": "def cutout():\n    from gpcube.geom.cutout import cutout\n",
        "geom/cutout.py": _TYPE_ONLY + "from .sky import SkyGeom\n",
    }
    wrong, cycle = check(_package(tmp_path, files))
    assert not wrong and set(cycle) == {"gpcube.geom.sky", "gpcube.geom.cutout"}


def test_a_module_outside_the_layers_is_an_error(tmp_path):
    with pytest.raises(AssertionError, match="gpcube.newthing is in no layer"):
        check(_package(tmp_path.joinpath("x"), {"newthing.py": "import os\n"}))
