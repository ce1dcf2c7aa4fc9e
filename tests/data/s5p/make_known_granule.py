"""One-off: make ``known/<granule>.nc`` — the REAL NO2 granule skeleton beside this script (all metadata,
groups and attributes as ESA/KNMI wrote them, data variables stripped) with a small, documented field
injected with plain h5py. It does not use eolake's writer or simulator, so it checks the reader and the
gridding against an independent file.

The field (6 scanlines × 450 ground pixels; the real file's 4172 scanlines cut to 6):
- scanline s = 0..5, ground pixel k = 0..19: centre lat = -2.5 + s, lon = 170.5 + k wrapped to [-180, 180)
  (so k = 10..19 lie at 179.5W … 170.5W: the swath crosses the antimeridian); corners ±0.5°.
- value = (20 s + k + 1) × 1e-6 mol m-2, precision 1e-6 mol m-2, qa_value 1.0; except
  (s=1, k=3) qa 0.50, (s=2, k=12) qa 0.75 (the threshold is strict), (s=3, k=7) fill value,
  (s=4, k=15) qa 0.76 (kept).
- ground pixels k = 20..449: geolocated at 60N, fill values, qa 0.
- delta_time = 2 h + 840 ms × s after time_reference 2020-03-03T00:00:00Z.

Run: ``python tests/data/s5p/make_known_granule.py`` (needs h5py and numpy).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np

HERE = Path(__file__).parent
NAME = "S5P_OFFL_L2__NO2____20200303T013547_20200303T031717_12367_01_010302_20200306T053815.nc"
FILL = np.float32(9.96921e36)
N_S, N_K, N_VALID = 6, 450, 20


def known_field() -> dict[str, np.ndarray]:
    s, k = np.meshgrid(np.arange(N_S), np.arange(N_K), indexing="ij")
    lat = np.where(k < N_VALID, -2.5 + s, 60.0).astype(np.float32)
    lon = np.where(k < N_VALID, ((170.5 + k + 180.0) % 360.0) - 180.0, 0.0 + 0.01 * k).astype(np.float32)
    value = np.where(k < N_VALID, (20 * s + k + 1) * 1e-6, FILL).astype(np.float32)
    qa = np.where(k < N_VALID, 100, 0).astype(np.uint8)
    qa[1, 3], qa[2, 12], qa[4, 15] = 50, 75, 76
    value[3, 7] = FILL
    precision = np.where(value == FILL, FILL, 1e-6).astype(np.float32)
    dlat = np.array([-0.5, -0.5, 0.5, 0.5], dtype=np.float32)
    dlon = np.array([-0.5, 0.5, 0.5, -0.5], dtype=np.float32)
    lat_b = lat[..., None] + dlat
    lon_b = ((lon[..., None] + dlon + 180.0) % 360.0 - 180.0).astype(np.float32)
    return {
        "lat": lat,
        "lon": lon,
        "value": value,
        "precision": precision,
        "qa": qa,
        "lat_b": lat_b,
        "lon_b": lon_b,
    }


def _var(
    group: h5py.Group, name: str, data: np.ndarray, dims: list[h5py.Dataset], **attrs: object
) -> h5py.Dataset:
    ds = group.create_dataset(name, data=data, compression="gzip", shuffle=True)
    for i, d in enumerate(dims):
        ds.dims[i].attach_scale(d)
    for key, val in attrs.items():
        ds.attrs[key] = val
    return ds


def main() -> None:
    out = HERE / "known" / NAME
    out.parent.mkdir(exist_ok=True)
    shutil.copyfile(HERE / NAME, out)
    out.chmod(0o644)
    f = known_field()
    with h5py.File(out, "r+") as h5:
        product = h5["PRODUCT"]
        del product["scanline"]
        scan = product.create_dataset("scanline", data=np.arange(N_S, dtype=np.float32))
        scan.make_scale("scanline")
        scan.attrs["units"] = "1"
        time, pixel, corner = product["time"], product["ground_pixel"], product["corner"]
        dims3 = [time, scan, pixel]
        _var(product, "latitude", f["lat"][None], dims3, units="degrees_north", standard_name="latitude")
        _var(product, "longitude", f["lon"][None], dims3, units="degrees_east", standard_name="longitude")
        _var(
            product,
            "nitrogendioxide_tropospheric_column",
            f["value"][None],
            dims3,
            units="mol m-2",
            _FillValue=FILL,
            standard_name="troposphere_mole_content_of_nitrogen_dioxide",
            multiplication_factor_to_convert_to_molecules_percm2=np.float32(6.02214e19),
        )
        _var(
            product,
            "nitrogendioxide_tropospheric_column_precision",
            f["precision"][None],
            dims3,
            units="mol m-2",
            _FillValue=FILL,
        )
        _var(
            product,
            "qa_value",
            f["qa"][None],
            dims3,
            units="1",
            scale_factor=np.float32(0.01),
            add_offset=np.float32(0.0),
            _FillValue=np.uint8(255),
        )
        delta = (7_200_000 + 840 * np.arange(N_S)).astype(np.int32)[None]
        _var(
            product,
            "delta_time",
            delta,
            [time, scan],
            units="milliseconds since 2020-03-03 00:00:00",
            _FillValue=np.int32(-2147483647),
        )
        geo = h5.require_group("PRODUCT/SUPPORT_DATA/GEOLOCATIONS")
        dims4 = [time, scan, pixel, corner]
        _var(geo, "latitude_bounds", f["lat_b"][None], dims4, units="degrees_north")
        _var(geo, "longitude_bounds", f["lon_b"][None], dims4, units="degrees_east")
        h5.attrs["history"] = np.bytes_(
            h5.attrs["history"] + b"; known test field injected by tests/data/s5p/make_known_granule.py"
        )


if __name__ == "__main__":
    main()
