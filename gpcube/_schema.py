"""The machinery of gpcube's YAML configurations (the job's, :mod:`gpcube.workflow.config`, and the
simulation's, :mod:`gpcube.simulate.config`): reading a file, and sections read generically from
dataclasses whose fields carry their checks, with errors that name the dotted key.

Each dataclass field that is a YAML key carries its check in ``field(metadata={"check": ...})``
(:func:`_key`); :func:`_build` reads a section from that, then calls the class's ``_checked`` for the
rules that involve several keys. Package-internal: the names keep their underscore.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import numbers
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import field
from pathlib import Path
from typing import Any

import yaml

from gpcube.errors import GpcubeError

_MISSING: Any = object()
_DEG = "a positive number of deg"
_POSINT = "a positive integer"
_LONLAT = "[lon, lat] in deg with lat in [-90, 90]"
Check = Callable[["_Section", str, Any], Any]


class ConfigError(GpcubeError):
    """A bad job configuration.

    Attributes
    ----------
    key : str or None
        The dotted key (``"geom.binsz"``); None when the file as a whole is bad (e.g. invalid YAML).
    source : str or None
        The config file, if the configuration came from one.
    """

    def __init__(self, key: str | None, message: str, source: str | None = None):
        if key:
            where = f"config key {key!r}" + (f" in {source}" if source else "")
        else:
            where = f"config file {source}" if source else "config"
        super().__init__(f"{where}: {message}")
        self.key, self.source, self.path, self._message = key, source, source, message

    def __reduce__(self) -> tuple:
        return type(self), (self.key, self._message, self.source)


def _key(check: Check, default: Any = _MISSING) -> Any:
    """A dataclass field that is a YAML key read with ``check``; required if no ``default``."""
    if default is _MISSING:
        return field(metadata={"check": check})
    if isinstance(default, dict):  # a mutable default: each instance gets its own copy
        return field(default_factory=lambda: type(default)(default), metadata={"check": check})
    return field(default=default, metadata={"check": check})


# ------------------------------------------------------------------------------------------ checks
def _is_num(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _is_posint(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0


def _is_lonlat(v: Any) -> bool:
    return isinstance(v, list | tuple) and len(v) == 2 and all(map(_is_num, v)) and abs(v[1]) <= 90


class _Section:
    """One mapping of the config being read: its dotted key, unknown-key check and error helper."""

    def __init__(self, value: Any, prefix: str, allowed: list[str], source: str | None, base_dir: str):
        self.prefix, self.source, self.base_dir = prefix, source, base_dir
        if not isinstance(value, Mapping):
            raise self.fail(None, f"a mapping with keys {', '.join(allowed)}", value)
        for name in value:
            if name not in allowed:
                raise ConfigError(
                    self.key(name), f"unknown key; expected one of {', '.join(allowed)}", source
                )
        self.m = value

    def key(self, name: str | None) -> str | None:
        if name is None:
            return self.prefix or None
        return f"{self.prefix}.{name}" if self.prefix else name

    def fail(self, name: str | None, what: str, value: Any = _MISSING) -> ConfigError:
        if value is _MISSING:
            return ConfigError(self.key(name), f"required key missing; expected {what}", self.source)
        return ConfigError(self.key(name), f"expected {what}, got {value!r}", self.source)

    def get(self, name: str, what: str, ok: Callable[[Any], Any], default: Any) -> Any:
        """The value (``default`` if absent) after ``ok``; None stays None only if ``default`` is None."""
        value = self.m.get(name, default)
        if value is None and default is None:
            return None
        if value is _MISSING or not ok(value):
            raise self.fail(name, what, value)
        return value


def _check(what: str, ok: Callable[[Any], Any], cast: Callable[[Any], Any] = lambda v: v) -> Check:
    """A check: the value must pass ``ok`` (else "expected ``what``"); then ``cast`` (None stays None)."""

    def check(s: _Section, name: str, default: Any) -> Any:
        value = s.get(name, what, ok, default)
        return None if value is None else cast(value)

    return check


def _num(what: str, ok: Callable[[float], bool] = lambda x: True) -> Check:
    return _check(what, lambda v: _is_num(v) and ok(v), float)


def _choice(choices: tuple) -> Check:
    return _check(f"one of {', '.join(choices)}", lambda v: v in choices)


def _text(what: str) -> Check:
    return _check(what, lambda v: isinstance(v, str) and v.strip())


_posint = _check(_POSINT, _is_posint, int)
_count = _check(
    "a non-negative integer",
    lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0,
    int,
)
_flag = _check("true or false", lambda v: isinstance(v, bool))
_lonlat = _check(_LONLAT, _is_lonlat, lambda v: (float(v[0]), float(v[1])))


def _names(choices: tuple, allow_empty: bool) -> Check:
    def check(s: _Section, name: str, default: Any) -> tuple[str, ...]:
        what = f"a {'' if allow_empty else 'non-empty '}list of distinct names from {', '.join(choices)}"
        value = s.get(name, what, lambda v: isinstance(v, list | tuple) and (allow_empty or v), default)
        for item in value:
            if item not in choices:
                raise s.fail(name, f"names from {', '.join(choices)}", item)
        if len(set(value)) != len(value):
            raise s.fail(name, what, value)
        return tuple(value)

    return check


def _path(what: str) -> Check:
    def check(s: _Section, name: str, default: Any) -> str:
        value = s.get(name, what, lambda v: isinstance(v, str | os.PathLike) and str(v).strip(), default)
        return os.path.normpath(os.path.join(s.base_dir, os.path.expanduser(value)))

    return check


def _location(what: str) -> Check:
    """A local path (made absolute against the config's folder) or a URL (``scheme://...``, kept)."""

    def check(s: _Section, name: str, default: Any) -> str:
        value = s.get(name, what, lambda v: isinstance(v, str | os.PathLike) and str(v).strip(), default)
        text = os.fspath(value).strip()
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text):
            return text
        return os.path.normpath(os.path.join(s.base_dir, os.path.expanduser(text)))

    return check


