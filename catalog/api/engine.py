"""The embedded search engine: the lake's catalog store held in memory as Arrow + numpy columns.

It answers the same calls as pgstac's SQL API (``search``, ``collection_search``, ``get_collection``,
``get_queryables``) with pgstac's semantics: exact geometry intersection for ``bbox``/``intersects``, item
intervals for ``datetime``, CQL2 filters (vectorised, see :mod:`catalog.api.cql`), ``query``, ``sortby``
with ``collection``/``id`` tie-breakers in the first direction, ``fields`` include/exclude, and paging
tokens. Collections are reloaded when their ``items.parquet`` changes.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import OrderedDict
from typing import Any

import cql2
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from catalog.api.cql import Mask, UnsupportedFilter, evaluate
from catalog.store import (
    CatalogStore,
    _json_columns,
    absolute_collection_hrefs,
    absolute_hrefs,
    table_to_items,
)

DEFAULT_LIMIT = 10
_NS_MIN, _NS_MAX = np.iinfo(np.int64).min, np.iinfo(np.int64).max
_QUERY_OPS = {"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


class SearchError(ValueError):
    """A search the engine cannot answer as asked (HTTP 400)."""


def _ns_column(table: pa.Table, name: str) -> npt.NDArray[np.int64] | None:
    if name not in table.schema.names:
        return None
    col = pc.cast(table[name], pa.timestamp("ns", tz="UTC"))
    arr = pc.fill_null(pc.cast(col, pa.int64()), _NS_MIN).to_numpy(zero_copy_only=False)
    return np.asarray(arr, dtype=np.int64)


class CollectionIndex:
    """One collection's items: the Arrow table plus the columns every search needs."""

    def __init__(self, store: CatalogStore, collection: dict[str, Any], table: pa.Table) -> None:
        self.store = store
        self.cid: str = collection["id"]
        self.collection = collection
        self.table = table
        self.size = table.num_rows
        self.ids = np.array(table["id"].to_pylist() if self.size else [], dtype=object)
        if self.size:
            bbox = table["bbox"]
            self.xmin, self.ymin, self.xmax, self.ymax = (
                np.asarray(pc.struct_field(bbox, k).to_numpy(zero_copy_only=False), float)
                for k in ("xmin", "ymin", "xmax", "ymax")
            )
        else:
            self.xmin = self.ymin = self.xmax = self.ymax = np.zeros(0)
        dtm = _ns_column(table, "datetime")
        start = _ns_column(table, "start_datetime")
        end = _ns_column(table, "end_datetime")
        blank = np.full(self.size, _NS_MIN, np.int64)
        dtm = blank if dtm is None else dtm
        # pgstac: datetime = coalesce(datetime, start_datetime); end_datetime = coalesce(end_datetime, datetime)
        self.start = np.where(dtm != _NS_MIN, dtm, blank if start is None else start)
        self.end = np.where(
            (end if end is not None else blank) != _NS_MIN, end if end is not None else blank, dtm
        )
        self._values: dict[str, npt.NDArray[Any]] = {}
        self._geoms: npt.NDArray[Any] | None = None
        self._json = set(_json_columns(table))

    def values(self, name: str) -> npt.NDArray[Any]:
        """Python values of a property (``None`` where absent), cached."""
        if name not in self._values:
            if name == "id":
                out = self.ids
            elif name == "collection":
                out = np.full(self.size, self.cid, dtype=object)
            elif name == "datetime":
                out = np.array([_from_ns(v) for v in self.start], dtype=object)
            elif name in self.table.schema.names and name not in {"geometry", "bbox", "links", "assets"}:
                raw = self.table[name].to_pylist()
                if name in self._json:
                    raw = [None if v is None else json.loads(v) for v in raw]
                out = np.empty(self.size, dtype=object)
                out[:] = raw
            else:
                out = np.full(self.size, None, dtype=object)
            self._values[name] = out
        return self._values[name]

    def interval(self, name: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """The time span CQL2 temporal operators see for a property. As in pgstac, the ``datetime`` property is
        one instant, ``coalesce(datetime, start_datetime)``; only the ``datetime`` search parameter overlaps
        an item's whole [start, end] range."""
        if name in ("datetime", "start_datetime"):
            return self.start, self.start
        return self.end, self.end

    def geoms(self) -> npt.NDArray[Any]:
        if self._geoms is None:
            self._geoms = shapely.from_wkb(np.asarray(self.table["geometry"].to_pylist(), dtype=object))
        return self._geoms

    def spatial(self, shape: Any, predicate: Any, *, prefilter: bool = True) -> Mask:
        """Rows whose geometry satisfies ``predicate(geometry, shape)``; a bbox test narrows the candidates."""
        if self.size == 0:
            return np.zeros(0, bool)
        if prefilter:
            w, s, e, n = shape.bounds
            crosses = self.xmin > self.xmax
            lon = crosses | ((self.xmin <= e) & (self.xmax >= w))
            cand = np.flatnonzero(lon & (self.ymin <= n) & (self.ymax >= s))
        else:
            cand = np.arange(self.size)
        out = np.zeros(self.size, bool)
        if len(cand):
            out[cand] = predicate(self.geoms()[cand], shape)
        return out

    def items(self, rows: npt.NDArray[np.int64]) -> list[dict[str, Any]]:
        docs = table_to_items(self.table.take(pa.array(rows, pa.int64())))
        return [absolute_hrefs(d, self.store, self.cid) for d in docs]


def _from_ns(v: int) -> dt.datetime | None:
    if v == _NS_MIN:
        return None
    return dt.datetime.fromtimestamp(v / 1e9, dt.UTC)


def _parse_instant(text: str) -> int:
    try:
        t = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise SearchError(f"invalid datetime {text!r}: use RFC 3339, e.g. 2020-03-02T00:00:00Z") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1_000_000) * 1000


