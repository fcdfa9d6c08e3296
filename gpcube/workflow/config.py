"""One YAML file drives a whole job: its sections as frozen dataclasses, validated all at once.

:func:`load_config` reads a file and :func:`parse_config` a mapping; both check every key before
returning (no side effects) and raise :class:`ConfigError` naming the dotted key and what was expected.
:meth:`JobConfig.to_dict` gives the canonical form (every default filled in, absolute paths). Every key
is described in ``docs/config.rst``.

Each dataclass field that is a YAML key carries its check in ``field(metadata={"check": ...})``; the
sections are read generically from that (:mod:`gpcube._schema`, shared with the simulation's config),
and cross-key rules live in ``_checked``.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gpcube._schema import (
    _DEG,
    _POSINT,
    ConfigError,
    Options,
    _build,
    _check,
    _choice,
    _count,
    _flag,
    _is_lonlat,
    _is_num,
    _is_posint,
    _key,
    _location,
    _lonlat,
    _names,
    _nested,
    _num,
    _options,
    _path,
    _plain,
    _posint,
    _scalar_or_pair,
    _Section,
    _text,
    _time,
    _yaml_keys,
    read_yaml,
)
from gpcube.errors import GpcubeError
from gpcube.geom import FRAMES, PROJECTIONS, EnergyAxis, SkyGeom
from gpcube.geom.frames import convert_frame
from gpcube.io import DataStore
from gpcube.io.location import as_location, is_url
from gpcube.makers import registry

__all__ = [
    "BACKGROUND_METHODS", "PRODUCTS", "AdaptiveRingConfig", "BackgroundConfig", "RingConfig",
    "ChunksConfig", "ClusterConfig", "ConeConfig", "ConfigError",
    "DataConfig", "EnergyConfig", "ExclusionConfig", "GeomConfig", "IrfConfig", "JobConfig",
    "MinCountsGrouping", "RadConfig", "SafeMaskConfig", "SelectionConfig", "TimeConfig", "load_config",
    "parse_config",
]  # fmt: skip

#: Product names allowed in ``products`` (:data:`gpcube.makers.registry.PRODUCTS`).
PRODUCTS = registry.requestable_products()
#: Products and safe-mask methods that need ``geom.energy_true``.
TRUE_ENERGY_USERS = registry.true_energy_users()
#: Background keys and the methods that allow them.
_METHOD_KEYS = {
    "exclusion": ("fov", "ring", "adaptive_ring"),
    "grouping": ("fov",),
    "min_counts": ("fov",),
    "min_npred_background": ("fov",),
    "ring": ("ring",),
    "adaptive_ring": ("adaptive_ring",),
}
#: ``background.method`` values (:data:`gpcube.makers.registry.BACKGROUND_METHODS`).
BACKGROUND_METHODS = tuple(registry.BACKGROUND_METHODS)
#: ``safe_mask.methods`` values (:data:`gpcube.makers.registry.SAFE_MASK_METHODS`).
SAFE_METHODS = tuple(registry.SAFE_MASK_METHODS)


def _products(s: _Section, name: str, default: Any) -> tuple[str, ...]:
    """``products``: distinct names of :data:`PRODUCTS`; a product made without being listed (the
    safe mask, the IRF weights) is refused saying when it is made."""
    value = s.m.get(name, default)
    for item in value if isinstance(value, list | tuple) else ():
        product = registry.PRODUCTS.get(item) if isinstance(item, str) else None
        if product is not None and not product.requestable:
            what = f"names from {', '.join(PRODUCTS)} ({item} is not listed: it is made {product.made_with})"
            raise s.fail(name, what, item)
    return _names(PRODUCTS, allow_empty=False)(s, name, default)


def _is_ids(v: Any) -> bool:
    ints = isinstance(v, list | tuple) and all(isinstance(i, numbers.Integral) for i in v)
    return ints and len(v) > 0 and not any(isinstance(i, bool) for i in v) and len(set(v)) == len(v)


def _is_memory(v: Any) -> bool:
    from dask.utils import parse_bytes

    try:
        return v == "auto" or (not isinstance(v, bool) and parse_bytes(v) > 0)
    except (TypeError, ValueError):
        return False


_ids = _check(
    "a non-empty list of distinct observation ids (integers)", _is_ids, lambda v: tuple(map(int, v))
)
_memory = _check("'auto', a size such as '4GiB' or a number of bytes", _is_memory)


def _is_circle(c: Any) -> bool:
    return isinstance(c, list | tuple) and len(c) == 3 and _is_lonlat(c[:2]) and _is_num(c[2]) and c[2] > 0


def _circles(s: _Section, name: str, default: Any) -> tuple:
    what = "a list of [lon, lat, radius] in deg (radius positive)"
    value = s.get(name, what, lambda v: isinstance(v, list | tuple), default)
    for circle in value:
        if not _is_circle(circle):
            raise s.fail(name, what, circle)
    return tuple(tuple(float(x) for x in c) for c in value)


def _grouping(s: _Section, name: str, default: Any) -> str | MinCountsGrouping:
    value = s.m.get(name, default)
    if isinstance(value, Mapping):
        return _nested(MinCountsGrouping)(s, name, default)
    return s.get(name, "all, per-bin or {min_counts: n}", lambda v: v in ("all", "per-bin"), default)


def _energy_edges(s: _Section, name: str, default: Any) -> str | tuple[float, ...]:
    what = "per-bin, all, or a list of at least 2 increasing energies in TeV (reco bin edges)"
    value = s.m.get(name, default)
    if value in ("per-bin", "all"):
        return value
    ok = isinstance(value, list | tuple) and len(value) >= 2 and all(_is_num(v) and v > 0 for v in value)
    if not ok or any(b <= a for a, b in zip(value[:-1], value[1:], strict=False)):
        raise s.fail(name, what, value)
    return tuple(float(v) for v in value)


def _band_edges(s: _Section, name: str, default: Any) -> tuple[float, ...] | None:
    what = "null or a list of at least 2 increasing energies in TeV (reco bin edges)"
    value = s.m.get(name, default)
    if value is None:
        return None
    ok = isinstance(value, list | tuple) and len(value) >= 2 and all(_is_num(v) and v > 0 for v in value)
    if not ok or any(b <= a for a, b in zip(value[:-1], value[1:], strict=False)):
        raise s.fail(name, what, value)
    return tuple(float(v) for v in value)


def _store(s: _Section, name: str, default: Any) -> str:
    """``data.store``: a URL as given (without a trailing slash), else a path made absolute."""
    value = s.m.get(name, default)
    if is_url(value):
        return as_location(value)
    return _path("the path or URL of a GADF data store")(s, name, default)


def _storage_options(s: _Section, name: str, default: Any) -> dict | None:
    """``data.storage_options``: a mapping with string keys and JSON-able values (it goes to the
    workers as JSON), only for a URL ``data.store``."""
    what = "null or a mapping of fsspec storage options (string keys)"
    value = s.m.get(name, default)
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise s.fail(name, what, value)
    if not is_url(s.m.get("store")):
        raise s.fail(name, "no storage_options with a local data.store (they are for a URL)", value)
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        what += " whose values are strings, numbers, booleans, lists or mappings"
        raise s.fail(name, what, value) from None


#: Storage-option keys whose values are secrets: not written into the archive (:meth:`JobConfig.to_dict`).
SECRET_OPTION = re.compile(r"key|secret|token|passw|credential|auth|signature|connection_string", re.I)


def _redacted(options: Any) -> Any:
    """``options`` with the values of secret-looking keys (:data:`SECRET_OPTION`) replaced by ``"***"``."""
    if not isinstance(options, Mapping):
        return options
    return {
        key: "***" if SECRET_OPTION.search(key) and value is not None else _redacted(value)
        for key, value in options.items()
    }


# ---------------------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class ConeConfig:
    """``data.selection.cone``: pointings within ``radius`` deg of ``(lon, lat)`` deg in ``frame``."""

    lon: float = _key(_num("a longitude in deg"))
    lat: float = _key(_num("a latitude in deg in [-90, 90]", lambda x: abs(x) <= 90))
    radius: float = _key(_num(_DEG, lambda x: x > 0))
    frame: str = _key(_choice(FRAMES), "icrs")


@dataclass(frozen=True)
class TimeConfig:
    """``data.selection.time``: ISO strings (TT) or seconds since the index's MJDREF."""

    start: str | float = _key(_time)
    stop: str | float = _key(_time)

    def _checked(self, s: _Section) -> TimeConfig:
        if isinstance(self.start, str) == isinstance(self.stop, str):
            from astropy.time import Time

            start, stop = (Time(t, scale="tt") if isinstance(t, str) else t for t in (self.start, self.stop))
            if not stop > start:
                raise s.fail("stop", f"a time after start ({self.start!r})", self.stop)
        return self


