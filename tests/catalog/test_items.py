"""Granule STAC items/collections (Planetary-Computer-shaped), footprints, offline validation."""

from __future__ import annotations

import hashlib
import socket
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pystac
import pytest
import shapely.geometry as sg
from pystac.errors import STACValidationError

from catalog.items import create_granule_collection, create_granule_item, footprint_geometry
from catalog.validation import SchemaNotVendoredError, StacObjectInvalidError, validate_stac
from transforms.errors import InputError
from transforms.granules import parse_granule_name

NAME = "S5P_OFFL_L2__NO2____20200303T013547_20200303T031717_12367_01_010302_20200306T053815.nc"
CHECKSUM = hashlib.sha256(b"granule bytes").hexdigest()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def _swath_bounds(lat0: float, lon0: float, n_scan: int = 40, n_pix: int = 30, step: float = 0.5) -> Any:
    """Corner arrays (scanline, ground_pixel, 4) of a regular swath running north, S5P corner order."""
    s = np.arange(n_scan)[:, None]
    g = np.arange(n_pix)[None, :]
    shape = (n_scan, n_pix)
    lat_lo, lat_hi = (np.broadcast_to(lat0 + step * (s + k), shape) for k in (0, 1))
    lon_lo, lon_hi = (np.broadcast_to(lon0 + step * (g + k), shape) for k in (0, 1))
    lat_b = np.stack([lat_lo, lat_lo, lat_hi, lat_hi], axis=-1).astype(float)
    lon_b = np.stack([lon_lo, lon_hi, lon_hi, lon_lo], axis=-1).astype(float)
    lon_b = (lon_b + 180.0) % 360.0 - 180.0
    return lat_b, lon_b


def _item() -> pystac.Item:
    lat_b, lon_b = _swath_bounds(-10.0, 170.0)
    geometry, bbox = footprint_geometry(lat_b, lon_b)
    return create_granule_item(
        parse_granule_name(NAME),
        href=f"s3://lake/raw/no2/2020/03/03/{NAME}",
        geometry=geometry,
        bbox=bbox,
        size=292615,
        checksum_sha256=CHECKSUM,
        properties_extra={"s5p:shape": [4172, 450]},
    )


def test_item_has_planetary_computer_shape() -> None:
    item = _item()
    props = item.properties
    assert item.id == NAME.removesuffix(".nc")
    assert props["start_datetime"] == "2020-03-03T01:35:47Z"
    assert props["end_datetime"] == "2020-03-03T03:17:17Z"
    assert item.datetime == datetime(2020, 3, 3, 2, 26, 32, tzinfo=UTC)
    assert props["s5p:product_name"] == "no2"
    assert props["s5p:processing_mode"] == "OFFL"
    assert props["s5p:product_type"] == "L2__NO2___"
    assert props["s5p:collection_identifier"] == "01"
    assert props["s5p:shape"] == [4172, 450]
    assert props["sat:absolute_orbit"] == 12367
    assert props["sat:platform_international_designator"] == "2017-064A"
    assert props["platform"] == "Sentinel 5 Precursor"
    assert props["constellation"] == "Sentinel-5P"
    assert props["instruments"] == ["TROPOMI"]
    assert props["processing:level"] == "L2"
    assert props["processing:software"] == {"TROPOMI L2__NO2___ processor": "1.3.2"}
    assert props["processing:datetime"] == "2020-03-06T05:38:15Z"
    assert list(item.assets) == ["no2"]
    asset = item.assets["no2"]
    assert asset.media_type == "application/x-netcdf"
    assert asset.roles == ["data"]
    assert asset.title == "Nitrogen Dioxide Total Column"
    assert asset.extra_fields["file:size"] == 292615
    assert asset.extra_fields["file:checksum"] == "1220" + CHECKSUM
    assert any(link.rel == "about" for link in item.links)
    assert item.bbox is not None and item.bbox[0] > item.bbox[2]  # crosses the antimeridian


