"""All upstream HTTP in one place: streamed, resumable GETs with retries and backoff.

Retried: timeouts, connection resets or bodies cut short, HTTP 5xx and 429 (waiting ``Retry-After`` when the
server sends it, else exponential backoff). Not retried: 401/403 (a credential is wrong or expired: the error
says which setting to fix) and other 4xx. A body shorter than its ``Content-Length`` is a failed attempt.

A cut body is resumed, not restarted: the next attempt asks for ``Range: bytes=<received>-`` with
``If-Range: <ETag or Last-Modified>`` and continues only on a ``206`` whose ``Content-Range`` starts where
the received bytes end and whose total is the same; anything else (a ``200`` because the file changed
upstream or the server ignores ranges, a ``416``) restarts from byte 0 through the sink's ``restart()``.
The SHA-256 is computed incrementally over the bytes written, so it always covers the whole file.
"""

from __future__ import annotations

import email.utils
import functools
import hashlib
import queue
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import requests

from infra.sources import redact_url
from infra.workers import Background
from transforms.errors import EolakeError, SourceError

CHUNK = 2**20
"""Bytes read from the socket at a time: at most this much is read again after a cut."""


class UpstreamAuthError(EolakeError, PermissionError):
    """The upstream refused our credentials (HTTP 401/403). Not retried."""


class Sink(Protocol):
    """Where downloaded bytes go, in order. ``restart()`` drops everything written so far."""

    def write(self, data: bytes, /) -> object: ...

    def restart(self) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff_s: float = 0.5  # first wait; doubles each attempt
    max_wait_s: float = 60.0
    timeout_s: float = 60.0  # connect and read timeout of one attempt


@dataclass(frozen=True)
class Downloaded:
    size: int  # bytes of the whole file
    sha256: str  # hex digest of the whole file
    received: int  # bytes received over all attempts (≥ size when attempts were cut)
    resumed: int  # attempts that continued a cut body with a range request
    restarted: int  # times the file started over from byte 0 after bytes had arrived
    written: object = None  # what download()'s ``written`` callback returned
    md5: str | None = None  # hex digest of the whole file, when download() was asked for it


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    parsed = email.utils.parsedate_to_datetime(value)
    return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _validator(resp: requests.Response) -> str | None:
    """What ``If-Range`` may carry for this response: a strong ETag, else Last-Modified."""
    etag = resp.headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return resp.headers.get("Last-Modified")


def new_digests(md5: bool = False) -> dict[str, hashlib._Hash]:
    """Fresh hash objects for a transfer: SHA-256 always (the ledger records it), MD5 too when that is what
    upstream publishes."""
    return {a: hashlib.new(a, usedforsecurity=False) for a in (("sha256", "md5") if md5 else ("sha256",))}


class _Writer:
    """Hands each received block to worker threads (:mod:`infra.workers`): one writes it to the sink, one per
    digest (SHA-256, and MD5 when upstream publishes that) adds it to its hash, so that receiving, writing
    (with S3 part uploads, which happen inside ``write``) and hashing overlap (hashlib and file writes release
    the GIL on large buffers). The same ``bytes`` object goes to all: no copy. Holds at most ``depth`` blocks
    per worker; an error of the sink is raised by the next ``put`` or ``drain``."""

    def __init__(self, sink: Sink, md5: bool = False, depth: int = 32) -> None:
        self.sink = sink
        self.md5 = md5
        self.digests = new_digests(md5)
        self.error: BaseException | None = None
        self._writes: queue.Queue[bytes | None] = queue.Queue(depth)
        self._hashes: dict[str, queue.Queue[bytes | None]] = {a: queue.Queue(depth) for a in self.digests}
        self._workers = [Background(self._run, self._writes, self._write)] + [
            Background(self._run, q, functools.partial(self._hash, a)) for a, q in self._hashes.items()
        ]

    def _write(self, block: bytes) -> None:
        self.sink.write(block)

    def _hash(self, algorithm: str, block: bytes) -> None:
        self.digests[algorithm].update(block)

    def _run(self, q: queue.Queue[bytes | None], fn: Callable[[bytes], object]) -> None:
        while (block := q.get()) is not None:
            try:
                if self.error is None:
                    fn(block)
            except BaseException as exc:  # handed to the downloading thread
                self.error = exc
            finally:
                q.task_done()
        q.task_done()

    def put(self, block: bytes) -> None:
        if self.error is not None:
            raise self.error
        self._writes.put(block)
        for q in self._hashes.values():
            q.put(block)

    def _hashed(self) -> None:
        for q in self._hashes.values():
            q.join()

    def drain(self, written: Callable[[], object] | None = None) -> object:
        """Wait until every block put so far is written and hashed. ``written`` is called once every block is
        written, while the hashes may still be catching up (both overlap); its result is returned."""
        self._writes.join()
        if self.error is not None:
            self._hashed()
            raise self.error
        try:
            result = written() if written is not None else None
        finally:
            self._hashed()
        if self.error is not None:
            raise self.error
        return result

    def hexdigest(self, algorithm: str) -> str | None:
        return self.digests[algorithm].hexdigest() if algorithm in self.digests else None

    def restart(self) -> None:
        self.drain()
        self.sink.restart()
        self.digests = new_digests(self.md5)

    def close(self) -> None:
        self._writes.put(None)
        for q in self._hashes.values():
            q.put(None)
        for w in self._workers:
            w.wait()


