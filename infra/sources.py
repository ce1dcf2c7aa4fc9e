"""Find granules upstream, through the source adapters (:mod:`infra.adapters`).

A source is a name from the sources file (``deployments/sources.yaml``: CDSE, Planetary Computer, listings, ...)
or any static STAC catalog / STAC API given by URL or path. Either way the result is a list of
:class:`UpstreamGranule` — what the harvest needs to fetch and verify one file.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse, urlsplit, urlunsplit

import fsspec
import orjson

from transforms.errors import GranuleNameError, SourceError
from transforms.granules import GranuleName, parse_granule_name

if TYPE_CHECKING:
    from infra.adapters.base import SourceAdapter

DEFAULT_COLLECTION = "sentinel-5p-l2-netcdf"
NETCDF_TYPES = {"application/x-netcdf", "application/netcdf"}


@dataclass(frozen=True)
class UpstreamGranule:
    """One granule file offered by a source."""

    name: GranuleName
    href: str  # absolute URL or path of the file
    size: int | None  # bytes, when the source publishes it (file:size)
    sha256: str | None  # hex digest, when the source publishes a sha2-256 multihash (file:checksum)
    item: dict[str, Any]  # the upstream STAC item, for provenance
    md5: str | None = None  # hex digest, when the source publishes an MD5 multihash instead (CDSE)

    @cached_property
    def granule_id(self) -> str:
        """The file stem (``GranuleName.id`` formats it on every call; listings ask for it several times)."""
        return self.name.id


def redact_url(href: str) -> str:
    """``href`` without its query string and fragment: signed URLs (SAS tokens, presigned S3) carry
    credentials there, which must never reach logs, the ledger or the catalog."""
    parts = urlsplit(href)
    if not parts.scheme or not (parts.query or parts.fragment):
        return href
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _is_absolute(href: str) -> bool:
    return href.startswith("/") or "://" in href


def _is_url(s: str) -> bool:
    return urlparse(s).scheme in {"http", "https", "s3", "gs", "az", "file"}


class _GcPause:
    """Cyclic garbage collection off while any thread is inside: for decoding JSON, which makes no cycles (a
    10,000-item listing holds a few million objects, and every full collection triggered while decoding more of
    them traversed them all). Back on when the last thread leaves, unless it was off before."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._was_enabled = True

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._inside == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._inside += 1
        try:
            yield
        finally:
            with self._lock:
                self._inside -= 1
                if self._inside == 0 and self._was_enabled:
                    gc.enable()


paused_gc = _GcPause()


def decode_json(data: bytes | str) -> Any:
    """JSON text as Python objects (orjson, with the garbage collector paused)."""
    with paused_gc():
        return orjson.loads(data)


def read_json(href: str) -> dict[str, Any]:
    """A JSON document at a path or URL (local paths read directly, http(s) with ``requests``, anything else
    through fsspec); a clear SourceError when it cannot be read."""
    try:
        scheme = href.split("://", 1)[0] if "://" in href else ""
        if scheme in ("", "file"):
            with open(href.removeprefix("file://"), "rb") as f:
                data: bytes = f.read()
        elif scheme in ("http", "https"):
            import requests

            resp = requests.get(href, timeout=60)
            if resp.status_code == 404:
                raise FileNotFoundError(href)
            resp.raise_for_status()
            data = resp.content
        else:
            with fsspec.open(href, "rb") as f:
                data = f.read()
        doc = decode_json(data)
    except FileNotFoundError as exc:
        raise SourceError(
            f"source {redact_url(href)} not found: give a static catalog.json path/URL or a STAC API root"
        ) from exc
    except json.JSONDecodeError as exc:
        raise SourceError(
            f"source {redact_url(href)} is not JSON ({exc.msg}): is it a STAC catalog or API?"
        ) from exc
    except Exception as exc:  # network stacks raise many types
        raise SourceError(
            f"cannot read source {redact_url(href)}: {type(exc).__name__}: {_redact_text(str(exc), href)}"
        ) from exc
    if not isinstance(doc, dict):
        raise SourceError(
            f"source {redact_url(href)} is JSON but not an object: is it a STAC catalog or API?"
        )
    return doc


def _redact_text(message: str, href: str) -> str:
    """``message`` without ``href``'s query string (requests' errors quote the whole URL)."""
    return message.replace(href, redact_url(href)) if href != redact_url(href) else message


def resolve_source(source: str) -> tuple[str, dict[str, Any]]:
    """The root document's href and content. A directory means its ``catalog.json``."""
    href = source
    if not _is_url(source):
        href = os.path.abspath(os.path.expanduser(source))
        if os.path.isdir(href):
            href = os.path.join(href, "catalog.json")
        if not os.path.exists(href):
            raise SourceError(
                f"source {source} not found: give a static catalog.json path/URL or a STAC API root"
            )
    return href, read_json(href)


def is_stac_api(root: dict[str, Any]) -> bool:
    conforms = root.get("conformsTo") or []
    return any("item-search" in c for c in conforms)


