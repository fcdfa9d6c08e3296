"""Sphinx extension: before a build, write text outputs and figures of real data that the pages include.

The data-model page shows reprs of a real H.E.S.S. observation and the makers page pictures of each
maker's output; generating them at build time keeps the pages true to the code. The data directory is
``GPCUBE_HESS_DL3_DR1`` or ``../shared/data/hess-dl3-dr1`` beside the repository.

The makers' figures are redrawn only when this file or gpcube's source changed since they were drawn
(a hash in ``_generated/makers_23523.stamp``), so a rebuild of unchanged code costs nothing.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import xarray as xr

HERE = Path(__file__).parent
OUT = HERE / "_generated"
HESS = Path(os.environ.get("GPCUBE_HESS_DL3_DR1", HERE.parent.parent / "shared" / "data" / "hess-dl3-dr1"))


def _write(name: str, text: str) -> None:
    path = OUT / name
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def generate(app=None) -> None:
    import gpcube

    OUT.mkdir(exist_ok=True)
    store = gpcube.DataStore.from_dir(HESS)
    obs = store.observation(23523)
    with xr.set_options(display_width=100, display_max_rows=40):
        _write(
            "store.txt",
            f"{store!r}\n{store.obs_table['OBS_ID', 'OBJECT', 'RA_PNT', 'DEC_PNT', 'LIVETIME'][:5]}\n",
        )
        _write("events.txt", repr(obs.events) + "\n")
        _write("pointing.txt", f"{obs.pointing!r}\nlivetime={obs.livetime} s, ontime={obs.ontime} s\n")
        for part in ("aeff", "edisp", "psf", "bkg"):
            _write(f"{part}.txt", repr(getattr(obs, part)) + "\n")
    figure = OUT / "irfs_23523.png"
    if not figure.exists():
        plot_irfs(obs, figure)
    generate_makers(obs)
    import generate_significance

    generate_significance.generate(HESS)


def plot_irfs(obs, path: Path) -> None:
    """Four panels of one observation's IRFs, drawn from the xarray objects gpcube returns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6), layout="constrained")
    aeff = obs.aeff["aeff"]
    for offset in aeff["offset"].values[::2]:
        aeff.sel(offset=offset).plot(ax=axes[0], xscale="log", label=f"{offset:.1f} deg")
    axes[0].set(title="aeff_2d", ylabel="effective area [m2]", xlabel="true energy [TeV]")
    axes[0].legend(fontsize="small")
    migration = obs.edisp["migration"].isel(offset=1).T
    migration.plot(ax=axes[1], xscale="log", cmap="viridis", cbar_kwargs={"label": "dP/dmigra"})
    axes[1].set(
        title="edisp_2d (offset 0.5 deg)", xlabel="true energy [TeV]", ylabel="migra = E_reco / E_true"
    )
    rpsf = obs.psf["rpsf"].isel(offset=1)
    for energy in (0.5, 2.0, 10.0):
        rpsf.sel(energy_true=energy, method="nearest").plot(ax=axes[2], yscale="log", label=f"{energy} TeV")
    axes[2].set(title="psf_table (offset 0.5 deg)", xlabel="rad [deg]", ylabel="dP/dOmega [sr-1]")
    axes[2].legend(fontsize="small")
    bkg = obs.bkg["bkg"].sel(energy_reco=1.0, method="nearest")
    np.log10(bkg.where(bkg > 0)).plot(
        ax=axes[3], cmap="magma", cbar_kwargs={"label": "log10 rate [s-1 TeV-1 sr-1]"}
    )
    axes[3].set(title="bkg_3d at 1 TeV", xlabel="fov_lon [deg]", ylabel="fov_lat [deg]", aspect="equal")
    fig.suptitle(f"IRFs of H.E.S.S. run {obs.obs_id} (DL3 DR1), as read by gpcube")
    fig.savefig(path, dpi=80)
    plt.close(fig)


