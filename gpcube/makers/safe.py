"""Safe data-range masks: which (energy_reco, pixel) bins of an observation enter an analysis.

Each method gives a condition; the mask is their logical AND. The energy methods find one threshold per
observation from its IRFs (pure functions below) and keep the reco bins lying wholly inside the allowed
range; ``offset-max`` and ``bkg-invalid`` act per pixel. See ``docs/makers_safe.rst``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import xarray as xr

from gpcube.errors import GpcubeError, GpcubeWarning
from gpcube.geom import EnergyAxis, SkyGeom
from gpcube.geom.frames import convert_frame
from gpcube.io import Observation
from gpcube.irf import evaluate
from gpcube.makers._cutout import observation_cube
from gpcube.makers._lazy import DEFAULT_CHUNK, block_slices
from gpcube.makers.background import background_block, load_background
from gpcube.makers.edisp import edisp_kernels
from gpcube.makers.registry import SAFE_MASK_METHODS

if TYPE_CHECKING:  # astropy.coordinates takes ~0.6 s to import
    from astropy.coordinates import SkyCoord

__all__ = [
    "METHODS",
    "SafeOptions",
    "aeff_default_thresholds",
    "aeff_max_threshold",
    "background_spectrum",
    "bkg_peak_threshold",
    "edisp_bias_threshold",
    "energy_range_mask",
    "first_crossing",
    "loglog_interp",
    "make_safe_mask",
    "mean_bias",
    "probe_pixel",
    "safe_energy_thresholds",
]

#: The methods, in the order they are applied (:data:`gpcube.makers.registry.SAFE_MASK_METHODS`).
METHODS = tuple(SAFE_MASK_METHODS)
#: Methods that find an energy threshold from the IRFs.
ENERGY_METHODS = ("aeff-default", "aeff-max", "edisp-bias", "bkg-peak")
#: Values are raised to this before their log in :func:`loglog_interp` (the smallest normal float32).
_TINY = float(np.finfo(np.float32).tiny)


class SafeOptions(NamedTuple):
    """The settings of :func:`make_safe_mask` (see there)."""

    methods: tuple[str, ...]
    aeff_percent: float = 10.0
    bias_percent: float = 10.0
    #: ICRS (RA, Dec) in deg.
    position: tuple[float, float] | None = None
    fixed_offset: float | None = None
    offset_max: float = 3.0
    binsz_irf: float = 0.2


# ------------------------------------------------------------------------------- pure threshold functions
def energy_range_mask(
    edges: np.ndarray, energy_min: float | None = None, energy_max: float | None = None
) -> np.ndarray:
    """Bins lying wholly inside ``[energy_min, energy_max]``: ``lo >= energy_min`` and ``hi <= energy_max``.

    None means no limit on that side; ``energy_min = inf`` excludes every bin.
    """
    edges = np.asarray(edges, dtype=float)
    mask = np.ones(len(edges) - 1, dtype=bool)
    if energy_min is not None:
        mask &= edges[:-1] >= energy_min
    if energy_max is not None:
        mask &= edges[1:] <= energy_max
    return mask


def loglog_interp(energy: np.ndarray, values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Interpolate ``values(energy)`` at ``x`` linearly in log-log, extrapolating linearly beyond the nodes.

    Values are raised to the smallest normal float32 before the log, and results within twice that of
    0 are set to 0: a spectrum template's convention, so negative values behave as zeros.
    """
    log_e, log_v = np.log(energy), np.log(np.clip(values, _TINY, None))
    log_x = np.log(np.asarray(x, dtype=float))
    k = np.clip(np.searchsorted(log_e, log_x, side="right") - 1, 0, len(log_e) - 2)
    t = (log_x - log_e[k]) / (log_e[k + 1] - log_e[k])
    result = np.exp(log_v[k] + t * (log_v[k + 1] - log_v[k]))
    return np.where(result - _TINY <= _TINY, 0.0, result)


