"""The S5P L2 writer mirrors the real files' structure; the reader round-trips it and fails cleanly."""

from __future__ import annotations

import io
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec
import h5py
import numpy as np
import pytest
import xarray as xr

from transforms.errors import GranuleReadError, InputError
from transforms.granules import GranuleName, format_granule_name, parse_granule_name
from transforms.products import get_product
from transforms.s5p import open_observations, write_s5p_l2

DATA = Path(__file__).parents[1] / "data" / "s5p"
VENDORED_NO2 = DATA / "S5P_OFFL_L2__NO2____20200303T013547_20200303T031717_12367_01_010302_20200306T053815.nc"
T_REF = datetime(2020, 3, 3, tzinfo=UTC)

# Global attributes every real granule carries that the writer must carry too.
GLOBAL_ATTRS = {
    "Conventions",
    "institution",
    "source",
    "summary",
    "title",
    "tracking_id",
    "id",
    "time_reference",
    "time_reference_days_since_1950",
    "time_reference_julian_day",
    "time_reference_seconds_since_1970",
    "time_coverage_start",
    "time_coverage_end",
    "time_coverage_duration",
    "time_coverage_resolution",
    "orbit",
    "references",
    "processor_version",
    "product_version",
    "algorithm_version",
    "keywords",
    "keywords_vocabulary",
    "standard_name_vocabulary",
    "naming_authority",
    "cdm_data_type",
    "date_created",
    "creator_name",
    "creator_url",
    "creator_email",
    "project",
    "geospatial_lat_min",
    "geospatial_lat_max",
    "geospatial_lon_min",
    "geospatial_lon_max",
    "license",
    "platform",
    "sensor",
    "spatial_resolution",
    "identifier_product_doi_authority",
    "processing_status",
    "history",
    "geolocation_grid_from_band",
    "revision_control_identifier",
    "build_date",
}


def _name(product: str = "no2", **kwargs: Any) -> GranuleName:
    args: dict[str, Any] = {
        "start": datetime(2020, 3, 3, 1, 35, 47),
        "end": datetime(2020, 3, 3, 3, 17, 17),
        "orbit": 12367,
        "processor_version": "010302",
    } | kwargs
    return parse_granule_name(format_granule_name(product, **args))


def _swath(n_scan: int, n_pix: int, *, seed: int = 0, lon0: float = 10.0) -> dict[str, Any]:
    """A small, plausible swath: 0.1° pixels, fills and qa spread over 0–1 in 0.01 steps."""
    rng = np.random.default_rng(seed)
    lat = (-5.0 + 0.1 * np.arange(n_scan))[:, None] + np.zeros(n_pix)
    lon = lon0 + 0.1 * np.arange(n_pix)[None, :] + np.zeros((n_scan, 1))
    d = 0.05
    lat_b = np.stack([lat - d, lat - d, lat + d, lat + d], axis=-1)
    lon_b = np.stack([lon - d, lon + d, lon + d, lon - d], axis=-1)
    value = rng.uniform(-1e-5, 1e-4, (n_scan, n_pix)).astype(np.float32)
    value[0, :3] = np.nan
    precision = (np.abs(value) * 0.3 + 1e-6).astype(np.float32)
    qa = rng.integers(0, 101, (n_scan, n_pix)) / 100.0
    qa[-1, -1] = np.nan
    return {
        "latitude": lat.astype(np.float32),
        "longitude": lon.astype(np.float32),
        "latitude_bounds": lat_b.astype(np.float32),
        "longitude_bounds": lon_b.astype(np.float32),
        "value": value,
        "precision": precision,
        "qa_value": qa,
        "delta_time_ms": 7_042_000.0 + 840.0 * np.arange(n_scan),
    }


def _write(
    target: Any, product: str = "no2", n_scan: int = 6, n_pix: int = 8, **kwargs: Any
) -> dict[str, Any]:
    swath = _swath(n_scan, n_pix)
    name = kwargs.pop("name", None) or _name(product)
    write_s5p_l2(target, name=name, time_reference=T_REF, **swath, **kwargs)
    return swath


