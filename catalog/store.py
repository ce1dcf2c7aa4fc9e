"""The lake's STAC catalog under ``<lake>/stac/``: stac-geoparquet items plus collection JSON.

Source of truth, per collection: ``<collection>/collection.json`` and ``<collection>/items.parquet``
(stac-geoparquet, one row per item). Items are upserted by id; after every change the collection's extent is
recomputed from the items present, so it stays true as items are added or superseded. Item documents keep
hrefs relative to ``<collection>/items/<item>.json``.

Beside the truth the store keeps a static browsable tree (``catalog.json`` → ``<collection>/collection.json``
→ ``<collection>/items/<item>.json``, relative links) unless created with ``browsable=False``; the same
tree can be written anywhere with :func:`export_static`. The filesystem is handed in (local or S3).
"""

from __future__ import annotations

import json
import posixpath
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pystac
import stac_geoparquet.arrow as sgp
from stac_geoparquet.arrow._to_parquet import create_parquet_metadata

from transforms.storage import put_atomic

ROOT_ID = "eolake"
ITEMS_PARQUET = "items.parquet"
TOP_LEVEL = frozenset(
    {"type", "stac_version", "stac_extensions", "id", "geometry", "bbox", "links", "assets", "collection"}
)
JSON_COLUMNS_KEY = b"eolake:json_columns"
ROOT_DESCRIPTION = "Carbon-satellite data lake: raw granules, daily cubes, emissions tables."


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=1, sort_keys=False).encode()


def items_to_table(items: Iterable[dict[str, Any]]) -> pa.Table:
    """stac-geoparquet's Arrow table of item dicts (an empty table has no rows and no columns)."""
    docs = list(items)
    if not docs:
        return pa.table({})
    table: pa.Table = sgp.parse_stac_items_to_arrow(docs).read_all()
    # Parquet cannot hold an empty struct (e.g. xarray:open_kwargs {"chunks": {}}): such columns are kept as
    # JSON text and named in the schema metadata, so reading restores them exactly.
    json_columns = [f.name for f in table.schema if _has_empty_struct(f.type)]
    for name in json_columns:
        values = [json.dumps(d[name]) if name in d else _json_prop(d, name) for d in docs]
        table = table.set_column(table.schema.get_field_index(name), name, pa.array(values, pa.string()))
    if json_columns:
        meta = dict(table.schema.metadata or {})
        meta[JSON_COLUMNS_KEY] = json.dumps(json_columns).encode()
        table = table.replace_schema_metadata(meta)
    return table


def _json_prop(doc: dict[str, Any], name: str) -> str | None:
    props = doc.get("properties", {})
    return json.dumps(props[name]) if name in props else None


