"""Granules from STAC item JSON (``infra.sources.granule_from_item``): where the file name is found, and what an
item of another product or without a granule gives; reading JSON documents."""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

import pytest

from infra.sources import granule_from_item, paused_gc, published_digests, read_json
from transforms.errors import SourceError

NAME = "S5P_OFFL_L2__NO2____20200303T013547_20200303T031717_12367_01_010302_20200306T053815"


def _item(href: str, **asset: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": "an-opaque-id",
        "properties": {},
        "assets": {"data": {"href": href, "type": "application/x-netcdf", **asset}},
        "links": [],
    }


@pytest.mark.parametrize(
    "href",
    [
        f"https://host/a/b/{NAME}.nc",
        f"https://host:8443/a/{NAME}.nc?st=2020&sig=a/b/c.nc#frag",  # a signed query with slashes in it
        f"s3://bucket/raw/{NAME}.nc",
        f"file:///data/{NAME}.nc",
        f"/data/{NAME}.nc",
    ],
)
def test_the_name_comes_from_the_hrefs_path(href: str) -> None:
    g = granule_from_item(_item(href), "no2")
    assert g is not None and g.granule_id == NAME and g.href == href


def test_a_download_url_without_the_name_falls_back_to_alternates_title_then_id() -> None:
    value = "https://host/odata/v1/Products(1234)/$value"
    alternate = {"s3": {"href": f"s3://eodata/x/{NAME}.nc?x=1"}}
    g = granule_from_item(_item(value, alternate=alternate), "no2")
    assert g is not None and g.granule_id == NAME and g.href == value
    g = granule_from_item(_item(value, title=f"{NAME}.nc"), "no2")
    assert g is not None and g.granule_id == NAME
    g = granule_from_item(dict(_item(value), id=NAME), "no2")
    assert g is not None and g.granule_id == NAME
    assert granule_from_item(_item("https://host/?file=" + NAME + ".nc"), "no2") is None  # a query is no path


def test_items_of_other_products_or_without_a_granule_give_none() -> None:
    assert granule_from_item(_item(f"https://host/{NAME}.nc"), "co") is None
    assert granule_from_item({"id": NAME, "assets": {}}, "no2") is None
    other = dict(_item(f"https://host/{NAME}.nc"), properties={"s5p:product_name": "co"})
    assert granule_from_item(other, "no2") is None


def test_published_size_and_sha256_multihash_are_read() -> None:
    digest = "ab" * 32
    g = granule_from_item(
        _item(f"https://host/{NAME}.nc", **{"file:size": 123, "file:checksum": "1220" + digest}), "no2"
    )
    assert g is not None and (g.size, g.sha256, g.md5) == (123, digest, None)


@pytest.mark.parametrize(
    ("checksum", "expected"),
    [
        ("1220" + "AB" * 32, ("ab" * 32, None)),  # sha2-256 (upper-case hex is the same digest)
        ("d50110" + "cd" * 16, (None, "cd" * 16)),  # MD5, as CDSE publishes
        ("1220" + "ab" * 31, (None, None)),  # sha2-256 of the wrong length
        ("d50110" + "zz" * 16, (None, None)),  # not hex
        ("1340" + "ab" * 64, (None, None)),  # sha2-512: not verified
        (12345, (None, None)),
        (None, (None, None)),
    ],
)
def test_published_checksums_are_read_from_their_multihash(checksum: object, expected: object) -> None:
    assert published_digests(checksum) == expected
    g = granule_from_item(_item(f"https://host/{NAME}.nc", **{"file:checksum": checksum}), "no2")
    assert g is not None and (g.sha256, g.md5) == expected


def test_the_garbage_collector_is_paused_only_while_decoding() -> None:
    assert gc.isenabled()
    with paused_gc():
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()  # still inside the outer pause
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()  # it was off before: left off
    finally:
        gc.enable()


def test_read_json_reads_paths_file_urls_and_says_what_is_wrong(tmp_path: Path) -> None:
    doc = {"type": "Catalog", "links": []}
    (tmp_path / "catalog.json").write_text(json.dumps(doc))
    assert read_json(str(tmp_path / "catalog.json")) == doc
    assert read_json(f"file://{tmp_path}/catalog.json") == doc
    assert gc.isenabled()
    with pytest.raises(SourceError, match="not found"):
        read_json(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("<html>")
    with pytest.raises(SourceError, match="is not JSON"):
        read_json(str(tmp_path / "bad.json"))
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(SourceError, match="is JSON but not an object"):
        read_json(str(tmp_path / "list.json"))
