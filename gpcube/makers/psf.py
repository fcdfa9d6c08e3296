"""PSF maps: the radial PSF profile per true energy on a coarse sky grid, and PSF convolution kernels.

The PSF of an observation depends on the true energy, the offset from the pointing and the angular
distance ``rad`` from the true direction. :func:`make_psf_map` evaluates it on a coarse copy of the
mosaic grid (``geom.to_binsz(binsz_irf)``), once per coarse pixel, at the pixel's offset; the result has
a ``rad`` axis. :func:`psf_kernel` turns the profile at one position into a normalised convolution kernel
for a given pixel size.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from gpcube.errors import GpcubeError
from gpcube.geom import EnergyAxis, SkyGeom, pixel_dims
from gpcube.geom._util import skycoord_to_lonlat
from gpcube.geom.frames import convert_frame
from gpcube.io import Observation
from gpcube.io.gadf import IRF_SPECS, require_full_enclosure
from gpcube.irf.evaluate import PROFILE_PARAMETERS, psf_3gauss_profile, psf_king_profile
from gpcube.irf.interp import axis_weights, linear_weight_matrix, multilinear
from gpcube.makers._cutout import observation_cube

__all__ = [
    "BINSZ_IRF_DEFAULT",
    "DEFAULT_PSF_CHUNK",
    "MAX_OVERSAMPLE",
    "RAD_EDGES_DEFAULT",
    "PsfTables",
    "auto_oversample",
    "containment_radius",
    "kernel_from_profile",
    "make_psf_map",
    "normalize_rad_profile",
    "pixel_rad_matrix",
    "psf_kernel",
    "psf_offset_tables",
    "psf_profile_at",
    "psf_profile_on_offset_map",
    "rad_coords",
]

#: Default pixel size (deg) of the coarse IRF grid.
BINSZ_IRF_DEFAULT = 0.2
#: Default ``rad`` bin edges (deg): 66 bins of 0.01 deg from 0 to 0.66 deg (the reference's default).
RAD_EDGES_DEFAULT = np.linspace(0.0, 0.66, 67)
#: Default y/x block size (coarse pixels): 32 x 32 x 66 rad x 20 energies is 11 MB of float64.
DEFAULT_PSF_CHUNK = 32
#: Limit of the automatic kernel oversampling factor.
MAX_OVERSAMPLE = 16
_PROFILES = {"psf_3gauss": psf_3gauss_profile, "psf_king": psf_king_profile}


# ------------------------------------------------------------------------------------- rad axis
def _check_rad_edges(rad: Any) -> np.ndarray:
    edges = np.asarray(RAD_EDGES_DEFAULT if rad is None else rad, dtype=float)
    if edges.ndim != 1 or len(edges) < 2 or not np.all(np.isfinite(edges)) or edges[0] < 0:
        raise GpcubeError(f"rad must be 1-D finite bin edges >= 0 in deg (at least 2), got {rad!r}")
    if np.any(np.diff(edges) <= 0):
        raise GpcubeError("rad edges must be strictly increasing")
    return edges


def rad_coords(edges: np.ndarray) -> dict[str, xr.Variable]:
    """Coordinates of a ``rad`` dim from bin edges in deg: ``rad`` (bin centres), ``rad_lo``, ``rad_hi``."""
    edges = np.asarray(edges, dtype=float)
    lo, hi = edges[:-1], edges[1:]
    attrs = {"units": "deg"}
    return {
        "rad": xr.Variable(("rad",), 0.5 * (lo + hi), {**attrs, "long_name": "angular distance, bin centre"}),
        "rad_lo": xr.Variable(("rad",), lo, attrs),
        "rad_hi": xr.Variable(("rad",), hi, attrs),
    }


def _rad_weights(rad_lo: np.ndarray, rad_hi: np.ndarray) -> np.ndarray:
    """Solid angle (sr) of each ``rad`` ring in the flat-sky sum ``2 pi r dr`` (``r`` = bin centre)."""
    lo, hi = np.deg2rad(rad_lo), np.deg2rad(rad_hi)
    return np.pi * (lo + hi) * (hi - lo)


def _inverse_integral(profile: np.ndarray, rad_lo: np.ndarray, rad_hi: np.ndarray) -> np.ndarray:
    """``1 / sum 2 pi r dr p(r)`` over axis 1 of ``profile`` (0 where the integral is 0), keepdims."""
    total = np.einsum("ij...,j->i...", profile, _rad_weights(rad_lo, rad_hi))[:, None]
    with np.errstate(divide="ignore"):
        return np.where(total > 0, 1.0 / total, 0.0)


def normalize_rad_profile(profile: np.ndarray, rad_lo: np.ndarray, rad_hi: np.ndarray) -> np.ndarray:
    """Divide radial profiles ``(n_energy, n_rad, ...)`` in sr-1 by their integrals over the ``rad`` bins.

    The integral is ``sum 2 pi r dr p(r)`` with ``r`` the bin centre in radians (midpoint rule, flat
    sky). Profiles integrating to 0 stay 0.
    """
    return profile * _inverse_integral(profile, rad_lo, rad_hi)


# ------------------------------------------------------------------------------------- the map
class PsfTables(NamedTuple):
    """A PSF IRF evaluated at the true energies (and ``rad``) of a map, on its own offset nodes.

    ``tables`` maps each IRF variable to ``(n_energy, [n_rad,] n_offset)`` values, interpolated (not yet
    clipped) in energy and ``rad`` and 0 outside the IRF's energy and ``rad`` bins.
    """

    irf_class: str
    tables: dict[str, np.ndarray]
    offset_nodes: np.ndarray
    offset_edges: tuple[float, float]


def _interp_axis(values: np.ndarray, axis: int, nodes: np.ndarray, x: np.ndarray, log: bool) -> np.ndarray:
    """Linear interpolation (with extrapolation, no clipping) of ``values`` along one axis at ``x``."""
    moved = multilinear(np.moveaxis(values, axis, 0), [axis_weights(nodes, x, log=log)])
    return np.moveaxis(moved, 0, axis)


def _edges(irf: xr.Dataset, dim: str) -> tuple[float, float]:
    """Outer bin edges of an IRF axis (plain Variables: DataArray indexing costs more than the maths)."""
    return float(irf.variables[f"{dim}_lo"].values[0]), float(irf.variables[f"{dim}_hi"].values[-1])


def _outside(irf: xr.Dataset, dim: str, x: np.ndarray) -> np.ndarray:
    lo, hi = _edges(irf, dim)
    return ~np.isfinite(x) | (x < lo) | (x > hi)


def psf_offset_tables(psf: xr.Dataset, energy: np.ndarray, rad: np.ndarray) -> PsfTables:
    """A PSF IRF (table, triple Gauss, King) at ``energy`` (TeV) and ``rad`` (deg), on its offset nodes.

    The interpolation rule of :mod:`gpcube.irf.interp` is multilinear, so interpolating these tables
    linearly in offset, then clipping at 0 (:func:`psf_profile_on_offset_map`), gives
    :func:`gpcube.irf.evaluate` at any offset (up to the order of the floating-point sums).
    """
    irf_class = psf.attrs["irf_class"]
    if irf_class not in ("psf_table", *_PROFILES):
        raise GpcubeError(f"not a PSF IRF: irf_class {irf_class!r}")
    energy, rad = np.asarray(energy, dtype=float), np.asarray(rad, dtype=float)
    tables = {}
    for var in PROFILE_PARAMETERS.get(irf_class, IRF_SPECS[irf_class].variables):
        array = psf.variables[var]
        values = array.transpose("energy_true", *(("rad",) if "rad" in array.dims else ()), "offset").values
        values = _interp_axis(values, 0, psf.variables["energy_true"].values, energy, log=True)
        values[_outside(psf, "energy_true", energy)] = 0.0
        if "rad" in array.dims:
            values = _interp_axis(values, 1, psf.variables["rad"].values, rad, log=False)
            values[:, _outside(psf, "rad", rad)] = 0.0
        tables[var] = values
    return PsfTables(irf_class, tables, psf.variables["offset"].values, _edges(psf, "offset"))


def psf_profile_on_offset_map(tables: PsfTables, rad: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """The PSF (sr-1) at every ``rad`` and every pixel of an offset map: ``(n_energy, n_rad, *offset.shape)``.

    Equal to :func:`gpcube.irf.evaluate` of the PSF at each pixel's offset.
    """
    weights = linear_weight_matrix(tables.offset_nodes, tables.offset_edges, offset)

    def on_map(table: np.ndarray) -> np.ndarray:
        values = table.reshape(-1, table.shape[-1]) @ weights
        np.maximum(values, 0.0, out=values)
        return values.reshape(*table.shape[:-1], *np.shape(offset))

    if tables.irf_class == "psf_table":
        return on_map(tables.tables["rpsf"])
    params = {var: on_map(table)[:, None] for var, table in tables.tables.items()}
    rad = np.asarray(rad, dtype=float).reshape(-1, *(1,) * np.ndim(offset))
    return _PROFILES[tables.irf_class](rad, **params)


class _Loaded(NamedTuple):
    tables: PsfTables
    pointing: tuple[float, float]
    rad_edges: np.ndarray
    normalize: bool


def _load_psf(observation: Observation, geom: SkyGeom, axis: EnergyAxis, rad_edges, normalize) -> _Loaded:
    rad = 0.5 * (rad_edges[:-1] + rad_edges[1:])
    tables = psf_offset_tables(require_full_enclosure(observation.psf, "PSF map"), axis.centers, rad)
    pointing = convert_frame(observation.pointing.ra, observation.pointing.dec, "icrs", geom.frame)
    return _Loaded(tables, (float(pointing[0]), float(pointing[1])), rad_edges, normalize)


def _psf_block(loaded: _Loaded, block_geom: SkyGeom) -> np.ndarray:
    edges = loaded.rad_edges
    offset = block_geom.separation(*loaded.pointing)
    profile = psf_profile_on_offset_map(loaded.tables, 0.5 * (edges[:-1] + edges[1:]), offset)
    if loaded.normalize:
        profile *= _inverse_integral(profile, edges[:-1], edges[1:])
    return profile


def make_psf_map(
    observation: Observation,
    geom: SkyGeom,
    *,
    binsz_irf: float = BINSZ_IRF_DEFAULT,
    rad: Sequence[float] | np.ndarray | None = None,
    max_offset: float | None = None,
    normalize: bool = True,
    chunk: int = DEFAULT_PSF_CHUNK,
) -> xr.DataArray:
    """PSF profile of one observation per true energy on a coarse sky grid, lazy, over its cutout.

    The coarse grid is ``geom.to_binsz(binsz_irf)`` (same centre, width, frame and projection as the
    mosaic, so every observation's coarse cutout lies on one coarse parent grid). At each coarse pixel
    centre the PSF is evaluated at the pixel's offset from the pointing, at the ``energy_true`` bin
    centres (log centres) and the ``rad`` bin centres, as :func:`gpcube.irf.evaluate` does.

    Parameters
    ----------
    observation : Observation
        The observation; its PSF (``psf_table``, ``psf_3gauss`` or ``psf_king``) and pointing are read
        when the result is computed.
    geom : SkyGeom
        Mosaic geometry with an ``energy_true`` axis (its other energy axes are dropped).
    binsz_irf : float
        Pixel size in deg of the coarse grid.
    rad : array_like, optional
        ``rad`` bin edges in deg; default :data:`RAD_EDGES_DEFAULT` (0 to 0.66 deg in 0.01 deg bins).
    max_offset : float, optional
        Cutout radius in deg around the pointing; default: the whole coarse grid.
    normalize : bool
        Divide each profile by its integral ``sum 2 pi r dr psf(r)`` over the ``rad`` bins (``r`` the
        bin centre), so that the profile holds the fraction of events per sr within the ``rad`` axis.
    chunk : int
        Block size in coarse pixels along x and y.

    Returns
    -------
    xarray.DataArray
        ``psf(energy_true, rad, irf_y, irf_x)`` in sr-1, float64, dask-backed, with ``rad`` (bin centre),
        ``rad_lo`` and ``rad_hi`` coordinates in deg and the coarse cutout geometry in attrs.

    See Also
    --------
    psf_kernel : A convolution kernel from the map.
    gpcube.irf.evaluate : The PSF at any point.

    Examples
    --------
    >>> import gpcube
    >>> from gpcube.data import example_data_dir
    >>> from gpcube.geom import EnergyAxis, SkyGeom
    >>> obs = gpcube.DataStore.from_dir(example_data_dir()).observation(23523)
    >>> axes = [EnergyAxis.log(0.3, 100, 8, "energy_true")]
    >>> geom = SkyGeom.create((83.633, 22.014), binsz=0.05, width=4.0, axes=axes)
    >>> from gpcube.makers import make_psf_map
    >>> psf = make_psf_map(obs, geom, binsz_irf=0.2, max_offset=2.0)
    >>> psf.shape  # (energy_true, rad, ny, nx) on the 0.2 deg grid
    (8, 66, 18, 20)
    >>> psf.sky.geom.binsz, psf.attrs["units"]
    (0.2, 'sr-1')

    Normalised: each profile integrates to 1 over the ``rad`` bins (``sum 2 pi r dr psf``):

    >>> import numpy as np
    >>> r, dr = np.deg2rad(psf["rad"].values), np.deg2rad(psf["rad_hi"] - psf["rad_lo"]).values
    >>> profiles = psf.values[:, :, 9, 10]  # at one pixel
    >>> (profiles * 2 * np.pi * r * dr).sum(axis=1).round(6)
    array([1., 1., 1., 1., 1., 1., 1., 1.])
    """
    rad_edges = _check_rad_edges(rad)
    coarse = geom.to_binsz(binsz_irf).with_axes(geom.axis("energy_true"))
    return observation_cube(
        observation, coarse, product="psf", axis_name=("energy_true", "rad"), units="sr-1",
        load=functools.partial(_load_psf, rad_edges=rad_edges, normalize=normalize), block=_psf_block,
        dtype=np.float64, max_offset=max_offset, chunk=chunk, attrs={"normalized": int(normalize)},
        extra_axes={"rad": rad_coords(rad_edges)},
    )  # fmt: skip


# ------------------------------------------------------------------------------------- kernels
def psf_profile_at(psf_map: xr.DataArray, position: Any = None) -> xr.DataArray:
    """The ``(energy_true, rad)`` profile of a PSF map at one sky position (bilinear in pixels).

    Parameters
    ----------
    psf_map : xarray.DataArray
        Output of :func:`make_psf_map`, computed or lazy (only the blocks around the position are
        computed).
    position : tuple of float or astropy.coordinates.SkyCoord, optional
        (lon, lat) in deg in the map's frame, or a SkyCoord; default: the map's centre. Positions off
        the map take the nearest edge pixels.

    Returns
    -------
    xarray.DataArray
        The profile, with the map's ``energy_true`` and ``rad`` coordinates.
    """
    geom = SkyGeom.from_dataarray(psf_map)
    attrs = {k: v for k, v in psf_map.attrs.items() if k != "geom"}
    if position is None:
        position = geom.center
    elif hasattr(position, "transform_to"):
        position = skycoord_to_lonlat(position, geom.frame)
    x, y = (float(v) for v in geom.world_to_pix(*position))
    if not (np.isfinite(x) and np.isfinite(y)):
        raise GpcubeError(f"position {position!r} does not project onto the PSF map")
    weights = {}
    for pix, n, dim in ((x, geom.npix[0], geom.dims[1]), (y, geom.npix[1], geom.dims[0])):
        pix = min(max(pix, 0.0), n - 1.0)
        low = min(int(np.floor(pix)), max(n - 2, 0))
        weight = pix - low
        pixels = slice(low, min(low + 2, n))  # one pixel if n == 1 (its weight is 1)
        weights[dim] = pixels, [1.0 - weight, weight][: pixels.stop - pixels.start]
    # the 2 x 2 pixels computed first (slices: dask's array query planning has no list indexing)
    psf_map = psf_map.isel({dim: pixels for dim, (pixels, _) in weights.items()}).compute()
    for dim, (_, weight) in weights.items():
        psf_map = (psf_map * xr.DataArray(weight, dims=dim)).sum(dim)
    return psf_map.assign_attrs(attrs)


def containment_radius(profile: np.ndarray, rad_lo: np.ndarray, rad_hi: np.ndarray, fraction: float):
    """Radius (deg) containing ``fraction`` of a radial profile's integral over its ``rad`` bins.

    ``profile`` is ``(..., n_rad)``; the cumulative integral ``sum 2 pi r dr p`` at the bin edges is
    interpolated linearly. Profiles integrating to 0 give radius 0.
    """
    cumulative = np.cumsum(profile * _rad_weights(rad_lo, rad_hi), axis=-1)
    cumulative = np.concatenate([np.zeros((*cumulative.shape[:-1], 1)), cumulative], axis=-1)
    edges = np.append(rad_lo, rad_hi[-1])
    radius = np.zeros(cumulative.shape[:-1])
    for index in np.ndindex(radius.shape):
        total = cumulative[index][-1]
        if total > 0:
            radius[index] = np.interp(fraction * total, cumulative[index], edges)
    return radius


def auto_oversample(binsz: float, rad_lo: np.ndarray, rad_hi: np.ndarray) -> int:
    """Default sub-pixels per pixel side: sub-pixels no wider than a quarter of the narrowest ``rad`` bin.

    The profile is known only at the ``rad`` bin centres and is linear in between, so finer sampling
    changes the pixel integrals by less than the interpolation itself; at most :data:`MAX_OVERSAMPLE`.
    """
    width = float(np.min(np.asarray(rad_hi) - np.asarray(rad_lo)))
    return int(np.clip(np.ceil(4 * binsz / width), 1, MAX_OVERSAMPLE))


def _extended_profile(profile: np.ndarray, rad_lo: np.ndarray, rad_hi: np.ndarray):
    """Nodes and values of profiles ``(..., n_rad)`` with end nodes at the outer ``rad`` edges.

    The end values are the linear extrapolation of the two outermost nodes, clipped at 0.
    """
    nodes = 0.5 * (rad_lo + rad_hi)
    edges = np.array([rad_lo[0], rad_hi[-1]])
    index, weight = axis_weights(nodes, edges)
    upper = np.minimum(index + 1, len(nodes) - 1)
    ends = np.maximum(profile[..., index] * (1.0 - weight) + profile[..., upper] * weight, 0.0)
    all_nodes, all_values = [nodes], [profile]
    if edges[0] < nodes[0]:
        all_nodes.insert(0, edges[:1])
        all_values.insert(0, ends[..., :1])
    if edges[1] > nodes[-1]:
        all_nodes.append(edges[1:])
        all_values.append(ends[..., 1:])
    return np.concatenate(all_nodes), np.concatenate(all_values, axis=-1)


def pixel_rad_matrix(binsz: float, npix_half: int, factor: int, nodes: np.ndarray) -> np.ndarray:
    """Matrix ``(n * n, len(nodes))``: kernel pixel values = matrix @ profile at ``nodes`` (deg).

    Each of the ``n x n`` pixels (``n = 2 npix_half + 1``, centred on the source) is sampled at the
    centres of ``factor x factor`` sub-pixels; a sample at distance ``r = binsz * hypot(dx, dy)``
    (flat sky) takes the linear interpolation between its two neighbouring nodes, and is 0 beyond the
    last node. Rows are the mean over each pixel's samples.
    """
    n = 2 * npix_half + 1
    sub = (np.arange(n * factor) + 0.5) / factor - 0.5 - npix_half
    rad = binsz * np.hypot(sub[:, None], sub[None, :]).ravel()
    pixel = np.arange(n * factor) // factor
    pixel = (pixel[:, None] * n + pixel[None, :]).ravel()
    index, weight = axis_weights(nodes, rad)
    inside = (rad >= nodes[0]) & (rad <= nodes[-1])
    upper = np.minimum(index + 1, len(nodes) - 1)
    size = n * n * len(nodes)
    matrix = np.bincount(pixel * len(nodes) + index, np.where(inside, 1.0 - weight, 0.0), minlength=size)
    matrix += np.bincount(pixel * len(nodes) + upper, np.where(inside, weight, 0.0), minlength=size)
    return matrix.reshape(n * n, len(nodes)) / factor**2


def kernel_from_profile(
    profile: np.ndarray,
    rad_lo: np.ndarray,
    rad_hi: np.ndarray,
    binsz: float,
    *,
    max_radius: float | None = None,
    containment: float = 0.999,
    oversample: int | Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Convolution kernels ``(n_energy, n, n)`` from radial profiles ``(n_energy, n_rad)``; numpy core.

    See :func:`psf_kernel`. Returns the kernels, the oversampling factor per energy and the radius.
    """
    profile = np.atleast_2d(np.asarray(profile, dtype=float))
    rad_lo, rad_hi = np.asarray(rad_lo, dtype=float), np.asarray(rad_hi, dtype=float)
    if max_radius is None:
        max_radius = float(np.max(containment_radius(profile, rad_lo, rad_hi, containment), initial=0.0))
    npix_half = max(int(np.ceil(max_radius / binsz - 0.5)), 0)
    if oversample is None:
        oversample = auto_oversample(binsz, rad_lo, rad_hi)
    factors = np.broadcast_to(np.asarray(oversample, dtype=int), (len(profile),))
    if np.any(factors < 1):
        raise GpcubeError(f"oversample must be >= 1, got {oversample!r}")
    nodes, values = _extended_profile(profile, rad_lo, rad_hi)
    n = 2 * npix_half + 1
    images = np.zeros((len(profile), n * n))
    for factor in np.unique(factors):
        selected = factors == factor
        images[selected] = values[selected] @ pixel_rad_matrix(binsz, npix_half, int(factor), nodes).T
    total = images.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        kernels = np.where(total > 0, images / total, 0.0)
    return kernels.reshape(len(profile), n, n), factors.copy(), max_radius


def psf_kernel(
    psf: xr.DataArray,
    binsz: float,
    *,
    position: Any = None,
    max_radius: float | None = None,
    containment: float = 0.999,
    oversample: int | Sequence[int] | None = None,
) -> xr.DataArray:
    """A PSF convolution kernel per true energy for square pixels of ``binsz`` deg, each summing to 1.

    The kernel is a ``(2 n + 1) x (2 n + 1)`` pixel image centred on the source; pixel ``(y, x)``
    holds the PSF integrated over the pixel by the midpoint rule on ``f x f`` sub-pixels (flat sky:
    a sub-pixel centre is at ``r = binsz * hypot(dx, dy)``). The profile is interpolated linearly in
    ``r`` between the ``rad`` bin centres, extrapolated linearly (clipped at 0) to the outer ``rad``
    edges and 0 beyond them. Each energy's image is then divided by its sum. The pixel integrals are
    linear in the profile, so they are one matrix product (:func:`pixel_rad_matrix`) for all energies.

    Parameters
    ----------
    psf : xarray.DataArray
        A PSF map from :func:`make_psf_map` (computed or lazy), or one profile with dims
        ``(energy_true, rad)`` and ``rad_lo``/``rad_hi`` coordinates.
    binsz : float
        Pixel size of the kernel (the sky map to convolve) in deg.
    position : tuple of float or astropy.coordinates.SkyCoord, optional
        Where to take the profile from a map (see :func:`psf_profile_at`); default: the map's centre.
    max_radius : float, optional
        Half-width of the kernel in deg: ``n = ceil(max_radius / binsz - 1/2)``, so that pixels whose
        centre lies within ``max_radius`` along an axis are included. Default: the largest radius
        over energies that contains ``containment`` of the profile's integral.
    containment : float
        Containment fraction of the default ``max_radius``.
    oversample : int or sequence of int, optional
        Sub-pixels per pixel side ``f``, one for all energies or one per energy. Default
        :func:`auto_oversample`: ``ceil(4 binsz / min(rad bin width))``, between 1 and
        :data:`MAX_OVERSAMPLE`.

    Returns
    -------
    xarray.DataArray
        ``kernel(energy_true, y, x)``, dimensionless, float64; ``y``/``x`` coordinates are pixel offsets
        from the central pixel. attrs hold ``binsz``, ``max_radius`` and ``oversample`` (per energy).

    See Also
    --------
    make_psf_map : The PSF map the kernel is taken from.

    Examples
    --------
    >>> import gpcube
    >>> from gpcube.data import example_data_dir
    >>> from gpcube.geom import EnergyAxis, SkyGeom
    >>> obs = gpcube.DataStore.from_dir(example_data_dir()).observation(23523)
    >>> axes = [EnergyAxis.log(0.3, 100, 8, "energy_true")]
    >>> geom = SkyGeom.create((83.633, 22.014), binsz=0.05, width=4.0, axes=axes)
    >>> from gpcube.makers import make_psf_map, psf_kernel
    >>> psf = make_psf_map(obs, geom, max_offset=2.0)
    >>> kernel = psf_kernel(psf, binsz=0.05)  # at the map's centre, for 0.05 deg pixels
    >>> kernel.shape  # (energy_true, 2 n + 1, 2 n + 1)
    (8, 27, 27)
    >>> kernel.values.sum(axis=(1, 2))
    array([1., 1., 1., 1., 1., 1., 1., 1.])
    """
    if not binsz > 0:
        raise GpcubeError(f"binsz must be positive, got {binsz!r}")
    if pixel_dims(psf) is not None:
        psf = psf_profile_at(psf, position)
    elif position is not None:
        raise GpcubeError("position needs a PSF map with pixel dims (irf_y, irf_x), got a profile")
    missing = {"rad_lo", "rad_hi"} - set(psf.coords)
    if set(psf.dims) != {"energy_true", "rad"} or missing:
        raise GpcubeError(f"need a profile (energy_true, rad) with rad_lo/rad_hi coords, got {psf.dims}")
    psf = psf.transpose("energy_true", "rad")
    rad_lo, rad_hi = psf["rad_lo"].values, psf["rad_hi"].values
    kernels, factors, max_radius = kernel_from_profile(
        psf.values, rad_lo, rad_hi, binsz, max_radius=max_radius, containment=containment,
        oversample=oversample,
    )  # fmt: skip
    half = kernels.shape[-1] // 2
    offsets = np.arange(-half, half + 1)
    coords = {k: v for k, v in psf.coords.items() if set(v.dims) <= {"energy_true"}}
    coords.update({"y": ("y", offsets, {"units": "pix"}), "x": ("x", offsets, {"units": "pix"})})
    attrs = {"units": "", "energy_type": "true", "binsz": float(binsz), "max_radius": float(max_radius),
             "oversample": [int(f) for f in factors]}  # fmt: skip
    dims = ("energy_true", "y", "x")
    return xr.DataArray(kernels, dims=dims, coords=coords, name="psf_kernel", attrs=attrs)
