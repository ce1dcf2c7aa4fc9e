"""Replay of NASA CMR-STAC (GES_DISC provider) and the GES DISC data host with Earthdata Login, on 127.0.0.1.

- ``/stac/GES_DISC``: landing page, ``/collections`` (paged: two collections a page, a ``next`` link carrying an
  opaque ``cursor``), ``/search`` (GET and POST; ``collections``, ``datetime``, ``limit``, ``cursor``; at most
  ``page_size`` items a page). The shapes follow CMR-STAC's own code (github.com/nasa/cmr-stac, ``src/routes/``
  and ``src/domains/``): a search page is ``{type, features, links}`` with ``self``/``root``/``parent``/``first``
  links and a ``next`` link that is always a plain GET (no ``method``) of ``/search?<the query and the POST body
  as query parameters>&cursor=<cursor>``, whatever the method of the search; an item's id is the granule's
  title (GES DISC: ``<ShortName>.<version>:<file name>``), its file is the ``download`` asset ("Direct
  Download") and a ``metadata`` asset points at CMR.
- ``/data/<short_name>.<version>/<year>/<file>``: the files of a simulated archive. A request with
  ``Authorization: Bearer <token>`` is served when the token is the valid one (else 401); without it the data
  host redirects to ``/urs/oauth/authorize`` (Earthdata Login), which takes HTTP basic auth, sets a session
  cookie and redirects back; a request with that cookie is served.

Documents come from ``tests/data/recorded/cmr/`` with their ``{placeholders}`` filled. The server counts what
it served (searches, pages, downloads by auth kind).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlparse

from transforms.granules import parse_granule_name

RECORDED = Path(__file__).resolve().parents[1] / "data" / "recorded" / "cmr"
STAC = "/stac/GES_DISC"
SHORT_NAMES = {"oco2-xco2": "OCO2_L2_Lite_FP", "oco3-xco2": "OCO3_L2_Lite_FP", "acos-xco2": "ACOS_L2_Lite_FP"}


def _fill(template: str, values: dict[str, str]) -> dict[str, Any]:
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    doc: dict[str, Any] = json.loads(template)
    return doc


@dataclass
class CmrReplay:
    """What the replay serves and saw. ``files``: (path, collection id) of every Lite file it offers."""

    files: list[tuple[Path, str]]
    token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    user: str = "eolake"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(8))
    page_size: int = 1  # items a page whatever the client asks (CMR-STAC honours ``limit`` up to 2000)
    url: str = ""
    searches: int = 0
    pages: int = 0
    downloads: dict[str, int] = field(default_factory=lambda: {"bearer": 0, "cookie": 0})
    refused: int = 0
    sessions: set[str] = field(default_factory=set)

    @property
    def stac_url(self) -> str:
        return self.url + STAC

    def collection_ids(self) -> list[str]:
        ids = {cid for _, cid in self.files}
        ids |= {"OCO2_L2_Lite_FP_10r", "AIRS3STD_7.0", "OCO2_L2_Standard_11.2r", "GPM_3IMERGHH_07"}
        return sorted(ids)

    def item(self, path: Path, collection: str) -> dict[str, Any]:
        name = parse_granule_name(path.name)
        short, version = collection.rsplit("_", 1)
        return _fill(
            (RECORDED / "item.json").read_text(),
            {
                "id": f"{short}.{version}:{path.name}",  # the GES DISC granule title
                "collection": collection,
                "root": self.stac_url,
                "stac_root": self.url + "/stac",
                "start": name.start.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "end": (name.end - dt.timedelta(milliseconds=1)).strftime("%Y-%m-%dT%H:%M:%S.999Z"),
                "concept": f"G{abs(hash(path.name)) % 10**10}-GES_DISC",
                "data_href": f"{self.url}/data/{short}.{version}/{name.start:%Y}/{path.name}",
                "short_name": short,
                "version": version,
                "year": f"{name.start:%Y}",
                "filename": path.name,
            },
        )

    def search(self, collections: list[str], interval: str | None) -> list[dict[str, Any]]:
        lo, hi = dt.datetime.min.replace(tzinfo=dt.UTC), dt.datetime.max.replace(tzinfo=dt.UTC)
        if interval:
            a, _, b = interval.partition("/")
            lo = dt.datetime.fromisoformat(a.replace("Z", "+00:00")) if a not in ("", "..") else lo
            hi = dt.datetime.fromisoformat(b.replace("Z", "+00:00")) if b not in ("", "..") else hi
        out = []
        for path, cid in sorted(self.files):
            name = parse_granule_name(path.name)
            if (not collections or cid in collections) and name.start <= hi and name.end >= lo:
                out.append(self.item(path, cid))
        return out


class _Handler(BaseHTTPRequestHandler):
    replay: CmrReplay

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, doc: Any, status: int = 200) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        r = self.replay
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        roots = {"root": r.stac_url, "stac_root": r.url + "/stac"}
        if url.path == STAC:
            return self._json(_fill((RECORDED / "landing.json").read_text(), roots))
        if url.path == STAC + "/conformance":
            landing = _fill((RECORDED / "landing.json").read_text(), roots)
            return self._json({"conformsTo": landing["conformsTo"]})
        if url.path == STAC + "/collections":
            return self._collections(_offset(q.get("cursor")))
        if url.path.startswith(STAC + "/collections/"):
            return self._json(self._collection(url.path.rsplit("/", 1)[1]))
        if url.path == STAC + "/search":
            return self._search(q)
        if url.path.startswith("/urs/oauth/authorize"):
            return self._login(q)
        if url.path.startswith("/data/"):
            return self._data(url.path)
        self._json({"errors": [f"not found: {url.path}"]}, 404)

    def do_POST(self) -> None:
        url = urlparse(self.path)
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        if url.path == STAC + "/search":
            return self._search({**{k: v[0] for k, v in parse_qs(url.query).items()}, **body})
        self._json({"errors": [f"not found: {url.path}"]}, 404)

    def _collection(self, cid: str) -> dict[str, Any]:
        concept = f"C{abs(hash(cid)) % 10**10}-GES_DISC"
        values = {"id": cid, "title": cid.replace("_", " "), "root": self.replay.stac_url, "concept": concept}
        return _fill((RECORDED / "collection.json").read_text(), values)

    def _collections(self, offset: int) -> None:
        ids = self.replay.collection_ids()
        chunk = ids[offset : offset + 2]
        links = [{"rel": "self", "href": self.replay.stac_url + "/collections", "type": "application/json"}]
        if offset + 2 < len(ids):
            nxt = f"{self.replay.stac_url}/collections?{urlencode({'cursor': _cursor(offset + 2)})}"
            links.append({"rel": "next", "href": nxt, "type": "application/geo+json"})
        self._json(
            {
                "description": "All collections provided by GES_DISC",
                "links": links,
                "collections": [self._collection(c) for c in chunk],
            }
        )

    def _search(self, query: dict[str, Any]) -> None:
        """One page of a search; ``query``: the GET parameters merged with the POST body (CMR-STAC merges them
        the same way)."""
        r = self.replay
        offset = _offset(query.get("cursor"))
        r.searches += offset == 0
        r.pages += 1
        collections = query.get("collections") or []
        if isinstance(collections, str):
            collections = [c for c in collections.split(",") if c]
        items = r.search(list(collections), query.get("datetime"))
        size = r.page_size
        chunk = items[offset : offset + size]
        first = {k: v for k, v in query.items() if k != "cursor"}
        links: list[dict[str, Any]] = [
            {"rel": "self", "href": self._self_url(), "type": "application/geo+json", "title": "This search"},
            {"rel": "root", "href": r.url + "/stac", "type": "application/json", "title": "Root Catalog"},
            {"rel": "parent", "href": r.stac_url, "type": "application/json", "title": "Provider Catalog"},
            {
                "rel": "first",
                "href": f"{r.stac_url}/search?{_query_string(first)}",
                "type": "application/geo+json",
                "title": "First page of results",
            },
        ]
        if offset + size < len(items):
            nxt = _query_string({**query, "cursor": _cursor(offset + size)})
            links.append(
                {
                    "rel": "next",
                    "href": f"{r.stac_url}/search?{nxt}",
                    "type": "application/geo+json",
                    "title": "Next page of results",
                }
            )
        self._json({"type": "FeatureCollection", "features": chunk, "links": links})

    def _self_url(self) -> str:
        return self.replay.url + self.path

    def _refuse(self) -> None:
        self.replay.refused += 1
        body = (RECORDED / "unauthorized.html").read_bytes()
        self.send_response(401)
        self.send_header("Content-Type", "text/html")
        self.send_header("WWW-Authenticate", 'Basic realm="Please enter your Earthdata Login credentials"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _login(self, q: dict[str, str]) -> None:
        r = self.replay
        auth = self.headers.get("Authorization", "")
        expected = "Basic " + base64.b64encode(f"{r.user}:{r.password}".encode()).decode()
        if auth != expected:
            return self._refuse()
        session = secrets.token_urlsafe(12)
        r.sessions.add(session)
        self.send_response(302)
        self.send_header("Set-Cookie", f"urs_session={session}; Path=/; HttpOnly")
        self.send_header("Location", unquote(q.get("redirect_uri", "/")))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _data(self, path: str) -> None:
        r = self.replay
        auth = self.headers.get("Authorization", "")
        cookie = self.headers.get("Cookie", "")
        session = next((c.split("=", 1)[1] for c in cookie.split("; ") if c.startswith("urs_session=")), None)
        if auth.startswith("Bearer "):
            if auth != f"Bearer {r.token}":
                return self._refuse()
            kind = "bearer"
        elif session in r.sessions:
            kind = "cookie"
        else:
            self.send_response(302)
            self.send_header("Location", f"{r.url}/urs/oauth/authorize?redirect_uri={quote(r.url + path)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        filename = path.rsplit("/", 1)[1]
        match = next((p for p, _ in r.files if p.name == filename), None)
        if match is None:
            return self._json({"errors": ["no such file"]}, 404)
        data = match.read_bytes()
        r.downloads[kind] += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _cursor(offset: int) -> str:
    """An opaque cursor, as CMR hands out (base64 of a JSON search-after value)."""
    return base64.b64encode(json.dumps({"json": f"[{offset}]"}).encode()).decode()


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(json.loads(base64.b64decode(cursor))["json"].strip("[]"))
    except (binascii.Error, ValueError, KeyError) as exc:
        raise ValueError(f"bad cursor {cursor!r}") from exc


def _query_string(query: dict[str, Any]) -> str:
    """CMR-STAC's ``stringifyQuery``: lists comma-joined (``String([a, b])``), objects as ``key[sub]=value``."""
    flat: dict[str, str] = {}
    for key, value in query.items():
        if isinstance(value, dict):
            flat.update({f"{key}[{k}]": str(v) for k, v in value.items()})
        elif isinstance(value, list):
            flat[key] = ",".join(str(v) for v in value)
        else:
            flat[key] = str(value)
    return urlencode(flat)


@contextmanager
def serve_cmr(files: list[tuple[Path, str]], **kwargs: Any) -> Iterator[CmrReplay]:
    """Serve the replay on a free port of 127.0.0.1 until the block ends (the thread is joined)."""
    replay = CmrReplay(files=files, **kwargs)
    handler = type("Handler", (_Handler,), {"replay": replay})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    replay.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield replay
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
