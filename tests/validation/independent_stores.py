"""GADF data stores written by code that is not gpcube's: Gammapy 2.1's IRF classes and writers, and pyirf.

Every IRF table, event list, GTI and index table of these stores is written by the other package's own
writers (``to_table_hdu``, ``Observation.write``, ``HDUIndexTable``/``ObservationTable``,
``DataStore.from_events_files``, ``pyirf.io.create_*_hdu``); the events are sampled with Gammapy's
``MapDatasetEventSampler`` from a point source and the background IRF. This module only chooses the
values (smooth, realistic shapes on coarse axes) and the layout of each store:

===================  ==============================================================================
store                what it covers
===================  ==============================================================================
``table_3d``         Gammapy: psf_table (``PSF3D``), bkg_3d (RADEC), IRFs in each events file (2 runs)
``altaz_3d``         Gammapy: psf_table, bkg_3d aligned with ALTAZ, IRFs in the events file
``king_2d``          Gammapy: psf_king, bkg_2d, IRFs in the events file
``cta_shared``       Gammapy: psf_3gauss (SCALE without a unit), bkg_3d, in one IRF file shared by 3
                     runs: the CTA 1DC layout and HDU names, indexed by ``DataStore.from_events_files``
``pointlike``        Gammapy: point-like aeff and edisp with a ``RAD_MAX`` HDU, bkg_2d, no PSF
``pyirf_full``       pyirf: full-enclosure aeff, edisp, psf_table, bkg_2d in one file shared by 2 runs
``pyirf_pointlike``  pyirf: point-like aeff and edisp, ``RAD_MAX`` and bkg_2d in the events file
===================  ==============================================================================
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import astropy.units as u
import numpy as np
from astropy.coordinates import EarthLocation, SkyCoord
from astropy.io import fits
from astropy.time import Time
from gammapy.data import (
    DataStore,
    FixedPointingInfo,
    HDUIndexTable,
    Observation,
    ObservationTable,
)
from gammapy.datasets import MapDataset, MapDatasetEventSampler
from gammapy.irf import (
    PSF3D,
    Background2D,
    Background3D,
    EffectiveAreaTable2D,
    EnergyDependentMultiGaussPSF,
    EnergyDispersion2D,
    FoVAlignment,
    PSFKing,
    RadMax2D,
    load_irf_dict_from_file,
)
from gammapy.makers import MapDatasetMaker
from gammapy.maps import MapAxis, WcsGeom
from gammapy.modeling.models import (
    FoVBackgroundModel,
    Models,
    PointSpatialModel,
    PowerLawSpectralModel,
    SkyModel,
)

__all__ = ["BuiltStore", "STORES", "StoreSpec", "build_store", "gammapy_irfs"]

#: H.E.S.S. site: a real observatory, so that the events header has a location.
LOCATION = EarthLocation(lon=16.5 * u.deg, lat=-23.27 * u.deg, height=1835 * u.m)
REFERENCE_TIME = Time("2021-01-01T00:00:00", scale="tt")
SOURCE = SkyCoord(83.633, 22.014, unit="deg", frame="icrs")
#: Pointing offsets (RA, Dec in deg) of the runs from the source: wobbles.
WOBBLES = ((0.5, 0.0), (-0.5, 0.0), (0.0, 0.7))
LIVETIME = 600 * u.s
#: The event sampler copies these from the effective area's header into the events header.
INSTRUMENT = {"TELESCOP": "CTA", "INSTRUME": "Southern Array"}


# ----------------------------------------------------------------------------------------- axes
def _axes() -> dict[str, MapAxis]:
    return {
        "energy_true": MapAxis.from_energy_bounds(0.05, 100, 14, unit="TeV", name="energy_true"),
        "energy": MapAxis.from_energy_bounds(0.05, 100, 12, unit="TeV", name="energy"),
        "offset": MapAxis.from_bounds(0.0, 4.0, 8, unit="deg", name="offset"),
        "migra": MapAxis.from_bounds(0.2, 5.0, 48, name="migra"),
        "rad": MapAxis.from_bounds(0.0, 1.0, 50, unit="deg", name="rad"),
        "fov_lon": MapAxis.from_bounds(-4.0, 4.0, 16, unit="deg", name="fov_lon"),
        "fov_lat": MapAxis.from_bounds(-4.0, 4.0, 16, unit="deg", name="fov_lat"),
    }


def _sigma_psf(energy_true, offset):
    """PSF width (deg): narrower at high energy, wider off axis."""
    return (0.04 + 0.06 * (energy_true / u.TeV) ** -0.4 + 0.01 * (offset / u.deg) ** 2) * u.deg


# ------------------------------------------------------------------------------------- Gammapy IRFs
def gammapy_aeff(point_like: bool = False) -> EffectiveAreaTable2D:
    """Effective area: rises above 0.1 TeV, falls off axis; 70 % of it within the cut if point-like."""
    axes = _axes()
    energy = axes["energy_true"].center.to_value("TeV")[:, None]
    offset = axes["offset"].center.to_value("deg")[None, :]
    values = 3e5 / (1 + (energy / 0.15) ** -2.5) * np.exp(-0.5 * (offset / 1.8) ** 2)
    values *= 0.7 if point_like else 1.0
    return EffectiveAreaTable2D(
        axes=[axes["energy_true"], axes["offset"]], data=values * u.m**2, is_pointlike=point_like,
        meta=dict(INSTRUMENT),
    )  # fmt: skip


def gammapy_edisp(point_like: bool = False) -> EnergyDispersion2D:
    """Gaussian migration, 10-25 % wide, with a small bias at low energy."""
    axes = _axes()
    energy = axes["energy_true"].center.to_value("TeV")
    gauss = EnergyDispersion2D.from_gauss(
        energy_axis_true=axes["energy_true"], migra_axis=axes["migra"], offset_axis=axes["offset"],
        bias=0.05 * energy**-0.3, sigma=0.1 + 0.15 * energy**-0.3,
    )  # fmt: skip
    return EnergyDispersion2D(axes=gauss.axes, data=gauss.quantity, is_pointlike=point_like)


def gammapy_psf_table() -> PSF3D:
    """A Gaussian PSF table in sr-1, normalised at each (energy, offset)."""
    axes = _axes()
    energy = axes["energy_true"].center[:, None, None]
    offset = axes["offset"].center[None, :, None]
    rad = axes["rad"].center[None, None, :]
    sigma = _sigma_psf(energy, offset)
    values = np.exp(-0.5 * (rad / sigma) ** 2) / (2 * np.pi * sigma.to_value("rad") ** 2)
    return PSF3D(axes=[axes["energy_true"], axes["offset"], axes["rad"]], data=values.value, unit="sr-1")


def _parameters(names_formats: dict[str, np.ndarray]) -> np.ndarray:
    first = next(iter(names_formats.values()))
    dtype = {"names": list(names_formats), "formats": [np.float32] * len(names_formats)}
    data = np.empty(first.shape, dtype=dtype)
    for name, values in names_formats.items():
        data[name] = values
    return data


def gammapy_psf_3gauss() -> EnergyDependentMultiGaussPSF:
    """Triple Gauss whose SCALE is written without a unit, as Gammapy's writer and CTA 1DC do.

    The SCALE values are deliberately not the normalisation: readers must normalise the profile
    themselves (as Gammapy and ctools do).
    """
    axes = _axes()
    energy = axes["energy_true"].center[:, None]
    offset = axes["offset"].center[None, :]
    sigma = _sigma_psf(energy, offset).to_value("deg")
    ones = np.ones(sigma.shape)
    data = _parameters({
        "sigma_1": sigma, "sigma_2": 2.5 * sigma, "sigma_3": 6 * sigma, "scale": 50 * ones,
        "ampl_2": 0.3 * ones, "ampl_3": 0.02 * (1 + offset.to_value("deg")) * ones,
    })  # fmt: skip
    unit = {"sigma_1": u.deg, "sigma_2": u.deg, "sigma_3": u.deg, "scale": u.one, "ampl_2": u.one,
            "ampl_3": u.one}  # fmt: skip
    return EnergyDependentMultiGaussPSF(axes=[axes["energy_true"], axes["offset"]], data=data, unit=unit)


def gammapy_psf_king() -> PSFKing:
    """King PSF: gamma 1.6-3, sigma from the Gaussian width."""
    axes = _axes()
    energy = axes["energy_true"].center[:, None]
    offset = axes["offset"].center[None, :]
    sigma = 0.8 * _sigma_psf(energy, offset).to_value("deg")
    gamma = 1.6 + 0.3 * np.log1p(energy.to_value("TeV")) + 0.1 * offset.to_value("deg")
    data = _parameters({"gamma": gamma, "sigma": sigma})
    unit = {"gamma": u.one, "sigma": u.deg}
    return PSFKing(axes=[axes["energy_true"], axes["offset"]], data=data, unit=unit)


def _bkg_rate(energy, radius2):
    """s-1 MeV-1 sr-1: a power law of index 2.7 falling with the squared distance from the centre."""
    return 2e-9 * (energy / u.TeV) ** -2.7 * np.exp(-0.5 * radius2 / 2.0**2)


def gammapy_bkg_2d() -> Background2D:
    axes = _axes()
    energy, offset = axes["energy"].center[:, None], axes["offset"].center[None, :]
    rate = _bkg_rate(energy, offset.to_value("deg") ** 2)
    return Background2D(axes=[axes["energy"], axes["offset"]], data=rate.value, unit="s-1 MeV-1 sr-1")


def gammapy_bkg_3d(alignment: str = "RADEC") -> Background3D:
    """An asymmetric FoV background (brighter towards +fov_lon), so a flipped axis would show."""
    axes = _axes()
    energy = axes["energy"].center[:, None, None]
    lon = axes["fov_lon"].center.to_value("deg")[None, :, None]
    lat = axes["fov_lat"].center.to_value("deg")[None, None, :]
    rate = _bkg_rate(energy, lon**2 + lat**2) * (1 + 0.1 * lon + 0.05 * lat)
    return Background3D(
        axes=[axes["energy"], axes["fov_lon"], axes["fov_lat"]],
        data=rate.value,
        unit="s-1 MeV-1 sr-1",
        fov_alignment=FoVAlignment[alignment],
    )


def gammapy_rad_max() -> RadMax2D:
    """Energy-dependent direction cut (deg), one offset bin."""
    axes = _axes()
    offset = MapAxis.from_bounds(0.0, 4.0, 1, unit="deg", name="offset")
    values = 0.08 + 0.1 * (axes["energy"].center.to_value("TeV") ** -0.3)
    return RadMax2D(axes=[axes["energy"], offset], data=values[:, None], unit="deg", is_pointlike=True)


# ------------------------------------------------------------------------------------- pyirf IRFs
def pyirf_hdus(irfs: dict) -> list[fits.BinTableHDU]:
    """pyirf's HDUs holding the values of the Gammapy ``irfs`` (aeff, edisp, psf table, bkg_2d, rad_max).

    An IRF marked point-like is written point-like (pyirf's default for aeff and edisp).
    """
    from pyirf.io import (
        create_aeff2d_hdu,
        create_background_2d_hdu,
        create_energy_dispersion_hdu,
        create_psf_table_hdu,
        create_rad_max_hdu,
    )

    def edges(name, axis):
        return irfs[name].axes[axis].edges

    aeff, edisp = irfs["aeff"], irfs["edisp"]
    hdus = [
        create_aeff2d_hdu(aeff.quantity, edges("aeff", "energy_true"), edges("aeff", "offset"),
                          point_like=aeff.is_pointlike, **INSTRUMENT),
        create_energy_dispersion_hdu(edisp.quantity.value, edges("edisp", "energy_true"),
                                     edges("edisp", "migra").value, edges("edisp", "offset"),
                                     point_like=edisp.is_pointlike),
        create_background_2d_hdu(irfs["bkg"].quantity, edges("bkg", "energy"), edges("bkg", "offset")),
    ]  # fmt: skip
    if "psf" in irfs:
        psf = irfs["psf"]
        hdus.append(create_psf_table_hdu(psf.quantity, edges("psf", "energy_true"), edges("psf", "rad"),
                                         edges("psf", "offset")))  # fmt: skip
    if "rad_max" in irfs:
        rad_max = irfs["rad_max"]
        hdus.append(
            create_rad_max_hdu(rad_max.quantity, edges("rad_max", "energy"), edges("rad_max", "offset"))
        )
    return hdus


# ------------------------------------------------------------------------------------- events
def _observation(obs_id: int, irfs: dict, wobble: tuple[float, float]) -> Observation:
    pointing = SkyCoord(SOURCE.ra.deg + wobble[0], SOURCE.dec.deg + wobble[1], unit="deg", frame="icrs")
    tstart = (obs_id - 1) * 3600 * u.s
    return Observation.create(
        pointing=FixedPointingInfo(fixed_icrs=pointing), location=LOCATION, obs_id=obs_id,
        tstart=tstart, tstop=tstart + LIVETIME / 0.95, irfs=irfs, deadtime_fraction=0.05,
        reference_time=REFERENCE_TIME,
    )  # fmt: skip


def sample_events(observation: Observation, seed: int) -> Observation:
    """``observation`` with events from a Crab-like point source and its background IRF, by Gammapy."""
    axes = _axes()
    energy = MapAxis.from_energy_bounds(0.1, 50, 8, unit="TeV", name="energy")
    geom = WcsGeom.create(skydir=observation.get_pointing_icrs(observation.tmid), width=5, binsz=0.05,
                          frame="icrs", axes=[energy])  # fmt: skip
    needs = {"exposure": "aeff", "background": "bkg", "psf": "psf", "edisp": "edisp"}
    selection = [product for product, irf in needs.items() if irf in observation.available_irfs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        empty = MapDataset.create(geom, energy_axis_true=axes["energy_true"], migra_axis=axes["migra"],
                                  binsz_irf=0.2 * u.deg, name="sim")  # fmt: skip
        dataset = MapDatasetMaker(selection=selection).run(empty, observation)
        source = SkyModel(
            spectral_model=PowerLawSpectralModel(index=2.6, amplitude="4e-11 cm-2 s-1 TeV-1"),
            spatial_model=PointSpatialModel.from_position(SOURCE), name="crab",
        )  # fmt: skip
        dataset.models = Models([source, FoVBackgroundModel(dataset_name="sim")])
        events = MapDatasetEventSampler(random_state=seed).run(dataset, observation)
    irfs = {name: getattr(observation, name) for name in observation.available_irfs}
    return Observation(
        obs_id=observation.obs_id, meta=observation.meta, gti=observation.gti, events=events,
        pointing=observation.pointing, location=observation.observatory_earth_location, **irfs,
    )  # fmt: skip


# ------------------------------------------------------------------------------------- index tables
def write_index(root: Path, rows: list[dict], observations: list[Observation]) -> None:
    """``hdu-index.fits.gz`` and ``obs-index.fits.gz`` with Gammapy's index table classes."""
    hdu_table = HDUIndexTable(rows=rows)
    hdu_table.meta.update({"HDUCLASS": "GADF", "HDUCLAS1": "INDEX", "HDUCLAS2": "HDU", "BASE_DIR": "."})
    hdu_table.write(root / "hdu-index.fits.gz", overwrite=True)
    obs_rows = []
    for obs in observations:
        radec = obs.get_pointing_icrs(obs.tmid)
        obs_rows.append({
            "OBS_ID": obs.obs_id, "RA_PNT": radec.ra.deg, "DEC_PNT": radec.dec.deg,
            "TSTART": (obs.tstart - REFERENCE_TIME).to_value("s"),
            "TSTOP": (obs.tstop - REFERENCE_TIME).to_value("s"),
            "ONTIME": obs.observation_time_duration.to_value("s"),
            "LIVETIME": obs.observation_live_time_duration.to_value("s"),
            "DEADC": 1 - obs.observation_dead_time_fraction, "OBJECT": "Crab",
        })  # fmt: skip
    obs_table = ObservationTable(rows=obs_rows)
    obs_table.meta.update({"HDUCLASS": "GADF", "HDUCLAS1": "INDEX", "HDUCLAS2": "OBS",
                           "MJDREFI": int(REFERENCE_TIME.mjd), "MJDREFF": REFERENCE_TIME.mjd % 1,
                           "TIMESYS": "TT", "TIMEUNIT": "s"})  # fmt: skip
    obs_table.write(root / "obs-index.fits.gz", overwrite=True)


def _rows(obs_id: int, file_name: str, hdus: list[tuple[str, str, str]]) -> list[dict]:
    """HDU-index rows of the HDUs ``(HDU_TYPE, HDU_CLASS, HDU_NAME)`` of ``data/file_name``."""
    columns = ("HDU_TYPE", "HDU_CLASS", "HDU_NAME")
    common = {"OBS_ID": obs_id, "FILE_DIR": "data", "FILE_NAME": file_name}
    return [{**common, **dict(zip(columns, hdu, strict=True))} for hdu in hdus]


EVENT_HDUS = [("events", "events", "EVENTS"), ("gti", "gti", "GTI")]


# ------------------------------------------------------------------------------------- stores
@dataclass
class BuiltStore:
    """A written store: where, its runs, and the Gammapy IRF objects whose values its files hold."""

    name: str
    root: Path
    obs_ids: list[int]
    irfs: dict = field(repr=False)

    @property
    def point_like(self) -> bool:
        return "rad_max" in self.irfs


PSF_MAKERS = {"table": gammapy_psf_table, "king": gammapy_psf_king, "3gauss": gammapy_psf_3gauss}
BKG_MAKERS = {
    "2d": gammapy_bkg_2d,
    "3d": gammapy_bkg_3d,
    "3d-altaz": functools.partial(gammapy_bkg_3d, "ALTAZ"),
}


def gammapy_irfs(psf: str | None, bkg: str, point_like: bool = False) -> dict:
    """A set of Gammapy IRFs: a PSF of :data:`PSF_MAKERS` (or none), a background of :data:`BKG_MAKERS`;
    point-like ones come with a ``RAD_MAX``."""
    irfs = {"aeff": gammapy_aeff(point_like), "edisp": gammapy_edisp(point_like)}
    if psf is not None:
        irfs["psf"] = PSF_MAKERS[psf]()
    irfs["bkg"] = BKG_MAKERS[bkg]()
    if point_like:
        irfs["rad_max"] = gammapy_rad_max()
    return irfs


def _index_rows(irfs: dict, hdus: list[fits.BinTableHDU]) -> list[tuple[str, str, str]]:
    """``(HDU_TYPE, HDU_CLASS, HDU_NAME)`` of each IRF HDU (Gammapy writes no ``HDUCLASn`` for the
    parametric PSFs, so the class comes from the objects)."""
    return [(hdu_type, irf.tag, hdu.name) for (hdu_type, irf), hdu in zip(irfs.items(), hdus, strict=True)]


def irfs_in_events_files(root: Path, name: str, irfs: dict, n_obs: int) -> BuiltStore:
    """One file per run written by Gammapy's ``Observation.write``: events, GTI and the IRFs."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    irf_rows = _index_rows(irfs, [irf.to_table_hdu() for irf in irfs.values()])
    rows, observations = [], []
    for obs_id in range(1, n_obs + 1):
        observation = sample_events(_observation(obs_id, irfs, WOBBLES[obs_id - 1]), seed=obs_id)
        file_name = f"run_{obs_id:04d}.fits.gz"
        observation.write(root / "data" / file_name, include_irfs=True, overwrite=True)
        rows += _rows(obs_id, file_name, EVENT_HDUS + irf_rows)
        observations.append(observation)
    write_index(root, rows, observations)
    return BuiltStore(name, root, [o.obs_id for o in observations], irfs)


#: The HDU names of the CTA 1DC IRF file, which Gammapy's ``DataStore.from_events_files`` assumes.
CTA_1DC_HDU_NAMES = {"aeff": "EFFECTIVE AREA", "edisp": "ENERGY DISPERSION", "psf": "POINT SPREAD FUNCTION",
                     "bkg": "BACKGROUND"}  # fmt: skip


def cta_shared_irf_file(root: Path, name: str, irfs: dict, n_obs: int) -> BuiltStore:
    """CTA 1DC layout: one IRF file (``caldb/irf_file.fits``) for all runs, events files without IRFs.

    The IRF HDUs are Gammapy's ``to_table_hdu`` with 1DC's names; the index is written by Gammapy's
    ``DataStore.from_events_files`` (absolute ``FILE_DIR`` entries).
    """
    irf_path = root / "caldb" / "irf_file.fits"
    irf_path.parent.mkdir(parents=True, exist_ok=True)
    hdus = [irf.to_table_hdu() for irf in irfs.values()]
    for hdu, hdu_type in zip(hdus, irfs, strict=True):
        hdu.name = CTA_1DC_HDU_NAMES[hdu_type]
    fits.HDUList([fits.PrimaryHDU(), *hdus]).writeto(irf_path, overwrite=True)
    (root / "data").mkdir(parents=True, exist_ok=True)
    paths = []
    for obs_id in range(1, n_obs + 1):
        observation = sample_events(_observation(obs_id, irfs, WOBBLES[obs_id - 1]), seed=10 + obs_id)
        paths.append(root / "data" / f"events_{obs_id:04d}.fits.gz")
        observation.write(paths[-1], include_irfs=False, overwrite=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store = DataStore.from_events_files(paths, irfs_paths=[irf_path] * len(paths))
    store.hdu_table.write(root / "hdu-index.fits.gz", overwrite=True)
    store.obs_table.write(root / "obs-index.fits.gz", overwrite=True)
    return BuiltStore(name, root, list(range(1, n_obs + 1)), irfs)


def pyirf_store(root: Path, name: str, irfs: dict, n_obs: int, shared: bool) -> BuiltStore:
    """IRFs written by pyirf; events by Gammapy from those IRFs as Gammapy reads them back.

    ``shared``: one IRF file for all runs, else the IRF HDUs appended to each events file.
    """
    (root / "data").mkdir(parents=True, exist_ok=True)
    irf_path = root / "data" / "irfs.fits.gz"
    hdus = pyirf_hdus(irfs)
    fits.HDUList([fits.PrimaryHDU(), *hdus]).writeto(irf_path, overwrite=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read_back = load_irf_dict_from_file(irf_path)
    irf_rows = [(_HDU_TYPES[h.header["HDUCLAS2"]], h.header["HDUCLAS4"].lower(), h.name) for h in hdus]
    rows, observations = [], []
    for obs_id in range(1, n_obs + 1):
        observation = sample_events(_observation(obs_id, read_back, WOBBLES[obs_id - 1]), seed=20 + obs_id)
        file_name = f"events_{obs_id:04d}.fits.gz"
        path = root / "data" / file_name
        observation.write(path, include_irfs=False, overwrite=True)
        if shared:
            rows += _rows(obs_id, file_name, EVENT_HDUS) + _rows(obs_id, irf_path.name, irf_rows)
        else:
            with fits.open(path) as hdulist:
                fits.HDUList([h.copy() for h in hdulist] + hdus).writeto(path, overwrite=True)
            rows += _rows(obs_id, file_name, EVENT_HDUS + irf_rows)
        observations.append(observation)
    write_index(root, rows, observations)
    return BuiltStore(name, root, [o.obs_id for o in observations], irfs)


#: pyirf's ``HDUCLAS2`` -> ``HDU_TYPE`` (pyirf writes ``PSF`` where Gammapy writes ``RPSF``).
_HDU_TYPES = {"EFF_AREA": "aeff", "EDISP": "edisp", "RPSF": "psf", "PSF": "psf", "BKG": "bkg",
              "RAD_MAX": "rad_max"}  # fmt: skip


class StoreSpec(NamedTuple):
    """How a store is written: the layout function, the IRFs (see :func:`gammapy_irfs`), the runs."""

    layout: Callable[..., BuiltStore]
    psf: str | None
    bkg: str
    point_like: bool
    n_obs: int


STORES = {
    "table_3d": StoreSpec(irfs_in_events_files, "table", "3d", False, 2),
    "altaz_3d": StoreSpec(irfs_in_events_files, "table", "3d-altaz", False, 1),
    "king_2d": StoreSpec(irfs_in_events_files, "king", "2d", False, 1),
    "cta_shared": StoreSpec(cta_shared_irf_file, "3gauss", "3d", False, 3),
    "pointlike": StoreSpec(irfs_in_events_files, None, "2d", True, 1),
    "pyirf_full": StoreSpec(functools.partial(pyirf_store, shared=True), "table", "2d", False, 2),
    "pyirf_pointlike": StoreSpec(functools.partial(pyirf_store, shared=False), None, "2d", True, 1),
}


def build_store(name: str, root: Path) -> BuiltStore:
    """Write store ``name`` (a key of :data:`STORES`) into the directory ``root``."""
    spec = STORES[name]
    return spec.layout(Path(root), name, gammapy_irfs(spec.psf, spec.bkg, spec.point_like), spec.n_obs)