def _pick_asset(item: Mapping[str, Any], product: str) -> dict[str, Any] | None:
    assets = item.get("assets") or {}
    if isinstance(assets.get(product), dict):
        return dict(assets[product])
    for asset in assets.values():
        if not isinstance(asset, dict):
            continue
        if asset.get("type") in NETCDF_TYPES or str(asset.get("href", "")).endswith(
            (".nc", ".nc4", ".h5", ".he5")
        ):
            return dict(asset)
    return None


def item_base(item: Mapping[str, Any]) -> str | None:
    """Where an item document lives (its ``self`` link), against which relative asset hrefs resolve."""
    for link in item.get("links") or []:
        if isinstance(link, dict) and link.get("rel") == "self" and link.get("href"):
            return str(link["href"])
    return None


def _basename(href: str) -> str:
    """The last segment of a URL's or path's path (no query or fragment): what ``urlparse`` + ``basename``
    give, without their cost (they ran for every item of a 10,000-item listing)."""
    href = href.split("#", 1)[0].split("?", 1)[0]
    if "://" in href:
        href = href.split("://", 1)[1].partition("/")[2]  # the netloc is not part of the path
    return href.rpartition("/")[2]


def _name_candidates(item: Mapping[str, Any], asset: Mapping[str, Any], href: str) -> Iterator[str]:
    """Where a granule's file name may be, most likely first (computed only as far as they are needed)."""
    yield _basename(href)
    alternates = asset.get("alternate") or {}
    for a in alternates.values():
        if isinstance(a, dict):
            yield _basename(str(a.get("href", "")))
    yield str(asset.get("title") or "")
    yield str(item.get("id") or "")


def _name_of(item: Mapping[str, Any], asset: Mapping[str, Any], href: str) -> GranuleName | None:
    """The granule's file name: from the href, else (download URLs like CDSE's ``…/Products(<uuid>)/$value``)
    from an alternate href, the asset title, or the item id."""
    for text in _name_candidates(item, asset, href):
        try:
            return parse_granule_name(text)
        except GranuleNameError:
            continue
    return None


def granule_from_item(
    item: Mapping[str, Any], product: str, *, base: str | None = None
) -> UpstreamGranule | None:
    """The granule of ``product`` a STAC item (its JSON, as a dict) offers — its netCDF asset — or None when it
    offers another product. A relative asset href resolves against ``base`` (where the item document lives),
    else the item's ``self`` link. Reads the dict as published: no pystac objects, no copies."""
    prop = (item.get("properties") or {}).get("s5p:product_name")
    if prop is not None and str(prop).lower() != product:
        return None
    asset = _pick_asset(item, product)
    if asset is None or not asset.get("href"):
        return None
    href = str(asset["href"])
    if not _is_absolute(href) and (where := base or item_base(item)) is not None:
        from pystac.utils import make_absolute_href  # relative hrefs: static catalogs only

        href = make_absolute_href(href, where)
    name = _name_of(item, asset, href)
    if name is None or name.product != product:
        return None
    sha256, md5 = published_digests(asset.get("file:checksum"))
    size = asset.get("file:size")
    doc = item if isinstance(item, dict) else dict(item)
    return UpstreamGranule(name, href, int(size) if size is not None else None, sha256, doc, md5)


def published_digests(checksum: object) -> tuple[str | None, str | None]:
    """(SHA-256, MD5) hex digests from a STAC ``file:checksum`` multihash: ``1220`` + 64 hex digits is
    sha2-256, ``d50110`` + 32 is MD5 (what CDSE publishes); anything else (other algorithms, malformed) is
    not a checksum this harvester can verify: (None, None)."""
    if not isinstance(checksum, str):
        return None, None
    value = checksum.lower()
    if not re.fullmatch(r"[0-9a-f]+", value):
        return None, None
    if value.startswith("1220") and len(value) == 4 + 64:
        return value[4:], None
    if value.startswith("d50110") and len(value) == 6 + 32:
        return None, value[6:]
    return None, None


def find_granules(
    source: str,
    *,
    product: str,
    start: dt.date,
    end: dt.date,
    timeliness: str | None = None,
) -> list[UpstreamGranule]:
    """Granules of ``product`` whose time span overlaps the days ``start``…``end`` (inclusive), sorted by start,
    each once. ``source``: a configured source name, or a STAC catalog/API URL or path."""
    from infra.adapters import day_window, open_source

    lo, hi = day_window(start, end)
    return search_granules(open_source(source), product=product, start=lo, end=hi, timeliness=timeliness)


def search_granules(
    adapter: SourceAdapter,
    *,
    product: str,
    start: dt.datetime,
    end: dt.datetime,
    timeliness: str | None = None,
) -> list[UpstreamGranule]:
    """An adapter's granules for the window [``start``, ``end``), de-duplicated by granule id, sorted by start.

    The garbage collector is paused meanwhile: a listing builds millions of objects without cycles (JSON,
    names, granules), and each full collection its allocations triggered traversed all of them."""
    with paused_gc():
        found = {g.granule_id: g for g in adapter.search(product, start, end, timeliness=timeliness)}
        return sorted(found.values(), key=lambda g: (g.name.start, g.granule_id))