def first_crossing(
    energy: np.ndarray,
    values: np.ndarray,
    level: float,
    energy_min: float,
    energy_max: float,
    n_steps: int = 100,
) -> float:
    """First energy in ``[energy_min, energy_max]`` where :func:`loglog_interp` of ``values`` meets ``level``.

    The range is sampled at ``n_steps + 1`` log-spaced energies; inside the first interval whose ends lie on
    opposite sides of ``level`` the crossing is solved exactly (the interpolant is a power law between
    nodes). NaN when no interval brackets ``level`` (``level > 0``).
    """
    samples = np.exp(np.linspace(np.log(energy_min), np.log(energy_max), n_steps + 1))
    signs = np.sign(loglog_interp(energy, values, samples) - level)
    (changes,) = np.nonzero(signs[:-1] != signs[1:])
    if not len(changes):
        return float("nan")
    a, b = samples[changes[0]], samples[changes[0] + 1]
    points = np.concatenate([[a], energy[(energy > a) & (energy < b)], [b]])
    diff = loglog_interp(energy, values, points) - level
    k = int(np.nonzero(np.sign(diff[:-1]) != np.sign(diff[1:]))[0][0])
    if diff[k] == 0 or diff[k + 1] == 0:
        return float(points[k] if diff[k] == 0 else points[k + 1])
    low, high = np.log(loglog_interp(energy, values, points[k : k + 2]))
    t = (np.log(level) - low) / (high - low)
    return float(np.exp(np.log(points[k]) + t * np.log(points[k + 1] / points[k])))


def aeff_max_threshold(energy_true: np.ndarray, aeff: np.ndarray, percent: float) -> float:
    """True energy above which the effective area first exceeds ``percent`` % of its maximum.

    Parameters
    ----------
    energy_true : ndarray
        Increasing energies (TeV) at which ``aeff`` is given (the true-bin log-centres).
    aeff : ndarray
        Effective area at those energies (any unit).
    percent : float
        Percentage of the maximum.

    Returns
    -------
    float
        The crossing of ``percent / 100 * max(aeff)`` by the log-log interpolant (:func:`first_crossing`),
        searched from the first energy with positive area up to the last energy; that first energy when
        there is no crossing; ``inf`` when the area is nowhere positive (nothing is safe).
    """
    positive = np.nonzero(aeff > 0)[0]
    if not len(positive):
        return float("inf")
    start = float(energy_true[positive[0]])
    level = percent / 100.0 * float(np.max(aeff))
    crossing = first_crossing(energy_true, aeff, level, start, float(energy_true[-1]))
    return start if np.isnan(crossing) else crossing


def mean_bias(kernel: np.ndarray, energy_true: np.ndarray, reco_centres: np.ndarray) -> np.ndarray:
    """Relative bias ``(<E_reco> - E_true) / E_true`` of each row of an energy-dispersion kernel.

    ``<E_reco>`` is the kernel-weighted mean of the reco-bin centres (0 for an empty row, bias -1).
    """
    norm = kernel.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.nan_to_num((kernel * reco_centres).sum(axis=-1) / norm)
    return (mean - energy_true) / energy_true


def edisp_bias_threshold(
    kernel: np.ndarray, energy_true: np.ndarray, reco_centres: np.ndarray, percent: float
) -> float:
    """Reco energy above which the energy bias stays below ``percent`` %.

    The bias of each true energy (:func:`mean_bias`) is interpolated in log-log (negative biases count
    as 0); its first crossing of ``percent / 100`` above the true energy of maximal bias is searched
    (:func:`first_crossing`), that energy of maximal bias taken when there is none, and the result
    multiplied by ``1 + percent / 100`` to move it to reco energy.

    Parameters
    ----------
    kernel : ndarray
        ``(n_true, n_reco)`` energy-dispersion kernel.
    energy_true : ndarray
        True energies (TeV) of the kernel rows, increasing.
    reco_centres : ndarray
        Centres (TeV) of the reco bins.
    percent : float
        Bias in %.
    """
    bias = mean_bias(kernel, energy_true, reco_centres)
    start = float(energy_true[np.nanargmax(bias)])
    level = percent / 100.0
    crossing = first_crossing(energy_true, bias, level, start, float(energy_true[-1]))
    return (start if np.isnan(crossing) else crossing) * (1.0 + level)


def bkg_peak_threshold(spectrum: np.ndarray, edges: np.ndarray) -> float:
    """Lower edge of the energy bin with the largest predicted background (first one on ties)."""
    return float(np.asarray(edges)[int(np.argmax(spectrum))])


def aeff_default_thresholds(observation: Observation) -> tuple[float | None, float | None]:
    """The observation's own safe energy range (TeV) from the data files.

    ``SAFE_ENERGY_LO`` / ``SAFE_ENERGY_HI`` of the observation index, else ``LO_THRES`` / ``HI_THRES``
    of the effective-area header. A missing (or zero) limit gives None with a :class:`GpcubeWarning`.
    """
    result = []
    keys = (("safe_energy_lo", "lo_thres", "lower"), ("safe_energy_hi", "hi_thres", "upper"))
    for index_key, header_key, side in keys:
        value = observation.obs_info.get(index_key)
        if not value and "aeff" in observation.hdus:
            value = observation.aeff.attrs.get(header_key)
        if not value:
            message = f"observation {observation.obs_id}: no default {side} safe energy"
            warnings.warn(message, GpcubeWarning, stacklevel=2)
        result.append(float(value) if value else None)
    return result[0], result[1]