def _has_empty_struct(t: pa.DataType) -> bool:
    if pa.types.is_struct(t):
        return t.num_fields == 0 or any(_has_empty_struct(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _has_empty_struct(t.value_type)
    if pa.types.is_map(t):
        return _has_empty_struct(t.item_type)
    return False


def _json_columns(table: pa.Table) -> list[str]:
    raw = (table.schema.metadata or {}).get(JSON_COLUMNS_KEY)
    return [] if raw is None else list(json.loads(raw))


def table_to_items(table: pa.Table) -> Iterator[dict[str, Any]]:
    """Item dicts from a stac-geoparquet table. Arrow fills fields an item lacks with nulls; they are dropped
    again (a ``null`` property other than ``datetime`` is therefore not preserved)."""
    if table.num_rows == 0:
        return
    json_columns = [c for c in _json_columns(table) if c in table.schema.names]
    texts = {c: table[c].to_pylist() for c in json_columns}
    for row, doc in enumerate(sgp.stac_table_to_items(table.drop_columns(json_columns))):
        for name in json_columns:
            text = texts[name][row]
            if text is None:
                continue
            if name in TOP_LEVEL:
                doc[name] = json.loads(text)
            else:
                doc.setdefault("properties", {})[name] = json.loads(text)
        props = doc.get("properties", {})
        doc["properties"] = {
            k: _whole_seconds(_strip_nulls(v)) for k, v in props.items() if v is not None or k == "datetime"
        }
        doc["properties"].setdefault("datetime", None)
        for key in ("links", "assets"):
            if key in doc:
                doc[key] = _strip_nulls(doc[key])
        yield doc


def _whole_seconds(value: Any) -> Any:
    """Arrow writes timestamps back with microseconds; keep ``…:SSZ`` when there are none."""
    if isinstance(value, str) and value.endswith(".000000Z"):
        return value[: -len(".000000Z")] + "Z"
    return value


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


class CatalogStore:
    """Read and upsert STAC collections and items below ``root`` on ``fs``."""

    def __init__(
        self, fs: fsspec.AbstractFileSystem, root: str, *, title: str = "eolake", browsable: bool = True
    ) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.title = title
        self.browsable = browsable

    # paths
    def _collection_path(self, cid: str) -> str:
        return posixpath.join(self.root, cid, "collection.json")

    def _item_path(self, cid: str, iid: str) -> str:
        return posixpath.join(self.root, cid, "items", f"{iid}.json")

    def items_path(self, cid: str) -> str:
        """Where the collection's stac-geoparquet items live."""
        return posixpath.join(self.root, cid, ITEMS_PARQUET)

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

    def read_table(self, cid: str) -> pa.Table:
        """The collection's items as a stac-geoparquet Arrow table (no rows when there are none)."""
        path = self.items_path(cid)
        if self.fs.exists(path):
            with self.fs.open(path, "rb") as f:
                table: pa.Table = pq.read_table(f)
            return table
        return items_to_table(self._read_json_items(cid))  # a lake written before items.parquet existed

    def read_item_dicts(self, cid: str) -> list[dict[str, Any]]:
        return list(table_to_items(self.read_table(cid)))

    def iter_item_dicts(self, cid: str, *, batch_size: int = 10_000) -> Iterator[dict[str, Any]]:
        """The collection's item dicts, read ``batch_size`` rows at a time, so a large collection is never
        held in memory as dicts all at once."""
        path = self.items_path(cid)
        if not self.fs.exists(path):
            yield from self.read_item_dicts(cid)
            return
        with self.fs.open(path, "rb") as f:
            pf = pq.ParquetFile(f)
            schema = pf.schema_arrow  # keeps the schema metadata (JSON-text columns)
            for batch in pf.iter_batches(batch_size=batch_size):
                yield from table_to_items(pa.Table.from_batches([batch], schema=schema))

    def read_collection_dict(self, cid: str) -> dict[str, Any] | None:
        path = self._collection_path(cid)
        if not self.fs.exists(path):
            return None
        doc: dict[str, Any] = json.loads(self.fs.cat_file(path))
        return doc

    def _read_json_items(self, cid: str) -> list[dict[str, Any]]:
        folder = posixpath.join(self.root, cid, "items")
        if not self.fs.exists(folder):
            return []
        paths = sorted(p for p in self.fs.ls(folder, detail=False) if p.endswith(".json"))
        blobs = self.fs.cat(paths) if paths else {}
        return [json.loads(blobs[p]) for p in paths]

    # writing
    def upsert(self, collection: pystac.Collection | dict[str, Any], items: Sequence[Any] = ()) -> None:
        """Write ``items`` (pystac items or dicts; same ids are replaced), then the collection with its true
        extent, then the root. Call only after the data the items describe is committed."""
        doc = _collection_doc(collection)
        cid = doc["id"]
        new = [self._item_dict(it, cid) for it in items]
        table = self.read_table(cid)
        if new:
            ids = [d["id"] for d in new]
            if len(set(ids)) != len(ids):
                raise ValueError(f"duplicate item ids in one upsert to {cid}: give each item once")
            table = _merge(table, items_to_table(new), ids)
            self._write_table(cid, table)
            if self.browsable:
                for d in new:
                    put_atomic(self.fs, self._item_path(cid, d["id"]), _dump(d))
                self.fs.invalidate_cache(posixpath.join(self.root, cid, "items"))
        self._write_collection(doc, table)
        self._write_root()

    def delete_items(self, cid: str, item_ids: Iterable[str]) -> None:
        """Remove items (e.g. superseded granules); the collection's extent is recomputed."""
        gone = list(item_ids)
        if not gone:
            return
        table = self.read_table(cid)
        if table.num_rows:
            table = table.filter(pc.invert(pc.is_in(table["id"], pa.array(gone, pa.string()))))
            self._write_table(cid, table)
        for iid in gone:
            path = self._item_path(cid, iid)
            if self.fs.exists(path):
                self.fs.rm(path)
        current = self.read_collection_dict(cid)
        if current is not None:
            self._write_collection(current, table)

    def _write_table(self, cid: str, table: pa.Table) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / ITEMS_PARQUET
            if table.num_rows:
                # stac-geoparquet's own metadata (geo, stac-geoparquet) beside ours; sgp.to_parquet would drop ours
                meta = {
                    **(table.schema.metadata or {}),
                    **create_parquet_metadata(
                        table.schema, schema_version=sgp.DEFAULT_PARQUET_SCHEMA_VERSION
                    ),
                }
                table = table.replace_schema_metadata(meta)
            pq.write_table(table, path)
            put_atomic(self.fs, self.items_path(cid), path.read_bytes())

    def _item_dict(self, item: pystac.Item | dict[str, Any], cid: str) -> dict[str, Any]:
        if isinstance(item, pystac.Item):
            doc = item.to_dict(include_self_link=False, transform_hrefs=False)
        else:
            doc = json.loads(json.dumps(item))
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

    def _write_collection(self, doc: dict[str, Any], table: pa.Table) -> None:
        cid = doc["id"]
        doc = dict(doc)
        if table.num_rows:
            doc["extent"] = extent_of_table(table)
        keep = [
            link for link in doc.get("links", []) if link.get("rel") not in {"root", "parent", "self", "item"}
        ]
        item_links = []
        if self.browsable and table.num_rows:
            item_links = [
                {"rel": "item", "href": f"./items/{iid}.json", "type": "application/geo+json"}
                for iid in sorted(table["id"].to_pylist())
            ]
        doc["links"] = [
            {"rel": "root", "href": "../catalog.json", "type": "application/json", "title": self.title},
            {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
            *keep,
            *item_links,
        ]
        put_atomic(self.fs, self._collection_path(cid), _dump(doc))

    def _write_root(self) -> None:
        put_atomic(self.fs, posixpath.join(self.root, "catalog.json"), _dump(self.root_dict()))

    def ensure_root(self) -> None:
        """Write the root ``catalog.json`` if the lake has none yet (a valid, empty catalog)."""
        if not self.fs.exists(posixpath.join(self.root, "catalog.json")):
            self._write_root()

    def root_dict(self) -> dict[str, Any]:
        """The root catalog document with relative child links."""
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
        root = pystac.Catalog(ROOT_ID, ROOT_DESCRIPTION, title=self.title)
        doc = root.to_dict(include_self_link=False, transform_hrefs=False)
        doc["links"] = [
            {"rel": "root", "href": "./catalog.json", "type": "application/json", "title": self.title},
            *children,
        ]
        return doc


def _collection_doc(collection: pystac.Collection | dict[str, Any]) -> dict[str, Any]:
    if isinstance(collection, pystac.Collection):
        return collection.to_dict(include_self_link=False, transform_hrefs=False)
    return dict(collection)


def _merge(old: pa.Table, new: pa.Table, new_ids: Sequence[str]) -> pa.Table:
    """``old`` without the rows whose id is in ``new_ids``, then ``new``; schemas are unified (a field that
    only some items have becomes nullable)."""
    if old.num_rows == 0:
        return new
    kept = old.filter(pc.invert(pc.is_in(old["id"], pa.array(list(new_ids), pa.string()))))
    if _json_columns(kept) or _json_columns(new):
        return items_to_table([*table_to_items(kept), *table_to_items(new)])
    try:
        return pa.concat_tables([kept, new], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return items_to_table([*table_to_items(kept), *table_to_items(new)])


def extent_of_table(table: pa.Table) -> dict[str, Any]:
    """The spatial and temporal extent of a stac-geoparquet table: the union of item bboxes (an item whose
    bbox crosses the antimeridian, west > east, widens longitude to the globe) and of item time ranges."""
    bbox = table["bbox"]
    xmin, ymin = pc.struct_field(bbox, "xmin"), pc.struct_field(bbox, "ymin")
    xmax, ymax = pc.struct_field(bbox, "xmax"), pc.struct_field(bbox, "ymax")
    crosses = pc.any(pc.greater(xmin, xmax)).as_py()
    west = -180.0 if crosses else pc.min(xmin).as_py()
    east = 180.0 if crosses else pc.max(xmax).as_py()
    names = table.schema.names
    starts = [table[c] for c in ("datetime", "start_datetime") if c in names]
    ends = [table[c] for c in ("datetime", "end_datetime") if c in names]
    start = min((v for v in (pc.min(c).as_py() for c in starts) if v is not None), default=None)
    end = max((v for v in (pc.max(c).as_py() for c in ends) if v is not None), default=None)
    return {
        "spatial": {"bbox": [[west, pc.min(ymin).as_py(), east, pc.max(ymax).as_py()]]},
        "temporal": {"interval": [[_iso(start), _iso(end)]]},
    }


def _iso(t: Any) -> str | None:
    return None if t is None else pystac.utils.datetime_to_str(t)


def extent_of(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The extent covering ``items`` (dicts); see :func:`extent_of_table`."""
    return extent_of_table(items_to_table(items))


def export_static(store: CatalogStore, fs: fsspec.AbstractFileSystem, out: str) -> int:
    """Write the whole catalog as a static browsable tree under ``out`` (relative links; asset hrefs are
    made absolute against the lake so the copy works anywhere). Returns the number of items written."""
    out = out.rstrip("/")
    target = CatalogStore(fs, out, title=store.title, browsable=True)
    n = 0
    for cid in store.collection_ids():
        doc = store.read_collection_dict(cid)
        if doc is None:
            continue
        items = [absolute_hrefs(d, store, cid) for d in store.read_item_dicts(cid)]
        for d in items:
            put_atomic(fs, target._item_path(cid, d["id"]), _dump(d))
        target._write_collection(absolute_collection_hrefs(doc, store, cid), items_to_table(items))
        n += len(items)
    put_atomic(fs, posixpath.join(out, "catalog.json"), _dump(target.root_dict()))
    return n


def _lake_url(store: CatalogStore, path: str) -> str:
    protocol = store.fs.protocol if isinstance(store.fs.protocol, str) else store.fs.protocol[0]
    norm = posixpath.normpath(path)
    return f"file://{norm}" if protocol in {"file", "local"} else f"{protocol}://{norm}"


def absolute_hrefs(item: dict[str, Any], store: CatalogStore, cid: str) -> dict[str, Any]:
    """A copy of ``item`` whose relative asset hrefs are absolute URLs into the lake (``file://`` or ``s3://``),
    so a client resolving them against an API's URL still reaches the data."""
    base = posixpath.join(store.root, cid, "items")
    out = dict(item)
    out["assets"] = {
        k: {**a, "href": _resolve(a["href"], base, store)} for k, a in item.get("assets", {}).items()
    }
    return out


def absolute_collection_hrefs(doc: dict[str, Any], store: CatalogStore, cid: str) -> dict[str, Any]:
    base = posixpath.join(store.root, cid)
    out = dict(doc)
    if "assets" in doc:
        out["assets"] = {k: {**a, "href": _resolve(a["href"], base, store)} for k, a in doc["assets"].items()}
    return out


def _resolve(href: str, base: str, store: CatalogStore) -> str:
    if "://" in href or href.startswith("/"):
        return href
    return _lake_url(store, posixpath.join(base, href))