def _tree(f: h5py.File) -> dict[str, Any]:
    """Groups with their netCDF dims (name → size) and variables (name → dim names) and attribute names."""
    out: dict[str, Any] = {}

    def visit(path: str, obj: Any) -> None:
        if isinstance(obj, h5py.Group):
            out[path] = {"attrs": set(obj.attrs), "dims": {}, "vars": {}}
        elif isinstance(obj, h5py.Dataset):
            group, _, leaf = path.rpartition("/")
            entry = out.setdefault(group, {"attrs": set(), "dims": {}, "vars": {}})
            is_scale = obj.attrs.get("CLASS") == b"DIMENSION_SCALE"
            if is_scale:
                entry["dims"][leaf] = obj.shape[0]
            if not bytes(obj.attrs.get("NAME", b"")).startswith(b"This is a netCDF dimension"):
                dims = (
                    (leaf,) if is_scale else tuple(d[0].name.rsplit("/", 1)[-1] for d in obj.dims if len(d))
                )
                entry["vars"][leaf] = dims

    f.visititems(visit)
    return out


@pytest.fixture(scope="module")
def written_no2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("s5p") / _name("no2").filename
    _write(path, "no2", n_scan=4, n_pix=450)
    return path


def _skeleton(product: str) -> Path:
    return next(DATA.glob(f"S5P_OFFL_{get_product(product).product_type}_*.nc"))


@pytest.mark.parametrize("product", ["no2", "co", "ch4"])
def test_writer_structure_matches_real_skeleton(product: str, tmp_path: Path) -> None:
    """Group tree, global attribute names, PRODUCT dims and GRANULE_DESCRIPTION match a real granule.

    The real files are skeletons (data variables stripped, so no PRODUCT/SUPPORT_DATA); variable dims are
    checked against the documented layout instead.
    """
    skeleton = _skeleton(product)
    spec = get_product(product)
    n_pix = spec.ground_pixels
    path = tmp_path / "g.nc"
    _write(path, product, n_scan=3, n_pix=n_pix, include_averaging_kernel=False)
    with h5py.File(skeleton, "r") as real, h5py.File(path, "r") as ours:
        real_tree, our_tree = _tree(real), _tree(ours)
        assert set(real.attrs) >= GLOBAL_ATTRS, sorted(GLOBAL_ATTRS - set(real.attrs))
        assert set(ours.attrs) >= GLOBAL_ATTRS, sorted(GLOBAL_ATTRS - set(ours.attrs))
        for key in (
            "id",
            "processor_version",
            "time_reference",
            "license",
            "platform",
            "sensor",
            "Conventions",
        ):
            assert type(ours.attrs[key]) is type(real.attrs[key])
        assert ours.attrs["processor_version"] == real.attrs["processor_version"] == b"1.3.2"
        assert ours.attrs["orbit"].dtype == real.attrs["orbit"].dtype and ours.attrs["orbit"][0] == 12367
        # the same top groups and METADATA children
        assert set(ours) == set(real) == {"PRODUCT", "METADATA"}
        assert set(ours["METADATA"]) == set(real["METADATA"])
        # PRODUCT dims: names identical; sizes identical except the swath's own length
        real_dims, our_dims = real_tree["PRODUCT"]["dims"], our_tree["PRODUCT"]["dims"]
        assert set(our_dims) == set(real_dims)
        assert {k: v for k, v in our_dims.items() if k != "scanline"} == {
            k: v for k, v in real_dims.items() if k != "scanline"
        }
        # GRANULE_DESCRIPTION: same attribute names, same key values
        gd_real, gd_ours = (
            real["METADATA/GRANULE_DESCRIPTION"].attrs,
            ours["METADATA/GRANULE_DESCRIPTION"].attrs,
        )
        assert set(gd_ours) == set(gd_real)
        for key in (
            "ProductShortName",
            "ProcessingMode",
            "ProcessorVersion",
            "MissionShortName",
            "ProcessLevel",
        ):
            assert gd_ours[key] == gd_real[key]
        qa_names = {
            "number_of_groundpixels",
            "number_of_processed_pixels",
            "number_of_successfully_processed_pixels",
        }
        assert qa_names <= set(ours["METADATA/QA_STATISTICS"].attrs) & set(
            real["METADATA/QA_STATISTICS"].attrs
        )
        assert ours["METADATA/QA_STATISTICS"].attrs["number_of_groundpixels"][0] == 3 * n_pix

        # the documented variable layout
        geo = ("time", "scanline", "ground_pixel")
        product_vars = our_tree["PRODUCT"]["vars"]
        for var in ("latitude", "longitude", "qa_value", spec.value_var, spec.precision_var):
            assert product_vars[var] == geo, var
        assert product_vars["delta_time"] == product_vars["time_utc"] == ("time", "scanline")
        assert product_vars["time"] == ("time",)
        geoloc = our_tree["PRODUCT/SUPPORT_DATA/GEOLOCATIONS"]["vars"]
        assert geoloc["latitude_bounds"] == geoloc["longitude_bounds"] == (*geo, "corner")
        inputs = our_tree["PRODUCT/SUPPORT_DATA/INPUT_DATA"]["vars"]
        assert {"surface_pressure", "eastward_wind", "northward_wind"} <= set(inputs)
        assert "processing_quality_flags" in our_tree["PRODUCT/SUPPORT_DATA/DETAILED_RESULTS"]["vars"]
        assert {"PRODUCT/SUPPORT_DATA", "PRODUCT/SUPPORT_DATA/GEOLOCATIONS"} <= set(our_tree)


