"""A fake upstream archive: a minimal STAC API (landing page, conformance, collections, item search with
datetime/collections/limit and next-page links, as Planetary Computer answers) plus a file server for the
granules, over real HTTP on 127.0.0.1. It serves the items of a static catalog made by ``eolake simulate``."""

from __future__ import annotations

import email.utils
import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pystac

SIGNATURE = "FAKE-SAS-SIGNATURE-do-not-store"

CONFORMS = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/item-search",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]


def _load(catalog_json: Path) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    items, files = [], {}
    for item in pystac.Catalog.from_file(str(catalog_json)).get_items(recursive=True):
        item.make_asset_hrefs_absolute()
        d = item.to_dict(include_self_link=False, transform_hrefs=False)
        for asset in d["assets"].values():
            path = Path(asset["href"])
            files[path.name] = path
            # signed like Planetary Computer's hrefs: the token must never reach the lake
            asset["href"] = f"/files/{path.name}?st=2020-01-01&se=2030-01-01&sig={SIGNATURE}"
        d["links"] = []
        items.append(d)
    return items, files


def _overlaps(item: dict[str, Any], lo: str | None, hi: str | None) -> bool:
    p = item["properties"]
    start, end = p.get("start_datetime") or p["datetime"], p.get("end_datetime") or p["datetime"]
    return (hi is None or start <= hi) and (lo is None or end >= lo)


def _range_start(header: str | None, if_range: str | None, etag: str, modified: str) -> int | None:
    """The first byte a ``Range: bytes=N-`` request asks for, or None to send the whole file (no range, a
    form this server does not do, or an ``If-Range`` validator that no longer matches)."""
    m = re.fullmatch(r"bytes=(\d+)-", (header or "").strip())
    if m is None or (if_range is not None and if_range not in (etag, modified)):
        return None
    return int(m.group(1))


