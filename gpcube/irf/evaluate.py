"""Evaluate any gpcube IRF Dataset at arbitrary coordinates, by dim name.

``evaluate(obs.aeff, energy_true=e, offset=o)`` returns the effective area in m2 at the broadcast
points. Interpolation follows :mod:`gpcube.irf.interp`: linear between bin centres (log for
energies, and log of the value for backgrounds), linear extrapolation up to the outer bin edges,
zero beyond them. Coordinates are plain numbers in gpcube units (TeV, deg) or DataArrays; with
DataArrays the result is a DataArray over their broadcast dims.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from gpcube.errors import GpcubeError
from gpcube.io.gadf import IRF_SPECS
from gpcube.irf.interp import LOG_FLOOR, interp_nodes

__all__ = ["PROFILE_PARAMETERS", "evaluate", "psf_3gauss_profile", "psf_king_profile"]

#: IRF classes whose values are interpolated in log.
LOG_VALUES = {"bkg_2d", "bkg_3d"}
#: The variables of each parametric PSF that its profile function takes (the triple Gauss's ``scale``
#: is read but not used: see :func:`psf_3gauss_profile`).
PROFILE_PARAMETERS = {
    "psf_3gauss": ("sigma_1", "ampl_2", "sigma_2", "ampl_3", "sigma_3"),
    "psf_king": ("gamma", "sigma"),
}


def _interp_variable(irf: xr.Dataset, var: str, dims: tuple[str, ...], points: dict) -> np.ndarray:
    array = irf[var].transpose(*dims)
    nodes = [irf[d].values for d in dims]
    edges = [(irf[f"{d}_lo"].values[0], irf[f"{d}_hi"].values[-1]) for d in dims]
    return interp_nodes(
        array.values,
        nodes,
        [points[d] for d in dims],
        edges=edges,
        log_axes=[d.startswith("energy") for d in dims],
        log_values=irf.attrs["irf_class"] in LOG_VALUES,
        log_floor=irf[var].attrs.get("log_floor", LOG_FLOOR),
    )


def psf_3gauss_profile(rad, sigma_1, ampl_2, sigma_2, ampl_3, sigma_3) -> np.ndarray:
    """GADF triple-Gaussian PSF in sr-1, normalised to 1 over the (flat) sky; ``rad`` and sigmas in deg.

    ``(g(s1) + a2 g(s2) + a3 g(s3)) / (2 pi (s1^2 + a2 s2^2 + a3 s3^2))`` with ``g(s) = exp(-r^2 / 2 s^2)``
    and the sigmas in radians in the denominator. The file's ``SCALE`` is not used: GADF gives it no unit,
    and the files written without one (Gammapy's writer, CTA 1DC) do not hold the normalisation in it;
    Gammapy and ctools normalise the profile in the same way. Where the denominator is not positive
    (all widths or amplitudes 0, as outside the IRF's axes) the profile is 0.

    See Also
    --------
    psf_king_profile : The King profile.
    evaluate : Interpolates the parameters of a ``psf_3gauss`` IRF and calls this.

    Examples
    --------
    The profile integrates to 1 over the sky (here two Gaussians of 0.05 and 0.1 deg):

    >>> import numpy as np
    >>> from scipy.integrate import quad
    >>> from gpcube.irf import psf_3gauss_profile
    >>> def ring(r):  # deg-1: the profile times the solid angle of a ring of radius r
    ...     return 2 * np.pi * np.sin(np.deg2rad(r)) * np.deg2rad(1) * psf_3gauss_profile(
    ...         r, sigma_1=0.05, ampl_2=0.5, sigma_2=0.1, ampl_3=0.0, sigma_3=0.1)
    >>> round(quad(ring, 0, 2)[0], 5)
    1.0
    """
    r2 = np.square(rad)
    terms = tuple(zip((1.0, ampl_2, ampl_3), (sigma_1, sigma_2, sigma_3), strict=True))
    total = sum(a * _gauss_shape(r2, s) for a, s in terms)
    norm = 2 * np.pi * sum(a * np.square(np.deg2rad(s)) for a, s in terms)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(norm > 0, total / norm, 0.0)


def _gauss_shape(r2, sigma) -> np.ndarray:
    """``exp(-r2 / 2 sigma^2)``; 0 for a width that is not positive (that component holds nothing)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sigma > 0, np.exp(-r2 / (2 * np.square(sigma))), 0.0)


def psf_king_profile(rad, gamma, sigma) -> np.ndarray:
    """GADF King PSF in sr-1; ``rad`` and ``sigma`` in deg.

    ``1 / (2 pi sigma^2) (1 - 1/gamma) (1 + r^2 / (2 gamma sigma^2))^-gamma`` with sigma in radians.
    Zero where ``gamma <= 1`` (the profile does not normalise there).

    See Also
    --------
    psf_3gauss_profile : The triple-Gaussian profile.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.integrate import quad
    >>> from gpcube.irf import psf_king_profile
    >>> psf_king_profile(np.array([0.0, 0.1]), gamma=2.0, sigma=0.05)  # sr-1
    array([104494.97156357,  26123.74289089])
    >>> def ring(r):  # deg-1: the profile times the solid angle of a ring of radius r
    ...     return 2 * np.pi * np.sin(np.deg2rad(r)) * np.deg2rad(1) * psf_king_profile(r, 3.0, 0.05)
    >>> round(quad(ring, 0, 20)[0], 5)
    1.0
    """
    sigma_rad = np.deg2rad(sigma)
    rad_rad = np.deg2rad(rad)
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = (1 - 1 / gamma) / (2 * np.pi * np.square(sigma_rad))
        value = norm * (1 + np.square(rad_rad) / (2 * gamma * np.square(sigma_rad))) ** (-gamma)
    return np.nan_to_num(np.where(gamma > 1, value, 0.0))


def _evaluate_numpy(irf: xr.Dataset, points: dict) -> np.ndarray:
    irf_class = irf.attrs["irf_class"]
    spec = IRF_SPECS[irf_class]
    needed = set(spec.dims) | ({"rad"} if irf_class in ("psf_3gauss", "psf_king") else set())
    missing = sorted(needed - set(points))
    unknown = sorted(set(points) - needed)
    if missing or unknown:
        raise TypeError(
            f"{irf_class} needs coordinates {sorted(needed)}; missing {missing}, unexpected {unknown}"
        )
    if irf_class not in ("psf_3gauss", "psf_king"):
        (var,) = spec.variables
        return _interp_variable(irf, var, spec.dims, points)
    params = {var: _interp_variable(irf, var, spec.dims, points) for var in PROFILE_PARAMETERS[irf_class]}
    profile = psf_3gauss_profile if irf_class == "psf_3gauss" else psf_king_profile
    return profile(np.asarray(points["rad"], dtype=float), **params)


def evaluate(irf: xr.Dataset, **coords) -> np.ndarray | xr.DataArray:
    """Evaluate an IRF Dataset (any class gpcube reads) at the given coordinates.

    Parameters
    ----------
    irf : xarray.Dataset
        An IRF as returned by :class:`~gpcube.io.observation.Observation` (``obs.aeff`` ...).
    **coords
        One array per dim of the IRF, named after it (``energy_true``, ``offset``, ``migra``,
        ``rad``, ``energy_reco``, ``fov_lon``, ``fov_lat``); the parametric PSFs also need ``rad``.

    Returns
    -------
    numpy.ndarray or xarray.DataArray
        Values in the IRF's unit (``result.attrs["units"]`` for a DataArray).

    Raises
    ------
    GpcubeError
        If ``irf`` is not an IRF Dataset of gpcube.
    TypeError
        For missing or unexpected coordinates (naming them).

    See Also
    --------
    gpcube.irf.interp_nodes : The interpolation.
    gpcube.Observation.aeff : An observation's IRFs.

    Examples
    --------
    The effective area (m2) of a Crab run at 0.5 deg offset, at three energies (TeV):

    >>> import numpy as np
    >>> import xarray as xr
    >>> import gpcube
    >>> from gpcube.data import example_data_dir
    >>> from gpcube.irf import evaluate
    >>> obs = gpcube.DataStore.from_dir(example_data_dir()).observation(23523)
    >>> evaluate(obs.aeff, energy_true=np.array([0.5, 1.0, 10.0]), offset=0.5).round(-2)
    array([ 34500., 230800., 644100.])

    With DataArrays, the result is a DataArray over their broadcast dims:

    >>> energy = xr.DataArray([1.0, 10.0], dims="energy_true")
    >>> offset = xr.DataArray([0.0, 1.0, 2.0], dims="offset")
    >>> aeff = evaluate(obs.aeff, energy_true=energy, offset=offset)
    >>> aeff.dims, aeff.attrs["units"]
    (('energy_true', 'offset'), 'm2')

    The PSF (sr-1) falls with the distance ``rad`` (deg) from the source:

    >>> evaluate(obs.psf, energy_true=1.0, offset=0.5, rad=np.array([0.0, 0.1, 0.2])).round(-2)
    array([153100.,  25600.,   3900.])
    """
    if "irf_class" not in irf.attrs or irf.attrs["irf_class"] not in IRF_SPECS:
        raise GpcubeError(f"not a gpcube IRF Dataset (irf_class {irf.attrs.get('irf_class')!r})")
    if not any(isinstance(c, xr.DataArray) for c in coords.values()):
        return _evaluate_numpy(irf, coords)
    arrays = xr.broadcast(*[c if isinstance(c, xr.DataArray) else xr.DataArray(c) for c in coords.values()])
    values = _evaluate_numpy(irf, {k: a.values for k, a in zip(coords, arrays, strict=True)})
    spec = IRF_SPECS[irf.attrs["irf_class"]]
    units = "sr-1" if irf.attrs["irf_class"].startswith("psf") else next(iter(spec.variables.values()))[1]
    return xr.DataArray(values, dims=arrays[0].dims, coords=arrays[0].coords, attrs={"units": units})