def test_writer_encodings(written_no2: Path) -> None:
    with h5py.File(written_no2, "r") as f:
        qa = f["PRODUCT/qa_value"]
        assert qa.dtype == np.uint8 and qa.attrs["_FillValue"] == 255
        assert np.isclose(qa.attrs["scale_factor"], 0.01) and qa.attrs["add_offset"] == 0
        col = f["PRODUCT/nitrogendioxide_tropospheric_column"]
        assert col.dtype == np.float32 and np.isclose(col.attrs["_FillValue"], 9.96921e36)
        assert col.attrs["units"] == b"mol m-2"
        assert np.isclose(col.attrs["multiplication_factor_to_convert_to_molecules_percm2"], 6.02214e19)
        assert col[0, 0, 0] == np.float32(9.96921e36)  # NaN written as the fill value
        assert f["PRODUCT/time"].attrs["units"] == b"seconds since 2010-01-01 00:00:00"
        assert f["PRODUCT/time"][0] == (T_REF - datetime(2010, 1, 1, tzinfo=UTC)).total_seconds()
        assert f["PRODUCT/delta_time"].attrs["units"] == b"milliseconds since 2020-03-03 00:00:00"
        assert f["PRODUCT/time_utc"][0, 0] == b"2020-03-03T01:57:22.000000Z"
        assert f["PRODUCT/averaging_kernel"].shape == (1, 4, 450, 34)
        assert f["METADATA/GRANULE_DESCRIPTION"].attrs["ProcessingMode"] == b"Offline"


def test_netcdf_libraries_read_the_written_file(written_no2: Path) -> None:
    with xr.open_dataset(written_no2, engine="h5netcdf", group="PRODUCT") as ds:
        assert ds["nitrogendioxide_tropospheric_column"].dims == ("time", "scanline", "ground_pixel")
        assert ds["qa_value"].dtype == np.float32 and float(ds["qa_value"].max()) <= 1.0
        assert ds["time"].values[0] == np.datetime64("2020-03-03T00:00:00")
    with xr.open_dataset(written_no2, engine="h5netcdf", group="PRODUCT/SUPPORT_DATA/GEOLOCATIONS") as ds:
        assert ds["latitude_bounds"].shape == (1, 4, 450, 4)


