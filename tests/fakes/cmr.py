"""Replay of NASA CMR-STAC (GES_DISC provider) and the GES DISC data host with Earthdata Login, on 127.0.0.1.

- ``/stac/GES_DISC``: landing page, ``/collections`` (paged: ``next`` links, two collections a page),
  ``/search`` (GET and POST; ``collections``, ``datetime``; at most ``page_size`` items a page with a ``next``
  link carrying the page number, as CMR-STAC does).
- ``/data/<short_name>.<version>/<year>/<file>``: the files of a simulated archive. A request with
  ``Authorization: Bearer <token>`` is served when the token is the valid one (else 401); without it the data
  host redirects to ``/urs/oauth/authorize`` (Earthdata Login), which takes HTTP basic auth, sets a session
  cookie and redirects back; a request with that cookie is served.

Documents come from ``tests/data/recorded/cmr/`` with their ``{placeholders}`` filled. The server counts what
it served (searches, pages, downloads by auth kind).
"""

from __future__ import annotations

import base64
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
from urllib.parse import parse_qs, quote, unquote, urlparse

from transforms.granules import parse_granule_name

RECORDED = Path(__file__).resolve().parents[1] / "data" / "recorded" / "cmr"
STAC = "/stac/GES_DISC"
SHORT_NAMES = {"oco2-xco2": "OCO2_L2_Lite_FP", "oco3-xco2": "OCO3_L2_Lite_FP", "acos-xco2": "ACOS_L2_Lite_FP"}


def _fill(template: str, values: dict[str, str]) -> Any:
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return json.loads(template)


@dataclass
class CmrReplay:
    """What the replay serves and saw. ``files``: (path, collection id) of every Lite file it offers."""

    files: list[tuple[Path, str]]
    token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    user: str = "eolake"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(8))
    page_size: int = 1
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
                "id": path.name,
                "collection": collection,
                "root": self.stac_url,
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
        if url.path == STAC:
            return self._json(_fill((RECORDED / "landing.json").read_text(), {"root": r.stac_url}))
        if url.path == STAC + "/conformance":
            landing = _fill((RECORDED / "landing.json").read_text(), {"root": r.stac_url})
            return self._json({"conformsTo": landing["conformsTo"]})
        if url.path == STAC + "/collections":
            return self._collections(int(q.get("page", "1")))
        if url.path.startswith(STAC + "/collections/"):
            return self._json(self._collection(url.path.rsplit("/", 1)[1]))
        if url.path == STAC + "/search":
            cols = [c for c in q.get("collections", "").split(",") if c]
            return self._search(cols, q.get("datetime"), int(q.get("page", "1")), method="GET")
        if url.path.startswith("/urs/oauth/authorize"):
            return self._login(q)
        if url.path.startswith("/data/"):
            return self._data(url.path)
        self._json({"errors": [f"not found: {url.path}"]}, 404)

    def do_POST(self) -> None:
        url = urlparse(self.path)
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        if url.path == STAC + "/search":
            return self._search(
                body.get("collections") or [], body.get("datetime"), int(body.get("page", 1)), "POST"
            )
        self._json({"errors": [f"not found: {url.path}"]}, 404)

    def _collection(self, cid: str) -> dict[str, Any]:
        concept = f"C{abs(hash(cid)) % 10**10}-GES_DISC"
        values = {"id": cid, "title": cid.replace("_", " "), "root": self.replay.stac_url, "concept": concept}
        return _fill((RECORDED / "collection.json").read_text(), values)

    def _collections(self, page: int) -> None:
        ids = self.replay.collection_ids()
        chunk = ids[(page - 1) * 2 : page * 2]
        links = [{"rel": "self", "href": f"{self.replay.stac_url}/collections?page={page}"}]
        if page * 2 < len(ids):
            links.append({"rel": "next", "href": f"{self.replay.stac_url}/collections?page={page + 1}"})
        self._json({"collections": [self._collection(c) for c in chunk], "links": links})

    def _search(self, collections: list[str], interval: str | None, page: int, method: str) -> None:
        r = self.replay
        r.searches += page == 1
        r.pages += 1
        items = r.search(collections, interval)
        size = r.page_size
        chunk = items[(page - 1) * size : page * size]
        links: list[dict[str, Any]] = [{"rel": "root", "href": r.stac_url}]
        if page * size < len(items):
            if method == "POST":
                body = {"collections": collections, "datetime": interval, "page": page + 1}
                links.append({"rel": "next", "href": f"{r.stac_url}/search", "method": "POST", "body": body})
            else:
                qs = f"collections={','.join(collections)}&datetime={quote(interval or '')}&page={page + 1}"
                links.append({"rel": "next", "href": f"{r.stac_url}/search?{qs}", "method": "GET"})
        self._json(
            {
                "type": "FeatureCollection",
                "stac_version": "1.0.0",
                "numberMatched": len(items),
                "numberReturned": len(chunk),
                "features": chunk,
                "links": links,
                "context": {"returned": len(chunk), "limit": size, "matched": len(items)},
            }
        )

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