class Options(dict):
    """A config mapping of options: a dict that hashes (configs are hashable), not to be changed."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))


def _options(s: _Section, name: str, default: Any) -> Options:
    """A mapping of option names to plain values (text, numbers, booleans, null)."""
    what = "a mapping of option names to text, numbers, booleans or null"
    plain = (str, int, float, bool, type(None))
    value = s.get(
        name, what, lambda v: isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, plain)
                                                          for k, x in v.items()), default,
    )  # fmt: skip
    return Options(value)


def _scalar_or_pair(what: str, ok: Callable[[Any], bool], cast: type) -> Check:
    def check(s: _Section, name: str, default: Any) -> tuple | None:
        value = s.m.get(name, default)
        pair = value if isinstance(value, list | tuple) else [value, value]
        s.get(name, what, lambda v: len(pair) == 2 and all(map(ok, pair)), default)
        return None if value is None else (cast(pair[0]), cast(pair[1]))

    return check


def _time(s: _Section, name: str, default: Any) -> str | float:
    value = s.m.get(name, default)
    if isinstance(value, datetime.date) and getattr(value, "tzinfo", None) is None:
        value = value.isoformat()  # YAML reads an unquoted 2004-12-04 as a date
    if isinstance(value, str):
        from astropy.time import Time

        try:
            Time(value, scale="tt")
            return value
        except ValueError:
            pass
    return _num("an ISO time string (TT) or a number of seconds since MJDREF")(s, name, value)


def _nested(cls: type) -> Check:
    def check(s: _Section, name: str, default: Any) -> Any:
        allowed = _yaml_keys(cls)
        value = s.m.get(name, default)
        if value is _MISSING:
            raise s.fail(name, f"a mapping with keys {', '.join(allowed)}")
        if value is None and default is None:
            return None
        value = {} if value is None or value is default else value
        return _build(cls, _Section(value, s.key(name), allowed, s.source, s.base_dir))

    return check


def _yaml_keys(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if "check" in f.metadata]


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return _MISSING


def _build(cls: type, s: _Section) -> Any:
    """A ``cls`` from a section: each field's check in field order, then the cross-key checks."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if "check" in f.metadata:
            kwargs[f.name] = f.metadata["check"](s, f.name, _default(f))
    obj = cls(**kwargs)
    return obj._checked(s) if hasattr(obj, "_checked") else obj


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {name: _plain(getattr(obj, name)) for name in _yaml_keys(type(obj))}
    if isinstance(obj, dict):
        return {key: _plain(value) for key, value in obj.items()}
    return [_plain(v) for v in obj] if isinstance(obj, tuple | list) else obj


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """``yaml.safe_load``'s loader, plus YAML 1.2 floats (``1e-3``) and an error on duplicate keys.

    On libyaml's parser where PyYAML has it: a survey's job lists thousands of obs_ids, which the
    pure-Python parser reads in 0.1-0.2 s.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key.value!r}", key.start_mark
                    )
                seen.add(key.value)
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def read_yaml(path: str | os.PathLike) -> tuple[Any, Path]:
    """The document of a YAML config file and the file's absolute path (job and simulation configs).

    Raises
    ------
    ConfigError
        For an unreadable file, or invalid YAML (with its line number) or a duplicate key.
    """
    path = Path(path).absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(None, f"expected a readable YAML file ({error})", str(path)) from error
    try:
        return yaml.load(text, Loader=_Loader), path  # a SafeLoader subclass: as safe as yaml.safe_load
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(None, f"invalid YAML{where}: {problem}; expected valid YAML", str(path)) from error
