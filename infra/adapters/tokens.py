"""Short-lived credentials for source adapters: one cache per adapter, refreshed before expiry or when refused.

Token endpoints are asked once per need; a refusal (HTTP 400/401/403 from an OAuth2 or SAS endpoint) raises
:class:`infra.http.UpstreamAuthError` at once, naming the setting to fix: a wrong password never turns into a
retry storm. Transient failures (connection errors, 5xx, 429) are retried a few times with backoff. Token values
never appear in messages, reprs or logs.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from infra.http import UpstreamAuthError
from infra.sources import redact_url
from transforms.errors import SourceError

EXPIRY_MARGIN = dt.timedelta(seconds=60)
"""A token this close to its expiry is treated as expired (a download must not start with a dying token)."""


@dataclass(frozen=True)
class Token:
    """One credential and when it stops working (UTC)."""

    value: str = field(repr=False)
    expires: dt.datetime
    refresh_token: str | None = field(default=None, repr=False)
    refresh_expires: dt.datetime | None = None

    def usable(self, now: dt.datetime) -> bool:
        return now + EXPIRY_MARGIN < self.expires

    def refreshable(self, now: dt.datetime) -> bool:
        return self.refresh_token is not None and (
            self.refresh_expires is None or now + EXPIRY_MARGIN < self.refresh_expires
        )


class TokenCache:
    """Tokens by key (e.g. a collection), fetched by ``fetch(key, previous)`` when missing, expiring or dropped.
    Thread-safe: concurrent downloads share one token and one fetch. Once the endpoint refuses the credentials,
    every later ``get`` raises the same error without asking again."""

    def __init__(
        self,
        fetch: Callable[[str, Token | None], Token],
        *,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._fetch = fetch
        self._now = now
        self._tokens: dict[str, Token] = {}
        self._lock = threading.Lock()
        self._refused: UpstreamAuthError | None = None
        self.fetches = 0  # how many times a token endpoint was asked (for tests and reports)

    def get(self, key: str, *, refresh: bool = False, refused: str | None = None) -> Token:
        """A usable token for ``key``. ``refresh``: the current one was refused — get a new one, unless another
        thread already replaced the refused value (``refused``)."""
        with self._lock:
            if self._refused is not None:  # the endpoint refused our credentials: don't ask again
                raise self._refused
            token = self._tokens.get(key)
            stale = token is None or not token.usable(self._now())
            if refresh and token is not None and (refused is None or token.value == refused):
                stale = True
            if stale:
                self.fetches += 1
                try:
                    token = self._fetch(key, token)
                except UpstreamAuthError as exc:
                    self._refused = exc
                    raise
                self._tokens[key] = token
            assert token is not None
            return token


def request_json(
    method: str,
    url: str,
    *,
    credential_hint: str,
    data: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    attempts: int = 3,
    backoff_s: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """A JSON answer from a token endpoint. 400/401/403 → UpstreamAuthError (not retried); 5xx/429 and
    connection errors are retried ``attempts`` times."""
    last = ""
    for attempt in range(1, attempts + 1):
        try:
            resp = requests.request(method, url, data=data, headers=dict(headers or {}), timeout=60)
        except (requests.ConnectionError, requests.Timeout) as exc:
            last = type(exc).__name__
        else:
            if resp.status_code in (400, 401, 403):
                detail = _oauth_error(resp)
                raise UpstreamAuthError(
                    f"{redact_url(url)} refused the credentials (HTTP {resp.status_code}{detail}): "
                    f"check {credential_hint}"
                )
            if resp.status_code == 429 or resp.status_code >= 500:
                last = f"HTTP {resp.status_code}"
            elif resp.status_code >= 300:
                raise SourceError(f"token endpoint {redact_url(url)}: HTTP {resp.status_code}")
            else:
                try:
                    doc: dict[str, Any] = resp.json()
                except ValueError:
                    raise SourceError(f"token endpoint {redact_url(url)} did not answer JSON") from None
                return doc
        if attempt < attempts:
            sleep(backoff_s * 2 ** (attempt - 1))
    raise SourceError(f"token endpoint {redact_url(url)} failed after {attempts} attempts (last: {last})")


def _oauth_error(resp: requests.Response) -> str:
    """``: invalid_grant (Invalid user credentials)`` from an OAuth2 error body, if there is one."""
    try:
        doc = resp.json()
    except ValueError:
        return ""
    if not isinstance(doc, dict) or "error" not in doc:
        return ""
    desc = doc.get("error_description")
    return f": {doc['error']}" + (f" ({desc})" if desc else "")


def parse_instant(text: str) -> dt.datetime:
    """An ISO-8601 instant (``Z`` or offset) as tz-aware UTC."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
