"""The IRFs of a simulation: analytic GADF tables, or copies of observations' IRF HDUs of a store.

Either way the result is one or more sets of astropy binary-table HDUs (AEFF, EDISP, PSF, BKG): one
set for analytic IRFs or ``irf.obs_id``, one per entry of ``irf.obs_ids``. Each set is serialised
once and written unchanged into the files of the observations that use it. The samplers are built
from these same HDUs read back through gpcube's GADF reader, so the events follow exactly the IRFs a
reader of the files sees.
"""

from __future__ import annotations

import io

import numpy as np
import xarray as xr
from astropy.io import fits

from gpcube._schema import ConfigError
from gpcube.errors import GpcubeError
from gpcube.io import DataStore
from gpcube.io.fitsfile import BinTable, native
from gpcube.io.gadf import read_irf_table
from gpcube.simulate.config import AnalyticIrfConfig, SimConfig

__all__ = [
    "IRF_TYPES", "analytic_irf_hdus", "extname", "hdu_bytes", "hdu_classes", "irf_hdu_sets", "read_back",
    "scale_background", "store_irf_hdus",
]  # fmt: skip

#: HDU types of the IRFs written into each observation file, in file order.
IRF_TYPES = ("aeff", "edisp", "psf", "bkg")
_EXTNAMES = {"aeff": "AEFF", "edisp": "EDISP", "psf": "PSF", "bkg": "BKG"}
_HDUCLAS2 = {"aeff_2d": "EFF_AREA", "edisp_2d": "EDISP", "psf_table": "RPSF", "bkg_2d": "BKG"}
#: Bins per decade of the analytic energy axes, and their range in TeV.
_PER_DECADE, _E_RANGE = 20, (0.01, 10**2.5)
_OFFSET_STEP = 0.1


def _table_hdu(
    irf_class: str, axes: list[tuple[str, np.ndarray, str]], data: dict[str, tuple]
) -> fits.BinTableHDU:
    """A one-row GADF IRF table.

    ``axes`` are (prefix, edges, unit) in FITS order (fastest first); ``data`` maps a column name to
    (array, unit), the arrays in numpy order (the reverse of ``axes``).
    """
    columns = []
    for prefix, edges, unit in axes:
        for end, values in (("LO", edges[:-1]), ("HI", edges[1:])):
            columns.append(fits.Column(f"{prefix}_{end}", format=f"{len(values)}E", unit=unit or None,
                                       array=values.astype(">f4")[np.newaxis]))  # fmt: skip
    cref = "(" + ",".join(f"{p}_LO:{p}_HI" for p, _, _ in axes) + ")"
    for name, (values, unit) in data.items():
        columns.append(fits.Column(name, format=f"{values.size}E", unit=unit or None,
                                   dim="(" + ",".join(str(n) for n in values.shape[::-1]) + ")",
                                   array=values.astype(">f4")[np.newaxis]))  # fmt: skip
    hdu = fits.BinTableHDU.from_columns(columns)
    hdu.header.update({
        "HDUCLASS": "GADF", "HDUDOC": "https://github.com/open-gamma-ray-astro/gamma-astro-data-formats",
        "HDUVERS": "0.3", "HDUCLAS1": "RESPONSE", "HDUCLAS2": _HDUCLAS2[irf_class],
        "HDUCLAS3": "FULL-ENCLOSURE", "HDUCLAS4": irf_class.upper(),
    })  # fmt: skip
    for index in range(len(axes) * 2 + 1, len(columns) + 1):
        hdu.header[f"CREF{index}"] = cref
    return hdu


def _energy_edges() -> np.ndarray:
    decades = np.log10(_E_RANGE[1] / _E_RANGE[0])
    return np.geomspace(*_E_RANGE, int(round(decades * _PER_DECADE)) + 1)


def _gauss(x: np.ndarray, sigma: float | None) -> np.ndarray:
    return np.ones_like(x) if sigma is None else np.exp(-0.5 * (x / sigma) ** 2)