# --------------------------------------------------------------------------------- where IRFs are probed
def _nearest_index(pix: float, n: int) -> int:
    """Nearest pixel of a pixel coordinate, halves rounded down, clipped to the grid."""
    return int(np.clip(np.ceil(pix - 0.5), 0, n - 1)) if np.isfinite(pix) else 0


def probe_pixel(geom: SkyGeom, pointing: tuple[float, float], options: SafeOptions) -> tuple[int, int]:
    """``(ix, iy)`` of the pixel of ``geom`` where aeff-max and edisp-bias are evaluated.

    The pixel nearest to ``options.position``; to the point ``fixed_offset`` deg north (ICRS) of the
    ``pointing`` (RA, Dec); or, by default, to the centre of ``geom``.
    """
    if options.fixed_offset is None and options.position is None:
        x, y = (geom.npix[0] - 1) / 2, (geom.npix[1] - 1) / 2
    else:
        from astropy import units as u
        from astropy.coordinates import SkyCoord  # ~0.6 s to import: only when asked for

        position = SkyCoord(*(options.position or (0.0, 0.0)), unit="deg", frame="icrs")
        if options.fixed_offset is not None:
            origin = SkyCoord(*pointing, unit="deg", frame="icrs")
            position = origin.directional_offset_by(0 * u.deg, options.fixed_offset * u.deg)
        x, y = geom.skycoord_to_pix(position)
    return _nearest_index(float(x), geom.npix[0]), _nearest_index(float(y), geom.npix[1])


def _probe_offset(geom: SkyGeom, pointing: tuple[float, float], options: SafeOptions) -> float:
    """Offset (deg) from the pointing of the centre of the probe pixel of ``geom``."""
    ix, iy = probe_pixel(geom, pointing, options)
    lon, lat = convert_frame(*pointing, "icrs", geom.frame)
    return float(geom.slice((slice(iy, iy + 1), slice(ix, ix + 1))).separation(float(lon), float(lat))[0, 0])


# ------------------------------------------------------------------------------------ thresholds of an obs
def _aeff_max(observation: Observation, geom: SkyGeom, pointing, options: SafeOptions) -> tuple:
    centres = geom.axis("energy_true").centers
    offset = _probe_offset(geom, pointing, options)
    aeff = np.asarray(evaluate(observation.aeff, energy_true=centres, offset=np.full_like(centres, offset)))
    return aeff_max_threshold(centres, aeff, options.aeff_percent), None


def _edisp_bias(observation: Observation, geom: SkyGeom, pointing, options: SafeOptions) -> tuple:
    true_axis, reco_axis = geom.axis("energy_true"), geom.axis("energy_reco")
    offset = _probe_offset(geom.to_binsz(options.binsz_irf), pointing, options)
    kernel = edisp_kernels(observation.edisp, true_axis, reco_axis, np.array(offset))
    return edisp_bias_threshold(kernel, true_axis.centers, reco_axis.centers, options.bias_percent), None


