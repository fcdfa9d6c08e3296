"""Bad input gives a :class:`gpcube.GpcubeError` naming the file and the HDU, and good input no warnings."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from astropy.io import fits

from gpcube import DataStore, GpcubeError
from gpcube.irf import evaluate
from tests import gadf_factory as gf


def assert_gpcube_error(action, path, hdu: str | None, match: str | None = None) -> GpcubeError:
    """``action()`` raises exactly GpcubeError, whose message names ``path`` and ``hdu``."""
    with pytest.raises(GpcubeError) as info:
        action()
    error = info.value
    assert type(error) is GpcubeError
    message = str(error)
    assert str(path) in message, message
    assert error.path == str(path)
    if hdu is not None:
        assert hdu in message, message
        assert error.hdu is not None and hdu in error.hdu
    if match is not None:
        assert re.search(match, message), message
    return error


def one_obs_store(tmp_path, *, gzip=True, **obs_options) -> gf.Store:
    return gf.write_store(tmp_path, [gf.ObsSpec(1, **obs_options)], gzip=gzip)


def observation(store: gf.Store, obs_id: int = 1):
    return DataStore.from_dir(store.root).observation(obs_id)


# --- truncated and missing files ---------------------------------------------------------------------


def _hdu_layout(path) -> list[tuple[str, int, int, int]]:
    """(name, header start, data start, data end) of every HDU, as astropy sees the file."""
    with fits.open(path) as hdulist:
        layout = []
        for index, hdu in enumerate(hdulist):
            info = hdulist.fileinfo(index)
            layout.append((hdu.name, info["hdrLoc"], info["datLoc"], info["datLoc"] + info["datSpan"]))
    return layout


@pytest.mark.parametrize("where", ["half", "in_header", "in_data"])
def test_truncated_fits(tmp_path, where):
    store = one_obs_store(tmp_path, gzip=False)
    path = store.files[1]
    raw = path.read_bytes()
    layout = _hdu_layout(path)
    psf = next(i for i, entry in enumerate(layout) if entry[0] == "PSF")
    cut = {"half": len(raw) // 2, "in_header": layout[psf][1] + 100, "in_data": layout[psf][2] + 100}[where]
    path.write_bytes(raw[:cut])
    index = next(i for i, (_, start, _, end) in enumerate(layout) if start <= cut < end)
    name, _, data_start, _ = layout[index]
    expected_hdu = name if cut >= data_start else f"#{index}"
    # the file is refused whole, whatever part is asked for
    obs = observation(store)
    for part in ("events", "aeff", "bkg"):
        assert_gpcube_error(lambda part=part: getattr(obs, part), path, expected_hdu, "truncated")


def test_truncated_at_hdu_boundary(tmp_path):
    """A file cut exactly between two HDUs looks complete: the lost HDUs are missing."""
    store = one_obs_store(tmp_path, gzip=False)
    path = store.files[1]
    layout = _hdu_layout(path)
    psf = next(entry for entry in layout if entry[0] == "PSF")
    path.write_bytes(path.read_bytes()[: psf[1]])
    obs = observation(store)
    assert obs.aeff.aeff.shape == (6, 5)
    assert_gpcube_error(lambda: obs.psf, path, "PSF", "no such HDU")


def test_truncated_gzip(tmp_path):
    store = one_obs_store(tmp_path)
    path = store.files[1]
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    obs = observation(store)
    assert_gpcube_error(lambda: obs.aeff, path, "EFFECTIVE AREA", "truncated")
    assert_gpcube_error(lambda: obs.events, path, "EVENTS", "truncated")


def test_not_a_fits_file(tmp_path):
    store = one_obs_store(tmp_path, gzip=False)
    path = store.files[1]
    path.write_bytes(b"this is no FITS file " * 400)
    assert_gpcube_error(lambda: observation(store).aeff, path, "EFFECTIVE AREA", "not a FITS file")


def test_missing_file(tmp_path):
    store = one_obs_store(tmp_path)
    store.files[1].unlink()
    assert_gpcube_error(lambda: observation(store).edisp, store.files[1], "ENERGY DISPERSION", "not found")


def test_index_names_a_missing_file(tmp_path):
    store = one_obs_store(tmp_path, index={"psf": {"FILE_NAME": "nowhere.fits.gz"}})
    path = store.root / "data" / "nowhere.fits.gz"
    obs = observation(store)
    assert obs.aeff.aeff.size > 0  # the other HDUs are fine
    assert_gpcube_error(lambda: obs.psf, path, "PSF", "not found")


def test_missing_hdu(tmp_path):
    store = one_obs_store(tmp_path, index={"aeff": {"HDU_NAME": "AEFF_NOPE"}})
    assert_gpcube_error(lambda: observation(store).aeff, store.files[1], "AEFF_NOPE", "no such HDU")


@pytest.mark.parametrize("hdu_class, match", [("aeff_3d", "unknown HDU class 'aeff_3d'"),
                                              ("bkg_2d", "wrong HDU class 'bkg_2d'")])  # fmt: skip
def test_bad_hdu_class(tmp_path, hdu_class, match):
    store = one_obs_store(tmp_path, index={"aeff": {"HDU_CLASS": hdu_class}})
    assert_gpcube_error(lambda: observation(store).aeff, store.files[1], "EFFECTIVE AREA", match)


def test_no_such_hdu_type(tmp_path):
    store = one_obs_store(tmp_path, irfs=[gf.aeff_2d()])
    with pytest.raises(GpcubeError, match="no 'psf' HDU") as info:
        _ = observation(store).psf
    assert type(info.value) is GpcubeError
    assert observation(store).rad_max is None


# --- bad units, axes and shapes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "irf, hdu, match",
    [
        (gf.aeff_2d(units={"EFFAREA": "deg"}), "EFFECTIVE AREA", "EFFAREA has unit 'deg'"),
        (gf.aeff_2d(units={"energy_true": "m"}), "EFFECTIVE AREA", "ENERG_LO has unit 'm'"),
        (gf.aeff_2d(units={"energy_true": ""}), "EFFECTIVE AREA", "ENERG_LO has no unit"),
        (gf.aeff_2d(units={"offset": ""}), "EFFECTIVE AREA", "THETA_LO has no unit"),
        (gf.aeff_2d(units={"EFFAREA": ""}), "EFFECTIVE AREA", "EFFAREA has no unit"),
        (gf.aeff_2d(units={"EFFAREA": "furlong2 per fortnight"}), "EFFECTIVE AREA", "cannot parse unit"),
        (gf.bkg_3d(units={"BKG": "s-1 sr-1"}), "BACKGROUND", "BKG has unit 's-1 sr-1'"),
        (gf.psf_king(units={"SIGMA": "TeV"}), "PSF", "SIGMA has unit 'TeV'"),
        (gf.psf_3gauss(units={"SCALE": "m2"}), "PSF", "SCALE has unit 'm2'"),
        (gf.edisp_2d(units={"migra": "deg"}), "ENERGY DISPERSION", "MIGRA_LO has unit 'deg'"),
        (gf.bkg_2d(energy_column="ETRUE"), "BACKGROUND", "ETRUE"),
        (gf.rad_max_2d(energy_column="ETRUE"), "RAD_MAX", "ETRUE"),
        (gf.bkg_3d(header={"FOVALIGN": "GALACTIC"}), "BACKGROUND", "FOVALIGN"),
        (gf.aeff_2d(rename={"EFFAREA": "AREA"}), "EFFECTIVE AREA", "no column EFFAREA"),
        (gf.bkg_2d(cref="(ENERG_LO:ENERG_HI,PHI_LO:PHI_HI)"), "BACKGROUND", "unknown axis"),
    ],
    ids=lambda value: value.irf_class if isinstance(value, gf.IrfHdu) else None,
)  # fmt: skip
def test_bad_irf(tmp_path, irf, hdu, match):
    store = one_obs_store(tmp_path, irfs=[irf])
    assert_gpcube_error(lambda: getattr(observation(store), irf.hdu_type), store.files[1], hdu, match)


@pytest.mark.parametrize("irf_class", sorted(gf.IRF_DIMS))
def test_data_shape_disagrees_with_axes(tmp_path, irf_class):
    """A data column with one bin too many along the first axis, with a consistent TDIM."""
    good = getattr(gf, irf_class)()
    shape = tuple(len(good.axes[d]) for d in good.dims)
    wrong = (shape[0] + 1, *shape[1:])
    values = {column: np.ones(wrong) for column in good.values}
    irf = gf.make_irf(irf_class, list(good.axes.values()), values, check_shape=False)
    store = one_obs_store(tmp_path, irfs=[irf])
    assert_gpcube_error(
        lambda: getattr(observation(store), irf.hdu_type), store.files[1], irf.hdu_name, "shape"
    )


def test_irf_with_two_rows(tmp_path):
    store = one_obs_store(tmp_path, irfs=[gf.aeff_2d()])

    def two_rows(hdu):
        return fits.BinTableHDU.from_columns(hdu.columns, nrows=2, header=hdu.header)

    gf.rewrite_hdu(store.files[1], "EFFECTIVE AREA", two_rows)
    assert_gpcube_error(lambda: observation(store).aeff, store.files[1], "EFFECTIVE AREA", "one table row")


@pytest.mark.parametrize(
    "units, match",
    [({"ENERGY": ""}, "ENERGY has no unit"), ({"ENERGY": "m"}, "ENERGY has unit 'm'"),
     ({"RA": "TeV"}, "RA has unit 'TeV'"), ({"TIME": ""}, "TIME has no unit")],
)  # fmt: skip
def test_bad_event_units(tmp_path, units, match):
    store = one_obs_store(tmp_path, irfs=[], event_units=units)
    assert_gpcube_error(lambda: observation(store).events, store.files[1], "EVENTS", match)


def test_missing_event_column(tmp_path):
    store = one_obs_store(tmp_path, irfs=[])
    gf.rewrite_hdu(store.files[1], "EVENTS", lambda hdu: gf.drop_column(hdu, "ENERGY"))
    assert_gpcube_error(lambda: observation(store).events, store.files[1], "EVENTS", "ENERGY")


# --- data store and index files ------------------------------------------------------------------------


def test_missing_store_directory(tmp_path):
    missing = tmp_path / "no" / "such" / "store"
    assert_gpcube_error(lambda: DataStore.from_dir(missing), missing, None, "not found")


@pytest.mark.parametrize("index", ["hdu_index", "obs_index"])
def test_missing_index_file(tmp_path, index):
    store = one_obs_store(tmp_path, irfs=[])
    getattr(store, index).unlink()
    kind = index.split("_")[0]
    assert_gpcube_error(lambda: DataStore.from_dir(store.root), store.root, None, f"no {kind}-index")


def test_truncated_index_file(tmp_path):
    store = gf.write_store(tmp_path, [gf.ObsSpec(1, irfs=[])], index_gzip=False)
    ((_, _, data_start, _),) = [entry for entry in _hdu_layout(store.hdu_index) if entry[0] == "HDU_INDEX"]
    store.hdu_index.write_bytes(store.hdu_index.read_bytes()[: data_start + 50])
    assert_gpcube_error(lambda: DataStore.from_dir(store.root), store.hdu_index, "HDU_INDEX", "truncated")


def test_hdu_index_lacks_column(tmp_path):
    store = gf.write_store(tmp_path, [gf.ObsSpec(1, irfs=[])], index_gzip=False)
    gf.rewrite_hdu(store.hdu_index, "HDU_INDEX", lambda hdu: gf.drop_column(hdu, "FILE_DIR"))
    assert_gpcube_error(lambda: DataStore.from_dir(store.root), store.hdu_index, None, "FILE_DIR")


def test_observation_missing_from_hdu_index(tmp_path):
    store = gf.write_store(tmp_path, [gf.ObsSpec(1, irfs=[]), gf.ObsSpec(2, irfs=[])], index_gzip=False)
    gf.rewrite_hdu(
        store.hdu_index,
        "HDU_INDEX",
        lambda hdu: fits.BinTableHDU(hdu.data[hdu.data["OBS_ID"] == 1], hdu.header),
    )
    assert_gpcube_error(lambda: DataStore.from_dir(store.root), store.hdu_index, None, r"\[2\]")


# --- no warning noise ----------------------------------------------------------------------------------


def test_reading_raises_no_warnings(tmp_path):
    observations = [
        gf.ObsSpec(1),
        gf.ObsSpec(2, irfs=[gf.aeff_2d(units={"EFFAREA": "cm2", "energy_true": "GeV"}), gf.psf_3gauss(),
                            gf.bkg_2d(units={"BKG": "1/s/MeV/sr"}, rename={"BKG": "BGD"})]),
        gf.ObsSpec(3, irfs=[gf.psf_king(energy_column="ETRUE"), gf.bkg_3d(header={"FOVALIGN": None})],
                   event_units={"ENERGY": "GeV"}),
    ]  # fmt: skip
    store = gf.write_store(tmp_path, observations)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        datastore = DataStore.from_dir(store.root)
        datastore.select(cone=(83.6, 22.0, 3.0, "icrs"), target="crab*", time=(0, 2e8))
        for obs in datastore.observations():
            obs.load()
            _ = obs.pointing, obs.livetime, obs.ontime, obs.deadc, obs.rad_max
            if "psf" in obs.hdus:
                evaluate(obs.psf, energy_true=[0.01, 1.0, 1e3], offset=[0.5, np.nan, 9.0], rad=0.1)
            evaluate(obs.bkg, **{d: 1.0 for d in obs.bkg.bkg.dims})


def test_duplicate_hdu_index_rows(tmp_path):
    store = gf.write_store(tmp_path, [gf.ObsSpec(1, irfs=[])], index_gzip=False)

    def duplicate_first_row(hdu):
        rows = np.concatenate([hdu.data, hdu.data[:1]])
        return fits.BinTableHDU(rows, hdu.header)

    gf.rewrite_hdu(store.hdu_index, "HDU_INDEX", duplicate_first_row)
    assert_gpcube_error(lambda: DataStore.from_dir(store.root), store.hdu_index, None, "two .* rows")


def test_gti_without_unit(tmp_path):
    store = one_obs_store(tmp_path, gzip=False, irfs=[])

    def drop_units(hdu):
        columns = [fits.Column(name=c.name, format=c.format, array=hdu.data[c.name]) for c in hdu.columns]
        new = fits.BinTableHDU.from_columns(columns, name=hdu.name)
        assert all(c.unit is None for c in new.columns)
        return new

    gf.rewrite_hdu(store.files[1], "GTI", drop_units)
    assert_gpcube_error(lambda: observation(store).gti, store.files[1], "GTI", "no unit")


def test_gti_with_a_unit_of_the_wrong_kind(tmp_path):
    store = one_obs_store(tmp_path, gzip=False, irfs=[])

    def degrees(hdu):
        columns = [
            fits.Column(name=c.name, format=c.format, unit="deg", array=hdu.data[c.name]) for c in hdu.columns
        ]
        return fits.BinTableHDU.from_columns(columns, name=hdu.name)

    gf.rewrite_hdu(store.files[1], "GTI", degrees)
    assert_gpcube_error(lambda: observation(store).gti, store.files[1], "GTI", "does not convert")
