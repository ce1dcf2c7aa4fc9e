"""CQL2-JSON filters evaluated column-wise over one collection's items (a boolean mask per expression).

Covers comparisons, ``like``, ``in``, ``between``, ``isNull``, ``and``/``or``/``not``, the spatial ``s_*``
operators and the temporal ``t_*`` operators on item intervals. Anything else raises
:class:`UnsupportedFilter`, and the caller falls back to ``cql2``'s own per-item matcher, so every valid
CQL2 filter is answered. Semantics follow pgstac: a missing property never matches.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import shapely

if TYPE_CHECKING:
    from catalog.api.engine import CollectionIndex

Mask = npt.NDArray[np.bool_]


class UnsupportedFilter(Exception):
    """The expression uses an operator this evaluator does not vectorise."""


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
_SPATIAL: dict[str, Callable[[Any, Any], Any]] = {
    "s_intersects": shapely.intersects,
    "s_within": shapely.within,
    "s_contains": shapely.contains,
    "s_disjoint": shapely.disjoint,
    "s_equals": shapely.equals,
    "s_touches": shapely.touches,
    "s_overlaps": shapely.overlaps,
    "s_crosses": shapely.crosses,
}
_TIME_FIELDS = {"datetime", "start_datetime", "end_datetime"}


def evaluate(node: Any, index: CollectionIndex) -> Mask:
    """Rows of ``index`` for which the CQL2-JSON expression ``node`` is true."""
    n = index.size
    if isinstance(node, bool):
        return np.full(n, node)
    if not isinstance(node, dict) or "op" not in node:
        raise UnsupportedFilter(f"not a boolean expression: {node!r}")
    op, args = str(node["op"]).lower(), list(node.get("args", []))
    if op == "and":
        out = np.ones(n, bool)
        for a in args:
            out &= evaluate(a, index)
        return out
    if op == "or":
        out = np.zeros(n, bool)
        for a in args:
            out |= evaluate(a, index)
        return out
    if op == "not":
        return ~evaluate(args[0], index)
    if op in _COMPARE:
        return _compare(op, args, index)
    if op == "like":
        values, present = _operand(args[0], index)
        pattern = _like_regex(args[1])
        hits: Mask = np.array([isinstance(v, str) and bool(pattern.fullmatch(v)) for v in values], bool)
        return present & hits
    if op == "in":
        values, present = _operand(args[0], index)
        options = {_literal(v) for v in args[1]}
        found: Mask = np.array([_hashable(v) in options for v in values], bool)
        return present & found
    if op == "between":
        lo, hi = _literal(args[1]), _literal(args[2])
        return _compare(">=", [args[0], lo], index) & _compare("<=", [args[0], hi], index)
    if op == "isnull":
        _, present = _operand(args[0], index)
        return ~present
    if op in _SPATIAL:
        return _spatial(op, args, index)
    if op.startswith("t_") or op == "anyinteracts":
        return _temporal(op, args, index)
    raise UnsupportedFilter(op)


def _compare(op: str, args: list[Any], index: CollectionIndex) -> Mask:
    left, right = args
    if isinstance(left, dict) and "property" in left:
        values, present = _operand(left, index)
        lit = _literal(right)
        flip = False
    elif isinstance(right, dict) and "property" in right:
        values, present = _operand(right, index)
        lit = _literal(left)
        flip = True
    else:
        raise UnsupportedFilter("a comparison needs a property on one side")
    if isinstance(lit, dict | list):
        raise UnsupportedFilter("comparison with a non-scalar")
    fn = _COMPARE[op]
    out = np.zeros(index.size, bool)
    for i in np.flatnonzero(present):
        v = values[i]
        if not _comparable(v, lit):
            continue
        out[i] = bool(fn(lit, v) if flip else fn(v, lit))
    return out


def _comparable(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return True
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        return True
    return isinstance(a, str) and isinstance(b, str)


def _operand(arg: Any, index: CollectionIndex) -> tuple[npt.NDArray[Any], Mask]:
    if not (isinstance(arg, dict) and "property" in arg):
        raise UnsupportedFilter("expected a property reference")
    name = str(arg["property"])
    if name.startswith("properties."):
        name = name[len("properties.") :]
    values = index.values(name)
    present = np.array([v is not None for v in values], bool)
    return values, present


def _literal(v: Any) -> Any:
    if isinstance(v, dict):
        if "timestamp" in v:
            return _parse_instant(v["timestamp"])
        if "date" in v:
            return _parse_instant(v["date"])
        if "property" in v or "op" in v:
            raise UnsupportedFilter("expressions as literals")
    return v


def _hashable(v: Any) -> Any:
    return v if not isinstance(v, dict | list) else repr(v)


def _parse_instant(text: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _like_regex(pattern: Any) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise UnsupportedFilter("like needs a string pattern")
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _spatial(op: str, args: list[Any], index: CollectionIndex) -> Mask:
    geom_arg, other = args
    if not (isinstance(geom_arg, dict) and geom_arg.get("property") == "geometry"):
        geom_arg, other = other, geom_arg
        if op in {"s_within", "s_contains"}:
            op = "s_contains" if op == "s_within" else "s_within"
    if not (isinstance(geom_arg, dict) and geom_arg.get("property") == "geometry"):
        raise UnsupportedFilter("spatial operators need the geometry property")
    if isinstance(other, dict) and "bbox" in other:
        b = other["bbox"]
        w, s, e, n = (b[0], b[1], b[2], b[3]) if len(b) == 4 else (b[0], b[1], b[3], b[4])
        shape = shapely.box(w, s, e, n)
    else:
        shape = shapely.geometry.shape(other)
    return index.spatial(shape, _SPATIAL[op], prefilter=op not in {"s_disjoint"})


def _temporal(op: str, args: list[Any], index: CollectionIndex) -> Mask:
    out: Mask = _temporal_any(op, args, index)
    return out


def _temporal_any(op: str, args: list[Any], index: CollectionIndex) -> Any:
    prop, lit = args
    if not (isinstance(prop, dict) and prop.get("property") in _TIME_FIELDS):
        raise UnsupportedFilter("temporal operators on item datetimes only")
    if isinstance(lit, dict) and "interval" in lit:
        a, b = lit["interval"]
        lo = None if a in ("..", None) else _parse_instant(a)
        hi = None if b in ("..", None) else _parse_instant(b)
    else:
        lo = hi = _literal(lit)
    start, end = index.interval(str(prop["property"]))
    lo_ns = _ns(lo) if lo is not None else np.iinfo(np.int64).min
    hi_ns = _ns(hi) if hi is not None else np.iinfo(np.int64).max
    if op in {"t_intersects", "anyinteracts"}:
        return (start <= hi_ns) & (end >= lo_ns)
    if op == "t_before":
        return end < lo_ns
    if op == "t_after":
        return start > hi_ns
    if op == "t_during":
        return (start > lo_ns) & (end < hi_ns)
    if op == "t_equals":
        return (start == lo_ns) & (end == hi_ns)
    if op == "t_disjoint":
        return (end < lo_ns) | (start > hi_ns)
    raise UnsupportedFilter(op)


def _ns(t: Any) -> int:
    if not isinstance(t, dt.datetime):
        raise UnsupportedFilter("temporal literal must be a timestamp, date or interval")
    return int(t.timestamp() * 1_000_000) * 1000
