"""How many public names of gpcube have numpydoc sections, and how many a runnable Examples section.

Usage::

    python tools/docstring_coverage.py            # one row per subpackage, and the total
    python tools/docstring_coverage.py --modules  # one row per module
    python tools/docstring_coverage.py --missing  # also list the API-page names without Examples

A *public name* is a module-level function or class of a public module (no path part starting with
``_`` other than ``__init__``; ``conftest.py`` excluded) whose name does not start with ``_`` and which
is in the module's ``__all__`` when it has one, and each public method of such a class (not
properties). *numpydoc*: its docstring has a numpydoc section (``Parameters``, ``Returns``, ...)
underlined with dashes. *Examples*: an ``Examples`` section with at least one ``>>>`` line (these run
as doctests with ``python -m pytest``). The ``api.rst`` column counts the names listed on the API page
(``docs/api.rst``), the public API proper. The source is parsed, not imported.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = (
    "Parameters", "Returns", "Yields", "Receives", "Raises", "Warns", "Other Parameters", "Attributes",
    "Methods", "See Also", "Notes", "References", "Examples",
)  # fmt: skip
_SECTION = re.compile(rf"^\s*({'|'.join(SECTIONS)})\s*\n\s*-{{3,}}\s*$", re.MULTILINE)
_EXAMPLES = re.compile(r"^\s*Examples\s*\n\s*-{3,}\s*$(.*?)(?=^\s*[A-Z][A-Za-z ]+\s*\n\s*-{3,}\s*$|\Z)",
                       re.MULTILINE | re.DOTALL)  # fmt: skip


@dataclass(frozen=True)
class Name:
    """One public name: its dotted path, whether it has numpydoc sections and a runnable Examples one."""

    qualname: str
    module: str
    numpydoc: bool
    examples: bool


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_public_module(path: Path) -> bool:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return path.name != "conftest.py" and not any(p.startswith("_") and p != "__init__" for p in parts)


def _dunder_all(tree: ast.Module) -> set[str] | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            try:
                return set(ast.literal_eval(node.value))
            except ValueError:
                return None
    return None


def _classify(qualname: str, module: str, node: ast.AST) -> Name:
    doc = ast.get_docstring(node) or ""
    examples = any(">>>" in body for body in _EXAMPLES.findall(doc))
    return Name(qualname, module, bool(_SECTION.search(doc)), examples)


def _is_property(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    names = {getattr(d, "id", getattr(d, "attr", None)) for d in node.decorator_list}
    return bool(names & {"property", "cached_property", "setter"})


def public_names(package: Path = ROOT / "gpcube") -> Iterator[Name]:
    """Every public name of the package under ``package`` (see the module docstring)."""
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    for path in sorted(package.rglob("*.py")):
        if not _is_public_module(path):
            continue
        module = _module_name(path)
        tree = ast.parse(path.read_text(), str(path))
        exported = _dunder_all(tree)
        for node in tree.body:
            if not isinstance(node, defs) or node.name.startswith("_"):
                continue
            if exported is not None and node.name not in exported:
                continue
            yield _classify(f"{module}.{node.name}", module, node)
            if isinstance(node, ast.ClassDef):
                for member in node.body:
                    if (
                        isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef)
                        and not member.name.startswith("_")
                        and not _is_property(member)
                    ):
                        yield _classify(f"{module}.{node.name}.{member.name}", module, member)


def api_page_names(page: Path = ROOT / "docs" / "api.rst") -> set[str]:
    """The dotted names listed in the autosummary tables of the API page."""
    return set(re.findall(r"^ {3}(gpcube\.[\w.]+)\s*$", page.read_text(), re.MULTILINE))


def _resolve(api: set[str], names: list[Name]) -> set[str]:
    """The qualnames of the API-page names (``gpcube.DataStore`` is ``gpcube.io.datastore.DataStore``)."""
    by_short: dict[str, list[str]] = {}
    for name in names:
        by_short.setdefault(name.qualname.rsplit(".", 1)[-1], []).append(name.qualname)
    known = {n.qualname for n in names}
    out = set()
    for entry in api:
        if entry in known:
            out.add(entry)
            continue
        prefix, short = entry.rsplit(".", 1)
        candidates = by_short.get(short, [])
        out.update(([q for q in candidates if q.startswith(prefix + ".")] or candidates)[:1])
    return out


def _row(label: str, names: list[Name]) -> str:
    n = len(names)
    numpydoc = sum(x.numpydoc for x in names)
    examples = sum(x.examples for x in names)
    return f"{label:<34} {n:>6} {numpydoc:>9} {examples:>9}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modules", action="store_true", help="one row per module")
    parser.add_argument("--missing", action="store_true", help="list the API-page names without Examples")
    args = parser.parse_args(argv)
    names = list(public_names())
    groups: dict[str, list[Name]] = {}
    for name in names:
        key = name.module if args.modules else ".".join(name.module.split(".")[:2])
        groups.setdefault(key, []).append(name)
    print(f"{'module' if args.modules else 'package':<34} {'names':>6} {'numpydoc':>9} {'Examples':>9}")
    for key in sorted(groups):
        print(_row(key, groups[key]))
    api = _resolve(api_page_names(), names)
    api_names = [n for n in names if n.qualname in api]
    top = [n for n in names if "." not in n.qualname.removeprefix(n.module + ".")]
    print(_row("total (functions, classes, methods)", names))
    print(_row("  functions and classes", top))
    print(_row("  on the API page (docs/api.rst)", api_names))
    if args.missing:
        print("\nAPI-page names without an Examples section:")
        for name in sorted(n.qualname for n in api_names if not n.examples):
            print(f"  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