def test_item_validates_offline(no_network: None) -> None:
    item = _item()
    validate_stac(item)
    validate_stac(item.to_dict())
    assert pystac.Item.from_dict(item.to_dict()).to_dict() == item.to_dict()
    with pytest.raises(OSError, match="offline test"):  # the guard really is in place
        socket.create_connection(("example.org", 80))


def test_collection_validates_offline(no_network: None) -> None:
    collection = create_granule_collection(
        "no2", extent_bbox=[-180, -90, 180, 90], start=datetime(2018, 4, 30, tzinfo=UTC), end=None
    )
    assert collection.id == "s5p-l2-no2"
    assert collection.license == "other"
    assert any(link.rel == "license" for link in collection.links)
    assert collection.summaries.get_list("s5p:product_name") == ["no2"]
    assert collection.summaries.get_list("s5p:product_type") == ["L2__NO2___"]
    assert collection.item_assets["no2"].media_type == "application/x-netcdf"
    validate_stac(collection)


def test_invalid_item_names_the_failing_path(no_network: None) -> None:
    data = _item().to_dict()
    data["assets"]["no2"]["file:size"] = -1
    with pytest.raises(StacObjectInvalidError, match=r"file:size") as info:
        validate_stac(data)
    assert isinstance(info.value, STACValidationError) and isinstance(info.value, InputError)
    data = _item().to_dict()
    data["properties"]["sat:absolute_orbit"] = "12367"
    with pytest.raises(StacObjectInvalidError, match=r"sat:absolute_orbit"):
        validate_stac(data)


def test_unvendored_schema_fails_without_fetching(no_network: None) -> None:
    data = _item().to_dict()
    data["stac_extensions"].append("https://stac-extensions.github.io/eo/v1.1.0/schema.json")
    with pytest.raises(SchemaNotVendoredError, match=r"eo/v1\.1\.0/schema\.json is not available offline"):
        validate_stac(data)


def test_bad_inputs_raise() -> None:
    name = parse_granule_name(NAME)
    geometry, bbox = footprint_geometry(*_swath_bounds(0.0, 0.0))
    with pytest.raises(InputError, match="SHA-256 hex digest"):
        create_granule_item(name, href="x.nc", geometry=geometry, bbox=bbox, size=1, checksum_sha256="abc")
    with pytest.raises(InputError, match="size"):
        create_granule_item(
            name, href="x.nc", geometry=geometry, bbox=bbox, size=-5, checksum_sha256=CHECKSUM
        )


def test_footprint_plain_swath() -> None:
    geometry, bbox = footprint_geometry(*_swath_bounds(10.0, 20.0, n_scan=10, n_pix=8))
    shape = sg.shape(geometry)
    assert geometry["type"] == "Polygon" and shape.is_valid
    assert bbox == [20.0, 10.0, 24.0, 15.0]
    assert shape.area == pytest.approx(4.0 * 5.0)
    assert shape.exterior.is_ccw  # RFC 7946: exterior rings counter-clockwise


def test_footprint_across_the_antimeridian() -> None:
    lat_b, lon_b = _swath_bounds(-10.0, 170.0)  # 170°E … 185°E = 175°W
    geometry, bbox = footprint_geometry(lat_b, lon_b)
    shape = sg.shape(geometry)
    assert geometry["type"] == "MultiPolygon" and shape.is_valid
    assert len(shape.geoms) == 2
    for part in shape.geoms:
        west, _, east, _ = part.bounds
        assert east - west < 180.0  # no part spans the globe
        assert part.exterior.is_ccw
        assert west in (-180.0, 170.0) and east in (180.0, -175.0)
    assert bbox == [170.0, -10.0, -175.0, 10.0]
    assert shape.area == pytest.approx(15.0 * 20.0)


def test_footprint_with_fill_pixels_and_time_dim() -> None:
    lat_b, lon_b = _swath_bounds(40.0, -20.0, n_scan=12, n_pix=6)
    lat_b[0] = np.nan  # a fill scanline at the start
    lon_b[0] = np.nan
    geometry, bbox = footprint_geometry(lat_b[None], lon_b[None])
    assert sg.shape(geometry).is_valid
    assert bbox == [-20.0, 40.5, -17.0, 46.0]