@pytest.mark.parametrize("product", ["no2", "co", "ch4"])
def test_round_trip_exact(product: str, tmp_path: Path) -> None:
    path = tmp_path / "g.nc"
    swath = _write(path, product, n_scan=5, n_pix=7)
    ds = open_observations(path, product=product)
    n = 5 * 7
    assert dict(ds.sizes) == {"pixel": n, "corner": 4}
    for var in (
        "value",
        "uncertainty",
        "qa",
        "latitude",
        "longitude",
        "time",
        "latitude_bounds",
        "longitude_bounds",
    ):
        assert var in ds.data_vars
    np.testing.assert_array_equal(ds["value"].values, swath["value"].ravel())  # NaN where fill
    np.testing.assert_array_equal(ds["uncertainty"].values, swath["precision"].ravel())
    np.testing.assert_array_equal(ds["latitude"].values, swath["latitude"].ravel())
    np.testing.assert_array_equal(ds["longitude"].values, swath["longitude"].ravel())
    np.testing.assert_array_equal(ds["latitude_bounds"].values, swath["latitude_bounds"].reshape(n, 4))
    np.testing.assert_array_equal(ds["longitude_bounds"].values, swath["longitude_bounds"].reshape(n, 4))
    assert np.isnan(ds["value"].values[:3]).all() and np.isfinite(ds["value"].values[3:]).all()
    # qa decoded to exact 0.01 steps, fill → NaN
    qa = ds["qa"].values
    assert np.isnan(qa[-1]) and np.isfinite(qa[:-1]).all()
    np.testing.assert_array_equal(qa[:-1], np.round(swath["qa_value"].ravel()[:-1], 2).astype(np.float32))
    # time per pixel = time_reference + delta_time, same for all pixels of a scanline
    assert ds["time"].dtype == np.dtype("datetime64[ns]")
    expected = np.datetime64("2020-03-03T00:00:00", "ns") + (swath["delta_time_ms"] * 1e6).astype(
        "timedelta64[ns]"
    )
    np.testing.assert_array_equal(ds["time"].values, np.repeat(expected, 7))
    np.testing.assert_array_equal(ds["scanline"].values, np.repeat(np.arange(5), 7))
    assert ds.attrs["granule_id"] == _name(product).id
    assert ds.attrs["product"] == product and ds.attrs["units"] == get_product(product).units
    assert ds.attrs["orbit"] == 12367


def test_corrected_co_is_preferred_when_present(tmp_path: Path) -> None:
    old, new = tmp_path / "old.nc", tmp_path / "new.nc"
    _write(old, "co", name=_name("co", processor_version="010302"))
    _write(new, "co", name=_name("co", processor_version="020400"))
    assert open_observations(old, product="co").attrs["value_variable"] == "carbonmonoxide_total_column"
    assert (
        open_observations(new, product="co").attrs["value_variable"]
        == "carbonmonoxide_total_column_corrected"
    )


def test_reads_binary_file_objects(written_no2: Path) -> None:
    expected = open_observations(written_no2, product="no2")
    with open(written_no2, "rb") as fh:
        xr.testing.assert_identical(open_observations(fh, product="no2"), expected)
        assert not fh.closed
    with fsspec.filesystem("file").open(str(written_no2), "rb") as fh:
        xr.testing.assert_identical(open_observations(fh, product="no2"), expected)
    with fsspec.filesystem("memory").open("/g.nc", "wb") as fh:
        fh.write(written_no2.read_bytes())
    with fsspec.filesystem("memory").open("/g.nc", "rb") as fh:
        xr.testing.assert_identical(open_observations(fh, product="no2"), expected)
    fsspec.filesystem("memory").rm("/g.nc")


def test_writes_to_a_file_object() -> None:
    buf = io.BytesIO()
    swath = _write(buf)
    buf.seek(0)
    ds = open_observations(buf, product="no2")
    np.testing.assert_array_equal(ds["value"].values, swath["value"].ravel())


