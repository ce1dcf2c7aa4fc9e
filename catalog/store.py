"""The lake's STAC catalog: a static, self-contained catalog under ``<lake>/stac/``.

Layout: ``catalog.json`` (root) → ``<collection>/collection.json`` → ``<collection>/items/<item>.json``, all
links relative so the tree can be copied or served as it is. Items are upserted by id; after each upsert the
collection's item links and extents are recomputed from the items actually present, so extents stay true.
The filesystem is handed in (local or S3).
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable, Sequence
from typing import Any

import fsspec
import pystac

from transforms.storage import put_atomic

ROOT_ID = "eolake"


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=1, sort_keys=False).encode()


class CatalogStore:
    """Read and upsert STAC documents below ``root`` on ``fs``."""

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str, *, title: str = "eolake") -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.title = title

    # paths
    def _collection_path(self, cid: str) -> str:
        return posixpath.join(self.root, cid, "collection.json")

    def _item_path(self, cid: str, iid: str) -> str:
        return posixpath.join(self.root, cid, "items", f"{iid}.json")

    # reading
    def collection_ids(self) -> list[str]:
        if not self.fs.exists(self.root):
            return []
        out = []
        for entry in self.fs.ls(self.root, detail=False):
            cid = posixpath.basename(entry.rstrip("/"))
            if self.fs.exists(self._collection_path(cid)):
                out.append(cid)
        return sorted(out)

    def read_item_dicts(self, cid: str) -> list[dict[str, Any]]:
        folder = posixpath.join(self.root, cid, "items")
        if not self.fs.exists(folder):
            return []
        paths = sorted(p for p in self.fs.ls(folder, detail=False) if p.endswith(".json"))
        if not paths:
            return []
        blobs = self.fs.cat(paths)
        return [json.loads(blobs[p]) for p in paths]

    def read_collection_dict(self, cid: str) -> dict[str, Any] | None:
        path = self._collection_path(cid)
        if not self.fs.exists(path):
            return None
        doc: dict[str, Any] = json.loads(self.fs.cat_file(path))
        return doc

    # writing
    def upsert(self, collection: pystac.Collection, items: Sequence[pystac.Item] = ()) -> None:
        """Write ``items`` (replacing same ids), then the collection with true extents, then the root."""
        cid = collection.id
        for item in items:
            put_atomic(self.fs, self._item_path(cid, item.id), _dump(self._item_dict(item, cid)))
        self.fs.invalidate_cache(posixpath.join(self.root, cid, "items"))
        self._write_collection(collection)
        self._write_root()

    def delete_items(self, cid: str, item_ids: Iterable[str]) -> None:
        for iid in item_ids:
            path = self._item_path(cid, iid)
            if self.fs.exists(path):
                self.fs.rm(path)

    def _item_dict(self, item: pystac.Item, cid: str) -> dict[str, Any]:
        doc = item.to_dict(include_self_link=False, transform_hrefs=False)
        doc["collection"] = cid
        keep = [
            link
            for link in doc.get("links", [])
            if link.get("rel") not in {"root", "parent", "collection", "self"}
        ]
        doc["links"] = [
            {"rel": "root", "href": "../../catalog.json", "type": "application/json", "title": self.title},
            {"rel": "parent", "href": "../collection.json", "type": "application/json"},
            {"rel": "collection", "href": "../collection.json", "type": "application/json"},
            *keep,
        ]
        return doc

    def _write_collection(self, collection: pystac.Collection) -> None:
        cid = collection.id
        items = self.read_item_dicts(cid)
        doc = collection.to_dict(include_self_link=False, transform_hrefs=False)
        if items:
            doc["extent"] = extent_of(items)
        keep = [
            link for link in doc.get("links", []) if link.get("rel") not in {"root", "parent", "self", "item"}
        ]
        doc["links"] = [
            {"rel": "root", "href": "../catalog.json", "type": "application/json", "title": self.title},
            {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
            *keep,
            *(
                {"rel": "item", "href": f"./items/{it['id']}.json", "type": "application/geo+json"}
                for it in items
            ),
        ]
        put_atomic(self.fs, self._collection_path(cid), _dump(doc))

    def _write_root(self) -> None:
        children = []
        for cid in self.collection_ids():
            c = self.read_collection_dict(cid) or {}
            children.append(
                {
                    "rel": "child",
                    "href": f"./{cid}/collection.json",
                    "type": "application/json",
                    "title": c.get("title", cid),
                }
            )
        root = pystac.Catalog(
            ROOT_ID,
            "Carbon-satellite data lake: raw granules, daily cubes, emissions tables.",
            title=self.title,
        )
        doc = root.to_dict(include_self_link=False, transform_hrefs=False)
        doc["links"] = [
            {"rel": "root", "href": "./catalog.json", "type": "application/json", "title": self.title},
            *children,
        ]
        put_atomic(self.fs, posixpath.join(self.root, "catalog.json"), _dump(doc))


def extent_of(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The spatial and temporal extent covering ``items`` (dicts). An item crossing the antimeridian
    (bbox west > east) widens the longitude range to the whole globe."""
    west, south, east, north = 180.0, 90.0, -180.0, -90.0
    starts, ends = [], []
    for it in items:
        b = it.get("bbox")
        if b:
            w, s, e, n = (b[0], b[1], b[2], b[3]) if len(b) == 4 else (b[0], b[1], b[3], b[4])
            if w > e:
                w, e = -180.0, 180.0
            west, south, east, north = min(west, w), min(south, s), max(east, e), max(north, n)
        p = it.get("properties", {})
        starts.append(p.get("start_datetime") or p.get("datetime"))
        ends.append(p.get("end_datetime") or p.get("datetime"))
    starts = [s for s in starts if s]
    ends = [e for e in ends if e]
    return {
        "spatial": {"bbox": [[west, south, east, north]]},
        "temporal": {"interval": [[min(starts) if starts else None, max(ends) if ends else None]]},
    }