@dataclass(frozen=True)
class SelectionConfig:
    """``data.selection``: criteria AND-ed together (and with ``data.obs_ids``); None: not used."""

    cone: ConeConfig | None = _key(_nested(ConeConfig), None)
    time: TimeConfig | None = _key(_nested(TimeConfig), None)
    target: str | None = _key(_text("a shell pattern such as 'Crab*'"), None)
    max_observations: int | None = _key(_posint, None)


@dataclass(frozen=True)
class DataConfig:
    """``data``: the DL3 data store (absolute path, or URL with its ``storage_options``) and which of
    its observations to use."""

    store: str = _key(_store)
    obs_ids: tuple[int, ...] | None = _key(_ids, None)
    selection: SelectionConfig = _key(_nested(SelectionConfig), SelectionConfig())
    storage_options: dict | None = _key(_storage_options, None)
    source: str | None = field(default=None, compare=False, repr=False)

    def open(self) -> DataStore:
        """The selected data store.

        Returns
        -------
        DataStore
            ``DataStore.from_dir(store, storage_options).select(...)``, then the first
            ``max_observations`` by obs_id.

        Raises
        ------
        ConfigError
            With key ``data.store`` if the store cannot be opened, ``data.obs_ids`` for unknown ids.
        """
        try:
            store = DataStore.from_dir(self.store, self.storage_options)
        except GpcubeError as error:
            raise ConfigError("data.store", f"expected a GADF data store ({error})", self.source) from error
        missing = sorted(set(self.obs_ids or ()) - set(store.obs_ids))
        if missing:
            msg = f"expected ids in the data store, got {missing[:10]} which are not in it"
            raise ConfigError("data.obs_ids", msg, self.source)
        sel = self.selection
        cone = None if sel.cone is None else dataclasses.asdict(sel.cone)
        time = None if sel.time is None else (sel.time.start, sel.time.stop)
        store = store.select(obs_ids=self.obs_ids, cone=cone, time=time, target=sel.target)
        if sel.max_observations is not None and len(store) > sel.max_observations:
            store = store.select(obs_ids=sorted(store.obs_ids)[: sel.max_observations])
        return store