def analytic_irf_hdus(model: AnalyticIrfConfig, max_offset: float) -> dict[str, fits.BinTableHDU]:
    """AEFF (aeff_2d), EDISP (edisp_2d), PSF (psf_table) and BKG (bkg_2d) tables of the analytic model.

    Energies: 20 log bins per decade from 0.01 to 316 TeV (aeff, bkg); offsets: 0.1 deg bins up to
    ``max_offset + 1`` deg. The PSF and migration tables do not depend on energy or offset, so they
    have 2 energy and 2 offset bins; rad bins of ``sigma / 20`` up to ``6 sigma``, migra bins of
    ``sigma / 10`` over ``1 + bias +- 6 sigma``.
    """
    energy = _energy_edges()
    e_centre = np.sqrt(energy[:-1] * energy[1:])
    off_max = float(np.ceil(max_offset + 1.0))
    offset = np.linspace(0.0, off_max, int(round(off_max / _OFFSET_STEP)) + 1)
    o_centre = 0.5 * (offset[:-1] + offset[1:])
    aeff = model.aeff
    aeff_values = (aeff.plateau / (1 + (aeff.threshold / e_centre) ** 4))[None, :] * _gauss(
        o_centre, aeff.offset_sigma
    )[:, None]
    bkg = model.bkg
    bkg_values = (bkg.rate * e_centre**-bkg.index)[None, :] * _gauss(o_centre, bkg.offset_sigma)[:, None]
    coarse_e, coarse_o = np.array([_E_RANGE[0], 1.0, _E_RANGE[1]]), np.array([0.0, off_max / 2, off_max])
    sigma = model.psf.sigma
    rad = np.linspace(0.0, 6 * sigma, 121)
    r_centre = 0.5 * (rad[:-1] + rad[1:])
    rpsf = np.exp(-0.5 * (r_centre / sigma) ** 2) / (2 * np.pi * np.deg2rad(sigma) ** 2)
    centre, width = 1.0 + model.edisp.bias, model.edisp.sigma
    migra = np.linspace(max(centre - 6 * width, 1e-3), centre + 6 * width, 121)
    m_centre = 0.5 * (migra[:-1] + migra[1:])
    pdf = _gauss(m_centre - centre, width)
    pdf = pdf / np.sum(pdf * np.diff(migra))
    return {
        "aeff": _table_hdu("aeff_2d", [("ENERG", energy, "TeV"), ("THETA", offset, "deg")],
                           {"EFFAREA": (aeff_values, "m2")}),
        "edisp": _table_hdu("edisp_2d", [("ENERG", coarse_e, "TeV"), ("MIGRA", migra, ""),
                                         ("THETA", coarse_o, "deg")],
                            {"MATRIX": (np.broadcast_to(pdf[None, :, None], (2, len(pdf), 2)), "")}),
        "psf": _table_hdu("psf_table", [("ENERG", coarse_e, "TeV"), ("THETA", coarse_o, "deg"),
                                        ("RAD", rad, "deg")],
                          {"RPSF": (np.broadcast_to(rpsf[:, None, None], (len(rpsf), 2, 2)), "sr-1")}),
        "bkg": _table_hdu("bkg_2d", [("ENERG", energy, "TeV"), ("THETA", offset, "deg")],
                          {"BKG": (bkg_values, "s-1 TeV-1 sr-1")}),
    }  # fmt: skip


