"""STAC items and collections for raw granules: S5P shaped like Planetary Computer's sentinel-5p-l2-netcdf;
the XCO2 sounders' daily files (OCO-2/OCO-3/ACOS Lite, NIES GOSAT, TanSat) with the same core fields
(platform, instruments, processing, file) and their producer, without the ``s5p:``/``sat:`` properties.

Builders are pure: they take a parsed :class:`~transforms.granules.GranuleName` and facts measured elsewhere
(href, size, checksum, footprint) and return pystac objects. :func:`footprint_geometry` turns a swath's pixel
corners into a GeoJSON footprint that is valid across the antimeridian and over the poles (RFC 7946 §3.1.9).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pystac
import shapely
import shapely.affinity
from pystac.extensions.file import FileExtension
from pystac.extensions.sat import SatExtension
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient

from transforms.errors import InputError, UnknownProductError
from transforms.granules import MODES, GranuleName
from transforms.products import ProductSpec, get_product

PROCESSING_SCHEMA = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
NETCDF_MEDIA_TYPE = "application/x-netcdf"
PLATFORM = "Sentinel 5 Precursor"
CONSTELLATION = "Sentinel-5P"
INSTRUMENT = "TROPOMI"
INTERNATIONAL_DESIGNATOR = "2017-064A"
ESA_PROVIDER = pystac.Provider(
    name="ESA",
    roles=[pystac.ProviderRole.PRODUCER, pystac.ProviderRole.PROCESSOR, pystac.ProviderRole.LICENSOR],
    url="https://earth.esa.int/web/guest/home",
)
LICENSE_LINK = pystac.Link(
    rel="license",
    target="https://sentinel.esa.int/documents/247904/690755/Sentinel_Data_Legal_Notice",
    media_type="application/pdf",
    title="Sentinel Data License",
)

# Planetary Computer's item_assets titles, by short product name
ASSET_TITLES: dict[str, str] = {
    "co": "Carbon Monoxide Total Column",
    "o3": "Ozone Total Column",
    "ch4": "Methane Total Column",
    "no2": "Nitrogen Dioxide Total Column",
    "so2": "Sulphur Dioxide Total Column",
    "hcho": "Formaldehyde Total Column",
    "cloud": "Cloud Fraction, Albedo, and Top Pressure",
    "aer-ai": "Ultraviolet Aerosol Index",
    "aer-lh": "Aerosol Layer Height",
    "np-bd3": "VIIRS/NPP Band 3 Cloud Mask",
    "np-bd6": "VIIRS/NPP Band 6 Cloud Mask",
    "np-bd7": "VIIRS/NPP Band 7 Cloud Mask",
    "o3-tcl": "Ozone Tropospheric Column",
}

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")

HDF5_MEDIA_TYPE = "application/x-hdf5"
PRODUCERS: dict[str, pystac.Provider] = {
    "oco_lite": pystac.Provider(
        name="NASA GES DISC",
        roles=[pystac.ProviderRole.PRODUCER, pystac.ProviderRole.PROCESSOR, pystac.ProviderRole.HOST],
        url="https://disc.gsfc.nasa.gov/",
    ),
    "gosat_nies": pystac.Provider(
        name="NIES GOSAT Data Archive Service",
        roles=[pystac.ProviderRole.PRODUCER, pystac.ProviderRole.PROCESSOR, pystac.ProviderRole.LICENSOR],
        url="https://data2.gosat.nies.go.jp/",
    ),
    "tansat_lite": pystac.Provider(
        name="IAP-CAS / CASA",
        roles=[pystac.ProviderRole.PRODUCER, pystac.ProviderRole.PROCESSOR],
        url="http://www.chinageoss.cn/tansat/",
    ),
}


def granule_collection_id(product: str) -> str:
    """The collection of a product's raw granules: ``s5p-l2-no2``, ``oco2-l2-xco2``, ``gosat-l2-xco2``."""
    try:
        spec = get_product(product)
    except UnknownProductError:
        return f"s5p-l2-{product}"
    if spec.family == "s5p":
        return f"s5p-l2-{spec.name}"
    return f"{spec.mission}-l2-xco2"


def sha256_multihash(hexdigest: str) -> str:
    """The ``file:checksum`` multihash of a SHA-256 hex digest: ``"1220" + hexdigest``."""
    digest = hexdigest.lower()
    if digest.startswith("1220") and len(digest) == 68:
        digest = digest[4:]
    if not _SHA256_HEX.fullmatch(digest):
        raise InputError(
            "checksum_sha256 must be a SHA-256 hex digest (64 hex chars: hashlib.sha256(...).hexdigest()), "
            f"got {hexdigest!r}"
        )
    return "1220" + digest