# ------------------------------------------------------------------------------------------ makers
#: The example of the makers page: run 23523 (Crab, wobble 0.5 deg), 5 x 5 deg at 0.02 deg.
MAKERS_RUN = 23523
CRAB = (83.633, 22.014)
EXCLUDED = [(*CRAB, 0.3)]
MAKER_FILES = (
    "makers_counts_23523.png",
    "makers_exposure_23523.png",
    "makers_background_23523.png",
    "makers_psf_23523.png",
    "makers_edisp_23523.png",
    "makers_safe_23523.png",
    "makers_lazy_23523.txt",
    "makers_fov_norm_23523.txt",
)
#: FoV-norm variants: name -> (grouping, whether the safe mask is applied).
GROUPINGS = {
    "all": ("all", False),
    "per-bin": ("per-bin", False),
    "min_counts=300": ({"min_counts": 300}, False),
    "per-bin, mask_safe": ("per-bin", True),
}
SAFE_METHODS = {"methods": ("aeff-default", "offset-max"), "offset_max": 2.0}


def source_stamp(script: str | Path = __file__) -> str:
    """Hash of ``script`` and of gpcube's source (with the example configs): figures are redrawn when
    either changes."""
    import gpcube

    digest = hashlib.sha256(Path(script).read_bytes())
    package = Path(gpcube.__file__).parent
    for path in sorted([*package.rglob("*.py"), *package.rglob("*.yaml")]):
        digest.update(path.as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def generate_makers(obs) -> None:
    """Compute every maker's product once for the example geometry and draw the makers page figures."""
    stamp_file = OUT / f"makers_{MAKERS_RUN}.stamp"
    stamp = source_stamp()
    fresh = stamp_file.exists() and stamp_file.read_text() == stamp
    if fresh and all((OUT / name).exists() for name in MAKER_FILES):
        return
    import matplotlib

    matplotlib.use("Agg")
    products = maker_products(obs)
    plot_counts(products, OUT / "makers_counts_23523.png")
    plot_exposure(products, OUT / "makers_exposure_23523.png")
    plot_background(products, OUT / "makers_background_23523.png")
    plot_psf(products, OUT / "makers_psf_23523.png")
    plot_edisp(products, OUT / "makers_edisp_23523.png")
    plot_safe(products, OUT / "makers_safe_23523.png")
    stamp_file.write_text(stamp)


def example_geom():
    """The geometry of the makers page: the one its code examples use."""
    from gpcube.geom import EnergyAxis, SkyGeom

    e_reco = EnergyAxis.log(0.5, 50.0, 10, "energy_reco")
    e_true = EnergyAxis.log(0.3, 100.0, 20, "energy_true")
    return SkyGeom.create(CRAB, binsz=0.02, width=5.0, frame="icrs", projection="CAR", axes=[e_reco, e_true])


def maker_products(obs) -> dict:
    """Every maker's product for ``obs`` on :func:`example_geom`, computed together (shared tasks once)."""
    import dask

    from gpcube.makers import (
        make_edisp_kernel_map,
        make_map_background,
        make_map_background_fov_norm,
        make_map_counts,
        make_map_exposure_reco_energy,
        make_map_exposure_true_energy,
        make_psf_map,
        make_safe_mask,
        psf_kernel,
    )

    geom = example_geom()
    lazy = {
        "counts": make_map_counts(obs, geom),
        "exposure": make_map_exposure_true_energy(obs, geom),
        "exposure_reco": make_map_exposure_reco_energy(obs, geom),
        "background": make_map_background(obs, geom),
        "background_gadf": make_map_background(obs, geom, orientation="gadf"),
        "psf": make_psf_map(obs, geom),
        "edisp": make_edisp_kernel_map(obs, geom),
        "mask_safe": make_safe_mask(obs, geom, **SAFE_METHODS),
    }
    for name, (grouping, safe) in GROUPINGS.items():
        lazy[f"fov_norm {name}"] = make_map_background_fov_norm(
            obs,
            geom,
            exclusion_mask=EXCLUDED,
            grouping=grouping,
            mask_safe=lazy["mask_safe"] if safe else None,
            counts=lazy["counts"],
            background=lazy["background"],
        )
    with xr.set_options(display_width=100, display_max_rows=40):
        _write("makers_lazy_23523.txt", repr(lazy["counts"]) + "\n")
    with dask.config.set(scheduler="synchronous"):
        products = dict(zip(lazy, dask.compute(*lazy.values()), strict=True))
    products["psf_kernel"] = psf_kernel(products["psf"], binsz=geom.binsz)
    products["geom"] = geom
    products["pointing"] = (obs.pointing.ra, obs.pointing.dec)
    products["livetime"] = obs.livetime
    _write("makers_fov_norm_23523.txt", fov_norm_text(products))
    return products


def fov_norm_text(products: dict) -> str:
    """The per-bin FoV-norm coordinates of the grouping schemes, as a small table."""
    first = products["fov_norm all"]
    lines = ["energy_reco [TeV]   " + "  ".join(f"{e:6.2f}" for e in first["energy_reco"].values)]
    for name in GROUPINGS:
        coords = products[f"fov_norm {name}"].coords
        lines.append(f"{name}:")
        for row, fmt in (("fov_norm_group", "6.0f"), ("fov_norm_counts", "6.0f"), ("fov_norm", "6.3f")):
            lines.append(f"  {row:<18}" + "  ".join(f"{value:{fmt}}" for value in coords[row].values))
        lines.append(
            f"  {'fov_norm_ok':<18}" + "  ".join(f"{ok!s:>6}" for ok in coords["fov_norm_ok"].values)
        )
    return "\n".join(lines) + "\n"


def _sky_axes(fig, spec, product, title: str):
    """A WCSAxes on the product's cutout geometry, labelled in ICRS degrees."""
    from gpcube.geom import SkyGeom

    ax = fig.add_subplot(spec, projection=SkyGeom.from_dataarray(product).wcs)
    lon, lat = ax.coords
    lon.set_format_unit("deg", decimal=True)
    lat.set_format_unit("deg", decimal=True)
    lon.set_major_formatter("d.d")
    lat.set_major_formatter("d.d")
    ax.set(title=title, xlabel="RA (ICRS) [deg]", ylabel="Dec (ICRS) [deg]")
    return ax


def _image(fig, ax, data, label: str, **kwargs):
    im = ax.imshow(data, origin="lower", interpolation="nearest", **kwargs)
    fig.colorbar(im, ax=ax, label=label, shrink=0.9)
    return im


def _mark(ax, lonlat, radius: float | None = None, **kwargs) -> None:
    """A cross (and a circle of ``radius`` deg) at ICRS ``lonlat``."""
    from matplotlib.patches import Circle

    transform = ax.get_transform("icrs")
    ax.plot(*lonlat, "+", ms=10, mew=1.2, transform=transform, **kwargs)
    if radius is not None:
        ax.add_patch(Circle(lonlat, radius, transform=transform, fill=False, lw=1.2, ls="--", **kwargs))


def _energy_label(da, dim: str, value: float) -> tuple[object, str]:
    sel = da.sel({dim: value}, method="nearest")
    lo, hi = float(sel[f"{dim}_lo"]), float(sel[f"{dim}_hi"])
    return sel, f"{lo:.2g}-{hi:.2g} TeV"


def plot_counts(products: dict, path: Path) -> None:
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import PowerNorm

    counts = products["counts"]
    image = counts.sum("energy_reco")
    lo, hi = counts["energy_reco_lo"].values[0], counts["energy_reco_hi"].values[-1]
    fig = plt.figure(figsize=(11, 4.6))
    fig.subplots_adjust(left=0.08, right=0.95, bottom=0.12, top=0.85, wspace=0.45)
    ax = _sky_axes(fig, 121, counts, f"counts, {lo:g}-{hi:g} TeV (0.02 deg pixels)")
    _image(fig, ax, image.values, "counts per pixel", cmap="gray_r", vmax=4)
    coarse = image.coarsen(y=5, x=5).sum()
    ax = _sky_axes(fig, 122, counts, "summed in 5 x 5 pixels (0.1 deg); +: pointing")
    _image(
        fig,
        ax,
        coarse.values,
        "counts per 0.1 deg pixel",
        cmap="magma",
        norm=PowerNorm(0.5),
        extent=(-0.5, image.sizes["x"] - 0.5, -0.5, image.sizes["y"] - 0.5),
    )
    _mark(ax, products["pointing"], color="white")
    fig.suptitle(
        f"make_map_counts: H.E.S.S. run {counts.attrs['obs_id']} (Crab), {int(np.sum(image))} events"
    )
    fig.savefig(path, dpi=72)
    plt.close(fig)


def plot_exposure(products: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    true, reco = products["exposure"], products["exposure_reco"]
    true_1, true_label = _energy_label(true, "energy_true", 1.0)
    reco_1, reco_label = _energy_label(reco, "energy_reco", 1.0)
    vmax = float(max(true_1.max(), reco_1.max()))
    fig = plt.figure(figsize=(16, 4.6))
    grid = fig.add_gridspec(1, 3, left=0.05, right=0.98, bottom=0.12, top=0.85, wspace=0.4)
    ax = _sky_axes(fig, grid[0], true, f"exposure_true at {true_label}")
    _image(fig, ax, true_1.values, "exposure [m2 s]", cmap="viridis", vmin=0, vmax=vmax)
    ax = _sky_axes(fig, grid[1], reco, f"exposure_reco at {reco_label} (index 2)")
    _image(fig, ax, reco_1.values, "exposure [m2 s]", cmap="viridis", vmin=0, vmax=vmax)
    ax = fig.add_subplot(grid[2])
    ny, nx = true.sizes["y"], true.sizes["x"]
    centre = {"y": ny // 2, "x": nx // 2}
    for product, dim, style in ((true, "energy_true", "o-"), (reco, "energy_reco", "s-")):
        values = product.isel(centre)
        ax.plot(values[dim], values, style, ms=4, label=f"{product.name} vs {dim}")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="energy [TeV]",
        ylabel="exposure [m2 s]",
        title="at the map centre (offset 0.5 deg)",
        ylim=(float(true.isel(centre).max()) * 1e-3, None),
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.suptitle(
        "make_map_exposure_true_energy and make_map_exposure_reco_energy: "
        f"run {true.attrs['obs_id']}, livetime {products['livetime']:.0f} s"
    )
    fig.savefig(path, dpi=72)
    plt.close(fig)


def plot_background(products: dict, path: Path) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    background = products["background"]
    normed = products["fov_norm all"]
    image, image_normed = background.sum("energy_reco"), normed.sum("energy_reco")
    vmax = float(max(image.max(), image_normed.max()))
    fig = plt.figure(figsize=(16, 9.6))
    grid = fig.add_gridspec(2, 3, left=0.05, right=0.98, bottom=0.06, top=0.9, wspace=0.4, hspace=0.3)
    ax = _sky_axes(fig, grid[0, 0], background, f"background ({image.sum():.0f} counts)")
    _image(fig, ax, image.values, "predicted counts per pixel", cmap="magma", vmin=0, vmax=vmax)
    _mark(ax, products["pointing"], color="white")
    norm = float(normed["fov_norm"][0])
    ax = _sky_axes(fig, grid[0, 1], normed, f'FoV-normalised, grouping="all": norm {norm:.3f}')
    _image(fig, ax, image_normed.values, "predicted counts per pixel", cmap="magma", vmin=0, vmax=vmax)
    _mark(ax, CRAB, radius=EXCLUDED[0][2], color="cyan")
    ax = fig.add_subplot(grid[0, 2])
    for (name, style), shift in zip(
        (("per-bin", "o"), ("min_counts=300", "s-"), ("all", "-"), ("per-bin, mask_safe", "x")),
        (0.97, 1.03, 1.0, 1.0),
        strict=True,
    ):
        coords = products[f"fov_norm {name}"].coords
        energy = coords["energy_reco"].values
        ax.plot(energy * shift, coords["fov_norm"].values, style, ms=5, label=f"grouping {name}")
    ax.set(xscale="log", xlabel="energy_reco [TeV]", ylabel="fov_norm", title="per-bin coordinate fov_norm")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    gadf = products["background_gadf"].sum("energy_reco")
    e1, label = _energy_label(background, "energy_reco", 1.0)
    ax = _sky_axes(fig, grid[1, 0], background, f'{label}, orientation "auto" (= "hess-dr1")')
    _image(fig, ax, e1.values, "predicted counts per pixel", cmap="magma", vmin=0)
    _mark(ax, products["pointing"], color="white")
    e1_gadf = products["background_gadf"].sel(energy_reco=float(e1["energy_reco"]))
    ax = _sky_axes(fig, grid[1, 1], background, f'{label}, orientation "gadf"')
    _image(fig, ax, e1_gadf.values, "predicted counts per pixel", cmap="magma", vmin=0, vmax=float(e1.max()))
    _mark(ax, products["pointing"], color="white")
    ratio = (image / gadf).where(gadf > 0.02 * float(gadf.max()))
    ax = _sky_axes(fig, grid[1, 2], background, 'ratio "hess-dr1" / "gadf", 0.5-50 TeV')
    span = float(np.nanmax(np.abs(ratio.values - 1)))
    _image(fig, ax, ratio.values, "background ratio", cmap="RdBu_r", vmin=1 - span, vmax=1 + span)
    _mark(ax, products["pointing"], color="black")
    fig.suptitle(
        f"make_map_background and make_map_background_fov_norm: run {background.attrs['obs_id']}, "
        f"{background['energy_reco_lo'].values[0]:g}-{background['energy_reco_hi'].values[-1]:g} TeV "
        f"(+: pointing; dashed: excluded circle of {EXCLUDED[0][2]} deg)"
    )
    fig.savefig(path, dpi=64)
    plt.close(fig)


def plot_psf(products: dict, path: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    psf, kernel = products["psf"], products["psf_kernel"]
    profile = psf.isel(irf_y=psf.sizes["irf_y"] // 2, irf_x=psf.sizes["irf_x"] // 2)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    fig.subplots_adjust(left=0.07, right=0.95, bottom=0.12, top=0.85, wspace=0.3)
    for energy in (0.5, 1.0, 3.0, 10.0, 30.0):
        values, label = _energy_label(profile, "energy_true", energy)
        axes[0].plot(values["rad"], values, label=label)
    axes[0].set(
        yscale="log",
        xlabel="rad [deg]",
        ylabel="psf [sr-1]",
        ylim=(1e1, None),
        title="profile at the centre pixel (offset 0.5 deg)",
    )
    axes[0].grid(alpha=0.3)
    axes[0].legend(fontsize="small", title="energy_true")
    image, label = _energy_label(kernel, "energy_true", 1.0)
    binsz = kernel.attrs["binsz"]
    half = (kernel.sizes["x"] / 2) * binsz
    im = axes[1].imshow(
        image.values,
        origin="lower",
        extent=(half, -half, -half, half),
        cmap="viridis",
        norm=LogNorm(vmin=float(image.max()) * 1e-4, vmax=float(image.max())),
    )
    fig.colorbar(im, ax=axes[1], label="fraction of the PSF per pixel")
    size = f"{kernel.sizes['x']} x {kernel.sizes['y']}"
    axes[1].set(
        xlabel="x offset [deg] (east to the left)",
        ylabel="y offset [deg]",
        title=f"psf_kernel at {label}, {binsz:g} deg pixels, {size}",
    )
    fig.suptitle(f"make_psf_map (0.2 deg coarse grid) and psf_kernel: run {psf.attrs['obs_id']}")
    fig.savefig(path, dpi=72)
    plt.close(fig)


def plot_edisp(products: dict, path: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    edisp = products["edisp"]
    kernel = edisp.isel(irf_y=edisp.sizes["irf_y"] // 2, irf_x=edisp.sizes["irf_x"] // 2)
    true_edges = [*kernel["energy_true_lo"].values, kernel["energy_true_hi"].values[-1]]
    reco_edges = [*kernel["energy_reco_lo"].values, kernel["energy_reco_hi"].values[-1]]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    fig.subplots_adjust(left=0.07, right=0.97, bottom=0.12, top=0.85, wspace=0.3)
    values = kernel.transpose("energy_reco", "energy_true").values
    mesh = axes[0].pcolormesh(
        true_edges, reco_edges, values, cmap="viridis", norm=LogNorm(vmin=1e-4, vmax=1.0)
    )
    fig.colorbar(mesh, ax=axes[0], label="probability of the reco bin")
    axes[0].plot([reco_edges[0], reco_edges[-1]], [reco_edges[0], reco_edges[-1]], "w--", lw=0.8)
    axes[0].set(
        xscale="log",
        yscale="log",
        xlabel="energy_true [TeV]",
        ylabel="energy_reco [TeV]",
        xlim=(true_edges[0], true_edges[-1]),
        ylim=(reco_edges[0], reco_edges[-1]),
        title="edisp kernel at the centre pixel (offset 0.5 deg)",
    )
    axes[1].plot(kernel["energy_true"], kernel.sum("energy_reco"), "o-", ms=4)
    reco_range = f"{reco_edges[0]:g}-{reco_edges[-1]:g} TeV"
    axes[1].set(
        xscale="log",
        xlabel="energy_true [TeV]",
        ylabel="sum over energy_reco",
        ylim=(0, 1.05),
        title=f"probability of landing in the reco axis ({reco_range})",
    )
    axes[1].grid(alpha=0.3)
    fig.suptitle(f"make_edisp_kernel_map (0.2 deg coarse grid): run {edisp.attrs['obs_id']}")
    fig.savefig(path, dpi=72)
    plt.close(fig)


def plot_safe(products: dict, path: Path) -> None:
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import LogNorm

    mask, counts, background = products["mask_safe"], products["counts"], products["background"]
    lowest = mask["energy_reco_lo"].where(mask).min("energy_reco")
    fig = plt.figure(figsize=(12, 4.6))
    grid = fig.add_gridspec(1, 2, left=0.07, right=0.97, bottom=0.12, top=0.85, wspace=0.35)
    ax = _sky_axes(fig, grid[0], mask, "lowest safe energy_reco (bin's low edge); blank: none")
    edges = np.append(counts["energy_reco_lo"].values, counts["energy_reco_hi"].values[-1])
    _image(fig, ax, lowest.values, "energy [TeV]", cmap="viridis", norm=LogNorm(edges[0], edges[-1]))
    _mark(ax, products["pointing"], color="white")
    ax = fig.add_subplot(grid[1])
    safe = mask.any(("y", "x")).values
    ax.stairs(counts.sum(("y", "x")).values, edges, label="counts", lw=1.5)
    ax.stairs(background.sum(("y", "x")).values, edges, label="background", lw=1.5)
    for lo, hi, ok in zip(edges[:-1], edges[1:], safe, strict=True):
        if ok:
            ax.axvspan(lo, hi, color="green", alpha=0.08, lw=0)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="energy_reco [TeV]",
        ylabel="counts per bin (whole cutout)",
        title="shaded: reco bins safe somewhere in the cutout",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.suptitle(
        f"make_safe_mask(methods={mask.attrs['methods']!r}, offset_max={mask.attrs['offset_max']:g}): "
        f"run {mask.attrs['obs_id']}"
    )
    fig.savefig(path, dpi=72)
    plt.close(fig)


def setup(app):
    app.connect("builder-inited", generate)
    return {"parallel_read_safe": True}
