"""Copernicus Data Space Ecosystem: STAC search (one collection per product and timeliness), downloads with an
OAuth2 bearer token.

CDSE's items (as its own STAC generator writes them, ``tests/data/recorded/cdse/real/``) give the data asset's
``href`` as an ``s3://eodata/...`` path (CDSE's S3, which needs separate S3 keys) and the HTTPS download as the
asset's ``alternate.https`` (``https://zipper.dataspace.copernicus.eu/odata/v1/Products(<uuid>)/Nodes(<file>)/$value``,
``auth:refs: [oidc]``). The adapter downloads that HTTPS alternate with the bearer token; the file name (and so
the granule) still comes from the S3 path. ``file:checksum`` there is an MD5 multihash (``d50110…``), not SHA-256:
the harvest computes the MD5 beside the SHA-256 it records and discards bytes whose MD5 differs.

The token comes from the Keycloak token endpoint (``token_url``) with client ``cdse-public`` and the password
grant (``EOLAKE_CDSE_USERNAME``/``EOLAKE_CDSE_PASSWORD``), or the client-credentials grant when
``EOLAKE_CDSE_CLIENT_ID``/``EOLAKE_CDSE_CLIENT_SECRET`` are set. Access tokens live minutes (``expires_in``); before
expiry the refresh token is used (``grant_type=refresh_token``), and when that is gone or refused the adapter
logs in again. A download refused with 401/403 gets one new token and one more try (the harvest does that);
a second refusal fails the source with a message naming the credential settings. Search needs no token.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any

from infra.adapters.base import Download, SourceConfig
from infra.adapters.stac import StacApiAdapter
from infra.adapters.tokens import Token, TokenCache, request_json
from infra.http import UpstreamAuthError
from infra.settings import get_settings
from infra.sources import UpstreamGranule
from transforms.errors import SourceError

PUBLIC_CLIENT = "cdse-public"


class CdseAdapter(StacApiAdapter):
    """CDSE's STAC API, downloads authorised with an OAuth2 bearer token."""

    credential_hint = (
        "EOLAKE_CDSE_USERNAME and EOLAKE_CDSE_PASSWORD (or EOLAKE_CDSE_CLIENT_ID/EOLAKE_CDSE_CLIENT_SECRET)"
    )

    def __init__(self, config: SourceConfig) -> None:
        super().__init__(config)
        self.tokens = TokenCache(self._fetch_token)

    def search(
        self, product: str, start: dt.datetime, end: dt.datetime, *, timeliness: str | None = None
    ) -> Iterator[UpstreamGranule]:
        for g in super().search(product, start, end, timeliness=timeliness):
            https = https_alternate(g.item, g.href)
            yield g if https is None else dataclasses.replace(g, href=https)

    def _grant(self) -> dict[str, str]:
        s = get_settings()
        if s.cdse_client_id and s.cdse_client_secret:
            return {
                "grant_type": "client_credentials",
                "client_id": s.cdse_client_id.get_secret_value(),
                "client_secret": s.cdse_client_secret.get_secret_value(),
            }
        if s.cdse_username and s.cdse_password:
            return {
                "grant_type": "password",
                "client_id": PUBLIC_CLIENT,
                "username": s.cdse_username.get_secret_value(),
                "password": s.cdse_password.get_secret_value(),
            }
        raise UpstreamAuthError(
            f"source {self.name} needs a CDSE login to download: set {self.credential_hint}"
        )

    def _fetch_token(self, _key: str, previous: Token | None) -> Token:
        now = dt.datetime.now(dt.UTC)
        url = str(self.config.token_url)
        if previous is not None and previous.refreshable(now):
            client = get_settings().cdse_client_id
            form = {
                "grant_type": "refresh_token",
                "client_id": client.get_secret_value() if client else PUBLIC_CLIENT,
                "refresh_token": str(previous.refresh_token),
            }
            try:
                return _token(request_json("POST", url, data=form, credential_hint=self.credential_hint), now)
            except UpstreamAuthError:
                pass  # refresh token revoked or expired: log in again below
        return _token(
            request_json("POST", url, data=self._grant(), credential_hint=self.credential_hint), now
        )

    def authorize(self, granule: UpstreamGranule, *, refresh: bool = False) -> Download:
        token = self.tokens.get("access", refresh=refresh)
        return Download(granule.href, {"Authorization": f"Bearer {token.value}"})


def https_alternate(item: Mapping[str, Any], href: str) -> str | None:
    """The HTTPS alternate of the asset whose ``href`` is ``href``, when that href is not HTTP(S) itself (CDSE:
    ``s3://eodata/...`` with ``alternate.https.href`` on the zipper download service); else None."""
    if href.startswith(("https://", "http://")):
        return None
    for asset in (item.get("assets") or {}).values():
        if not isinstance(asset, dict) or asset.get("href") != href:
            continue
        for alt in (asset.get("alternate") or {}).values():
            alt_href = alt.get("href") if isinstance(alt, dict) else None
            if isinstance(alt_href, str) and alt_href.startswith(("https://", "http://")):
                return alt_href
    return None


def _token(doc: dict[str, object], now: dt.datetime) -> Token:
    """An OAuth2 token answer (``access_token``, ``expires_in`` s, optional ``refresh_token`` and
    ``refresh_expires_in`` s) as a Token."""
    try:
        access = str(doc["access_token"])
        expires = now + dt.timedelta(seconds=float(str(doc.get("expires_in", 600))))
    except (KeyError, ValueError) as exc:
        raise SourceError(f"OAuth2 token answer lacks {exc}: expected access_token and expires_in") from None
    refresh = doc.get("refresh_token")
    refresh_in = doc.get("refresh_expires_in")
    return Token(
        access,
        expires,
        str(refresh) if refresh else None,
        now + dt.timedelta(seconds=float(str(refresh_in))) if refresh_in else None,
    )
