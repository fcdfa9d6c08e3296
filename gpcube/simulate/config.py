"""The simulation config: a YAML file validated like the job config (:mod:`gpcube.workflow.config`).

:func:`load_sim_config` reads a file and :func:`parse_sim_config` a mapping; both check every key
before returning and raise :class:`~gpcube.workflow.config.ConfigError` naming the dotted key
(``sources[1].amplitude``) and what was expected. Every key is described in ``docs/simulate.rst``.
The checks are the job config's own (its ``_key``/``_build`` machinery), so both files behave alike.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gpcube._schema import (
    _DEG,
    _MISSING,
    ConfigError,
    _build,
    _check,
    _choice,
    _flag,
    _is_lonlat,
    _is_num,
    _key,
    _lonlat,
    _nested,
    _num,
    _path,
    _plain,
    _posint,
    _Section,
    _text,
    _time,
    _yaml_keys,
    read_yaml,
)
from gpcube.geom import FRAMES

__all__ = [
    "AeffModel", "AnalyticIrfConfig", "BackgroundModel", "EdispModel", "EnergyRange", "GridConfig",
    "ObservationConfig", "ObservatoryConfig", "PointingsConfig", "PsfModel", "SimBackgroundConfig",
    "SimConfig", "SimIrfConfig", "SourceConfig", "load_sim_config", "parse_sim_config",
]  # fmt: skip

_POS = "a positive number"
_NONNEG = "a non-negative number"
_is_nonneg_int = _check(
    "a non-negative integer", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, int
)


def _optional_sigma(s: _Section, name: str, default: Any) -> float | None:
    """A positive number of deg, or null (explicitly, whatever the default)."""
    if name in s.m and s.m[name] is None:
        return None
    return _num("null or " + _DEG, lambda x: x > 0)(s, name, default)


def _optional_path(what: str):
    """``_path`` of the job config, with None (the default) allowed."""
    check = _path(what)

    def optional(s: _Section, name: str, default: Any) -> str | None:
        return None if s.m.get(name, default) is None else check(s, name, default)

    return optional


@dataclass(frozen=True)
class EnergyRange:
    """An energy range ``[min, max)`` in TeV."""

    min: float = _key(_num(_POS + " of TeV", lambda x: x > 0), 0.1)
    max: float = _key(_num(_POS + " of TeV", lambda x: x > 0), 100.0)

    def _checked(self, s: _Section) -> EnergyRange:
        if not self.max > self.min:
            raise s.fail("max", f"a number of TeV greater than min ({self.min:g})", self.max)
        return self


def _lon_range(s: _Section, name: str, default: Any) -> tuple[float, float]:
    what = "[min, max] longitudes in deg with max >= min"
    value = s.get(name, what, lambda v: isinstance(v, list | tuple) and len(v) == 2, default)
    if not all(map(_is_num, value)) or value[1] < value[0]:
        raise s.fail(name, what, value)
    return float(value[0]), float(value[1])


def _lats(s: _Section, name: str, default: Any) -> tuple[float, ...]:
    what = "a latitude in deg in [-90, 90] or a non-empty list of them"
    value = s.m.get(name, default)
    values = value if isinstance(value, list | tuple) else [value]
    s.get(name, what, lambda v: len(values) > 0 and all(_is_num(x) and abs(x) <= 90 for x in values), default)
    return tuple(float(x) for x in values)


@dataclass(frozen=True)
class GridConfig:
    """``pointings.grid``: rows of pointings ``spacing`` deg apart from ``lon[0]`` to ``lon[1]``.

    One row per latitude in ``lat``.
    """

    lon: tuple[float, float] = _key(_lon_range)
    spacing: float = _key(_num(_DEG, lambda x: x > 0))
    lat: tuple[float, ...] = _key(_lats, (0.0,))


def _pointing_list(s: _Section, name: str, default: Any) -> tuple | None:
    what = "a non-empty list of [lon, lat] or [lon, lat, frame] in deg"
    value = s.get(name, what, lambda v: isinstance(v, list | tuple) and len(v) > 0, default)
    if value is None:
        return None
    out = []
    for item in value:
        ok = isinstance(item, list | tuple) and len(item) in (2, 3) and _is_lonlat(list(item[:2]))
        if not ok or (len(item) == 3 and item[2] not in FRAMES):
            raise s.fail(name, what + f" (frame one of {', '.join(FRAMES)})", item)
        out.append((float(item[0]), float(item[1]), *(item[2:] or [None])))
    return tuple(out)


@dataclass(frozen=True)
class PointingsConfig:
    """``pointings``: a survey ``grid`` or an explicit ``list`` in ``frame``.

    Each pointing is observed ``repeat`` times in a row.
    """

    frame: str = _key(_choice(FRAMES), "galactic")
    grid: GridConfig | None = _key(_nested(GridConfig), None)
    list: tuple[tuple[float, float, str], ...] | None = _key(_pointing_list, None)
    repeat: int = _key(_posint, 1)

    def _checked(self, s: _Section) -> PointingsConfig:
        if (self.grid is None) == (self.list is None):
            raise s.fail("grid", "exactly one of grid and list", s.m.get("grid", _MISSING))
        if self.list is not None:
            filled = tuple((lon, lat, frame or self.frame) for lon, lat, frame in self.list)
            return dataclasses.replace(self, list=filled)
        return self


@dataclass(frozen=True)
class ObservatoryConfig:
    """``observation.observatory``: GEOLON, GEOLAT (deg) and ALTITUDE (m); default the H.E.S.S. site."""

    lon: float = _key(_num("a longitude in deg"), 16.5002222222222)
    lat: float = _key(_num("a latitude in deg in [-90, 90]", lambda x: abs(x) <= 90), -23.2717777777778)
    altitude: float = _key(_num("a number of m"), 1835.0)


@dataclass(frozen=True)
class ObservationConfig:
    """``observation``: times, live time, field of view and energy ranges shared by every observation."""

    livetime: float = _key(_num(_POS + " of s", lambda x: x > 0), 1800.0)
    deadc: float = _key(_num("a number in (0, 1]", lambda x: 0 < x <= 1), 1.0)
    start: str | float = _key(_time, "2024-01-01T00:00:00")
    gap: float = _key(_num(_NONNEG + " of s", lambda x: x >= 0), 0.0)
    obs_id_start: int = _key(_is_nonneg_int, 1)
    max_offset: float = _key(_num(_DEG + " below 20", lambda x: 0 < x < 20), 2.5)
    energy: EnergyRange = _key(_nested(EnergyRange), EnergyRange())
    energy_true: EnergyRange | None = _key(_nested(EnergyRange), None)
    observatory: ObservatoryConfig = _key(_nested(ObservatoryConfig), ObservatoryConfig())

    @property
    def ontime(self) -> float:
        """On time in s: ``livetime / deadc``."""
        return self.livetime / self.deadc


@dataclass(frozen=True)
class AeffModel:
    """``irf.analytic.aeff``: a smooth threshold times a Gaussian fall-off with offset.

    ``plateau / (1 + (threshold / E)**4) * exp(-offset**2 / 2 offset_sigma**2)`` m2.
    """

    plateau: float = _key(_num(_POS + " of m2", lambda x: x > 0), 1e5)
    threshold: float = _key(_num(_POS + " of TeV", lambda x: x > 0), 0.1)
    offset_sigma: float | None = _key(_optional_sigma, 1.5)


@dataclass(frozen=True)
class PsfModel:
    """``irf.analytic.psf``: a 2-D Gaussian of width ``sigma`` deg, the same at every energy and offset."""

    sigma: float = _key(_num(_DEG + " below 2", lambda x: 0 < x < 2), 0.1)


@dataclass(frozen=True)
class EdispModel:
    """``irf.analytic.edisp``: the migration ``E_reco / E_true`` is a Gaussian.

    Its mean is ``1 + bias`` and its width ``sigma``, at every energy and offset.
    """

    sigma: float = _key(_num("a number in (0, 0.5]", lambda x: 0 < x <= 0.5), 0.1)
    bias: float = _key(_num("a number in [-0.5, 0.5]", lambda x: abs(x) <= 0.5), 0.0)


@dataclass(frozen=True)
class BackgroundModel:
    """``irf.analytic.bkg``: a power law in energy, flat or Gaussian in offset (bkg_2d).

    ``rate * E**-index * exp(-offset**2 / 2 offset_sigma**2)`` s-1 TeV-1 sr-1.
    """

    rate: float = _key(_num(_POS + " of s-1 TeV-1 sr-1", lambda x: x > 0), 100.0)
    index: float = _key(_num("a number"), 2.7)
    offset_sigma: float | None = _key(_optional_sigma, None)


@dataclass(frozen=True)
class AnalyticIrfConfig:
    """``irf.analytic``: IRF tables computed from simple formulas (see the sections)."""

    aeff: AeffModel = _key(_nested(AeffModel), AeffModel())
    psf: PsfModel = _key(_nested(PsfModel), PsfModel())
    edisp: EdispModel = _key(_nested(EdispModel), EdispModel())
    bkg: BackgroundModel = _key(_nested(BackgroundModel), BackgroundModel())


def _is_id_list(value: Any) -> bool:
    ids = value if isinstance(value, list | tuple) else []
    return len(ids) > 0 and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids)


_obs_id_list = _check("a non-empty list of observation ids (non-negative integers)", _is_id_list,
                      lambda v: tuple(int(i) for i in v))  # fmt: skip


@dataclass(frozen=True)
class SimIrfConfig:
    """``irf``: the IRFs of observations of the data store ``store``, or ``analytic`` ones.

    ``obs_id`` gives every observation the IRFs of that observation of ``store``; ``obs_ids`` gives
    observation ``i`` those of ``obs_ids[i % len(obs_ids)]`` (in turn). Analytic IRFs with their
    defaults when neither ``store`` nor ``analytic`` is given.
    """

    store: str | None = _key(_optional_path("the path of a GADF data store directory"), None)
    obs_id: int | None = _key(_is_nonneg_int, None)
    obs_ids: tuple[int, ...] | None = _key(_obs_id_list, None)
    analytic: AnalyticIrfConfig | None = _key(_nested(AnalyticIrfConfig), None)

    def _checked(self, s: _Section) -> SimIrfConfig:
        given = self.obs_id is not None or self.obs_ids is not None
        if self.store is not None and self.analytic is not None:
            raise s.fail("analytic", "null when store is given (at most one of them)", s.m["analytic"])
        if self.store is None and not given and self.analytic is None:
            return dataclasses.replace(self, analytic=AnalyticIrfConfig())
        if self.obs_id is not None and self.obs_ids is not None:
            raise s.fail("obs_ids", "null when obs_id is given (at most one of them)", list(self.obs_ids))
        if self.store is not None and not given:
            raise s.fail("obs_id", "the observation of irf.store whose IRFs are used (an integer), or "
                         "obs_ids (a list of them, assigned to the observations in turn)")  # fmt: skip
        if self.store is None and given:
            name = "obs_id" if self.obs_id is not None else "obs_ids"
            raise s.fail(name, "null without irf.store", s.m[name])
        return self

    @property
    def store_obs_ids(self) -> tuple[int, ...]:
        """The observations of ``store`` whose IRFs the simulation uses, in turn (empty if analytic)."""
        if self.obs_ids is not None:
            return self.obs_ids
        return () if self.obs_id is None else (self.obs_id,)


@dataclass(frozen=True)
class SimBackgroundConfig:
    """``background``: the model's rate times ``scale`` (default 1), or scaled to ``events``.

    ``events`` is the mean number of background events per observation.
    """

    scale: float | None = _key(_num(_NONNEG, lambda x: x >= 0), None)
    events: float | None = _key(_num(_POS + " of events", lambda x: x > 0), None)

    def _checked(self, s: _Section) -> SimBackgroundConfig:
        if self.events is not None and self.scale is not None:
            raise s.fail("events", "null when scale is given (at most one of them)", self.events)
        return self


@dataclass(frozen=True)
class SourceConfig:
    """One of ``sources``: a point (``sigma`` 0) or Gaussian source with a power-law spectrum.

    ``dN/dE = amplitude * (E / reference) ** -index`` in cm-2 s-1 TeV-1.
    """

    position: tuple[float, float] = _key(_lonlat)
    amplitude: float = _key(_num(_POS + " of cm-2 s-1 TeV-1", lambda x: x > 0))
    name: str | None = _key(_text("a name"), None)
    frame: str = _key(_choice(FRAMES), "galactic")
    sigma: float = _key(_num(_NONNEG + " of deg below 5", lambda x: 0 <= x < 5), 0.0)
    index: float = _key(_num("a number"), 2.5)
    reference: float = _key(_num(_POS + " of TeV", lambda x: x > 0), 1.0)


def _sources(s: _Section, name: str, default: Any) -> tuple[SourceConfig, ...]:
    value = s.get(name, "a list of sources (mappings)", lambda v: isinstance(v, list | tuple), default)
    allowed = _yaml_keys(SourceConfig)
    sources = []
    for i, item in enumerate(value):
        source = _build(SourceConfig, _Section(item, f"{s.key(name)}[{i}]", allowed, s.source, s.base_dir))
        sources.append(source if source.name else dataclasses.replace(source, name=f"source {i + 1}"))
    names = [source.name for source in sources]
    if len(set(names)) != len(names):
        raise s.fail(name, "sources with distinct names", names)
    return tuple(sources)


_chunk = _check("an integer of at least 1000", lambda v: isinstance(v, int) and not isinstance(v, bool)
                and v >= 1000, int)  # fmt: skip


@dataclass(frozen=True)
class SimConfig:
    """A whole simulation (see ``docs/simulate.rst``); ``to_dict()`` gives its canonical form."""

    pointings: PointingsConfig = _key(_nested(PointingsConfig))
    output: str | None = _key(_optional_path("the path of the output data store directory"), None)
    seed: int = _key(_is_nonneg_int, 0)
    observation: ObservationConfig = _key(_nested(ObservationConfig), ObservationConfig())
    irf: SimIrfConfig = _key(_nested(SimIrfConfig), SimIrfConfig(analytic=AnalyticIrfConfig()))
    background: SimBackgroundConfig = _key(_nested(SimBackgroundConfig), SimBackgroundConfig())
    sources: tuple[SourceConfig, ...] = _key(_sources, ())
    chunk_size: int = _key(_chunk, 1_000_000)
    compress: bool = _key(_flag, False)
    source: str | None = field(default=None, compare=False, repr=False)

    def _checked(self, s: _Section) -> SimConfig:
        return dataclasses.replace(self, source=s.source)

    def to_dict(self) -> dict[str, Any]:
        """Canonical plain (JSON-able) form: ``parse_sim_config(c.to_dict()) == c``."""
        return _plain(self)

    def to_json(self) -> str:
        """:meth:`to_dict` as compact JSON with sorted keys (the identity of a simulation)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))