def parse_datetime_range(text: str) -> tuple[int, int]:
    """``a``, ``a/b``, ``a/..``, ``../b`` → (start ns, end ns)."""
    parts = text.split("/")
    if len(parts) == 1:
        t = _parse_instant(parts[0])
        return t, t
    if len(parts) != 2:
        raise SearchError(f"invalid datetime {text!r}: give an instant or an interval start/end")
    lo = _NS_MIN if parts[0] in ("", "..") else _parse_instant(parts[0])
    hi = _NS_MAX if parts[1] in ("", "..") else _parse_instant(parts[1])
    if lo > hi:
        raise SearchError(f"invalid datetime interval {text!r}: the start is after the end")
    return lo, hi


def query_to_cql2(query: dict[str, Any]) -> dict[str, Any]:
    """The query extension's ``{"prop": {"op": value}}`` as a CQL2-JSON ``and``."""
    args: list[dict[str, Any]] = []
    for prop, ops in query.items():
        if not isinstance(ops, dict):
            raise SearchError(f"query for {prop!r} must be an object like {{'gte': 1}}")
        for op, value in ops.items():
            ref = {"property": prop}
            if op in _QUERY_OPS:
                args.append({"op": _QUERY_OPS[op], "args": [ref, value]})
            elif op == "in":
                args.append({"op": "in", "args": [ref, list(value)]})
            elif op in {"startsWith", "endsWith", "contains"}:
                v = str(value).replace("%", "\\%").replace("_", "\\_")
                pat = {"startsWith": f"{v}%", "endsWith": f"%{v}", "contains": f"%{v}%"}[op]
                args.append({"op": "like", "args": [ref, pat]})
            else:
                raise SearchError(
                    f"unknown query operator {op!r}: use eq, neq, lt, lte, gt, gte, in, startsWith"
                )
    return {"op": "and", "args": args} if len(args) != 1 else args[0]


def apply_fields(doc: dict[str, Any], include: list[str], exclude: list[str]) -> dict[str, Any]:
    """pgstac's ``jsonb_fields``: keep the included dotted paths (plus id and collection), then drop excluded."""
    if include:
        out: dict[str, Any] = {}
        for path in [*include, "id", "collection"]:
            keys = path.split(".")
            src: Any = doc
            for k in keys:
                if not isinstance(src, dict) or k not in src:
                    break
                src = src[k]
            else:
                dst = out
                for k in keys[:-1]:
                    dst = dst.setdefault(k, {})
                dst[keys[-1]] = src
        doc = out
    for path in exclude:
        keys = path.split(".")
        node: Any = doc
        for k in keys[:-1]:
            node = node.get(k) if isinstance(node, dict) else None
            if node is None:
                break
        if isinstance(node, dict):
            node.pop(keys[-1], None)
    return doc