def test_reader_leaves_layer_variables_unread(written_no2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    read: list[str] = []
    original = h5py.Dataset.__getitem__

    def spy(self: h5py.Dataset, key: Any) -> Any:
        read.append(self.name)
        return original(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    open_observations(written_no2, product="no2")
    assert read and not any("averaging_kernel" in name for name in read)
    assert not any("INPUT_DATA" in name or "DETAILED_RESULTS" in name for name in read)


def test_time_reference_as_str_attribute_and_no_time_dim(tmp_path: Path) -> None:
    path = tmp_path / "g.nc"
    swath = _write(path)
    with h5py.File(path, "a") as f:
        del f.attrs["time_reference"]
        f.attrs.create("time_reference", "2020-03-03T00:00:00Z", dtype=h5py.string_dtype())
        # a variable without the leading time dim (as some tools re-write them)
        data = f["PRODUCT/longitude"][0]
        fill = f["PRODUCT/longitude"].attrs["_FillValue"]
        del f["PRODUCT/longitude"]
        f["PRODUCT"].create_dataset("longitude", data=data, fillvalue=fill)
    ds = open_observations(path, product="no2")
    np.testing.assert_array_equal(ds["longitude"].values, swath["longitude"].ravel())
    assert ds["time"].values[0] == np.datetime64("2020-03-03T01:57:22", "ns")


def test_truncated_file_raises(written_no2: Path, tmp_path: Path) -> None:
    data = written_no2.read_bytes()
    cut = tmp_path / written_no2.name
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(GranuleReadError, match=re.escape(written_no2.name)) as info:
        open_observations(cut, product="no2")
    assert "truncated or corrupt" in str(info.value)
    with pytest.raises(GranuleReadError):
        open_observations(io.BytesIO(data[: len(data) // 2]), product="no2")


def test_random_bytes_raise(tmp_path: Path) -> None:
    junk = tmp_path / "junk.nc"
    junk.write_bytes(np.random.default_rng(1).bytes(4096))
    with pytest.raises(
        GranuleReadError, match=r"junk\.nc is not an HDF5/netCDF4 file \(truncated or corrupt\?\)"
    ):
        open_observations(junk, product="no2")
    # an HDF5 signature followed by garbage
    fake = tmp_path / "fake.nc"
    fake.write_bytes(b"\x89HDF\r\n\x1a\n" + np.random.default_rng(2).bytes(4096))
    with pytest.raises(GranuleReadError, match=r"fake\.nc"):
        open_observations(fake, product="no2")


def test_empty_and_missing_files_raise(tmp_path: Path) -> None:
    empty = tmp_path / "empty.nc"
    empty.write_bytes(b"")
    with pytest.raises(GranuleReadError, match=r"empty\.nc is empty \(0 bytes\)"):
        open_observations(empty, product="no2")
    with pytest.raises(GranuleReadError, match="is empty"):
        open_observations(io.BytesIO(b""), product="no2")
    with pytest.raises(GranuleReadError, match="does not exist"):
        open_observations(tmp_path / "absent.nc", product="no2")


def test_wrong_product_raises(written_no2: Path) -> None:
    with pytest.raises(
        GranuleReadError, match=r"product mismatch: .* is L2__NO2___, not L2__CO____ .*product='no2'"
    ):
        open_observations(written_no2, product="co")


def test_missing_variable_names_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "g.nc"
    _write(path)
    with h5py.File(path, "a") as f:
        del f["PRODUCT/nitrogendioxide_tropospheric_column"]
    with pytest.raises(
        GranuleReadError, match="PRODUCT group has no variable nitrogendioxide_tropospheric_column"
    ):
        open_observations(path, product="no2")


def test_real_skeleton_is_rejected_cleanly() -> None:
    with pytest.raises(GranuleReadError, match="PRODUCT group has no variable latitude"):
        open_observations(VENDORED_NO2, product="no2")
    with pytest.raises(GranuleReadError, match="product mismatch"):
        open_observations(VENDORED_NO2, product="ch4")


def test_errors_are_oserrors_not_bare_library_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"not a netcdf file at all")
    with pytest.raises(OSError) as info:
        open_observations(junk, product="no2")
    assert type(info.value) is GranuleReadError


def test_writer_rejects_bad_shapes(tmp_path: Path) -> None:
    swath = _swath(4, 5)
    swath["value"] = swath["value"][:, :4]
    with pytest.raises(InputError, match=r"value must have shape \(4, 5\)"):
        write_s5p_l2(tmp_path / "g.nc", name=_name(), time_reference=T_REF, **swath)
    swath = _swath(4, 5)
    swath["qa_value"] = swath["qa_value"] * 100
    with pytest.raises(InputError, match="qa_value must lie in 0–1"):
        write_s5p_l2(tmp_path / "g.nc", name=_name(), time_reference=T_REF, **swath)


def test_sample_sha256_matches_provenance() -> None:
    import hashlib

    digest = hashlib.sha256(VENDORED_NO2.read_bytes()).hexdigest()
    assert digest == "150849a21efdc33f7d25d061bdc46c3dfa4c95f2e7fa28a6ea8c570ada03dd88"
    assert digest in (DATA / "PROVENANCE.md").read_text()
    assert os.path.getsize(VENDORED_NO2) == 292615
