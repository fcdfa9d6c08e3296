"""The archive's consolidated metadata: every node's ``zarr.json`` inline in the root's, as zarr-python
lays it out, so that xarray opens any group with one read and without a warning.

A survey archive has thousands of observation groups (about 11 kB of metadata each), so the listing
is written one entry per line, and an update reuses the lines of the groups that cannot have changed:
an observation group is written under a temporary name and renamed into place whole, so once listed
its entries stay valid for as long as its own ``zarr.json`` is unchanged. Updating the listing then
costs what changed (new observations, the mosaic) plus copying text, not parsing and writing tens of
megabytes of JSON. A root written by another tool is read in full once and rewritten in this layout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from gpcube.errors import GpcubeError
from gpcube.storage.zarrv3 import group_attrs_from_text, to_json

__all__ = ["consolidate", "listing"]

_OPEN = '"metadata":{\n'


def _key_from_json(text: str) -> str:
    """A listing key from its JSON string (most keys are plain names: no parsing for them)."""
    return text[1:-1] if "\\" not in text else json.loads(text)


def _key_to_json(key: str) -> str:
    plain = key.isascii() and key.isprintable() and not set(key) & {'"', "\\"}
    return f'"{key}"' if plain else json.dumps(key)


def _immutable(key: str) -> bool:
    """Whether the group at ``key`` never changes once in place: an observation's (``obs/<id>``)."""
    parts = key.split("/")
    return len(parts) == 2 and parts[0] == "obs" and parts[1].isdigit()


def _group_of(key: str) -> str:
    return "/".join(key.split("/")[:2])


def _previous_lines(text: str) -> dict[str, str]:
    """``{key: listing line}`` (``"key":{...}`` without the comma) of the root's listing: split by
    line when written by :func:`consolidate`, else parsed (and re-encoded) in full."""
    start = text.find(_OPEN)
    if start >= 0:
        out = {}
        for line in text[start + len(_OPEN) :].split("\n"):
            if not line.startswith('"'):
                break  # the closing braces
            out[_key_from_json(line[: line.index('":', 1) + 1])] = line.rstrip(",")
        return out
    try:
        metadata = (json.loads(text).get("consolidated_metadata") or {}).get("metadata") or {}
    except ValueError:
        return {}
    return {key: f"{_key_to_json(key)}:{to_json(doc)}" for key, doc in metadata.items()}


def _reusable(lines: dict[str, str]) -> dict[str, dict[str, str]]:
    """The listed lines of immutable groups, by group: ``{group: {key: line}}``. In a sorted listing
    a group's keys follow its own, so the group is worked out once per group, not once per key."""
    out: dict[str, dict[str, str]] = {}
    group, prefix, entries = None, None, None
    for key, line in lines.items():
        if entries is None or not (key == group or key.startswith(prefix)):
            group = _group_of(key)
            prefix = group + "/"
            entries = out.setdefault(group, {}) if _immutable(group) else None
        if entries is not None:
            entries[key] = line
    return out


def _walk(directory: Path, prefix: str, nodes: dict[str, str], known: dict[str, dict[str, str]]) -> None:
    """Add ``{key: listing line}`` of every node below ``directory`` to ``nodes``, without listing
    the chunk files of arrays. Directories without ``zarr.json`` and names starting with ``.`` or
    ``_`` (temporary groups) are skipped; an immutable group whose ``zarr.json`` equals its listed
    entry is taken from ``known`` without reading its arrays."""
    with os.scandir(directory) as entries:
        subdirs = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith((".", "_")))
    for name in subdirs:
        key, meta = f"{prefix}{name}", directory / name / "zarr.json"
        listed = known.get(key)
        head = f"{_key_to_json(key)}:"
        try:
            text = meta.read_text()
            if listed is not None and listed.get(key) == head + text:  # as gpcube wrote and listed it
                nodes.update(listed)
                continue
            doc = json.loads(text)
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            raise GpcubeError(f"cannot read zarr metadata: {exc}", path=meta) from exc
        doc.pop("consolidated_metadata", None)
        if doc.get("node_type") != "group":
            nodes[key] = head + to_json(doc)
            continue
        if listed is not None and key in listed and json.loads(listed[key][len(head) :]) == doc:
            nodes.update(listed)
        else:
            nodes[key] = head + to_json(doc)
            _walk(directory / name, key + "/", nodes, known)


def consolidate(path: str | Path) -> None:
    """Write (or bring up to date) the root's listing of every node's metadata.

    Every command that changes the archive calls this last. The root's attributes are kept; the file
    is replaced in one rename.
    """
    root = Path(path)
    meta = root / "zarr.json"
    try:
        text = meta.read_text()  # read once: it is megabytes for a large survey
    except OSError as exc:
        raise GpcubeError(f"cannot read zarr metadata: {exc}", path=meta) from exc
    attrs, previous = group_attrs_from_text(text, meta), _previous_lines(text)
    nodes: dict[str, str] = {}
    _walk(root, "", nodes, _reusable(previous))
    head = to_json({"zarr_format": 3, "node_type": "group", "attributes": attrs})
    lines = ",\n".join(nodes[key] for key in sorted(nodes))
    listing_head = '"consolidated_metadata":{"kind":"inline","must_understand":false,' + _OPEN
    text = f"{head[:-1]},{listing_head}{lines}\n}}}}}}"
    tmp = root / "zarr.json.tmp"
    tmp.write_text(text)
    os.replace(tmp, meta)


def listing(path: str | Path) -> dict[str, dict]:
    """The root's consolidated metadata as ``{key: document}`` (empty if it has none)."""
    meta = Path(path) / "zarr.json"
    try:
        return (json.loads(meta.read_text()).get("consolidated_metadata") or {}).get("metadata") or {}
    except (OSError, ValueError) as exc:
        raise GpcubeError(f"cannot read zarr metadata: {exc}", path=meta) from exc
