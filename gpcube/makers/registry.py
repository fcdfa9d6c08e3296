"""The registry of what gpcube makes: products, background methods, safe-mask methods, orientations.

One place holds the names and facts that the config validates against, the per-observation recipe
makes, the archive stores, the mosaic combines and the export writes: :data:`PRODUCTS` (name, maker,
grid, axes, energy type, units, stored dtype, mosaic rule), the ring background's own products
(:data:`RING_PRODUCTS`), :data:`BACKGROUND_METHODS`,
:data:`SAFE_MASK_METHODS` and :data:`ORIENTATIONS`. The makers are named by dotted path and imported
only when asked for (:meth:`Product.maker_function`), so importing this module costs nothing beyond
numpy: the config reads it without importing a maker.

Examples
--------
>>> from gpcube.makers.registry import PRODUCTS, requestable_products
>>> requestable_products()
('counts', 'exposure', 'background', 'psf', 'edisp')
>>> PRODUCTS["counts"].dtype, PRODUCTS["counts"].grid
('int32', 'sky')
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

__all__ = [
    "BACKGROUND_METHODS",
    "GRIDS",
    "ORIENTATIONS",
    "PRODUCTS",
    "RING_PRODUCTS",
    "SAFE_MASK_METHODS",
    "STACK_RULES",
    "BackgroundMethod",
    "Product",
    "SafeMaskMethod",
    "products_on",
    "requestable_products",
    "ring_methods",
    "stored_dtypes",
    "true_energy_users",
]

#: The grids of the products: the mosaic's sky grid and the coarse IRF grid ``geom.to_binsz(irf.binsz)``.
GRIDS = ("sky", "irf")
#: How the mosaic combines the observations' values of a product (:mod:`gpcube.workflow.mosaic.sum`).
STACK_RULES = MappingProxyType({
    "sum-safe": "summed where the observation's mask_safe is True",
    "sum-any-safe": "summed where any reco bin of the observation is safe at the pixel",
    "or": "the logical OR of the observations' values",
    "sum": "summed (a weight of the IRF maps' means)",
    "mean": "the mean weighted by its weight (a product of the same grid)",
    "sum-ring-safe": "summed where the observation's ring mask_safe is True",
    "ring-alpha": "summed as alpha * counts_off (alpha_counts_off) where the observation's ring mask_safe "
    "is True; the stacked alpha is that sum over the summed counts_off",
    "ring-off": "not stored: the summed acceptance over the stacked alpha",
})  # fmt: skip


@dataclass(frozen=True)
class Product:
    """One product of an observation, as made, stored, stacked and exported.

    Attributes
    ----------
    name : str
        The name in the config's ``products``, in the archive (``obs/<id>/<name>``) and in the mosaic.
    maker : str
        ``"module:function"`` of the maker whose result the product is (or is derived from).
    grid : {"sky", "irf"}
        The sky grid of the mosaic, or the coarse IRF grid (the archive's ``irf`` groups).
    axes : tuple of str
        The non-spatial dims, in order, before the two pixel dims.
    energy_type : str
        ``attrs["energy_type"]`` of the product: ``"reco"`` or ``"true"`` (the energy dim among its
        axes is ``energy_reco`` or ``energy_true``; ``energy_band``, bands of reco bins, is ``"reco"``)
        or, for the energy-dispersion kernels, ``"true->reco"``.
    units : str
        ``attrs["units"]`` (``""``: dimensionless).
    dtype : str
        The numpy dtype it is stored with in the archive, observations and mosaic alike.
    stack : str
        How the mosaic combines the observations' values, a key of :data:`STACK_RULES`.
    weight : str or None
        For a ``mean``: the product it is weighted by.
    made_with : str or None
        None for a product that the config's ``products`` lists; for the others, when they are made
        (the safe mask in every job, the IRF weights with the IRF maps).
    """

    name: str
    maker: str
    grid: str
    axes: tuple[str, ...]
    energy_type: str
    units: str
    dtype: str
    stack: str
    weight: str | None = None
    made_with: str | None = None

    @property
    def requestable(self) -> bool:
        """Whether the config's ``products`` may list it."""
        return self.made_with is None

    def maker_function(self) -> Callable:
        """The maker, imported now (the registry itself imports none)."""
        module, name = self.maker.split(":")
        return getattr(importlib.import_module(module), name)

    @property
    def maker_module(self) -> str:
        """The module of the maker (``gpcube.makers.<module>``)."""
        return self.maker.split(":")[0]


_EXPOSURE = "gpcube.makers.exposure:make_map_exposure_true_energy"

#: Every product, by name, in the order the archive writes them (sky grid, then IRF grid).
PRODUCTS: Mapping[str, Product] = MappingProxyType({p.name: p for p in (
    Product("counts", "gpcube.makers.counts:make_map_counts", "sky", ("energy_reco",), "reco", "",
            "int32", "sum-safe"),
    Product("exposure", _EXPOSURE, "sky", ("energy_true",), "true", "m2 s", "float32", "sum-any-safe"),
    Product("background", "gpcube.makers.background:make_map_background", "sky", ("energy_reco",),
            "reco", "", "float32", "sum-safe"),
    Product("mask_safe", "gpcube.makers.safe:make_safe_mask", "sky", ("energy_reco",), "reco", "",
            "bool", "or", made_with="in every job"),
    Product("psf", "gpcube.makers.psf:make_psf_map", "irf", ("energy_true", "rad"), "true", "sr-1",
            "float32", "mean", weight="exposure_psf"),
    Product("edisp", "gpcube.makers.edisp:make_edisp_kernel_map", "irf", ("energy_true", "energy_reco"),
            "true->reco", "", "float32", "mean", weight="exposure_irf"),
    Product("exposure_irf", _EXPOSURE, "irf", ("energy_true",), "true", "m2 s", "float32", "sum",
            made_with="with psf or edisp"),
    Product("exposure_psf", _EXPOSURE, "irf", ("energy_true",), "true", "m2 s", "float32", "sum",
            made_with="with psf and edisp"),
)})  # fmt: skip


_RING = "gpcube.makers.ring:make_map_ring_background"
_RING_JOBS = "with background.method ring or adaptive_ring"

#: The ring background's products (``obs/<id>/ring``, summed into ``mosaic/ring``), in the order the
#: archive writes them: on the sky grid and the ring's energy bands, the dim ``energy_band`` (made by
#: :func:`gpcube.makers.make_map_ring_background` or the adaptive one). Separate from
#: :data:`PRODUCTS`: their names repeat those of the sky products in a group of their own.
RING_PRODUCTS: Mapping[str, Product] = MappingProxyType({p.name: p for p in (
    Product("counts", _RING, "sky", ("energy_band",), "reco", "", "int32", "sum-ring-safe",
            made_with=_RING_JOBS),
    Product("counts_off", _RING, "sky", ("energy_band",), "reco", "", "int32", "sum-ring-safe",
            made_with=_RING_JOBS),
    Product("acceptance", _RING, "sky", ("energy_band",), "reco", "", "float32", "sum-ring-safe",
            made_with=_RING_JOBS),
    Product("acceptance_off", _RING, "sky", ("energy_band",), "reco", "", "float32", "ring-off",
            made_with=_RING_JOBS),
    Product("alpha", _RING, "sky", ("energy_band",), "reco", "", "float32", "ring-alpha",
            made_with=_RING_JOBS),
    Product("mask_safe", _RING, "sky", ("energy_band",), "reco", "", "bool", "or", made_with=_RING_JOBS),
)})  # fmt: skip


def requestable_products() -> tuple[str, ...]:
    """The names the config's ``products`` may list, in :data:`PRODUCTS` order."""
    return tuple(name for name, p in PRODUCTS.items() if p.requestable)


def products_on(grid: str) -> tuple[str, ...]:
    """The names of the products on ``grid`` (one of :data:`GRIDS`), in :data:`PRODUCTS` order."""
    if grid not in GRIDS:
        raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}")
    return tuple(name for name, p in PRODUCTS.items() if p.grid == grid)


