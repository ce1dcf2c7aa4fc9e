"""All upstream HTTP in one place: streamed GETs with retries and backoff.

Retried: timeouts, connection resets or bodies cut short, HTTP 5xx and 429 (waiting ``Retry-After`` when the
server sends it, else exponential backoff). Not retried: 401/403 (a credential is wrong or expired: the error
says which setting to fix) and other 4xx. A body shorter than its ``Content-Length`` is a failed attempt.
"""

from __future__ import annotations

import email.utils
import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import IO

import requests

from infra.sources import redact_url
from transforms.errors import EolakeError, SourceError


class UpstreamAuthError(EolakeError, PermissionError):
    """The upstream refused our credentials (HTTP 401/403). Not retried."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff_s: float = 0.5  # first wait; doubles each attempt
    max_wait_s: float = 60.0
    timeout_s: float = 60.0  # connect and read timeout of one attempt


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    parsed = email.utils.parsedate_to_datetime(value)
    return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def download(
    url: str,
    open_sink: Callable[[], AbstractContextManager[IO[bytes]]],
    *,
    credential_hint: str = "the source's credentials",
    headers: dict[str, str] | None = None,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[int, str]:
    """Stream ``url`` into a sink from ``open_sink()`` (opened afresh, i.e. overwritten, by each attempt).
    Returns the byte count and SHA-256 hex digest of the attempt that succeeded."""
    policy = policy or RetryPolicy()
    last = ""
    for attempt in range(1, policy.attempts + 1):
        wait = min(policy.max_wait_s, policy.backoff_s * 2 ** (attempt - 1))
        try:
            with _get(url, headers=headers, timeout=policy.timeout_s) as resp:
                if resp.status_code in (401, 403):
                    raise UpstreamAuthError(
                        f"{redact_url(url)} refused access (HTTP {resp.status_code}): check {credential_hint}"
                    )
                if resp.status_code == 429 or resp.status_code >= 500:
                    last = f"HTTP {resp.status_code}"
                    wait = min(policy.max_wait_s, _retry_after(resp) or wait)
                elif resp.status_code >= 400:
                    raise SourceError(f"{redact_url(url)}: HTTP {resp.status_code} {resp.reason}")
                else:
                    expected = resp.headers.get("Content-Length")
                    digest = hashlib.sha256()
                    size = 0
                    with open_sink() as sink:
                        for block in resp.iter_content(chunk_size=8 * 2**20):
                            sink.write(block)
                            digest.update(block)
                            size += len(block)
                    if expected is None or size == int(expected):
                        return size, digest.hexdigest()
                    last = f"body cut at {size} of {expected} bytes"
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        if attempt < policy.attempts:
            sleep(wait)
    raise SourceError(f"download of {redact_url(url)} failed after {policy.attempts} attempts (last: {last})")


@contextmanager
def _get(url: str, *, headers: dict[str, str] | None, timeout: float) -> Iterator[requests.Response]:
    resp = requests.get(url, headers=headers, stream=True, timeout=timeout)
    try:
        yield resp
    finally:
        resp.close()