@contextmanager
def serve_upstream(
    catalog_json: Path,
    *,
    collection: str = "sentinel-5p-l2-netcdf",
    faults: dict[str, list[str]] | None = None,
    ranges: bool = True,
    served: Counter[str] | None = None,
) -> Iterator[str]:
    """Serve the static catalog's items as a STAC API; yields the API root URL.

    ``faults`` maps a granule file name to what its successive downloads do before it is served normally:
    ``"500"``/``"503"`` (server error), ``"429:N"`` (too many requests, Retry-After N s), ``"401"`` (token
    refused), ``"cut"`` (headers promise the whole body, the connection drops half-way through it), ``"cut@N"``
    (the same after N bytes of the body), ``"slow:S"`` (wait S seconds first), ``"corrupt"`` (same length,
    bytes scrambled: passes size, fails the checksum).

    Files are served with ``ETag``, ``Last-Modified`` and ``Accept-Ranges``, and answer ``Range: bytes=N-``
    with ``206`` (or the whole file with ``200`` when ``If-Range`` no longer matches), like a CDN; with
    ``ranges=False`` the server ignores ranges and sends no validators. Bytes of file bodies actually sent
    are added to ``served`` per file name.
    """
    items, files = _load(catalog_json)
    counts: Counter[str] = served if served is not None else Counter()
    lock = threading.Lock()
    requests: list[str] = []
    pending = {name: list(kinds) for name, kinds in (faults or {}).items()}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            requests.append(self.path)

        def _json(self, doc: Any, status: int = 200) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            root = f"http://127.0.0.1:{self.server.server_address[1]}"
            url = urlparse(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path in ("", "/"):
                self._json(
                    {
                        "type": "Catalog",
                        "id": "fake-upstream",
                        "stac_version": "1.0.0",
                        "description": "fake",
                        "conformsTo": CONFORMS,
                        "links": [
                            {"rel": "self", "href": f"{root}/", "type": "application/json"},
                            {"rel": "root", "href": f"{root}/", "type": "application/json"},
                            {
                                "rel": "search",
                                "href": f"{root}/search",
                                "type": "application/geo+json",
                                "method": "GET",
                            },
                            {"rel": "data", "href": f"{root}/collections", "type": "application/json"},
                        ],
                    }
                )
            elif url.path == "/conformance":
                self._json({"conformsTo": CONFORMS})
            elif url.path == "/search":
                self._search(root, q, post=False)
            elif url.path.startswith("/files/") and url.path[7:] in files:
                self._file(url.path[7:])
            else:
                self._json({"code": "NotFound", "description": self.path}, 404)

        def _file(self, name: str) -> None:
            path = files[name]
            stat = path.stat()
            etag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
            modified = email.utils.formatdate(stat.st_mtime, usegmt=True)
            fault = pending[name].pop(0) if pending.get(name) else "ok"
            if fault.startswith("slow:"):
                time.sleep(float(fault[5:]))
            elif fault in ("500", "503", "401"):
                self._json({"code": fault}, int(fault))
                return
            elif fault.startswith("429:"):
                self.send_response(429)
                self.send_header("Retry-After", fault[4:])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = bytes(reversed(path.read_bytes())) if fault == "corrupt" else None
            total, first = stat.st_size, 0
            wanted = _range_start(self.headers.get("Range"), self.headers.get("If-Range"), etag, modified)
            if ranges and wanted is not None:
                if wanted >= total:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{total}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                first = wanted
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {first}-{total - 1}/{total}")
            else:
                self.send_response(200)
            self.send_header("Content-Type", "application/x-netcdf")
            self.send_header("Content-Length", str(total - first))
            if ranges:
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", modified)
            self.end_headers()
            cut = fault == "cut" or fault.startswith("cut@")
            if data is None and not cut:  # as a file server does: the kernel copies the file to the socket
                with path.open("rb") as f:
                    sent = self.connection.sendfile(f, first, total - first)
                with lock:
                    counts[name] += sent
                return
            body = (data if data is not None else path.read_bytes())[first:]
            if cut:  # the headers promised the whole body
                body = body[: len(body) // 2] if fault == "cut" else body[: int(fault[4:])]
                self._send(name, body)
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self._send(name, body)

        def _send(self, name: str, body: bytes) -> None:
            view = memoryview(body)
            for i in range(0, len(body), 2**20):
                self.wfile.write(view[i : i + 2**20])
                with lock:
                    counts[name] += len(view[i : i + 2**20])
            self.wfile.flush()

        def do_POST(self) -> None:
            root = f"http://127.0.0.1:{self.server.server_address[1]}"
            if urlparse(self.path).path != "/search":
                self._json({"code": "NotFound", "description": self.path}, 404)
                return
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            q = {k: ",".join(v) if isinstance(v, list) else str(v) for k, v in body.items()}
            self._search(root, q, post=True)

        def _search(self, root: str, q: dict[str, str], *, post: bool) -> None:
            wanted = q.get("collections", collection).split(",")
            lo, hi = [*q.get("datetime", "../..").split("/"), ".."][:2]
            sel = [
                i
                for i in items
                if collection in wanted
                and _overlaps(i, None if lo == ".." else lo, None if hi == ".." else hi)
            ]
            limit, offset = int(q.get("limit", 10)), int(q.get("token", 0))
            page = [
                json.loads(json.dumps(dict(i, collection=collection))) for i in sel[offset : offset + limit]
            ]
            for i in page:
                for a in i["assets"].values():
                    a["href"] = root + a["href"]
            links: list[dict[str, Any]] = [{"rel": "root", "href": f"{root}/", "type": "application/json"}]
            if offset + limit < len(sel):
                nq = dict(q, token=str(offset + limit))
                nxt: dict[str, Any] = {"rel": "next", "type": "application/geo+json"}
                if post:
                    body = {k: (v.split(",") if k == "collections" else v) for k, v in nq.items()}
                    body["limit"] = limit
                    nxt.update(href=f"{root}/search", method="POST", body=body)
                else:
                    nxt.update(
                        href=f"{root}/search?" + "&".join(f"{k}={v}" for k, v in nq.items()), method="GET"
                    )
                links.append(nxt)
            self._json({"type": "FeatureCollection", "features": page, "links": links})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def main() -> None:
    """``python -m tests.fakes.upstream CATALOG_JSON``: serve a static catalog as a fake upstream in a process of
    its own (as a real archive is another machine: it shares no interpreter with the harvester). Prints the
    API root URL on the first line of stdout and serves until terminated."""
    import signal
    import sys

    with serve_upstream(Path(sys.argv[1])) as api:
        print(api, flush=True)
        signal.sigwait({signal.SIGTERM, signal.SIGINT})


if __name__ == "__main__":
    main()
