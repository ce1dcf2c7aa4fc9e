"""Input checks in front of both backends: bad search input becomes HTTP 400 with a message, never a 500.

An ASGI middleware reads the query string of ``GET /search`` and ``GET /collections/{id}/items`` (and the
JSON body of ``POST /search``), checks bbox, datetime, intersects, filter, sortby, fields, limit, ids,
collections and token, normalises them once (3-D bboxes become 2-D, an antimeridian-crossing bbox becomes a
two-box ``intersects``, ``limit`` is capped, a ``query`` property without operators is dropped), and passes
the normalised request on.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

import cql2
import shapely
import shapely.geometry

from catalog.api.engine import SearchError, parse_datetime_range

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_LIMIT = 1000
_ITEMS_PATH = re.compile(r"^/collections/[^/]+/items/?$")
_SORT_FIELD = re.compile(r"^[+-]?[A-Za-z0-9_:.\-]+$")
_GEOMETRY_TYPES = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}


class BadInput(ValueError):
    """A search parameter that cannot be answered; the message says how to fix it."""


def check_bbox(raw: Any) -> list[float]:
    """Four (or six, 3-D) finite numbers with south ≤ north inside ±90 and longitudes inside ±180; returns
    the 2-D bbox (west may exceed east across the antimeridian)."""
    if isinstance(raw, str):
        parts = [p for p in raw.split(",")]
        try:
            nums = [float(p) for p in parts]
        except ValueError:
            raise BadInput(
                f"invalid bbox {raw!r}: give 4 numbers west,south,east,north (or 6 with heights)"
            ) from None
    elif isinstance(raw, list | tuple):
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in raw):
            raise BadInput(
                f"invalid bbox {raw!r}: give 4 numbers [west, south, east, north] (or 6 with heights)"
            )
        nums = [float(v) for v in raw]
    else:
        raise BadInput(f"invalid bbox {raw!r}: give 4 numbers [west, south, east, north]")
    if len(nums) == 6:
        nums = [nums[0], nums[1], nums[3], nums[4]]  # drop the heights: footprints are 2-D
    if len(nums) != 4:
        raise BadInput(f"invalid bbox {raw!r}: need 4 numbers (or 6 for 3-D), got {len(nums)}")
    if not all(math.isfinite(v) for v in nums):
        raise BadInput(f"invalid bbox {raw!r}: numbers must be finite")
    w, s, e, n = nums
    if not (-90 <= s <= n <= 90):
        raise BadInput(f"invalid bbox {raw!r}: south must not exceed north, both within ±90")
    if not (-180 <= w <= 180 and -180 <= e <= 180):
        raise BadInput(
            f"invalid bbox {raw!r}: longitudes must be within ±180 (west > east crosses the antimeridian)"
        )
    return nums


def bbox_to_intersects(b: list[float]) -> dict[str, Any] | None:
    """A bbox crossing the antimeridian (west > east) as a two-box MultiPolygon; ``None`` otherwise."""
    w, s, e, n = b
    if w <= e:
        return None
    shape: dict[str, Any] = shapely.geometry.mapping(
        shapely.MultiPolygon([shapely.box(w, s, 180.0, n), shapely.box(-180.0, s, e, n)])
    )
    return shape


def check_intersects(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise BadInput("invalid intersects: give a GeoJSON geometry object as JSON") from None
    if not isinstance(raw, dict) or not (
        (raw.get("type") in _GEOMETRY_TYPES and "coordinates" in raw)
        or (raw.get("type") == "GeometryCollection" and isinstance(raw.get("geometries"), list))
    ):
        raise BadInput(
            f"invalid intersects: a GeoJSON geometry with type one of {sorted(_GEOMETRY_TYPES)} "
            "or GeometryCollection"
        )
    try:
        geom = shapely.geometry.shape(raw)
        coords = shapely.get_coordinates(geom)
    except Exception as exc:
        raise BadInput(f"invalid intersects geometry: {exc}") from None
    if geom.is_empty or not (abs(coords[:, 0]) <= 180).all() or not (abs(coords[:, 1]) <= 90).all():
        raise BadInput("invalid intersects: coordinates must be lon within ±180, lat within ±90, not empty")
    if not geom.is_valid:
        raise BadInput(f"invalid intersects geometry: {shapely.is_valid_reason(geom)}")
    return dict(raw)


def check_datetime(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise BadInput("invalid datetime: give an RFC 3339 instant or interval start/end ('..' for open)")
    try:
        parse_datetime_range(raw)
    except SearchError as exc:
        raise BadInput(str(exc)) from None
    return raw


def check_filter(raw: Any, lang: str | None) -> dict[str, Any]:
    try:
        if lang == "cql2-text" or (
            lang is None and isinstance(raw, str) and not raw.lstrip().startswith("{")
        ):
            expr = cql2.parse_text(str(raw))
        else:
            expr = cql2.parse_json(raw if isinstance(raw, str) else json.dumps(raw))
        expr.validate()
        out: dict[str, Any] = expr.to_json()
    except Exception as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        raise BadInput(f'invalid filter ({detail[:300]}): write CQL2, e.g. "eolake:coverage > 0.5"') from None
    if not isinstance(out, dict):
        raise BadInput('invalid filter: it must be a boolean expression, e.g. "eolake:coverage > 0.5"')
    _check_ops(out)
    return out


_OPS = {
    "and", "or", "not", "=", "<>", "<", "<=", ">", ">=", "like", "between", "in", "isnull", "casei", "accenti",
    "+", "-", "*", "/", "%", "^", "div",
    "s_intersects", "s_equals", "s_disjoint", "s_touches", "s_within", "s_overlaps", "s_crosses", "s_contains",
    "t_after", "t_before", "t_contains", "t_disjoint", "t_during", "t_equals", "t_finishedby", "t_finishes",
    "t_intersects", "t_meets", "t_metby", "t_overlappedby", "t_overlaps", "t_startedby", "t_starts",
    "a_equals", "a_contains", "a_containedby", "a_overlaps", "anyinteracts",
}  # fmt: skip


def _check_ops(node: Any) -> None:
    if isinstance(node, dict):
        if "op" in node:
            if str(node["op"]).lower() not in _OPS:
                raise BadInput(
                    f"invalid filter: unknown operator {node['op']!r}; use CQL2 operators (=, <, like, …)"
                )
            for arg in node.get("args", []):
                _check_ops(arg)
    elif isinstance(node, list):
        for arg in node:
            _check_ops(arg)


def check_limit(raw: Any) -> int:
    try:
        limit = int(raw)
        if isinstance(raw, float | bool) or (isinstance(raw, str) and not raw.strip().lstrip("+").isdigit()):
            raise ValueError
    except (TypeError, ValueError):
        raise BadInput(f"invalid limit {raw!r}: a whole number from 1 to {MAX_LIMIT}") from None
    if limit < 1:
        raise BadInput(f"invalid limit {raw!r}: a whole number from 1 to {MAX_LIMIT}")
    return min(limit, MAX_LIMIT)


def check_sortby(raw: Any) -> Any:
    fields = raw.split(",") if isinstance(raw, str) else raw
    if isinstance(fields, list) and all(isinstance(f, str) for f in fields):
        for f in fields:
            if not _SORT_FIELD.match(f.strip()):
                raise BadInput(f"invalid sortby {raw!r}: give fields like -datetime,+id")
        return raw
    if isinstance(fields, list) and all(isinstance(f, dict) for f in fields):
        for f in fields:
            assert isinstance(f, dict)
            if not isinstance(f.get("field"), str) or not _SORT_FIELD.match(f["field"]):
                raise BadInput(f"invalid sortby {f!r}: each needs a field name")
            if str(f.get("direction", "asc")).lower() not in {"asc", "desc"}:
                raise BadInput(f"invalid sortby direction {f.get('direction')!r}: use asc or desc")
        return raw
    raise BadInput(f"invalid sortby {raw!r}: a list of {{'field': ..., 'direction': 'asc'|'desc'}}")


def check_fields(raw: Any) -> Any:
    if isinstance(raw, str):
        if any(not re.match(r"^[+-]?[A-Za-z0-9_:.\-]+$", f) for f in raw.split(",") if f):
            raise BadInput(f"invalid fields {raw!r}: give names like id,properties.datetime,-links")
        return raw
    if isinstance(raw, dict) and all(
        k in {"include", "exclude"} and isinstance(v, list) and all(isinstance(x, str) and x for x in v)
        for k, v in raw.items()
    ):
        return raw
    raise BadInput(f"invalid fields {raw!r}: {{'include': [...], 'exclude': [...]}}")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_strings(name: str, raw: Any) -> Any:
    """``ids``/``collections``: a comma-separated string or a list of strings, without control characters
    (PostgreSQL rejects NUL in text)."""
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise BadInput(f"invalid {name} {raw!r}: a list of strings")
    if any(_CONTROL.search(x) for x in items):
        raise BadInput(f"invalid {name} {raw!r}: ids hold no control characters")
    return raw


_QUERY_HELP = 'invalid query: give a JSON object like {"eolake:coverage": {"gt": 0.5}}'
_QUERY_OPS = {"eq", "neq", "lt", "lte", "gt", "gte", "in", "startsWith", "endsWith", "contains"}


def check_query(raw: Any, *, is_get: bool) -> Any:
    """The query extension's object (a JSON string in GET): property → {operator: value}. Returns it
    normalised (JSON text for GET), or None when it constrains nothing (pgstac fails on an empty one)."""
    q = raw
    if isinstance(q, str):
        try:
            q = json.loads(q)
        except json.JSONDecodeError:
            raise BadInput(_QUERY_HELP) from None
    if not isinstance(q, dict) or not all(isinstance(v, dict) for v in q.values()):
        raise BadInput(_QUERY_HELP)
    if any(not k.strip() for k in q):
        raise BadInput(
            'invalid query: property names must not be empty, e.g. {"eolake:coverage": {"gt": 0.5}}'
        )
    for ops in q.values():
        for op in ops:
            if op not in _QUERY_OPS:
                raise BadInput(
                    f"invalid query operator {op!r}: use eq, neq, lt, lte, gt, gte, in, startsWith"
                )
    q = {k: v for k, v in q.items() if v}  # a property without operators constrains nothing
    if not q:
        return None
    return json.dumps(q) if is_get else q


def check_token(raw: Any) -> Any:
    if not isinstance(raw, str) or not re.match(r"^(next|prev):[A-Za-z0-9:_\-]+$", raw):
        raise BadInput(f"invalid token {raw!r}: use the token from a next or prev link")
    return raw


def check_params(params: dict[str, Any], *, is_get: bool) -> dict[str, Any]:
    """Checked and normalised search parameters (GET query values or a POST body)."""
    out = dict(params)
    if "limit" in out:
        out["limit"] = check_limit(out["limit"])
    if "bbox" in out and out["bbox"] is not None:
        if "intersects" in out and out["intersects"] is not None:
            raise BadInput("give bbox or intersects, not both")
        if not is_get and not isinstance(out["bbox"], list):
            raise BadInput("invalid bbox: in a POST body give a JSON array [west, south, east, north]")
        b = check_bbox(out["bbox"])
        shape = bbox_to_intersects(b)
        if shape is not None:
            del out["bbox"]
            out["intersects"] = json.dumps(shape) if is_get else shape
        else:
            out["bbox"] = ",".join(repr(v) for v in b) if is_get else b
    if "intersects" in out and out["intersects"] is not None and "bbox" not in out:
        geom = check_intersects(out["intersects"])
        out["intersects"] = json.dumps(geom) if is_get else geom
    if out.get("datetime") is not None:
        check_datetime(out["datetime"])
    if out.get("filter") is not None:
        lang = out.get("filter-lang") or out.get("filter_lang")
        if lang not in (None, "cql2-text", "cql2-json"):
            raise BadInput(f"invalid filter-lang {lang!r}: use cql2-text or cql2-json")
        if not is_get and lang == "cql2-text":
            out["filter"] = check_filter(out["filter"], lang)
            out["filter-lang"] = "cql2-json"
            out.pop("filter_lang", None)
        else:
            check_filter(out["filter"], lang or ("cql2-text" if is_get else "cql2-json"))
    if out.get("sortby") is not None:
        check_sortby(out["sortby"])
    if out.get("fields") is not None:
        check_fields(out["fields"])
    if out.get("query") is not None:
        query = check_query(out["query"], is_get=is_get)
        if query is None:
            del out["query"]
        else:
            out["query"] = query
    for name in ("ids", "collections"):
        if out.get(name) is not None:
            check_strings(name, out[name])
    if out.get("token") is not None:
        check_token(out["token"])
    return out


def _error(status: int, code: str, message: str) -> tuple[int, bytes]:
    return status, json.dumps({"code": code, "description": message}).encode()


class InputGuard:
    """ASGI middleware applying :func:`check_params` to searches; answers 400 itself on bad input."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        try:
            if method == "GET" and (path.rstrip("/") == "/search" or _ITEMS_PATH.match(path)):
                pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
                params = dict(pairs)
                if len(params) != len(pairs):
                    raise BadInput("each search parameter may be given once")
                if path.rstrip("/") != "/search" and "intersects" in params:
                    raise BadInput("intersects is a /search parameter; use bbox on /collections/{id}/items")
                checked = check_params(params, is_get=True)
                scope = dict(scope)
                scope["query_string"] = urlencode(checked).encode()
            elif method == "POST" and path.rstrip("/") == "/search":
                body = await _read_body(receive)
                try:
                    doc = json.loads(body or b"{}")
                except (json.JSONDecodeError, UnicodeDecodeError):
                    raise BadInput("the request body is not JSON: send a search object") from None
                if not isinstance(doc, dict):
                    raise BadInput("the request body must be a JSON object of search parameters")
                checked = check_params(doc, is_get=False)
                new_body = json.dumps(checked).encode()
                scope = dict(scope)
                scope["headers"] = [
                    (k, v)
                    for k, v in scope["headers"]
                    if k.lower() not in {b"content-length", b"content-type"}
                ] + [(b"content-length", str(len(new_body)).encode()), (b"content-type", b"application/json")]
                receive = _replay(new_body)
            elif method == "GET" and path.rstrip("/") == "/collections":
                pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
                params = dict(pairs)
                if "limit" in params:
                    params["limit"] = check_limit(params["limit"])
                if "bbox" in params:
                    params["bbox"] = ",".join(repr(v) for v in check_bbox(params["bbox"]))
                if "datetime" in params:
                    check_datetime(params["datetime"])
                if "offset" in params and not params["offset"].isdigit():
                    raise BadInput(f"invalid offset {params['offset']!r}: a whole number ≥ 0")
                if "query" in params:
                    query = check_query(params["query"], is_get=True)
                    if query is None:
                        del params["query"]
                    else:
                        params["query"] = query
                scope = dict(scope)
                scope["query_string"] = urlencode(params).encode()
        except BadInput as exc:
            status, payload = _error(400, "BadRequest", str(exc))
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(payload)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return
        await self.app(scope, receive, send)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