@dataclass(frozen=True)
class EnergyConfig:
    """``geom.energy_reco`` / ``geom.energy_true``: ``nbins`` log bins from ``min`` to ``max`` TeV."""

    min: float = _key(_num("a positive number of TeV", lambda x: x > 0))
    max: float = _key(_num("a positive number of TeV", lambda x: x > 0))
    nbins: int = _key(_posint)

    def _checked(self, s: _Section) -> EnergyConfig:
        if not self.max > self.min:
            raise s.fail("max", f"a number of TeV greater than min ({self.min:g})", self.max)
        return self

    def axis(self, name: str) -> EnergyAxis:
        """The :class:`~gpcube.geom.EnergyAxis` called ``name`` ("energy_reco" or "energy_true")."""
        return EnergyAxis.log(self.min, self.max, self.nbins, name)


@dataclass(frozen=True)
class GeomConfig:
    """``geom``: the mosaic grid; ``width`` (deg) or ``npix`` as ``(lon, lat)`` pairs, exactly one set.

    Calling it (``config.geom()``) gives the :class:`~gpcube.geom.SkyGeom`, with the axes
    ``energy_reco`` and (if configured) ``energy_true``.
    """

    center: tuple[float, float] = _key(_lonlat)
    binsz: float = _key(_num(_DEG + " below 180", lambda x: 0 < x < 180))
    energy_reco: EnergyConfig = _key(_nested(EnergyConfig))
    energy_true: EnergyConfig | None = _key(_nested(EnergyConfig), None)
    frame: str = _key(_choice(FRAMES), "icrs")
    projection: str = _key(_choice(PROJECTIONS), "CAR")
    width: tuple[float, float] | None = _key(
        _scalar_or_pair(_DEG + " or a pair of them", lambda v: _is_num(v) and v > 0, float), None
    )
    npix: tuple[int, int] | None = _key(
        _scalar_or_pair(_POSINT + " or a pair of them", _is_posint, int), None
    )

    def _checked(self, s: _Section) -> GeomConfig:
        if self.width is None and self.npix is None:
            raise s.fail("width", "exactly one of width and npix")
        if self.width is not None and self.npix is not None:
            raise s.fail("npix", "null when width is given (exactly one of width and npix)", s.m["npix"])
        return self

    def __call__(self) -> SkyGeom:
        """The mosaic geometry (:meth:`gpcube.geom.SkyGeom.create`)."""
        axes = [self.energy_reco.axis("energy_reco")]
        if self.energy_true is not None:
            axes.append(self.energy_true.axis("energy_true"))
        return SkyGeom.create(
            self.center, self.binsz, self.width, self.npix, self.frame, self.projection, axes
        )


