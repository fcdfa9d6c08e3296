"""The registry of products and methods is complete, and the config, the recipe, the mosaic, the export
and the makers agree with it (the archive's stored types: tests/archive/test_export_archive.py)."""

from __future__ import annotations

import numpy as np
import pytest

from gpcube import makers
from gpcube.makers import registry
from gpcube.makers.registry import PRODUCTS
from gpcube.workflow.config import ConfigError, parse_config
from tests.archive.conftest import job, job_dict
from tests.conftest import CRAB_RUNS

#: The archive format (format version 3): what each product is stored as. Changing one changes the
#: bytes of every archive, which needs a new format version (gpcube.storage.layout).
ARCHIVE_DTYPES = {
    "counts": "int32", "exposure": "float32", "background": "float32", "mask_safe": "bool",
    "psf": "float32", "edisp": "float32", "exposure_irf": "float32", "exposure_psf": "float32",
}  # fmt: skip


def test_the_stored_types_are_those_of_the_archive_format():
    assert {name: p.dtype for name, p in PRODUCTS.items()} == ARCHIVE_DTYPES
    assert registry.stored_dtypes() == {name: np.dtype(d) for name, d in ARCHIVE_DTYPES.items()}


#: The ring products as the archive stores them (``obs/<id>/ring``), on the dim energy_band (format 5).
RING_ARCHIVE_DTYPES = {
    "counts": "int32", "counts_off": "int32", "acceptance": "float32", "acceptance_off": "float32",
    "alpha": "float32", "mask_safe": "bool",
}  # fmt: skip


def test_the_ring_products_are_those_the_ring_stage_stores_on_energy_band():
    from gpcube.workflow.ring import RING_DTYPES, ZEROED_OUTSIDE_SAFE

    assert {name: p.dtype for name, p in registry.RING_PRODUCTS.items()} == RING_ARCHIVE_DTYPES
    assert list(RING_DTYPES) == list(RING_ARCHIVE_DTYPES)  # the order the archive writes them
    assert ZEROED_OUTSIDE_SAFE == ("counts", "counts_off", "acceptance")
    for product in registry.RING_PRODUCTS.values():
        assert product.axes == ("energy_band",) and product.energy_type == "reco" and product.grid == "sky"
        assert product.stack in registry.STACK_RULES and not product.requestable
        assert product.maker_function() is makers.make_map_ring_background


@pytest.mark.parametrize("name", list(PRODUCTS))
def test_each_product_has_a_maker_a_grid_a_type_and_a_mosaic_rule(name):
    product = PRODUCTS[name]
    maker = product.maker_function()
    assert callable(maker) and getattr(makers, maker.__name__) is maker  # a public maker
    assert product.grid in registry.GRIDS and product.stack in registry.STACK_RULES
    np.dtype(product.dtype)  # a numpy type
    energy_dims = [d for d in product.axes if d.startswith("energy_")]
    assert product.energy_type == "->".join(d.removeprefix("energy_") for d in energy_dims)
    if product.stack == "mean":
        weight = PRODUCTS[product.weight]
        assert weight.stack == "sum" and weight.grid == product.grid
    else:
        assert product.weight is None


def test_the_config_accepts_the_requestable_products_and_lists_them_for_another_name(tmp_path):
    names = registry.requestable_products()
    assert names == ("counts", "exposure", "background", "psf", "edisp")
    assert parse_config(job_dict(tmp_path / "a.zarr", products=list(names))).products == names
    for wrong, when in (("mask_safe", "in every job"), ("exposure_psf", "with psf and edisp"), ("sky", None)):
        with pytest.raises(ConfigError, match="products") as error:
            parse_config(job_dict(tmp_path / "a.zarr", products=["counts", wrong]))
        assert ", ".join(names) in str(error.value) and repr(wrong) in str(error.value)
        assert (f"{wrong} is not listed: it is made {when}" in str(error.value)) == (when is not None)


def test_the_config_reads_its_choices_from_the_registry():
    from gpcube.makers.fov import ORIENTATIONS
    from gpcube.makers.safe import METHODS
    from gpcube.workflow import config

    assert config.PRODUCTS == registry.requestable_products()
    assert config.BACKGROUND_METHODS == tuple(registry.BACKGROUND_METHODS) == ("model", "fov", "ring",
                                                                               "adaptive_ring")  # fmt: skip
    assert config.SAFE_METHODS == METHODS == tuple(registry.SAFE_MASK_METHODS)
    assert ORIENTATIONS is registry.ORIENTATIONS
    assert config.TRUE_ENERGY_USERS == ("exposure", "psf", "edisp", "aeff-max", "edisp-bias")


def test_each_background_methods_makers_exist():
    for method in registry.BACKGROUND_METHODS.values():
        for module in method.makers:
            assert module.startswith("gpcube.makers.") and module.removeprefix("gpcube.makers.") in set(
                makers._MODULES.values()
            )
    assert registry.ring_methods() == ("ring", "adaptive_ring")


def test_the_recipe_makes_each_product_as_the_registry_says(hess_store, tmp_path):
    """Names, grids, dims, units and energy types of what goes into the archive (graphs only)."""
    from gpcube.workflow.recipe import observation_products

    config = job(tmp_path / "a.zarr", products=list(registry.requestable_products()))
    sky, irf, ring = observation_products(hess_store.observation(CRAB_RUNS[0]), config.geom(), config)
    assert tuple(sky) == registry.products_on("sky") and set(irf) == set(registry.products_on("irf"))
    assert not ring
    for name, array in {**sky, **irf}.items():
        product = PRODUCTS[name]
        assert array.dims[:-2] == product.axes and len(array.dims) == len(product.axes) + 2, name
        assert array.attrs["units"] == product.units, name
        assert array.attrs["energy_type"] == product.energy_type, name
        assert array.attrs["product"] == name


def test_the_mosaic_and_the_export_read_the_registry():
    from gpcube.io import export
    from gpcube.workflow.mosaic import sum as mosaic_sum

    assert mosaic_sum.IRF_WEIGHTS == {"psf": "exposure_psf", "edisp": "exposure_irf"}
    assert mosaic_sum.ACCUMULATE == {"counts": np.int64, "exposure": np.float32, "background": np.float32,
                                     "mask_safe": bool}  # fmt: skip
    for name, (_, dims, unit, _) in {**export._SKY_MAPS, **export._IRF_MAPS}.items():
        assert dims[:-2] == PRODUCTS[name].axes and unit == PRODUCTS[name].units
    assert export._IRF_EXPOSURE == mosaic_sum.IRF_WEIGHTS