def _iso_z(t: datetime) -> str:
    return pystac.utils.datetime_to_str(t)


def create_granule_item(
    name: GranuleName,
    *,
    href: str,
    geometry: dict[str, Any],
    bbox: Sequence[float],
    size: int,
    checksum_sha256: str,
    properties_extra: Mapping[str, Any] | None = None,
) -> pystac.Item:
    """A STAC item for one raw granule: id = granule id, one netCDF asset keyed by product short name.

    ``geometry``/``bbox`` come from :func:`footprint_geometry` (bbox may have west > east across the
    antimeridian); ``size`` in bytes; ``checksum_sha256`` a hex digest. ``properties_extra`` (e.g.
    ``s5p:shape``, or start/end_datetime from the file's time_coverage) override the defaults.
    """
    if size < 0:
        raise InputError(f"size must be the file size in bytes (>= 0), got {size}")
    if len(bbox) not in (4, 6):
        raise InputError(f"bbox must be [west, south, east, north], got {list(bbox)}")
    if name.family != "s5p":
        return _sounding_file_item(
            name, href=href, geometry=geometry, bbox=bbox, size=size, checksum_sha256=checksum_sha256
        )
    item = _file_item(name, geometry, bbox)
    item.common_metadata.platform = PLATFORM
    item.common_metadata.constellation = CONSTELLATION
    item.common_metadata.instruments = [INSTRUMENT]
    item.common_metadata.providers = [ESA_PROVIDER]
    item.properties.update(
        {
            "s5p:product_name": name.product,
            "s5p:processing_mode": name.mode,
            "s5p:product_type": name.product_type,
            "s5p:collection_identifier": name.collection,
        }
    )

    sat = SatExtension.ext(item, add_if_missing=True)
    sat.absolute_orbit = name.orbit
    sat.platform_international_designator = INTERNATIONAL_DESIGNATOR

    item.stac_extensions.append(PROCESSING_SCHEMA)
    item.properties.update(
        {
            "processing:level": name.level,
            "processing:facility": "Copernicus Sentinel-5P Ground Segment",
            "processing:software": {f"TROPOMI {name.product_type} processor": name.processor_version_dotted},
            "processing:version": name.processor_version_dotted,
            "processing:datetime": _iso_z(name.production_time),
        }
    )

    try:
        spec = get_product(name.product)
        description = spec.title or None
        about = spec.references or None
    except UnknownProductError:
        description, about = None, None
    asset = pystac.Asset(
        href=href,
        media_type=NETCDF_MEDIA_TYPE,
        title=ASSET_TITLES.get(name.product, name.product_type),
        description=description,
        roles=["data"],
    )
    _add_file_asset(item, name.product, asset, size=size, checksum_sha256=checksum_sha256, about=about)

    if properties_extra:
        for key, value in properties_extra.items():
            if key in ("start_datetime", "end_datetime", "datetime") and isinstance(value, datetime):
                value = _iso_z(value)
            item.properties[key] = value
        if "datetime" in properties_extra:
            item.datetime = pystac.utils.str_to_datetime(item.properties["datetime"])
    return item


def _file_item(name: GranuleName, geometry: dict[str, Any], bbox: Sequence[float]) -> pystac.Item:
    """A bare item for the file ``name``: its id, ``geometry``/``bbox`` and time span (datetime: the middle)."""
    start, end = name.start, name.end
    return pystac.Item(
        id=name.id,
        geometry=geometry,
        bbox=[float(x) for x in bbox],
        datetime=start + (end - start) / 2,
        properties={},
        start_datetime=start,
        end_datetime=end,
    )


def _add_file_asset(
    item: pystac.Item, key: str, asset: pystac.Asset, *, size: int, checksum_sha256: str, about: str | None
) -> None:
    """Add the file's ``asset`` under ``key`` with its size (bytes) and SHA-256 multihash, and the product's
    ``about`` link when there is one."""
    item.add_asset(key, asset)
    file_ext = FileExtension.ext(asset, add_if_missing=True)
    file_ext.size = int(size)
    file_ext.checksum = sha256_multihash(checksum_sha256)
    if about:
        item.add_link(pystac.Link(rel="about", target=about, media_type="text/html"))