@dataclass(frozen=True)
class SafeMaskConfig:
    """``safe_mask``: methods and parameters of :func:`gpcube.makers.make_safe_mask`.

    ``position`` is in ``frame``: the geometry's frame, set by :class:`JobConfig` (not a YAML key).
    """

    methods: tuple[str, ...] = _key(_names(SAFE_METHODS, allow_empty=True), ("offset-max",))
    offset_max: float = _key(_num(_DEG, lambda x: x > 0), 2.5)
    aeff_percent: float = _key(_num("a positive number (percent)", lambda x: x > 0), 10.0)
    bias_percent: float = _key(_num("a positive number (percent)", lambda x: x > 0), 10.0)
    position: tuple[float, float] | None = _key(_lonlat, None)
    fixed_offset: float | None = _key(_num("a non-negative number of deg", lambda x: x >= 0), None)
    frame: str = "icrs"

    def _checked(self, s: _Section) -> SafeMaskConfig:
        if self.position is not None and self.fixed_offset is not None:
            raise s.fail(
                "fixed_offset", "null when position is given (at most one of them)", self.fixed_offset
            )
        return self

    def maker_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``make_safe_mask`` (``position`` as a SkyCoord, or None)."""
        kwargs = {name: getattr(self, name) for name in _yaml_keys(SafeMaskConfig)}
        if self.position is not None:  # astropy.coordinates (0.3 s to import) only when needed
            from astropy.coordinates import SkyCoord

            kwargs["position"] = SkyCoord(*self.position, unit="deg", frame=self.frame)
        return kwargs


@dataclass(frozen=True)
class ExclusionConfig:
    """``background.exclusion``: circles ``(lon, lat, radius)`` in deg in ``frame`` (None: the geom's)."""

    circles: tuple[tuple[float, float, float], ...] = _key(_circles, ())
    frame: str | None = _key(_choice(FRAMES), None)


@dataclass(frozen=True)
class MinCountsGrouping:
    """``background.grouping: {min_counts: n}``: energy bins merged until a group has ``n`` counts."""

    min_counts: int = _key(_posint)


@dataclass(frozen=True)
class RingConfig:
    """``background.ring``: a fixed ring ``r_in`` to ``r_in + width`` deg around each pixel."""

    r_in: float = _key(_num(_DEG, lambda x: x > 0), 0.5)
    width: float = _key(_num(_DEG, lambda x: x > 0), 0.3)
    energy_edges: str | tuple[float, ...] = _key(_energy_edges, "per-bin")


@dataclass(frozen=True)
class AdaptiveRingConfig:
    """``background.adaptive_ring``: the ring grows by ``stepsize`` until alpha <= ``threshold_alpha``."""

    r_in: float = _key(_num(_DEG, lambda x: x > 0), 0.5)
    width: float = _key(_num(_DEG, lambda x: x > 0), 0.3)
    r_out_max: float = _key(_num(_DEG, lambda x: x > 0), 2.0)
    stepsize: float = _key(_num(_DEG, lambda x: x > 0), 0.02)
    threshold_alpha: float = _key(_num("a positive number", lambda x: x > 0), 0.1)
    theta: float | None = _key(_num(_DEG + " or null", lambda x: x > 0), None)
    method: str = _key(_choice(("fixed_width", "fixed_r_in")), "fixed_width")
    energy_edges: str | tuple[float, ...] = _key(_energy_edges, "per-bin")

    def _checked(self, s: _Section) -> AdaptiveRingConfig:
        if self.r_out_max <= self.r_in + self.width:
            raise s.fail(
                "r_out_max", f"more than r_in + width = {self.r_in + self.width} deg", self.r_out_max
            )
        return self


@dataclass(frozen=True)
class BackgroundConfig:
    """``background``: predicted (``model``), FoV-normalised (``fov``) or ring (``ring``,
    ``adaptive_ring``) background; the ring methods use the predicted background as acceptance."""

    method: str = _key(_choice(BACKGROUND_METHODS), "model")
    orientation: str = _key(_choice(("auto", *registry.ORIENTATIONS)), "auto")
    fov_rotation_step: float = _key(_num(_DEG, lambda x: x > 0), 1.0)
    exclusion: ExclusionConfig | None = _key(_nested(ExclusionConfig), None)
    grouping: str | MinCountsGrouping = _key(_grouping, "all")
    min_counts: float = _key(_num("a non-negative number", lambda x: x >= 0), 0.0)
    min_npred_background: float = _key(_num("a non-negative number", lambda x: x >= 0), 0.0)
    ring: RingConfig | None = _key(_nested(RingConfig), None)
    adaptive_ring: AdaptiveRingConfig | None = _key(_nested(AdaptiveRingConfig), None)

    def _checked(self, s: _Section) -> BackgroundConfig:
        for name, methods in _METHOD_KEYS.items():
            if self.method not in methods and s.m.get(name) is not None:
                allowed = " or ".join(methods)
                raise s.fail(name, f"no {name} with method {self.method} (allowed with {allowed})", s.m[name])
        if self.method == "ring" and self.ring is None:
            return dataclasses.replace(self, ring=RingConfig())
        if self.method == "adaptive_ring" and self.adaptive_ring is None:
            return dataclasses.replace(self, adaptive_ring=AdaptiveRingConfig())
        return self

    @property
    def ring_params(self) -> RingConfig | AdaptiveRingConfig | None:
        """The ring section of the method in use (None for model and fov)."""
        return {"ring": self.ring, "adaptive_ring": self.adaptive_ring}.get(self.method)

    def exclusion_circles(self, geom: SkyGeom) -> list[tuple[float, float, float]] | None:
        """The exclusion circles ``(lon, lat, radius)`` in ``geom.frame`` (None if there are none)."""
        if self.exclusion is None or not self.exclusion.circles:
            return None
        lon, lat, radius = np.array(self.exclusion.circles).T
        lon, lat = convert_frame(lon, lat, self.exclusion.frame or geom.frame, geom.frame)
        return [(float(a), float(b), float(r)) for a, b, r in zip(lon, lat, radius, strict=True)]

    def maker_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`gpcube.makers.make_map_background`."""
        return {"orientation": self.orientation, "fov_rotation_step": self.fov_rotation_step}

    def fov_norm_kwargs(self, geom: SkyGeom) -> dict[str, Any]:
        """Keyword arguments of ``make_map_background_fov_norm``: exclusion circles in ``geom.frame``.

        The circles, not a mosaic-sized mask, are passed: the maker draws them on each cutout.
        """
        circles = self.exclusion_circles(geom)
        grouping = self.grouping if isinstance(self.grouping, str) else dataclasses.asdict(self.grouping)
        kwargs = {"exclusion_mask": circles, "grouping": grouping}
        return kwargs | {name: getattr(self, name) for name in ("min_counts", "min_npred_background")}


@dataclass(frozen=True)
class RadConfig:
    """``irf.rad``: PSF rad axis, ``nbins`` bins from 0 to ``max`` deg."""

    max: float = _key(_num(_DEG, lambda x: x > 0), 0.66)
    nbins: int = _key(_posint, 66)

    def edges(self) -> np.ndarray:
        """The ``nbins + 1`` bin edges in deg (for ``make_psf_map(rad=...)``)."""
        return np.linspace(0.0, self.max, self.nbins + 1)


@dataclass(frozen=True)
class IrfConfig:
    """``irf``: coarse grid of the PSF and edisp maps (``binsz`` deg), rad axis, spectral index."""

    binsz: float = _key(_num(_DEG + " below 180", lambda x: 0 < x < 180), 0.2)
    rad: RadConfig = _key(_nested(RadConfig), RadConfig())
    spectral_index: float = _key(_num("a number"), 2.0)


@dataclass(frozen=True)
class ChunksConfig:
    """``chunks``: block sizes in pixels along lon and lat, per observation and of the mosaic."""

    obs: int = _key(_posint, 256)
    mosaic: int = _key(_posint, 256)


@dataclass(frozen=True)
class CommitConfig:
    """``commit``: how often ``reduce`` commits the observations it made (one commit each time)."""

    observations: int = _key(_posint, 100)
    seconds: float = _key(_num("a positive number of seconds", lambda x: x > 0), 60.0)


@dataclass(frozen=True)
class ClusterConfig:
    """``cluster``: an embedded ``LocalCluster`` (``address`` None) or a scheduler's address."""

    address: str | None = _key(_text("null or a scheduler address such as 'tcp://host:8786'"), None)
    n_workers: int = _key(_posint, 2)
    threads_per_worker: int = _key(_posint, 1)
    processes: bool = _key(_flag, True)
    memory_limit: str | int = _key(_memory, "auto")
    dashboard: bool = _key(_flag, False)
    min_tasks: int = _key(_count, 16)
    start_method: str = _key(_choice(("auto", "fork", "spawn", "forkserver")), "auto")


@dataclass(frozen=True)
class SignificanceConfig:
    """``significance``: excess, significance and flux maps made after the mosaic, as
    ``gpcube significance`` makes them (:func:`gpcube.workflow.pipeline.significance`)."""

    radius: float = _key(_num(_DEG, lambda x: x > 0))
    energy_edges: tuple[float, ...] | None = _key(_band_edges, None)
    spectral_index: float = _key(_num("a number"), 2.0)
    correlate_off: bool = _key(_flag, True)


@dataclass(frozen=True)
class JobConfig:
    """A whole job. ``geom`` is a :class:`GeomConfig`, and ``config.geom()`` the :class:`SkyGeom`.

    ``max_offset`` None (the default) means ``safe_mask.offset_max`` if the safe mask uses
    ``offset-max``, else 2.5; it is resolved on construction.

    Examples
    --------
    >>> from gpcube.data import write_example_config
    >>> from gpcube.workflow.config import load_config, parse_config
    >>> config = load_config(write_example_config("crab.yaml"))
    >>> config.safe_mask.methods, config.background.method, config.max_offset
    (('offset-max', 'aeff-default'), 'fov', 2.5)
    >>> parse_config(config.to_dict()) == config  # the canonical form, every default filled in
    True
    """

    data: DataConfig = _key(_nested(DataConfig))
    geom: GeomConfig = _key(_nested(GeomConfig))
    output: str = _key(_location("the archive's location: a local path, or s3://, gs://, memory:// URL"))
    output_options: dict = _key(_options, Options())
    products: tuple[str, ...] = _key(_products, ("counts", "exposure", "background"))
    max_offset: float = _key(_num(_DEG, lambda x: x > 0), None)
    safe_mask: SafeMaskConfig = _key(_nested(SafeMaskConfig), SafeMaskConfig())
    background: BackgroundConfig = _key(_nested(BackgroundConfig), BackgroundConfig())
    irf: IrfConfig = _key(_nested(IrfConfig), IrfConfig())
    chunks: ChunksConfig = _key(_nested(ChunksConfig), ChunksConfig())
    commit: CommitConfig = _key(_nested(CommitConfig), CommitConfig())
    cluster: ClusterConfig = _key(_nested(ClusterConfig), ClusterConfig())
    significance: SignificanceConfig | None = _key(_nested(SignificanceConfig), None)
    source: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        """Resolve what depends on other sections: max_offset, the frames of position and exclusion."""
        replace, safe, background = dataclasses.replace, self.safe_mask, self.background
        if self.max_offset is None:
            object.__setattr__(self, "max_offset", safe.offset_max if "offset-max" in safe.methods else 2.5)
        object.__setattr__(self, "safe_mask", replace(safe, frame=self.geom.frame))
        if background.exclusion is not None and background.exclusion.frame is None:
            exclusion = replace(background.exclusion, frame=self.geom.frame)
            object.__setattr__(self, "background", replace(background, exclusion=exclusion))

    def _checked(self, s: _Section) -> JobConfig:
        users = [name for name in (*self.products, *self.safe_mask.methods) if name in TRUE_ENERGY_USERS]
        if users and self.geom.energy_true is None:
            raise s.fail("geom.energy_true", f"{{min, max, nbins}} in TeV, needed by {', '.join(users)}")
        data = dataclasses.replace(self.data, source=s.source)
        return dataclasses.replace(self, data=data, source=s.source)

    def to_dict(self, redact: bool = False) -> dict[str, Any]:
        """Canonical plain (JSON-able) form, every default filled in: ``parse_config(c.to_dict()) == c``.

        With ``redact``, the secrets among ``data.storage_options`` (keys such as ``key``, ``secret``,
        ``token``, ``password``: :data:`SECRET_OPTION`) are ``"***"``: the form that the archive records.
        """
        out = _plain(self)
        if redact:
            out["data"]["storage_options"] = _redacted(out["data"]["storage_options"])
        for name, methods in _METHOD_KEYS.items():
            if self.background.method not in methods:
                del out["background"][name]
        return out

    def analysis_dict(self) -> dict[str, Any]:
        """The part of :meth:`to_dict` that fixes the per-observation products (not data, output, ...)."""
        out = self.to_dict()
        return {key: out[key] for key in ("geom", "products", "max_offset", "safe_mask", "background", "irf")}

    def archive(self):
        """The output :class:`~gpcube.storage.repository.Archive` (``output`` with ``output_options``)."""
        from gpcube.storage.repository import Archive

        return Archive(self.output, self.output_options)

    def safe_mask_kwargs(self) -> dict[str, Any]:
        """:meth:`SafeMaskConfig.maker_kwargs` plus this job's ``binsz_irf`` and ``max_offset``."""
        return {**self.safe_mask.maker_kwargs(), "binsz_irf": self.irf.binsz, "max_offset": self.max_offset}


# ------------------------------------------------------------------------------------- entry points
def parse_config(
    mapping: Any, base_dir: str | os.PathLike | None = None, source: str | None = None
) -> JobConfig:
    """Validate a job configuration given as a mapping (as YAML gives it).

    Parameters
    ----------
    mapping : mapping
        The sections (``docs/config.rst``).
    base_dir : path-like, optional
        Directory against which relative paths (``data.store``, ``output``) are resolved; default: the
        current directory.
    source : str, optional
        The file the mapping came from, for error messages.

    Returns
    -------
    JobConfig

    Raises
    ------
    ConfigError
        Naming the first bad key and what was expected.

    See Also
    --------
    load_config : The same from a YAML file.

    Examples
    --------
    >>> from gpcube.data import example_data_dir
    >>> from gpcube.workflow.config import parse_config
    >>> job = {  # the 4 Crab runs on a small mosaic
    ...     "data": {"store": str(example_data_dir())},
    ...     "geom": {"center": [83.633, 22.014], "width": 3.0, "binsz": 0.05,
    ...              "energy_reco": {"min": 0.5, "max": 50, "nbins": 4},
    ...              "energy_true": {"min": 0.3, "max": 100, "nbins": 8}},
    ...     "output": "crab.zarr",
    ... }
    >>> config = parse_config(job)
    >>> config.products, config.max_offset  # defaults, and what follows from them
    (('counts', 'exposure', 'background'), 2.5)
    >>> config.geom().npix
    (60, 60)

    A bad value is refused, naming its key:

    >>> from gpcube.workflow.config import ConfigError
    >>> try:
    ...     parse_config({**job, "products": ["counts", "flux"]})
    ... except ConfigError as error:
    ...     print(error)
    config key 'products': expected names from ..., got 'flux'
    """
    base = os.path.abspath(os.fspath(base_dir) if base_dir is not None else os.getcwd())
    return _build(JobConfig, _Section(mapping, "", _yaml_keys(JobConfig), source, base))


def load_config(path: str | os.PathLike) -> JobConfig:
    """Read and validate a YAML job configuration.

    Parameters
    ----------
    path : path-like
        The YAML file; relative paths in it are resolved against its directory.

    Returns
    -------
    JobConfig

    Raises
    ------
    ConfigError
        For an unreadable file, invalid YAML (with its line number) or a bad key.

    See Also
    --------
    parse_config : The same from a mapping.
    gpcube.data.write_example_config : The example config (``gpcube example``).
    gpcube.workflow.pipeline.run : Runs the job.

    Examples
    --------
    >>> from gpcube.data import write_example_config
    >>> from gpcube.workflow.config import load_config
    >>> config = load_config(write_example_config("crab.yaml"))
    >>> config.products
    ('counts', 'exposure', 'background', 'psf', 'edisp')
    >>> config.geom()  # the mosaic geometry
    SkyGeom(icrs CAR, npix=(250, 250), binsz=0.02 deg, crval=(83.633, 22.014), origin=(0, 0),
            axes=[energy_reco[10], energy_true[20]])
    >>> config.data.open().obs_ids  # the observations selected
    [23523, 23526, 23559, 23592]
    >>> config.output  # relative to the file's folder
    '.../crab.zarr'
    """
    mapping, path = read_yaml(path)
    return parse_config(mapping, base_dir=path.parent, source=str(path))
