"""Correlated counts, background, excess, significance and flux maps of a mosaic, per energy band.

A band is a run of contiguous reco bins (default one band over the whole ``energy_reco`` axis); the
maps are on the dim ``energy_band``, one entry per band.
``mask`` is the OR of ``mask_safe`` over the band's bins; ``S[x]`` sums ``x`` over the band's bins
where each bin is safe (as the mosaic and Gammapy sum counts); ``C[x]`` is the top-hat correlation
of ``x`` (:mod:`gpcube.estimators.correlate`). Then:

* ``counts = C[S[n]]`` (``n_on``).
* Known background (FoV-normalised or model template, no ``counts_off``): ``background = C[S[b]]``;
  ``sqrt_ts`` is the Cash significance (:func:`~gpcube.estimators.stats.cash_significance`).
* ON/OFF (``counts_off`` present, e.g. the ring background): each OFF bin's background is
  ``alpha * counts_off`` (zero where ``alpha`` is undefined or the OFF acceptance is not positive).
  With ``correlate_off`` (default) ``counts_off = C[S[n_off]]``, ``background = C[S[alpha n_off]]`` and
  ``alpha = background / counts_off``; otherwise ``counts_off = S[n_off]`` is not correlated,
  ``alpha = C[S[acceptance]] / S[acceptance_off]`` and ``background = alpha * counts_off``. ``sqrt_ts`` is
  Li & Ma eq. 17 (:func:`~gpcube.estimators.stats.li_ma_significance`), the WStat ``sqrt(TS)``. OFF
  maps given on their own bins (``off=``) are summed over the OFF bins of the band and multiplied by
  ``mask``.
* ``excess = counts - background``.
* ``flux = excess / <exposure>`` in cm-2 s-1, the integral flux in the band (over the band's energies,
  in true energy) for a power law ``E**-spectral_index``, when the mosaic has an
  ``exposure (energy_true, y, x)``; ``<exposure> = C[S[x_k]] / C[mask]`` is the exposure in reco
  bin ``k`` per unit band flux, summed over the band's safe bins and averaged over the safe pixels
  within the radius. With the mosaic's stacked energy-dispersion kernels ``K`` (``edisp=``, on the
  coarse IRF grid), ``x_k = sum_t w_t e_t K(t, k, P)`` with ``w_t = int_{true bin t} E**-index dE /
  int_{band} E**-index dE`` over every true bin and ``P`` the coarse pixel of the pixel
  (:mod:`gpcube.estimators.reco_exposure`): the counts the stack predicts in bin ``k`` for the power
  law of unit band flux. The kernels carry each observation's safe mask, so an observation's exposure
  counts only in the reco bins it counts, and events migrate across the band's edges. Without kernels
  ``x_k = sum_j w_kj e_j`` with ``w_kj = int_{reco bin k & true bin j} E**-index dE / int_{band}
  E**-index dE`` (``E_reco = E_true``): then the exposure of an observation counts in every safe bin of
  the mosaic, also those below its own threshold, and the flux is too low where the observations'
  thresholds differ inside the band (``docs/validation_truth.rst``).

Outside ``mask`` every output is NaN. This follows Gammapy 2.1's ``ExcessMapEstimator``. Its flux
folds the power law through one kernel, the dataset's at the map's centre
(``estimate_exposure_reco_energy``), or without one puts each true bin into the reco bins by linear
overlap; here each pixel takes its coarse pixel's kernel. Without kernels the two agree exactly when
the reco edges are true edges.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import xarray as xr

from gpcube.errors import GpcubeError
from gpcube.estimators.bands import band_edges_of, band_slices, power_law_integral, power_law_shares
from gpcube.estimators.correlate import correlate_array, radius_to_pixels, tophat_kernel
from gpcube.estimators.reco_exposure import folded_exposure, power_law_true_weights
from gpcube.estimators.stats import cash_significance, li_ma_significance
from gpcube.geom import BAND_DIM, EnergyAxis, SkyGeom
from gpcube.geom._arrays import band_reduce, elementwise, is_lazy, stack, where
from gpcube.geom.axes import rename_energy_dim

__all__ = ["estimate_excess_map"]

DIM = "energy_reco"
_DESCRIPTIONS = {
    "counts": ("", "correlated counts (n_on)"),
    "background": ("", "correlated background counts"),
    "excess": ("", "correlated excess counts"),
    "sqrt_ts": ("", "significance sqrt(TS), signed by the excess"),
    "counts_off": ("", "OFF counts (correlated when correlate_off)"),
    "alpha": ("", "ON/OFF exposure ratio of the correlated counts"),
    "flux": ("cm-2 s-1", "integral flux in the band for the assumed power law"),
}


def _chunked_as(mosaic: xr.Dataset, counts: xr.DataArray) -> xr.Dataset:
    """``mosaic`` with the pixel chunks of ``counts`` (when lazy): the maps then combine block by block.

    Elementwise operations of arrays chunked differently fail with dask's query-planning arrays
    (dask 2026.8-2026.11; docs/makers.rst), and cost a rechunk without them.
    """
    if not is_lazy(counts):
        return mosaic
    pixel = {d: c for d, c in zip(counts.dims, counts.chunks, strict=True) if d in ("y", "x")}
    lazy = [name for name, v in mosaic.data_vars.items() if is_lazy(v) and set(pixel) <= set(v.dims)]
    changed = [n for n in lazy if any(mosaic[n].chunksizes[d] != c for d, c in pixel.items())]
    return mosaic.assign({n: mosaic[n].chunk(pixel) for n in changed}) if changed else mosaic


def _require(ds: xr.Dataset, name: str, why: str) -> xr.DataArray:
    if name not in ds.data_vars:
        raise GpcubeError(f"the mosaic has no {name!r} variable ({why}); variables: {list(ds.data_vars)}")
    return ds[name]


def _band_reduce(array: xr.DataArray, slices: Sequence[slice], how: str = "sum") -> xr.DataArray:
    """``array`` summed (or OR-ed, ``how="any"``) over the bins of each band: dims ``(energy_reco, ...)``."""
    return band_reduce(array, DIM, slices, how)


def _safe_sum_block(x: np.ndarray, safe: np.ndarray | None = None) -> np.ndarray:
    """Sum over the first axis of ``x`` where ``safe`` (and, for floats, ``x`` is not NaN), bin by bin.

    The bins are added in order into the dtype of ``numpy.sum``, as a sum along the axis would.
    """
    nan_able = x.dtype.kind in "fc"
    out = np.zeros(x.shape[1:], dtype=np.sum(np.zeros(1, x.dtype)).dtype)
    for k in range(x.shape[0]):
        keep = None if safe is None else safe[k]
        if nan_able:
            keep = ~np.isnan(x[k]) if keep is None else keep & ~np.isnan(x[k])
        if keep is None:
            out += x[k]
        else:
            np.add(out, x[k], out=out, where=keep)
    return out


def _safe_sum(array: xr.DataArray, safe: xr.DataArray | None) -> xr.DataArray:
    """``array`` summed over ``energy_reco`` where ``safe`` (lazy on dask: one energy chunk per block)."""
    rest = tuple(d for d in array.dims if d != DIM)
    data = [a.transpose(DIM, *rest).data for a in ([array] if safe is None else [array, safe])]
    dtype = np.sum(np.zeros(1, array.dtype)).dtype
    if any(is_lazy(d) for d in data):
        import dask.array as da

        data = [da.asarray(d).rechunk({0: -1}) for d in data]
        summed = da.map_blocks(_safe_sum_block, *data, drop_axis=0, dtype=dtype, meta=np.array((), dtype))
    else:
        summed = _safe_sum_block(*data)
    template = array.isel({DIM: 0}, drop=True).transpose(*rest)
    return template.drop_vars([c for c in template.coords if DIM in template[c].dims]).copy(data=summed)


class _Bands:
    """Sums over the bins of each band, of the safe bins only (as the mosaic and Gammapy sum counts)."""

    def __init__(self, slices: list[slice], safe: xr.DataArray | None, mask: xr.DataArray) -> None:
        self.slices, self.safe, self.mask = slices, safe, mask

    def sum_parts(self, parts: Sequence[xr.DataArray]) -> xr.DataArray:
        """Sum ``parts[b]`` (band ``b``'s bins along ``energy_reco``) where safe: ``(energy_reco, ...)``.

        Without a per-bin mask (an ON/OFF dataset without ``mask_safe``), the sums are multiplied by the
        band's mask instead.
        """
        sums = [
            _safe_sum(part, None if self.safe is None else self.safe.isel({DIM: band}))
            for part, band in zip(parts, self.slices, strict=True)
        ]
        out = stack(sums, DIM)
        return out if self.safe is not None else where(self.mask, out, 0)

    def sum(self, array: xr.DataArray) -> xr.DataArray:
        """``array`` (on the bins of ``slices``) summed over each band's safe bins."""
        return self.sum_parts([array.isel({DIM: band}) for band in self.slices])


def _corr(array: xr.DataArray, kernel: np.ndarray) -> xr.DataArray:
    return array.copy(data=correlate_array(array.data, kernel))


def _ufunc(func: Callable, *args: xr.DataArray) -> xr.DataArray:
    return elementwise(func, *args, dtype=np.float64)


def _bands(lo, hi, energy_edges, off: xr.Dataset | None) -> tuple[np.ndarray, np.ndarray]:
    """Band edges: ``energy_edges``, else the separate ON/OFF dataset's bins, else one band over all bins."""
    if energy_edges is not None:
        edges = energy_edges
        if hasattr(edges, "unit"):
            import astropy.units as u

            edges = u.Quantity(edges).to_value("TeV")
        edges = np.asarray(edges, dtype=float)
        if edges.ndim != 1 or edges.size < 2:
            raise GpcubeError(f"energy_edges must be at least 2 edges in TeV, got {energy_edges!r}")
        band_lo, band_hi = edges[:-1], edges[1:]
    elif off is not None:
        band_lo, band_hi = band_edges_of(off)
    else:
        band_lo, band_hi = lo[:1], hi[-1:]
    return np.asarray(band_lo, dtype=float), np.asarray(band_hi, dtype=float)


def _off_background_block(alpha: np.ndarray, counts_off: np.ndarray, acceptance_off=None) -> np.ndarray:
    """``alpha * counts_off``, 0 where alpha is not finite or ``acceptance_off`` (if given) not positive."""
    valid = np.isfinite(alpha)
    if acceptance_off is not None:
        valid &= acceptance_off > 0
    return np.where(valid, alpha * counts_off, 0.0)


def _onoff_background(onoff: xr.Dataset) -> xr.DataArray:
    """``alpha * counts_off`` per bin; 0 where alpha is undefined or the OFF acceptance is not positive."""
    counts_off = onoff["counts_off"]
    has_acc = "acceptance" in onoff.data_vars and "acceptance_off" in onoff.data_vars
    if "alpha" in onoff.data_vars:
        alpha = onoff["alpha"]
    elif has_acc:
        alpha = onoff["acceptance"] / where(onoff["acceptance_off"] > 0, onoff["acceptance_off"])
    else:
        raise GpcubeError("ON/OFF maps need 'alpha', or 'acceptance' and 'acceptance_off', with 'counts_off'")
    args = [alpha, counts_off]
    if "acceptance_off" in onoff.data_vars:
        args.append(onoff["acceptance_off"])
    return _ufunc(_off_background_block, *args)


def _cash_maps(mosaic: xr.Dataset, bands: _Bands, n_on, kernel) -> dict[str, xr.DataArray]:
    mu = _corr(bands.sum(_require(mosaic, "background", "the known background")), kernel)
    return {"background": mu, "sqrt_ts": _ufunc(cash_significance, n_on, mu)}


def _onoff_maps(onoff: xr.Dataset, bands: _Bands, n_on, kernel, correlate_off) -> dict[str, xr.DataArray]:
    counts_off = bands.sum(onoff["counts_off"])
    if correlate_off:
        background = _corr(bands.sum(_onoff_background(onoff)), kernel)
        n_off = _corr(counts_off, kernel)
        alpha = background / where(n_off > 0, n_off)
    else:
        for name in ("acceptance", "acceptance_off"):
            _require(onoff, name, "correlate_off=False")
        acceptance_off = bands.sum(onoff["acceptance_off"])
        alpha = _corr(bands.sum(onoff["acceptance"]), kernel) / where(acceptance_off > 0, acceptance_off)
        n_off = counts_off
        background = alpha * n_off
    sqrt_ts = _ufunc(li_ma_significance, n_on, n_off, alpha)
    return {"background": background, "sqrt_ts": sqrt_ts, "counts_off": n_off, "alpha": alpha}


def _weighted_sum_block(exposure: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum_j weights[k, j] exposure[j, ...]`` as ``(k, ...)``: one matrix product (BLAS)."""
    return np.tensordot(weights, exposure, axes=1)


def _weighted_sum(exposure: xr.DataArray, weights: np.ndarray) -> xr.DataArray:
    """``(energy_reco, ...)``: the true-energy bins of ``exposure`` weighted by ``weights[k, j]``."""
    rest = tuple(d for d in exposure.dims if d != "energy_true")
    data = exposure.transpose("energy_true", *rest).data
    weights = np.asarray(weights, np.float64)
    if is_lazy(data):
        import dask.array as da

        data = data.rechunk({0: -1})
        out = da.map_blocks(
            _weighted_sum_block, data, weights=weights, chunks=((weights.shape[0],), *data.chunks[1:]),
            dtype=np.float64, meta=np.array((), np.float64),
        )  # fmt: skip
    else:
        out = _weighted_sum_block(data, weights)
    template = exposure.isel(energy_true=0, drop=True).transpose(*rest)
    return xr.DataArray(out, dims=(DIM, *rest), coords=template.coords, attrs=template.attrs)


#: Exposure units of the makers (and the flux's own): their factors to cm2 s without importing astropy.
_CM2S = {"m2 s": 1e4, "cm2 s": 1.0}


def _to_cm2s(units: str) -> float:
    """The factor from exposure ``units`` to cm2 s (astropy's, for other units than :data:`_CM2S`)."""
    if units in _CM2S:
        return _CM2S[units]
    import astropy.units as u

    try:
        return u.Unit(units).to("cm2 s")
    except (ValueError, TypeError) as exc:
        raise GpcubeError(f"exposure units {units!r} are not an area times a time") from exc


def _exposure_cm2s(mosaic: xr.Dataset) -> tuple[xr.DataArray, np.ndarray, float]:
    """The exposure without its energy coords, its energy_true edges, and the factor to cm2 s."""
    exposure = mosaic["exposure"]
    true_lo, true_hi = band_edges_of(exposure, "energy_true")
    if not np.allclose(true_hi[:-1], true_lo[1:], rtol=1e-9, atol=0.0):
        raise GpcubeError("the exposure's energy_true bins are not contiguous")
    factor = _to_cm2s(exposure.attrs.get("units", "m2 s"))
    exposure = exposure.drop_vars([c for c in exposure.coords if "energy_true" in exposure[c].dims])
    return exposure, np.append(true_lo, true_hi[-1]), factor


def _flux(mosaic, lo, hi, band_lo, band_hi, bands: _Bands, excess, kernel, index, edisp) -> xr.DataArray:
    """``excess / <exposure>``: ``<exposure> = C[sum_k safe_k x_k] / C[mask]`` (see module)."""
    with_edges = mosaic["exposure"]
    exposure, true_edges, to_cm2s = _exposure_cm2s(mosaic)
    parts = []
    for band, b_lo, b_hi in zip(bands.slices, band_lo, band_hi, strict=True):
        if edisp is not None:  # x_k = sum_t w_t e_t K(t, k, P): folded through the stacked kernels
            weights = power_law_true_weights(true_edges, b_lo, b_hi, index)
            parts.append(folded_exposure(with_edges, edisp, weights, band, (lo, hi)))
            continue
        shares = power_law_shares(true_edges, lo[band], hi[band], index)
        weights = shares / power_law_integral(b_lo, b_hi, index)  # w_kj: bin k's part of the band's flux
        parts.append(_weighted_sum(exposure, weights))
    n_safe = _corr(bands.mask, kernel)
    mean = _corr(bands.sum_parts(parts), kernel) / where(n_safe > 0, n_safe)
    return excess / where(mean > 0, mean * to_cm2s)


def _band_coords(band_lo: np.ndarray, band_hi: np.ndarray, geom: SkyGeom) -> tuple[dict, SkyGeom]:
    """Coordinates of the output's band dim (``energy_band``) and the output geometry (band axis when
    the bands are contiguous)."""
    band = (BAND_DIM,)
    coords = {
        BAND_DIM: xr.Variable(band, np.sqrt(band_lo * band_hi), {"units": "TeV", "long_name": "log-centre"}),
        f"{BAND_DIM}_lo": xr.Variable(band, band_lo, {"units": "TeV"}),
        f"{BAND_DIM}_hi": xr.Variable(band, band_hi, {"units": "TeV"}),
    }
    contiguous = np.array_equal(band_hi[:-1], band_lo[1:])
    axes = (EnergyAxis(BAND_DIM, np.append(band_lo, band_hi[-1])),) if contiguous else ()
    return coords, geom.with_axes(*axes)


def _geom_attrs(geom: SkyGeom, stored) -> dict:
    """``geom.to_attrs()``, taken from the input's ``stored`` geometry attrs when they hold its sky grid.

    The bands change only the energy axes: the stored WCS header is the one astropy would make again
    (at the cost of importing ``astropy.wcs``, ~0.5 s in a fresh process).
    """
    if not isinstance(stored, dict) or "wcs_header" not in stored:
        return geom.to_attrs()
    if SkyGeom.from_attrs(stored).with_axes(*geom.axes) != geom:
        return geom.to_attrs()
    return {**stored, "axes": [axis.to_dict() for axis in geom.axes]}


def _finish(maps: dict, mask: xr.DataArray, coords: dict, geom_attrs: dict, attrs: dict) -> xr.Dataset:
    out = {}
    for name, array in maps.items():
        units, long_name = _DESCRIPTIONS[name]
        array = where(mask, array.astype(np.float64)).rename({DIM: BAND_DIM})
        array = array.transpose(BAND_DIM, "y", "x").assign_coords(coords)
        array.attrs = {**attrs, "units": units, "long_name": long_name, "energy_type": "reco",
                       "geom": geom_attrs}  # fmt: skip
        out[name] = array.rename(name)
    return xr.Dataset(out, attrs={**attrs, "geom": geom_attrs})


def estimate_excess_map(
    mosaic: xr.Dataset,
    radius: float,
    *,
    energy_edges: Sequence[float] | None = None,
    off: xr.Dataset | None = None,
    spectral_index: float = 2.0,
    correlate_off: bool = True,
    edisp: xr.DataArray | None = None,
) -> xr.Dataset:
    """Correlated counts, background, excess, significance and flux of a mosaic per energy band.

    See the module docstring for the exact definitions. Lazy: on a dask-backed mosaic (e.g.
    :func:`gpcube.open_archive`) building the result computes nothing, and computing it needs a few
    chunks and their rims of ``radius`` at a time.

    Parameters
    ----------
    mosaic : xarray.Dataset
        ``counts (energy_reco, y, x)``, ``mask_safe`` (optional: all safe), the geometry in attrs
        (``.sky.geom``) and either ``background`` (known background: Cash) or ``counts_off`` with
        ``alpha`` or ``acceptance`` and ``acceptance_off`` (ON/OFF: Li & Ma) on the same bins;
        optionally ``exposure (energy_true, y, x)`` for the flux. Maps on ``energy_band`` (the ring
        products: ``gpcube.open_archive(path, ring=True)``) instead of ``energy_reco`` are taken with
        their bands as the bins.
    radius : float
        Correlation radius in deg (the disc of pixel centres within ``radius / binsz`` pixels).
    energy_edges : sequence of float or Quantity, optional
        Band edges (TeV), each a reco bin edge; default one band over all bins (or the bins of ``off``).
    off : xarray.Dataset, optional
        ON/OFF maps on their own bins (e.g. the ring background's ``energy_band`` bands, or
        ``energy_reco`` bins): ``counts_off`` with ``alpha`` or ``acceptance`` and ``acceptance_off``, and
        ``<dim>_lo/_hi`` coords. Each band
        is summed over the counts' bins and the OFF bins it covers; by default the bands are the OFF
        bins.
    spectral_index : float
        Power-law index assumed for the flux.
    correlate_off : bool
        Correlate the OFF counts too (as Gammapy's default). Set False when ``counts_off`` is already
        summed over a ring, to avoid correlating twice; then ``acceptance`` and ``acceptance_off`` are
        needed.
    edisp : xarray.DataArray, optional
        The mosaic's stacked energy-dispersion kernels ``(energy_true, energy_reco, irf_y, irf_x)`` on the
        coarse IRF grid (``gpcube.open_archive(path, irf=True)["edisp"]``), on the counts' reco and
        the exposure's true bins: the flux folds the power law through them (see the module
        docstring). Default: ``E_reco = E_true``.

    Returns
    -------
    xarray.Dataset
        Float64 ``(energy_band, y, x)`` variables ``counts``, ``background``, ``excess``,
        ``sqrt_ts``, plus ``counts_off`` and ``alpha`` (ON/OFF) and ``flux`` (with an exposure): the
        dim ``energy_band``, one entry per band, with ``energy_band_lo/_hi`` coords (TeV); NaN outside
        the safe mask. The attrs hold the geometry (band axis), ``correlation_radius`` (deg),
        ``statistic`` ("cash" or "wstat") and, with a flux, ``spectral_index`` and ``flux_edisp``
        (whether the kernels were used).

    See Also
    --------
    gpcube.workflow.significance.significance : The same on an archive's mosaic, stored in it.
    cash_significance, li_ma_significance : The statistics.
    correlate : The top-hat correlation.

    Examples
    --------
    The maps of one Crab run (a "mosaic" of one observation) with its FoV-normalised background:

    >>> import gpcube
    >>> from gpcube.data import example_data_dir
    >>> from gpcube.geom import EnergyAxis, SkyGeom
    >>> obs = gpcube.DataStore.from_dir(example_data_dir()).observation(23523)
    >>> axes = [EnergyAxis.log(0.5, 50, 4, "energy_reco"), EnergyAxis.log(0.3, 100, 8, "energy_true")]
    >>> geom = SkyGeom.create((83.633, 22.014), binsz=0.05, width=4.0, axes=axes)
    >>> import numpy as np
    >>> import xarray as xr
    >>> from gpcube.estimators import estimate_excess_map
    >>> from gpcube.makers import (
    ...     make_map_background_fov_norm, make_map_counts, make_map_exposure_true_energy)
    >>> mosaic = xr.Dataset({
    ...     "counts": make_map_counts(obs, geom, max_offset=2.0),
    ...     "background": make_map_background_fov_norm(
    ...         obs, geom, exclusion_mask=[(83.633, 22.014, 0.3)], max_offset=2.0),
    ...     "exposure": make_map_exposure_true_energy(obs, geom, max_offset=2.0),
    ... })
    >>> maps = estimate_excess_map(mosaic, radius=0.1, energy_edges=[0.5, 50])
    >>> sorted(maps.data_vars), maps.attrs["statistic"]
    (['background', 'counts', 'excess', 'flux', 'sqrt_ts'], 'cash')
    >>> ix, iy = maps.sky.geom.coord_to_idx(83.633, 22.014)  # the Crab Nebula's pixel
    >>> round(float(maps["sqrt_ts"][0, iy, ix]), 1), round(float(maps["excess"][0, iy, ix]), 1)
    (21.3, 142.8)
    >>> float(maps["flux"][0, iy, ix])  # cm-2 s-1 from 0.5 to 50 TeV within 0.1 deg, index 2
    3.4e-11
    """
    # maps on bands (the ring's ``energy_band``) are maps on bins here: the estimator's bins
    mosaic = rename_energy_dim(mosaic, BAND_DIM, DIM)
    off = None if off is None else rename_energy_dim(off, BAND_DIM, DIM)
    counts = _require(mosaic, "counts", "the ON counts")
    mosaic = _chunked_as(mosaic, counts)
    geom = mosaic.sky.geom
    kernel = tophat_kernel(radius_to_pixels(geom.binsz, radius))
    lo, hi = band_edges_of(counts)
    band_lo, band_hi = _bands(lo, hi, energy_edges, off)
    slices = band_slices(lo, hi, band_lo, band_hi)
    safe = mosaic["mask_safe"] if "mask_safe" in mosaic.data_vars else None
    mask = _band_reduce(xr.ones_like(counts, dtype=bool) if safe is None else safe, slices, "any")
    if off is not None:
        off_slices = band_slices(*band_edges_of(off), band_lo, band_hi)
        if "mask_safe" in off.data_vars:
            mask = mask & _band_reduce(off["mask_safe"], off_slices, "any")
        off_bands = _Bands(off_slices, None, mask)  # OFF sums are masked by the band's mask
    bands = _Bands(slices, safe, mask)
    n_on = _corr(bands.sum(counts), kernel)
    if off is None and "counts_off" not in mosaic.data_vars:
        maps = {"counts": n_on, **_cash_maps(mosaic, bands, n_on, kernel)}
        attrs = {"statistic": "cash"}
    else:
        onoff, onoff_bands = (mosaic, bands) if off is None else (off, off_bands)
        maps = {"counts": n_on, **_onoff_maps(onoff, onoff_bands, n_on, kernel, correlate_off)}
        attrs = {"statistic": "wstat", "correlate_off": bool(correlate_off)}
    maps["excess"] = n_on - maps["background"]
    attrs["correlation_radius"] = float(radius)
    if "exposure" in mosaic.data_vars:
        maps["flux"] = _flux(
            mosaic, lo, hi, band_lo, band_hi, bands, maps["excess"], kernel, spectral_index, edisp
        )
        attrs["spectral_index"] = float(spectral_index)
        attrs["flux_edisp"] = edisp is not None
    order = ("counts", "background", "excess", "sqrt_ts", "counts_off", "alpha", "flux")
    coords, out_geom = _band_coords(band_lo, band_hi, geom)
    maps = {k: maps[k] for k in order if k in maps}
    geom_attrs = _geom_attrs(out_geom, mosaic.attrs.get("geom"))
    return _finish(maps, mask, coords, geom_attrs, attrs)