def store_irf_hdus(
    store: str | DataStore, obs_id: int, source: str | None = None, key: str = "irf.obs_id"
) -> dict[str, fits.BinTableHDU]:
    """Copies of the AEFF, EDISP, PSF and BKG HDUs of observation ``obs_id`` of the data store ``store``.

    Their ``OBS_ID`` keyword is removed and ``HDUCLAS4`` set to the HDU class of the store's index. A
    background aligned with ALTAZ is refused: the simulator samples backgrounds fixed in the RA/Dec
    field of view only. ``key`` is the config key that errors about the observation name.
    """
    try:
        opened = store if isinstance(store, DataStore) else DataStore.from_dir(store)
        refs = opened.observation(obs_id).hdus
    except GpcubeError as error:
        name = key if "not in the data store" in str(error) else "irf.store"
        raise ConfigError(
            name, f"expected a GADF data store and one of its observations ({error})", source
        ) from error
    missing = [t for t in IRF_TYPES if t not in refs]
    if missing:
        raise ConfigError(
            key, f"expected observation {obs_id} with IRFs {list(IRF_TYPES)}, it lacks {missing}", source
        )
    hdus = {}
    for hdu_type in IRF_TYPES:
        ref = refs[hdu_type]
        with fits.open(ref.path, memmap=False) as hdulist:
            hdu = hdulist[ref.hdu_name].copy()
        hdu.header.remove("OBS_ID", ignore_missing=True)
        hdu.header["HDUCLAS4"] = ref.hdu_class.upper()  # the class the index gives (what readers use)
        hdus[hdu_type] = hdu
    if str(hdus["bkg"].header.get("FOVALIGN", "RADEC")).strip().upper() != "RADEC":
        message = (f"expected observations whose background has FOVALIGN = RADEC, {obs_id} has not (the "
                   "simulator does not rotate ALTAZ-aligned backgrounds)")  # fmt: skip
        raise ConfigError(key, message, source)
    return hdus


def scale_background(hdu: fits.BinTableHDU, factor: float) -> fits.BinTableHDU:
    """A copy of a BKG HDU with its rate column (``BKG`` or ``BGD``) multiplied by ``factor``."""
    hdu = hdu.copy()
    names = {n.upper(): n for n in hdu.columns.names}
    name = names.get("BKG", names.get("BGD"))
    if name is None:
        raise GpcubeError("background table has no BKG or BGD column")
    hdu.data[name] = hdu.data[name] * factor
    return hdu


def hdu_classes(hdus: dict[str, fits.BinTableHDU]) -> dict[str, str]:
    """The GADF HDU class of each IRF HDU (from ``HDUCLAS4``), lower case."""
    return {t: str(h.header.get("HDUCLAS4", "")).strip().lower() for t, h in hdus.items()}


def hdu_bytes(hdu: fits.BinTableHDU, extname: str) -> bytes:
    """The HDU as it is written in a FITS file (header and padded data), named ``extname``."""
    hdu = hdu.copy()
    hdu.name = extname
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buffer)
    return buffer.getvalue()[2880:]  # the empty primary header is one block


def read_back(raw: bytes, irf_class: str) -> xr.Dataset:
    """Read serialised HDU bytes (from :func:`hdu_bytes`) with gpcube's GADF reader."""
    with fits.open(io.BytesIO(fits.PrimaryHDU().header.tostring().encode() + raw), memmap=False) as hdulist:
        hdu = hdulist[1]
        data = {n: native(np.asarray(hdu.data[n])) for n in hdu.columns.names}
        units = {c.name: (c.unit or "").strip() for c in hdu.columns}
        header = {k: v for k, v in hdu.header.items() if k not in ("COMMENT", "HISTORY", "")}
    table = BinTable(hdu.name, header, data, units)
    return read_irf_table(table, irf_class, hdu=hdu.name)


def irf_hdu_sets(config: SimConfig) -> list[dict[str, fits.BinTableHDU]]:
    """The simulation's IRF HDUs (before any background scaling), one set per IRF of the config.

    One set for analytic IRFs or ``irf.obs_id``; for ``irf.obs_ids`` one per entry, in order
    (observation ``i`` uses set ``i % len(obs_ids)``). Each distinct observation is read once.
    """
    irf = config.irf
    if irf.store is None:
        return [analytic_irf_hdus(irf.analytic, config.observation.max_offset)]
    key = "irf.obs_ids" if irf.obs_ids is not None else "irf.obs_id"
    try:
        store = DataStore.from_dir(irf.store)
    except GpcubeError as error:
        raise ConfigError("irf.store", f"expected a GADF data store ({error})", config.source) from error
    read = {}
    for obs_id in dict.fromkeys(irf.store_obs_ids):
        read[obs_id] = store_irf_hdus(store, obs_id, config.source, key)
    return [read[obs_id] for obs_id in irf.store_obs_ids]


def extname(hdu_type: str) -> str:
    """The EXTNAME of an IRF HDU in the simulated files."""
    return _EXTNAMES[hdu_type]