def parse_sim_config(
    mapping: Any, base_dir: str | os.PathLike | None = None, source: str | None = None
) -> SimConfig:
    """Validate a simulation config given as a mapping.

    Parameters
    ----------
    mapping : mapping
        The keys of ``docs/simulate.rst``.
    base_dir : path-like, optional
        Directory against which relative paths (``output``, ``irf.store``) are resolved; default: the
        current directory.
    source : str, optional
        The file the mapping came from, for error messages.

    Returns
    -------
    SimConfig

    Raises
    ------
    ConfigError
        Naming the first bad key and what was expected.
    """
    base = os.path.abspath(os.fspath(base_dir) if base_dir is not None else os.getcwd())
    if not isinstance(mapping, Mapping):
        raise ConfigError(None, f"expected a mapping of simulation keys, got {mapping!r}", source)
    return _build(SimConfig, _Section(mapping, "", _yaml_keys(SimConfig), source, base))


def load_sim_config(path: str | os.PathLike) -> SimConfig:
    """Read and validate a YAML simulation config (relative paths are resolved against its directory).

    Raises
    ------
    ConfigError
        For an unreadable file, invalid YAML or a bad key.
    """
    mapping, path = read_yaml(path)
    return parse_sim_config(mapping, base_dir=path.parent, source=str(path))