def background_spectrum(observation: Observation, geom: SkyGeom, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """Predicted background counts per ``energy_reco`` bin, summed over every pixel of ``geom``.

    Uses :func:`gpcube.makers.background.make_map_background`'s defaults, block by block.
    """
    axis = geom.axis("energy_reco")
    loaded = load_background(observation, geom, axis, orientation="auto", step=1.0, fill_gaps=True)
    total = np.zeros(axis.nbins)
    for sy in block_slices(geom.shape[0], chunk):
        for sx in block_slices(geom.shape[1], chunk):
            total += background_block(loaded, geom.slice((sy, sx))).sum(axis=(1, 2))
    return total


def _bkg_peak(observation: Observation, geom: SkyGeom, pointing, options: SafeOptions) -> tuple:
    edges = geom.axis("energy_reco").edges
    return bkg_peak_threshold(background_spectrum(observation, geom), edges), None


def _aeff_default(observation: Observation, geom: SkyGeom, pointing, options: SafeOptions) -> tuple:
    return aeff_default_thresholds(observation)


_THRESHOLDS = {
    "aeff-default": _aeff_default,
    "aeff-max": _aeff_max,
    "edisp-bias": _edisp_bias,
    "bkg-peak": _bkg_peak,
}


def _check_options(options: SafeOptions) -> None:
    unknown = [m for m in options.methods if m not in METHODS]
    if unknown:
        raise GpcubeError(f"unknown safe-mask method(s) {unknown}; valid methods are {list(METHODS)}")
    if options.position is not None and options.fixed_offset is not None:
        raise GpcubeError("give at most one of position and fixed_offset")
    if options.aeff_percent <= 0 or options.bias_percent <= 0:
        raise GpcubeError("aeff_percent and bias_percent must be positive")


def _options(
    methods, aeff_percent, bias_percent, position, fixed_offset, offset_max, binsz_irf
) -> SafeOptions:
    methods = (methods,) if isinstance(methods, str) else tuple(dict.fromkeys(methods))
    if position is not None:
        icrs = position.icrs
        position = (float(icrs.ra.deg), float(icrs.dec.deg))
    fixed_offset = None if fixed_offset is None else float(fixed_offset)
    options = SafeOptions(
        methods, float(aeff_percent), float(bias_percent), position, fixed_offset, float(offset_max),
        float(binsz_irf),
    )  # fmt: skip
    _check_options(options)
    return options


def _thresholds(observation: Observation, geom: SkyGeom, options: SafeOptions) -> dict:
    pointing = None  # read from the events header only when a method needs it
    if {"aeff-max", "edisp-bias"} & set(options.methods):
        pointing = (observation.pointing.ra, observation.pointing.dec)
    return {
        m: _THRESHOLDS[m](observation, geom, pointing, options) for m in options.methods if m in _THRESHOLDS
    }


def safe_energy_thresholds(
    observation: Observation,
    geom: SkyGeom,
    *,
    methods: Iterable[str] = ("aeff-default",),
    aeff_percent: float = 10,
    bias_percent: float = 10,
    position: SkyCoord | None = None,
    fixed_offset: float | None = None,
    binsz_irf: float = 0.2,
) -> dict[str, tuple[float | None, float | None]]:
    """The energy range (TeV) each energy method of :func:`make_safe_mask` allows; computed now.

    ``geom`` is the grid the mask covers (for :func:`make_safe_mask` with ``max_offset``: the
    observation's cutout). Returns ``{method: (energy_min, energy_max)}`` for the energy methods among
    ``methods``; None is no limit, ``energy_min = inf`` means nothing is safe. Other parameters as in
    :func:`make_safe_mask`.
    """
    options = _options(methods, aeff_percent, bias_percent, position, fixed_offset, 3.0, binsz_irf)
    return _thresholds(observation, geom, options)


# ------------------------------------------------------------------------------------------ lazy maker
def _load_safe(observation: Observation, geom: SkyGeom, axis: EnergyAxis, options: SafeOptions) -> dict:
    energy = np.ones(axis.nbins, dtype=bool)
    for energy_min, energy_max in _thresholds(observation, geom, options).values():
        energy &= energy_range_mask(axis.edges, energy_min, energy_max)
    loaded = {"energy": energy, "offset_max": None, "background": None}
    if "offset-max" in options.methods:
        pointing = convert_frame(observation.pointing.ra, observation.pointing.dec, "icrs", geom.frame)
        loaded.update(offset_max=options.offset_max, pointing=(float(pointing[0]), float(pointing[1])))
    if "bkg-invalid" in options.methods:
        loaded["background"] = load_background(
            observation, geom, axis, orientation="auto", step=1.0, fill_gaps=True
        )
    return loaded


def _safe_block(loaded: dict, block_geom: SkyGeom) -> np.ndarray:
    mask = np.repeat(loaded["energy"][:, None, None], block_geom.shape[0], axis=1)
    mask = np.repeat(mask, block_geom.shape[1], axis=2)
    if loaded["offset_max"] is not None:
        with np.errstate(invalid="ignore"):
            mask &= block_geom.separation(*loaded["pointing"]) < loaded["offset_max"]
    if loaded["background"] is not None:
        background = background_block(loaded["background"], block_geom)
        mask &= np.isfinite(background) & (background > 0)
    return mask


def _position_attr(options: SafeOptions) -> str:
    if options.fixed_offset is not None:
        return f"fixed_offset={float(options.fixed_offset)}"
    if options.position is not None:
        return f"icrs={options.position[0]},{options.position[1]}"
    return "geometry centre"


def make_safe_mask(
    observation: Observation,
    geom: SkyGeom,
    *,
    methods: Iterable[str] = ("aeff-default",),
    aeff_percent: float = 10,
    bias_percent: float = 10,
    position: SkyCoord | None = None,
    fixed_offset: float | None = None,
    offset_max: float = 3.0,
    binsz_irf: float = 0.2,
    max_offset: float | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> xr.DataArray:
    """Safe data-range mask of one observation, lazy, over its cutout of ``geom``: True where safe.

    Parameters
    ----------
    observation : Observation
        The observation; what the methods need (IRFs, pointing, obs-index row) is read on computing.
    geom : SkyGeom
        Mosaic geometry with an ``energy_reco`` axis (and ``energy_true`` for aeff-max / edisp-bias).
    methods : iterable of str
        Any of :data:`METHODS`; the mask is the AND of their conditions:

        * ``"offset-max"``: pixel centres closer than ``offset_max`` to the pointing;
        * ``"aeff-default"``: reco bins inside the observation's safe range (:func:`aeff_default_thresholds`);
        * ``"aeff-max"``: reco bins above the true energy where the effective area at the probe pixel
          reaches ``aeff_percent`` % of its maximum (:func:`aeff_max_threshold`);
        * ``"edisp-bias"``: reco bins above the energy where the bias of the energy-dispersion kernel at
          the probe pixel of the coarse grid ``geom.to_binsz(binsz_irf)`` falls below ``bias_percent`` %
          (:func:`edisp_bias_threshold`);
        * ``"bkg-peak"``: reco bins from the one with the most predicted background, summed over the
          cutout (:func:`bkg_peak_threshold`);
        * ``"bkg-invalid"``: pixels where the predicted background is finite and positive (which the
          reference applies whenever its dataset has a background).
    aeff_percent, bias_percent : float
        Percentages of the aeff-max and edisp-bias methods.
    position : SkyCoord, optional
        Where aeff-max and edisp-bias probe the IRFs (the nearest pixel of the cutout, or of its coarse
        grid, halves rounded down, clipped to the grid). Default: the centre of the cutout.
    fixed_offset : float, optional
        Instead of ``position``: probe at this offset (deg) north of the pointing.
    offset_max : float
        Radius (deg) of the offset-max method.
    binsz_irf : float
        Pixel size (deg) of the coarse grid of edisp-bias.
    max_offset : float, optional
        Cutout radius in deg around the pointing; default: the whole of ``geom``.
    chunk : int
        Block size in pixels along lon and lat.

    Returns
    -------
    xarray.DataArray
        ``mask_safe(energy_reco, y, x)``, bool, dask-backed; the methods and their parameters are in
        the attrs (the thresholds found: :func:`safe_energy_thresholds`).

    See Also
    --------
    gpcube.workflow.config.SafeMaskConfig : The ``safe_mask`` section of a job.

    Examples
    --------
    >>> import gpcube
    >>> from gpcube.data import example_data_dir
    >>> from gpcube.geom import EnergyAxis, SkyGeom
    >>> obs = gpcube.DataStore.from_dir(example_data_dir()).observation(23523)
    >>> axes = [EnergyAxis.log(0.5, 50, 4, "energy_reco")]
    >>> geom = SkyGeom.create((83.633, 22.014), binsz=0.05, width=4.0, axes=axes)
    >>> from gpcube.makers import make_safe_mask
    >>> safe = make_safe_mask(obs, geom, methods=["offset-max", "aeff-default"], offset_max=2.0,
    ...                       max_offset=2.0)
    >>> safe.shape, safe.attrs["methods"]
    ((4, 71, 80), 'offset-max,aeff-default')
    >>> safe.values.any(axis=(1, 2))  # the first bin is below the run's safe energy threshold
    array([False,  True,  True,  True])
    >>> int(safe.values[1].sum()), safe.values[1].size  # within 2 deg of the pointing
    (4662, 5680)
    """
    options = _options(methods, aeff_percent, bias_percent, position, fixed_offset, offset_max, binsz_irf)
    if {"aeff-max", "edisp-bias"} & set(options.methods):
        geom.axis("energy_true")
    attrs = {
        "methods": ",".join(options.methods),
        "aeff_percent": options.aeff_percent,
        "bias_percent": options.bias_percent,
        "offset_max": options.offset_max,
        "binsz_irf": options.binsz_irf,
        "position": _position_attr(options),
    }
    return observation_cube(
        observation, geom, product="mask_safe", axis_name="energy_reco", units="",
        load=functools.partial(_load_safe, options=options), block=_safe_block, dtype=bool,
        max_offset=max_offset, chunk=chunk, attrs=attrs,
    )  # fmt: skip