@dataclass
class _Progress:
    """The state of one download across attempts."""

    writer: _Writer
    size: int = 0
    total: int | None = None  # the whole file's length, when the server said it
    validator: str | None = None
    received: int = 0
    resumed: int = 0
    restarted: int = 0

    def start_over(self) -> None:
        if self.size:
            self.writer.restart()
            self.restarted += 1
        self.size = 0

    def write(self, block: bytes) -> None:
        self.writer.put(block)
        self.size += len(block)
        self.received += len(block)

    def done(self, written: Callable[[], object] | None) -> Downloaded:
        after = self.writer.drain(written)
        sha256 = self.writer.digests["sha256"].hexdigest()
        md5 = self.writer.hexdigest("md5")
        return Downloaded(self.size, sha256, self.received, self.resumed, self.restarted, after, md5)

    def range_headers(self) -> dict[str, str]:
        if not self.size:
            return {}
        h = {"Range": f"bytes={self.size}-"}
        if self.validator:
            h["If-Range"] = self.validator
        return h

    def accept(self, resp: requests.Response) -> bool:
        """Position the download for ``resp``'s body; False when the body cannot be used (retry at once)."""
        if resp.status_code == 206 and self.size:
            m = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
            same_total = m is not None and (self.total is None or m.group(3) in ("*", str(self.total)))
            if m is None or int(m.group(1)) != self.size or not same_total:
                self.start_over()  # a range we did not ask for: start over with a plain GET
                return False
            etag = resp.headers.get("ETag")
            if etag and self.validator and self.validator.startswith('"') and etag != self.validator:
                self.start_over()
                return False
            self.resumed += 1
            return True
        if resp.status_code == 416:
            self.start_over()
            return False
        self.start_over()  # 200: the whole file from byte 0 (no range support, or it changed upstream)
        length = resp.headers.get("Content-Length")
        self.total = int(length) if length is not None else None
        self.validator = _validator(resp)
        return True


def download(
    url: str,
    sink: Sink,
    *,
    credential_hint: str = "the source's credentials",
    headers: dict[str, str] | None = None,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    written: Callable[[], object] | None = None,
    md5: bool = False,
) -> Downloaded:
    """Stream ``url`` into ``sink``, resuming cut bodies where the server allows it (see module doc).
    Returns the whole file's size and SHA-256 (and MD5 with ``md5``: what some archives publish) and what the
    transfer cost. ``written`` (e.g. a check of the written file) runs once the whole body is in the sink,
    while the hashes of its last blocks are still being computed; its result is ``Downloaded.written``."""
    policy = policy or RetryPolicy()
    writer = _Writer(sink, md5)
    try:
        return _download(url, _Progress(writer), credential_hint, headers or {}, policy, sleep, written)
    finally:
        writer.close()


def _download(
    url: str,
    p: _Progress,
    credential_hint: str,
    headers: dict[str, str],
    policy: RetryPolicy,
    sleep: Callable[[float], None],
    written: Callable[[], object] | None,
) -> Downloaded:
    last = ""
    for attempt in range(1, policy.attempts + 1):
        wait = min(policy.max_wait_s, policy.backoff_s * 2 ** (attempt - 1))
        try:
            with _get(
                url, headers={**(headers or {}), **p.range_headers()}, timeout=policy.timeout_s
            ) as resp:
                if resp.status_code in (401, 403):
                    raise UpstreamAuthError(
                        f"{redact_url(url)} refused access (HTTP {resp.status_code}): check {credential_hint}"
                    )
                if resp.status_code == 429 or resp.status_code >= 500:
                    last = f"HTTP {resp.status_code}"
                    wait = min(policy.max_wait_s, _retry_after(resp) or wait)
                elif resp.status_code >= 400 and resp.status_code != 416:
                    raise SourceError(f"{redact_url(url)}: HTTP {resp.status_code} {resp.reason}")
                elif not p.accept(resp):
                    last, wait = f"unusable answer to a range request (HTTP {resp.status_code})", 0.0
                else:
                    for block in resp.iter_content(chunk_size=CHUNK):
                        p.write(block)
                    if p.total is None or p.size == p.total:
                        return p.done(written)
                    last = f"body cut at {p.size} of {p.total} bytes"
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            last = f"{type(exc).__name__}: {_redact_text(str(exc))} (at byte {p.size})"
        if attempt < policy.attempts:
            sleep(wait)
    raise SourceError(f"download of {redact_url(url)} failed after {policy.attempts} attempts (last: {last})")


def _redact_text(message: str) -> str:
    """``message`` without URL query strings (requests quotes the signed URL in its errors)."""
    return re.sub(r"\?[^\s'\")]+", "", message)


@contextmanager
def _get(url: str, *, headers: dict[str, str] | None, timeout: float) -> Iterator[requests.Response]:
    resp = requests.get(url, headers=headers, stream=True, timeout=timeout)
    try:
        yield resp
    finally:
        resp.close()