class StoreCatalog:
    """The lake's catalog store as a search engine; reloads a collection when its files change."""

    def __init__(self, store: CatalogStore, *, check_every: float = 1.0, cache_size: int = 16) -> None:
        self.store = store
        self.check_every = check_every
        self._lock = threading.Lock()
        self._indexes: dict[str, CollectionIndex] = {}
        self._stamps: dict[str, Any] = {}
        self._checked = 0.0
        self._orders: OrderedDict[str, npt.NDArray[Any]] = OrderedDict()
        self._cache_size = cache_size

    # loading
    def _stamp(self, cid: str) -> Any:
        stamps: list[Any] = []
        for path in (self.store.items_path(cid), self.store._collection_path(cid)):
            try:
                info = self.store.fs.info(path)
            except FileNotFoundError:
                stamps.append(None)
                continue
            stamps.append(
                (info.get("size"), info.get("mtime") or info.get("LastModified") or info.get("ETag"))
            )
        return tuple(stamps)

    def indexes(self) -> dict[str, CollectionIndex]:
        with self._lock:
            now = time.monotonic()
            if now - self._checked >= self.check_every or not self._indexes:
                self._checked = now
                fresh: dict[str, CollectionIndex] = {}
                for cid in self.store.collection_ids():
                    stamp = self._stamp(cid)
                    if cid in self._indexes and self._stamps.get(cid) == stamp:
                        fresh[cid] = self._indexes[cid]
                        continue
                    doc = self.store.read_collection_dict(cid)
                    if doc is None:
                        continue
                    fresh[cid] = CollectionIndex(self.store, doc, self.store.read_table(cid))
                    self._stamps[cid] = stamp
                if fresh.keys() != self._indexes.keys() or any(
                    fresh[c] is not self._indexes.get(c) for c in fresh
                ):
                    self._orders.clear()
                self._indexes = fresh
            return self._indexes

    # collections
    def get_collection(self, cid: str) -> dict[str, Any] | None:
        index = self.indexes().get(cid)
        if index is None:
            return None
        doc = absolute_collection_hrefs(index.collection, self.store, cid)
        doc["links"] = [ln for ln in doc.get("links", []) if ln.get("rel") not in {"item", "root", "parent"}]
        return doc

    def collection_search(self, body: dict[str, Any]) -> dict[str, Any]:
        docs = [d for cid in sorted(self.indexes()) if (d := self.get_collection(cid)) is not None]
        if q := body.get("q"):
            docs = [d for d in docs if _free_text_match(d, q)]
        if bbox := body.get("bbox"):
            docs = [d for d in docs if _extent_hits_bbox(d, bbox)]
        if text := body.get("datetime"):
            lo, hi = parse_datetime_range(text)
            docs = [d for d in docs if _extent_hits_time(d, lo, hi)]
        docs = _sort_collections(docs, body.get("sortby"))
        limit = int(body.get("limit") or DEFAULT_LIMIT)
        offset = int(body.get("offset") or 0)
        page = docs[offset : offset + limit]
        links = []
        if offset > 0:
            links.append(_offset_link("prev", max(min(offset, len(docs)) - max(limit, 1), 0)))
        if limit > 0 and offset + limit < len(docs):
            links.append(_offset_link("next", offset + limit))
        fields = body.get("fields") or {}
        page = [apply_fields(d, fields.get("include") or [], fields.get("exclude") or []) for d in page]
        return {"collections": page, "numberMatched": len(docs), "numberReturned": len(page), "links": links}

    def queryables(self, cid: str | None) -> dict[str, Any] | None:
        indexes = self.indexes()
        if cid is not None and cid not in indexes:
            return None
        chosen = [indexes[cid]] if cid else list(indexes.values())
        props: dict[str, Any] = {
            "id": {"title": "Item ID", "type": "string"},
            "collection": {"title": "Collection", "type": "string"},
            "datetime": {"title": "Acquired", "type": "string", "format": "date-time"},
            "geometry": {"title": "Footprint", "$ref": "https://geojson.org/schema/Feature.json"},
        }
        for index in chosen:
            for f in index.table.schema:
                if f.name in props or f.name in {
                    "type",
                    "stac_version",
                    "stac_extensions",
                    "bbox",
                    "links",
                    "assets",
                }:
                    continue
                props[f.name] = _json_type(f.type)
        return {
            "$schema": "https://json-schema.org/draft/2019-09/schema",
            "type": "object",
            "title": "Queryables",
            "properties": props,
            "additionalProperties": True,
        }

    # items
    def search(self, body: dict[str, Any]) -> dict[str, Any]:
        limit = int(body.get("limit") or DEFAULT_LIMIT)
        token = body.get("token")
        key = json.dumps(
            {k: v for k, v in body.items() if k not in {"token", "limit", "fields", "conf"}},
            sort_keys=True,
            default=str,
        )
        order = self._orders.get(key)
        if order is None:
            order = self._matches(body)
            self._orders[key] = order
            while len(self._orders) > self._cache_size:
                self._orders.popitem(last=False)
        else:
            self._orders.move_to_end(key)
        offset = _token_offset(token, limit)
        page = order[offset : offset + limit]
        features = self._materialise(page)
        fields = body.get("fields") or {}
        include, exclude = list(fields.get("include") or []), list(fields.get("exclude") or [])
        if include or exclude:
            features = [apply_fields(f, include, exclude) for f in features]
        links = []
        if offset + limit < len(order):
            links.append(
                {
                    "rel": "next",
                    "type": "application/geo+json",
                    "method": "GET",
                    "href": f"./search?token=next:{offset + limit}",
                }
            )
        if offset > 0:
            links.append(
                {
                    "rel": "prev",
                    "type": "application/geo+json",
                    "method": "GET",
                    "href": f"./search?token=prev:{offset}",
                }
            )
        return {
            "type": "FeatureCollection",
            "features": features,
            "links": links,
            "numberMatched": len(order),
            "numberReturned": len(features),
        }

    def _materialise(self, page: npt.NDArray[Any]) -> list[dict[str, Any]]:
        indexes = self.indexes()
        out: list[dict[str, Any] | None] = [None] * len(page)
        by_cid: dict[str, list[tuple[int, int]]] = {}
        for pos, (cid, row) in enumerate(page):
            by_cid.setdefault(cid, []).append((pos, row))
        for cid, pairs in by_cid.items():
            docs = indexes[cid].items(np.array([r for _, r in pairs], np.int64))
            for (pos, _), doc in zip(pairs, docs, strict=True):
                out[pos] = doc
        return [d for d in out if d is not None]

    def _matches(self, body: dict[str, Any]) -> npt.NDArray[Any]:
        """(collection, row) pairs matching ``body``, in the requested order."""
        indexes = self.indexes()
        wanted = body.get("collections")
        chosen = [indexes[c] for c in (wanted or sorted(indexes)) if c in indexes]
        filt = body.get("filter")
        if body.get("query"):
            q = query_to_cql2(body["query"])
            filt = q if filt is None else {"op": "and", "args": [filt, q]}
        sortby = _sortby(body.get("sortby"))
        hits: list[tuple[CollectionIndex, npt.NDArray[np.int64]]] = []
        for index in chosen:
            mask = self._mask(index, body, filt)
            hits.append((index, np.flatnonzero(mask)))
        total = sum(len(r) for _, r in hits)
        pairs = np.empty(total, dtype=object)
        keys: list[list[Any]] = [[] for _ in sortby]
        at = 0
        for index, rows in hits:
            for i, row in enumerate(rows):
                pairs[at + i] = (index.cid, int(row))
            for k, (field, _) in enumerate(sortby):
                keys[k].extend(_sort_values(index, field, rows))
            at += len(rows)
        if total == 0:
            return pairs
        ranks = [
            _rank(np.array(vals, dtype=object), desc) for vals, (_, desc) in zip(keys, sortby, strict=True)
        ]
        order = np.lexsort(list(reversed(ranks)))
        return pairs[order]

    def _mask(self, index: CollectionIndex, body: dict[str, Any], filt: Any) -> Mask:
        mask = np.ones(index.size, bool)
        if ids := body.get("ids"):
            mask &= np.isin(index.ids, list(ids))
        if bbox := body.get("bbox"):
            b = list(bbox)
            w, s, e, n = (b[0], b[1], b[2], b[3]) if len(b) == 4 else (b[0], b[1], b[3], b[4])
            mask &= index.spatial(shapely.box(w, s, e, n), shapely.intersects)
        if geom := body.get("intersects"):
            mask &= index.spatial(shapely.geometry.shape(geom), shapely.intersects)
        if text := body.get("datetime"):
            lo, hi = parse_datetime_range(str(text))
            mask &= (index.start <= hi) & (index.end >= lo)
        if filt is not None and mask.any():
            try:
                mask &= evaluate(filt, index)
            except UnsupportedFilter:
                try:
                    expr = cql2.Expr(filt)
                    rows = np.flatnonzero(mask)
                    for row, doc in zip(rows, index.items(rows), strict=True):
                        mask[row] = bool(expr.matches(doc))
                except Exception as exc:  # cql2 raises plain exceptions for expressions it cannot evaluate
                    raise SearchError(f"cannot evaluate the filter: {exc}") from None
        return mask


