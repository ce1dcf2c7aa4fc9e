"""STAC API item search over HTTP: every page of one search, following ``next`` links.

What pystac-client's ``ItemSearch.items_as_dicts`` does for a harvest, without its import and object costs, and
faster: pages are decoded with orjson with the garbage collector paused (:func:`infra.sources.decode_json`), and
the next page is requested while the caller works through the current one.

- The search endpoint and method come from the landing page's ``search`` links: POST (a JSON body) when it is
  advertised, else GET (``collections`` comma-joined, ``query`` as JSON); a landing page without search links
  gets POST to ``<root>/search``.
- ``next`` links are followed as the STAC API spec says: their ``method`` (default GET), ``body`` (merged into
  the previous body when ``merge`` is true) and ``headers``. A page without features, or without a ``next``
  link, ends the search; a ``next`` request identical to one already made is an error (a server that does not
  advance would otherwise be paged forever).
- Connection errors, timeouts, HTTP 429 and 5xx are retried (``ATTEMPTS``, doubling backoff); any other
  failure is a :class:`transforms.errors.SourceError` naming the request without its query string.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import orjson
import requests

from infra.sources import decode_json, redact_url
from transforms.errors import SourceError

ATTEMPTS = 3
"""Tries of one page request when the failure is transient (connection, timeout, 429, 5xx)."""
BACKOFF_S = 0.5
"""The wait before the second try; doubles for each further one."""
TIMEOUT_S = 60.0
"""Connect and read timeout of one page request."""
_JSON_TYPES = {"application/json", "application/geo+json"}


@dataclass(frozen=True)
class PageRequest:
    """One page request: ``body`` is the JSON body of a POST; a GET carries ``params`` (or none: a ``next``
    href already has its query)."""

    method: str
    href: str
    body: Mapping[str, Any] | None = None
    params: Mapping[str, str] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def key(self) -> tuple[str, str, bytes, bytes]:
        """What makes two requests the same (to notice a ``next`` link that does not advance)."""
        return (
            self.method,
            self.href,
            orjson.dumps(self.body, option=orjson.OPT_SORT_KEYS) if self.body is not None else b"",
            orjson.dumps(self.params, option=orjson.OPT_SORT_KEYS) if self.params is not None else b"",
        )


def utc_text(value: dt.datetime) -> str:
    """An instant as RFC 3339 UTC with ``Z`` (naive values are taken as UTC), as STAC APIs expect."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return f"{value.isoformat('T')}Z"


def search_parameters(
    collections: list[str],
    start: dt.datetime,
    end: dt.datetime,
    *,
    limit: int,
    query: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The body of a POST search for items of ``collections`` whose time overlaps [``start``, ``end``]."""
    params: dict[str, Any] = {
        "collections": list(collections),
        "datetime": f"{utc_text(start)}/{utc_text(end)}",
        "limit": limit,
    }
    if query:
        params["query"] = dict(query)
    return params


def first_request(
    root_url: str,
    root: Mapping[str, Any],
    parameters: Mapping[str, Any],
    *,
    headers: Mapping[str, str] | None = None,
) -> PageRequest:
    """The first page's request: POST to the advertised search link when there is one, else GET."""
    links = [
        link
        for link in root.get("links") or []
        if isinstance(link, dict)
        and link.get("rel") == "search"
        and link.get("href")
        and link.get("type", "application/geo+json") in _JSON_TYPES
    ]
    by_method = {str(link.get("method") or "GET").upper(): link for link in links}
    default = root_url.rstrip("/") + "/search"
    if "POST" in by_method or not by_method:
        href = urljoin(root_url, str(by_method["POST"]["href"])) if by_method else default
        return PageRequest("POST", href, body=dict(parameters), headers=dict(headers or {}))
    href = urljoin(root_url, str(by_method["GET"]["href"]))
    return PageRequest("GET", href, params=_as_query(parameters), headers=dict(headers or {}))


def _as_query(parameters: Mapping[str, Any]) -> dict[str, str]:
    """POST body parameters spelled as a GET query (lists comma-joined, objects as JSON)."""
    out = {}
    for k, v in parameters.items():
        if isinstance(v, list | tuple):
            out[k] = ",".join(str(x) for x in v)
        elif isinstance(v, dict):
            out[k] = json.dumps(v, separators=(",", ":"))
        else:
            out[k] = str(v)
    return out


def next_request(page: Mapping[str, Any], previous: PageRequest) -> PageRequest | None:
    """The request a page's ``next`` link asks for, or None on the last page."""
    link = next(
        (x for x in page.get("links") or [] if isinstance(x, dict) and x.get("rel") == "next"),
        None,
    )
    if link is None or not link.get("href"):
        return None
    href = urljoin(previous.href, str(link["href"]))
    merge = bool(link.get("merge", False))
    headers = dict(link.get("headers") or {})
    headers = {**previous.headers, **headers}  # our own headers (e.g. a key) stay on every page
    method = str(link.get("method") or "GET").upper()
    if method == "POST":
        body = dict(link.get("body") or {})
        if merge:
            body = {**(previous.body or {}), **body}
        return PageRequest("POST", href, body=body, headers=headers)
    return PageRequest(method, href, headers=headers)  # a GET next href carries its own query


def search_pages(
    first: PageRequest,
    *,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[list[dict[str, Any]]]:
    """The features of every page of a search, page by page; the next page is fetched (on one worker thread)
    while the caller handles the current one."""
    own = session is None
    http = session or requests.Session()
    seen = {first.key()}
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="stac-search") as pool:
            pending: Future[dict[str, Any]] | None = pool.submit(fetch_page, http, first, sleep=sleep)
            request = first
            while pending is not None:
                page = pending.result()
                features = page.get("features") or []
                nxt = next_request(page, request) if features else None
                pending = None
                if nxt is not None:
                    if nxt.key() in seen:
                        raise SourceError(
                            f"{redact_url(nxt.href)}: the next page link repeats an earlier request "
                            "(the server does not advance its pages)"
                        )
                    seen.add(nxt.key())
                    pending = pool.submit(fetch_page, http, nxt, sleep=sleep)
                    request = nxt
                if features:
                    yield features
    finally:
        if own:
            http.close()


def fetch_page(
    session: requests.Session, request: PageRequest, *, sleep: Callable[[float], None] = time.sleep
) -> dict[str, Any]:
    """One page as a dict; transient failures retried (module docstring)."""
    where = f"{request.method} {redact_url(request.href)}"
    last = ""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            resp = session.request(
                request.method,
                request.href,
                params=request.params,
                data=None if request.body is None else orjson.dumps(request.body),
                headers={
                    **({"Content-Type": "application/json"} if request.body is not None else {}),
                    "Accept": "application/geo+json, application/json",
                    **request.headers,
                },
                timeout=TIMEOUT_S,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if resp.status_code == 429 or resp.status_code >= 500:
                last = f"HTTP {resp.status_code}"
            elif resp.status_code >= 300:
                raise SourceError(f"{where} answered HTTP {resp.status_code}: {_excerpt(resp.text)}")
            else:
                try:
                    doc = decode_json(resp.content)
                except orjson.JSONDecodeError as exc:
                    raise SourceError(f"{where} did not answer JSON ({exc})") from None
                if not isinstance(doc, dict):
                    raise SourceError(f"{where} answered {type(doc).__name__}, not a FeatureCollection")
                return doc
        if attempt < ATTEMPTS:
            sleep(BACKOFF_S * 2 ** (attempt - 1))
    raise SourceError(f"{where} failed after {ATTEMPTS} attempts (last: {last})")


def _excerpt(text: str, limit: int = 200) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[:limit] + "…"