def _sounding_file_item(
    name: GranuleName,
    *,
    href: str,
    geometry: dict[str, Any],
    bbox: Sequence[float],
    size: int,
    checksum_sha256: str,
) -> pystac.Item:
    """A STAC item for one daily sounding file (OCO/ACOS Lite, NIES GOSAT, TanSat): asset keyed by product."""
    spec = get_product(name.product)
    item = _file_item(name, geometry, bbox)
    item.common_metadata.platform = spec.platform
    item.common_metadata.instruments = [spec.instrument]
    item.common_metadata.providers = [PRODUCERS[spec.family]]
    item.stac_extensions.append(PROCESSING_SCHEMA)
    item.properties.update(
        {
            "processing:level": spec.level,
            "processing:version": name.processor_version or "unversioned",
            "processing:datetime": _iso_z(name.production_time),
        }
    )
    if name.mode:
        item.properties["eolake:observation_mode"] = {"ND": "nadir", "GL": "glint"}.get(name.mode, name.mode)
    asset = pystac.Asset(
        href=href,
        media_type=HDF5_MEDIA_TYPE if name.extension == ".h5" else NETCDF_MEDIA_TYPE,
        title=spec.asset_title,
        description=spec.title or None,
        roles=["data"],
    )
    _add_file_asset(
        item, name.product, asset, size=size, checksum_sha256=checksum_sha256, about=spec.references
    )
    return item


def _sounding_collection(
    spec: ProductSpec, *, extent_bbox: Sequence[float], start: datetime, end: datetime | None
) -> pystac.Collection:
    rule = (
        f"Use soundings with {spec.qa_flag_var} == {spec.qa_flag_good}"
        if spec.is_flag_product
        else spec.quality_document
    )
    collection = pystac.Collection(
        id=granule_collection_id(spec.name),
        title=f"{' '.join(dict.fromkeys([spec.platform, spec.instrument]))} Level-2 XCO2 files",
        description=(
            f"Raw {spec.title} files ({spec.long_name}, {spec.units}) kept byte-identical in the lake, one "
            f"item per file version. {rule}."
        ),
        extent=pystac.Extent(
            pystac.SpatialExtent([[float(x) for x in extent_bbox]]),
            pystac.TemporalExtent([[start, end]]),
        ),
        license="other",
        keywords=list(dict.fromkeys([spec.platform, spec.instrument, "XCO2", "CO2", "greenhouse gases"])),
        providers=[PRODUCERS[spec.family], pystac.Provider(name="eolake", roles=[pystac.ProviderRole.HOST])],
        summaries=pystac.Summaries(
            {"platform": [spec.platform], "instruments": [spec.instrument], "processing:level": [spec.level]}
        ),
    )
    if spec.references:
        collection.add_link(pystac.Link(rel="about", target=spec.references, media_type="text/html"))
    media = HDF5_MEDIA_TYPE if spec.family == "gosat_nies" else NETCDF_MEDIA_TYPE
    collection.item_assets = {
        spec.name: pystac.ItemAssetDefinition.create(
            title=spec.asset_title, description=spec.title or None, media_type=media, roles=["data"]
        )
    }
    return collection


def create_granule_collection(
    product: str,
    *,
    extent_bbox: Sequence[float],
    start: datetime,
    end: datetime | None,
) -> pystac.Collection:
    """The collection of raw granules of one product, id :func:`granule_collection_id` (``s5p-l2-no2``,
    ``oco2-l2-xco2``).

    ``extent_bbox`` is [west, south, east, north] (west > east across the antimeridian); ``end`` None for
    an open-ended collection.
    """
    spec = get_product(product)
    if spec.family != "s5p":
        return _sounding_collection(spec, extent_bbox=extent_bbox, start=start, end=end)
    asset_title = ASSET_TITLES.get(spec.name, spec.product_type)
    collection = pystac.Collection(
        id=f"s5p-l2-{spec.name}",
        title=f"Sentinel-5P TROPOMI Level-2 {spec.name.upper()} granules",
        description=(
            f"Raw Sentinel-5P TROPOMI Level-2 {spec.product_type} granules ({spec.long_name}, {spec.units}) "
            "kept byte-identical in the lake, one item per granule version, in the layout of Planetary "
            f"Computer's sentinel-5p-l2-netcdf items. Use pixels with qa_value > {spec.qa_threshold}."
        ),
        extent=pystac.Extent(
            pystac.SpatialExtent([[float(x) for x in extent_bbox]]),
            pystac.TemporalExtent([[start, end]]),
        ),
        license="other",
        keywords=[
            "ESA",
            "Copernicus",
            "Sentinel",
            "Sentinel-5P",
            "TROPOMI",
            spec.name.upper(),
            "Air Quality",
        ],
        providers=[
            ESA_PROVIDER,
            pystac.Provider(name="eolake", roles=[pystac.ProviderRole.HOST]),
        ],
        summaries=pystac.Summaries(
            {
                "platform": [PLATFORM],
                "instruments": [INSTRUMENT],
                "constellation": [CONSTELLATION],
                "s5p:product_name": [spec.name],
                "s5p:product_type": [spec.product_type],
                "s5p:processing_mode": list(MODES),
                "sat:platform_international_designator": [INTERNATIONAL_DESIGNATOR],
                "processing:level": [spec.level],
            }
        ),
    )
    collection.add_link(LICENSE_LINK.clone())
    if spec.references:
        collection.add_link(pystac.Link(rel="about", target=spec.references, media_type="text/html"))
    collection.item_assets = {
        spec.name: pystac.ItemAssetDefinition.create(
            title=asset_title, description=spec.title or None, media_type=NETCDF_MEDIA_TYPE, roles=["data"]
        )
    }
    return collection