def _sort_collections(docs: list[dict[str, Any]], raw: Any) -> list[dict[str, Any]]:
    """pgstac's order: ``sortby`` (default datetime, i.e. the extent's start, descending), then id in the
    first direction; nulls last ascending, first descending."""
    keys = [(f, d) for f, d in _sortby(raw) if f != "collection"]

    def value(doc: dict[str, Any], field: str) -> Any:
        if field == "datetime":
            start = doc["extent"]["temporal"]["interval"][0][0]
            return None if start is None else _parse_instant(start)
        return doc.get(field)

    if not docs:
        return docs
    ranks = [_rank(np.array([value(d, f) for d in docs], dtype=object), desc) for f, desc in keys]
    order = np.lexsort(list(reversed(ranks)))
    return [docs[i] for i in order]


def _sortby(raw: Any) -> list[tuple[str, bool]]:
    sort = list(raw) if raw else [{"field": "datetime", "direction": "desc"}]
    out: list[tuple[str, bool]] = []
    for s in sort:
        field = str(s.get("field", "")).strip()
        if field.startswith("properties."):
            field = field[len("properties.") :]
        direction = str(s.get("direction") or "asc").lower()
        if not field or direction not in {"asc", "desc", "ascending", "descending"}:
            raise SearchError(f"invalid sortby {s!r}: give a field and direction asc or desc")
        out.append((field, direction.startswith("desc")))
    first = out[0][1]
    for key in ("collection", "id"):
        if key not in {f for f, _ in out}:
            out.append((key, first))
    return out