def test_footprint_of_a_band_around_the_pole() -> None:
    """A ring of pixels circling the pole (70–80° N) is a band over all longitudes, not a cap."""
    n_scan, n_pix = 72, 4
    lon_edges = -180.0 + 5.0 * np.arange(n_scan + 1)  # along track: around the pole
    lat_edges = 70.0 + 2.5 * np.arange(n_pix + 1)  # across track: 70° → 80°
    shape = (n_scan, n_pix)
    lo, hi = (np.broadcast_to(e[:, None], shape) for e in (lon_edges[:-1], lon_edges[1:]))
    south, north = (np.broadcast_to(e[None, :], shape) for e in (lat_edges[:-1], lat_edges[1:]))
    lat_b = np.stack([south, north, north, south], axis=-1).astype(float)
    lon_b = np.stack([lo, lo, hi, hi], axis=-1).astype(float)
    lon_b = (lon_b + 180.0) % 360.0 - 180.0
    geometry, bbox = footprint_geometry(lat_b, lon_b)
    footprint = sg.shape(geometry)
    assert footprint.is_valid
    assert bbox == [-180.0, 70.0, 180.0, 80.0]
    assert footprint.contains(sg.Point(0.0, 75.0)) and footprint.contains(sg.Point(179.0, 75.0))
    assert not footprint.contains(sg.Point(0.0, 85.0))


def _polar_swath(offset: float) -> tuple[Any, Any]:
    """A swath flying over the north pole: a 20°×60° rectangle in the polar azimuthal-equidistant plane."""
    x = offset + np.linspace(-10.0, 10.0, 11)  # across track, degrees of arc from the pole
    y = np.linspace(-30.0, 30.0, 31)  # along track
    xx, yy = np.meshgrid(x, y)  # (scanline edges, pixel edges)
    lat = 90.0 - np.hypot(xx, yy)
    lon = np.degrees(np.arctan2(xx, -yy))
    corners = [(slice(None, -1), slice(None, -1)), (slice(None, -1), slice(1, None))]
    corners += [(slice(1, None), slice(1, None)), (slice(1, None), slice(None, -1))]
    lat_b = np.stack([lat[c] for c in corners], axis=-1)
    lon_b = np.stack([lon[c] for c in corners], axis=-1)
    return lat_b, lon_b


def test_footprint_over_the_pole() -> None:
    """A swath whose pixels cover the pole gives a valid polar cap reaching 90° N."""
    geometry, bbox = footprint_geometry(*_polar_swath(offset=3.0))
    footprint = sg.shape(geometry)
    assert footprint.is_valid
    assert bbox[0] == -180.0 and bbox[2] == 180.0 and bbox[3] == 90.0
    assert bbox[1] == pytest.approx(90.0 - np.hypot(13.0, 30.0), abs=0.01)
    assert footprint.contains(sg.Point(0.0, 89.5)) and footprint.contains(sg.Point(120.0, 89.5))
    assert footprint.contains(sg.Point(90.0, 80.0))  # x = +10° of arc towards 90° E: inside
    assert not footprint.contains(sg.Point(-90.0, 80.0))  # x = -10°: outside (swath spans -7…13)


def test_footprint_near_but_off_the_pole() -> None:
    """Shifted 15° off the pole the swath does not contain it; no cap is added."""
    geometry, bbox = footprint_geometry(*_polar_swath(offset=15.0))
    footprint = sg.shape(geometry)
    assert footprint.is_valid
    assert bbox[3] < 90.0
    assert not footprint.contains(sg.Point(0.0, 89.9))


def test_footprint_rejects_bad_shapes() -> None:
    with pytest.raises(InputError, match=r"\(scanline, ground_pixel, 4\)"):
        footprint_geometry(np.zeros((3, 4)), np.zeros((3, 4)))
    with pytest.raises(InputError, match="no scanline with valid edge-pixel corners"):
        footprint_geometry(np.full((3, 4, 4), np.nan), np.full((3, 4, 4), np.nan))