# --------------------------------------------------------------------------------------------- footprint


def _wrap(delta: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return (delta + 180.0) % 360.0 - 180.0


def _subsample(n: int, max_points: int) -> npt.NDArray[np.intp]:
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(np.intp))


def _swath_outline(
    lat_b: npt.NDArray[np.float64], lon_b: npt.NDArray[np.float64], max_points: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The swath's perimeter (lon, lat), walking the outer corners of the edge pixels (S5P corner order)."""
    edge_ok = np.isfinite(lat_b[:, [0, -1]]).all(axis=(1, 2)) & np.isfinite(lon_b[:, [0, -1]]).all(
        axis=(1, 2)
    )
    rows = np.flatnonzero(edge_ok)
    if rows.size == 0:
        raise InputError(
            "the swath has no scanline with valid edge-pixel corners: cannot compute a footprint"
        )
    first, last = rows[0], rows[-1]
    rows = rows[_subsample(rows.size, max_points)]
    cols = _subsample(lat_b.shape[1], max_points)
    pieces = [
        (lon_b[first, cols, 0], lat_b[first, cols, 0]),  # leading edge, corner 0 across the swath
        (lon_b[rows, -1, 1], lat_b[rows, -1, 1]),  # right edge, corner 1 along track
        (lon_b[last, -1:, 2], lat_b[last, -1:, 2]),
        (lon_b[last, cols[::-1], 2], lat_b[last, cols[::-1], 2]),  # trailing edge back across
        (lon_b[last, :1, 3], lat_b[last, :1, 3]),
        (lon_b[rows[::-1], 0, 3], lat_b[rows[::-1], 0, 3]),  # left edge back along track
    ]
    lon = np.concatenate([p[0] for p in pieces])
    lat = np.concatenate([p[1] for p in pieces])
    ok = np.isfinite(lon) & np.isfinite(lat)
    return lon[ok], np.clip(lat[ok], -90.0, 90.0)


def _polygons(geom: BaseGeometry) -> list[Polygon]:
    if isinstance(geom, Polygon):
        return [geom] if not geom.is_empty and geom.area > 0 else []
    if hasattr(geom, "geoms"):
        return [p for g in geom.geoms for p in _polygons(g)]
    return []


def _round_coords(obj: Any, ndigits: int) -> Any:
    if isinstance(obj, list | tuple):
        return [_round_coords(x, ndigits) for x in obj]
    if isinstance(obj, float):
        return round(obj, ndigits)
    return obj


def _circular_lon_extent(parts: list[Polygon]) -> tuple[float, float]:
    """(west, east) covering every part with the shortest arc; west > east when it crosses ±180."""
    intervals = sorted((p.bounds[0], p.bounds[2]) for p in parts)
    merged: list[list[float]] = []
    for lo, hi in intervals:
        if merged and lo <= merged[-1][1] + 1e-9:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    # gaps between merged intervals, including the one through ±180
    gaps = [(merged[i][1], merged[i + 1][0]) for i in range(len(merged) - 1)]
    gaps.append((merged[-1][1], merged[0][0] + 360.0))
    lo_gap, hi_gap = max(gaps, key=lambda g: g[1] - g[0])
    if hi_gap - lo_gap <= 1e-9:
        return -180.0, 180.0
    west = hi_gap - 360.0 if hi_gap > 180.0 else hi_gap
    return west, lo_gap


def footprint_geometry(
    latitude_bounds: npt.ArrayLike,
    longitude_bounds: npt.ArrayLike,
    *,
    max_points_per_edge: int = 100,
    ndigits: int = 6,
) -> tuple[dict[str, Any], list[float]]:
    """GeoJSON footprint and bbox of a swath from its pixel corners.

    ``latitude_bounds``/``longitude_bounds``: (scanline, ground_pixel, 4) degrees, S5P corner order (a
    leading ``time`` dim of 1 is accepted); fill corners may be NaN. The outline follows the outer corners
    of the edge pixels, at most ``max_points_per_edge`` points per edge. Returns a counter-clockwise
    Polygon, or a MultiPolygon split at ±180 when the swath crosses the antimeridian (RFC 7946 §3.1.9;
    the bbox then has west > east), and a polygon reaching ±90 when the swath passes over a pole.
    """
    lat_b = np.asarray(latitude_bounds, dtype=np.float64)
    lon_b = np.asarray(longitude_bounds, dtype=np.float64)
    if lat_b.ndim == 4 and lat_b.shape[0] == 1:
        lat_b = lat_b[0]
    if lon_b.ndim == 4 and lon_b.shape[0] == 1:
        lon_b = lon_b[0]
    if lat_b.ndim != 3 or lat_b.shape[-1] != 4 or lon_b.shape != lat_b.shape:
        raise InputError(
            "latitude_bounds and longitude_bounds must both be (scanline, ground_pixel, 4), got "
            f"{lat_b.shape} and {lon_b.shape}"
        )
    lon, lat = _swath_outline(lat_b, lon_b, max(2, max_points_per_edge))
    if lon.size < 3:
        raise InputError("the swath outline has fewer than 3 valid corners: cannot compute a footprint")

    # unwrap longitudes along the ring so that it is continuous; a net turn of ±360° encircles a pole
    unwrapped = lon[0] + np.concatenate([[0.0], np.cumsum(_wrap(np.diff(lon)))])
    closing = unwrapped[-1] + _wrap(np.array([lon[0] - lon[-1]]))[0]
    turn = closing - lon[0]
    coords = list(zip(unwrapped.tolist(), lat.tolist(), strict=True))
    if abs(turn) > 180.0:
        pole = 90.0 if lat[np.argmax(np.abs(lat))] > 0 else -90.0
        coords += [(closing, float(lat[0])), (closing, pole), (float(lon[0]), pole)]
    ring = Polygon(coords)
    if not ring.is_valid:
        ring = shapely.make_valid(ring)

    # cut the unwrapped shape into 360°-wide windows and shift each back into [-180, 180]
    pieces: list[BaseGeometry] = []
    minx, _, maxx, _ = ring.bounds
    for k in range(int(np.floor((minx + 180.0) / 360.0)), int(np.floor((maxx + 180.0) / 360.0)) + 1):
        window = box(-180.0 + 360.0 * k, -90.0, 180.0 + 360.0 * k, 90.0)
        part = ring.intersection(window)
        if not part.is_empty:
            pieces.append(shapely.affinity.translate(part, xoff=-360.0 * k))
    merged = shapely.union_all(pieces) if pieces else ring
    parts = [orient(p, sign=1.0) for p in _polygons(merged)]
    if not parts:
        raise InputError("the swath outline encloses no area: cannot compute a footprint")
    geom: BaseGeometry = parts[0] if len(parts) == 1 else MultiPolygon(parts)
    geometry = _round_coords(json.loads(shapely.to_geojson(geom)), ndigits)

    south = min(p.bounds[1] for p in parts)
    north = max(p.bounds[3] for p in parts)
    west, east = _circular_lon_extent(parts)
    bbox = [round(float(v), ndigits) for v in (west, south, east, north)]
    return geometry, bbox


def footprints_geometry(
    swaths: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]], *, ndigits: int = 6
) -> tuple[dict[str, Any], list[float]]:
    """GeoJSON footprint and bbox of several swaths (e.g. the orbits of one daily sounding file): the union
    of each (latitude_bounds, longitude_bounds) pair's :func:`footprint_geometry`, valid at ±180."""
    if not swaths:
        raise InputError("no swath given: a footprint needs at least one (latitude_bounds, longitude_bounds)")
    shapes = [shapely.geometry.shape(footprint_geometry(lat_b, lon_b)[0]) for lat_b, lon_b in swaths]
    parts = [orient(p, sign=1.0) for p in _polygons(shapely.union_all(shapes))]
    geom: BaseGeometry = parts[0] if len(parts) == 1 else MultiPolygon(parts)
    geometry = _round_coords(json.loads(shapely.to_geojson(geom)), ndigits)
    west, east = _circular_lon_extent(parts)
    south = min(p.bounds[1] for p in parts)
    north = max(p.bounds[3] for p in parts)
    return geometry, [round(float(v), ndigits) for v in (west, south, east, north)]