def stored_dtypes() -> dict[str, np.dtype]:
    """``{name: dtype}`` of every product as the archive stores it."""
    return {name: np.dtype(p.dtype) for name, p in PRODUCTS.items()}


@dataclass(frozen=True)
class BackgroundMethod:
    """A ``background.method``: the maker modules it needs besides the products' own, and whether it
    makes ring products (``obs/<id>/ring``, ``mosaic/ring``)."""

    name: str
    makers: tuple[str, ...] = ()
    ring: bool = False


#: The background methods, by name (``background.method``); the first is the default.
BACKGROUND_METHODS: Mapping[str, BackgroundMethod] = MappingProxyType({m.name: m for m in (
    BackgroundMethod("model"),
    BackgroundMethod("fov", ("gpcube.makers.fov_norm",)),
    BackgroundMethod("ring", ("gpcube.makers.ring",), ring=True),
    BackgroundMethod("adaptive_ring", ("gpcube.makers.ring", "gpcube.makers.ring_adaptive"), ring=True),
)})  # fmt: skip


def ring_methods() -> tuple[str, ...]:
    """The background methods that make ring products."""
    return tuple(name for name, m in BACKGROUND_METHODS.items() if m.ring)


@dataclass(frozen=True)
class SafeMaskMethod:
    """A safe-mask method (``safe_mask.methods``); ``energy_true``: it needs ``geom.energy_true``."""

    name: str
    energy_true: bool = False


#: The safe-mask methods of :func:`gpcube.makers.make_safe_mask`, in the order they are applied.
SAFE_MASK_METHODS: Mapping[str, SafeMaskMethod] = MappingProxyType({m.name: m for m in (
    SafeMaskMethod("offset-max"),
    SafeMaskMethod("aeff-default"),
    SafeMaskMethod("aeff-max", energy_true=True),
    SafeMaskMethod("edisp-bias", energy_true=True),
    SafeMaskMethod("bkg-peak"),
    SafeMaskMethod("bkg-invalid"),
)})  # fmt: skip


def true_energy_users() -> tuple[str, ...]:
    """The requestable products and safe-mask methods that need ``geom.energy_true``."""
    products = tuple(n for n in requestable_products() if "energy_true" in PRODUCTS[n].axes)
    return products + tuple(name for name, m in SAFE_MASK_METHODS.items() if m.energy_true)


#: Named orientations of the background model's FoV axes (``background.orientation``): for each FoV
#: dim of a bkg_3d Dataset (as gpcube reads it: ``fov_lon`` is the header's DETX, ``fov_lat`` its
#: DETY), the signed FoV direction it is evaluated along. ``"lon"``/``"lat"`` are east/north for
#: RADEC alignment and +az/+alt for ALTAZ (:mod:`gpcube.makers.fov`).
ORIENTATIONS: dict[str, dict[str, str]] = {
    # GADF: DETX is the FoV longitude, counted positive away from +lon (the mirror image of the sky
    # as seen from inside the sphere), DETY the FoV latitude.
    "gadf": {"fov_lon": "-lon", "fov_lat": "+lat"},
    # H.E.S.S. DL3 DR1 (exporter "SASH FITS::EventListWriter", HDUVERS 0.2): the table's DETY axis
    # runs along +lon and its DETX axis along +lat. The reference reads these files so, and the
    # positions of background events favour it (benchmarks/bkg_orientation.py).
    "hess-dr1": {"fov_lat": "+lon", "fov_lon": "+lat"},
}