def _sort_values(index: CollectionIndex, field: str, rows: npt.NDArray[np.int64]) -> list[Any]:
    if field == "datetime":
        return [None if v == _NS_MIN else int(v) for v in index.start[rows]]
    if field == "end_datetime":
        return [None if v == _NS_MIN else int(v) for v in index.end[rows]]
    return list(index.values(field)[rows])


def _rank(values: npt.NDArray[Any], desc: bool) -> npt.NDArray[np.int64]:
    """Integer ranks for sorting; nulls last ascending and first descending (PostgreSQL's default)."""
    present = np.array([v is not None for v in values], bool)
    ranks = np.zeros(len(values), np.int64)
    if present.any():
        vals = values[present]
        try:
            _, inv = np.unique(vals, return_inverse=True)
        except TypeError:
            _, inv = np.unique(np.array([f"{type(v).__name__}:{v}" for v in vals]), return_inverse=True)
        ranks[present] = inv
        ranks[~present] = int(inv.max()) + 1
    return -ranks if desc else ranks


def _token_offset(token: Any, limit: int) -> int:
    if not token:
        return 0
    text = str(token)
    direction, _, number = text.partition(":")
    if direction not in {"next", "prev"} or not number.isdigit():
        raise SearchError(f"invalid paging token {text!r}: use the token from a next or prev link")
    offset = int(number)
    return offset if direction == "next" else max(offset - limit, 0)


def _offset_link(rel: str, offset: int) -> dict[str, Any]:
    return {
        "rel": rel,
        "type": "application/json",
        "method": "GET",
        "href": "./collections",
        "body": {"offset": offset},
        "merge": True,
    }


def _free_text_match(doc: dict[str, Any], q: Any) -> bool:
    terms = q if isinstance(q, list) else [t for part in str(q).split(",") for t in part.split(" OR ")]
    text = " ".join(
        [
            str(doc.get("title", "")),
            str(doc.get("description", "")),
            " ".join(map(str, doc.get("keywords", []))),
        ]
    ).lower()
    words = set(text.replace("(", " ").replace(")", " ").replace(",", " ").replace(".", " ").split())
    return any(all(w in words for w in t.strip().strip('"').lower().split()) for t in terms if t.strip())


def _extent_hits_bbox(doc: dict[str, Any], bbox: list[float]) -> bool:
    b = list(bbox)
    w, s, e, n = (b[0], b[1], b[2], b[3]) if len(b) == 4 else (b[0], b[1], b[3], b[4])
    cw, cs, ce, cn = doc["extent"]["spatial"]["bbox"][0][:4]
    return bool(cw <= e and ce >= w and cs <= n and cn >= s)


def _extent_hits_time(doc: dict[str, Any], lo: int, hi: int) -> bool:
    a, b = doc["extent"]["temporal"]["interval"][0]
    start = _NS_MIN if a is None else _parse_instant(a)
    end = _NS_MAX if b is None else _parse_instant(b)
    return start <= hi and end >= lo


def _json_type(t: pa.DataType) -> dict[str, Any]:
    if pa.types.is_integer(t):
        return {"type": "integer"}
    if pa.types.is_floating(t):
        return {"type": "number"}
    if pa.types.is_boolean(t):
        return {"type": "boolean"}
    if pa.types.is_timestamp(t):
        return {"type": "string", "format": "date-time"}
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return {"type": "string"}
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return {"type": "array"}
    return {"type": "object"}
