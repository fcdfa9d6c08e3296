"""Sphinx directives that write the tables of :mod:`gpcube.makers.registry` into the pages.

``.. gpcube-products::`` gives one row per product (name, grid, dims, units, stored type, when it is
made, how the mosaic combines it); ``.. gpcube-methods::`` the background and safe-mask methods. The
tables are made from the registry at build time, so the docs list what the code accepts.
"""

from __future__ import annotations

from sphinx.util.docutils import SphinxDirective

from gpcube.makers import registry


def _list_table(header: list[str], rows: list[list[str]], widths: str) -> list[str]:
    lines = [".. list-table::", "   :header-rows: 1", f"   :widths: {widths}", ""]
    for row in [header, *rows]:
        lines += [f"   * - {row[0]}", *(f"     - {cell}" for cell in row[1:])]
    return lines


def product_rows(products=None) -> list[list[str]]:
    """One row per product of ``products`` (default :data:`gpcube.makers.registry.PRODUCTS`)."""
    rows = []
    for p in (registry.PRODUCTS if products is None else products).values():
        maker = f":func:`~gpcube.makers.{p.maker.partition(':')[2]}`"
        made = "when listed in ``products``" if p.requestable else p.made_with
        stack = f"the mean weighted by ``{p.weight}``" if p.weight else registry.STACK_RULES[p.stack]
        dims = ", ".join(f"``{d}``" for d in p.axes)
        units = f"``{p.units}``" if p.units else "(none)"
        rows.append([f"``{p.name}``", p.grid, dims, units, f"``{p.dtype}``", maker, made, stack])
    return rows


class ProductTable(SphinxDirective):
    """``.. gpcube-products::``: the products of the registry."""

    def run(self):
        header = ["name", "grid", "dims (then the pixels)", "units", "stored as", "maker", "made"]
        header.append("in the mosaic")
        lines = _list_table(header, product_rows(), "11 5 18 6 7 20 12 21")
        return self.parse_text_to_nodes("\n".join(lines))


class RingProductTable(SphinxDirective):
    """``.. gpcube-ring-products::``: the ring background's products of the registry."""

    def run(self):
        header = ["name", "grid", "dims (then the pixels)", "units", "stored as", "maker", "made"]
        header.append("in the mosaic")
        lines = _list_table(header, product_rows(registry.RING_PRODUCTS), "11 5 18 6 7 20 12 21")
        return self.parse_text_to_nodes("\n".join(lines))


class MethodTable(SphinxDirective):
    """``.. gpcube-methods::``: the background and safe-mask methods of the registry."""

    def run(self):
        rows = []
        for m in registry.BACKGROUND_METHODS.values():
            makers = ", ".join(f":mod:`{module}`" for module in m.makers) or "(the products' own)"
            rows.append(["``background.method``", f"``{m.name}``", makers,
                         "ring products (``ring/``)" if m.ring else ""])  # fmt: skip
        for m in registry.SAFE_MASK_METHODS.values():
            rows.append(["``safe_mask.methods``", f"``{m.name}``", ":func:`~gpcube.makers.make_safe_mask`",
                         "needs ``geom.energy_true``" if m.energy_true else ""])  # fmt: skip
        lines = _list_table(["key", "value", "makers", "notes"], rows, "20 15 40 25")
        return self.parse_text_to_nodes("\n".join(lines))


def setup(app):
    app.add_directive("gpcube-products", ProductTable)
    app.add_directive("gpcube-ring-products", RingProductTable)
    app.add_directive("gpcube-methods", MethodTable)
    return {"parallel_read_safe": True}
