"""The catalog store: stac-geoparquet round trip, upsert by id, true extents, browsable tree, export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fsspec
import pystac

from catalog.store import CatalogStore, export_static


def _item(iid: str, day: int, bbox: list[float], **props: Any) -> dict[str, Any]:
    w, s, e, n = bbox
    if w > e:  # across the antimeridian: two parts
        geom = {
            "type": "MultiPolygon",
            "coordinates": [
                [[[w, s], [180, s], [180, n], [w, n], [w, s]]],
                [[[-180, s], [e, s], [e, n], [-180, n], [-180, s]]],
            ],
        }
    else:
        geom = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [],
        "id": iid,
        "geometry": geom,
        "bbox": bbox,
        "properties": {"datetime": f"2020-03-{day:02d}T12:00:00Z", **props},
        "links": [],
        "assets": {
            "zarr": {"href": "../../../cubes/x.zarr", "xarray:open_kwargs": {"chunks": {}, "engine": "zarr"}}
        },
    }


def _collection() -> pystac.Collection:
    return pystac.Collection(
        "c1",
        "test",
        pystac.Extent(pystac.SpatialExtent([[-1, -1, 1, 1]]), pystac.TemporalExtent([[None, None]])),
    )


def test_upsert_by_id_keeps_extents_true_and_round_trips(tmp_path: Path) -> None:
    fs = fsspec.filesystem("file")
    store = CatalogStore(fs, str(tmp_path / "stac"))
    a, b = _item("a", 2, [0, 0, 10, 10], n=1), _item("b", 5, [20, 0, 30, 10], n=2)
    store.upsert(_collection(), [a, b])
    ext = store.read_collection_dict("c1")["extent"]  # type: ignore[index]
    assert ext["spatial"]["bbox"] == [[0, 0, 30, 10]]
    assert ext["temporal"]["interval"] == [["2020-03-02T12:00:00Z", "2020-03-05T12:00:00Z"]]

    b2 = _item("b", 3, [5, 0, 15, 10], n=3, extra="new")  # superseding version of b
    store.upsert(_collection(), [b2])
    items = {d["id"]: d for d in store.read_item_dicts("c1")}
    assert set(items) == {"a", "b"} and items["b"]["properties"]["extra"] == "new"
    assert items["a"]["assets"]["zarr"]["xarray:open_kwargs"] == {"chunks": {}, "engine": "zarr"}
    assert "extra" not in items["a"]["properties"]  # nulls Arrow adds for missing fields are dropped
    ext = store.read_collection_dict("c1")["extent"]  # type: ignore[index]
    assert ext["spatial"]["bbox"] == [[0, 0, 15, 10]]
    assert ext["temporal"]["interval"] == [["2020-03-02T12:00:00Z", "2020-03-03T12:00:00Z"]]

    store.delete_items("c1", ["a"])
    assert [d["id"] for d in store.read_item_dicts("c1")] == ["b"]
    ext = store.read_collection_dict("c1")["extent"]  # type: ignore[index]
    assert ext["spatial"]["bbox"] == [[5, 0, 15, 10]]
    assert not (tmp_path / "stac" / "c1" / "items" / "a.json").exists()


def test_antimeridian_item_widens_extent_to_the_globe(tmp_path: Path) -> None:
    store = CatalogStore(fsspec.filesystem("file"), str(tmp_path / "stac"))
    store.upsert(_collection(), [_item("x", 2, [170, -10, -170, 10]), _item("y", 2, [0, 20, 1, 30])])
    assert store.read_collection_dict("c1")["extent"]["spatial"]["bbox"] == [[-180, -10, 180, 30]]  # type: ignore[index]


def test_browsable_tree_and_export(tmp_path: Path) -> None:
    fs = fsspec.filesystem("file")
    store = CatalogStore(fs, str(tmp_path / "stac"))
    store.upsert(_collection(), [_item("a", 2, [0, 0, 1, 1]), _item("b", 3, [0, 0, 1, 1])])
    cat = pystac.Catalog.from_file(str(tmp_path / "stac" / "catalog.json"))
    assert sorted(i.id for i in cat.get_items(recursive=True)) == ["a", "b"]
    assert export_static(store, fs, str(tmp_path / "out")) == 2
    doc = json.loads((tmp_path / "out" / "c1" / "items" / "a.json").read_text())
    assert doc["assets"]["zarr"]["href"] == f"file://{tmp_path}/cubes/x.zarr"
    quiet = CatalogStore(fs, str(tmp_path / "big"), browsable=False)
    quiet.upsert(_collection(), [_item("a", 2, [0, 0, 1, 1])])
    assert not (tmp_path / "big" / "c1" / "items").exists()
    assert [d["id"] for d in quiet.read_item_dicts("c1")] == ["a"]


def test_iter_item_dicts_streams_the_same_items_in_batches(tmp_path: Path) -> None:
    """What the pgstac load reads: batch by batch, the same dicts as reading everything (JSON-text columns
    such as an asset's empty ``chunks`` included), for a parquet store and a legacy JSON-only one."""
    store = CatalogStore(fsspec.filesystem("file"), str(tmp_path / "stac"), browsable=False)
    items = [_item(f"i{k:02d}", 1 + k % 28, [k, 0, k + 1, 1], n=k) for k in range(23)]
    store.upsert(_collection(), items)
    streamed = list(store.iter_item_dicts("c1", batch_size=5))
    assert streamed == store.read_item_dicts("c1")
    assert len(streamed) == 23 and len({d["id"] for d in streamed}) == 23
    assert streamed[0]["assets"]["zarr"]["xarray:open_kwargs"] == {"chunks": {}, "engine": "zarr"}
    assert list(CatalogStore(fsspec.filesystem("file"), str(tmp_path / "none")).iter_item_dicts("c1")) == []
