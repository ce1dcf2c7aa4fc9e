"""Copernicus Data Space Ecosystem: STAC search (one collection per product and timeliness), downloads with an
OAuth2 bearer token.

The token comes from the Keycloak token endpoint (``token_url``) with client ``cdse-public`` and the password
grant (``EOLAKE_CDSE_USERNAME``/``EOLAKE_CDSE_PASSWORD``), or the client-credentials grant when
``EOLAKE_CDSE_CLIENT_ID``/``EOLAKE_CDSE_CLIENT_SECRET`` are set. Access tokens live minutes (``expires_in``); before
expiry the refresh token is used (``grant_type=refresh_token``), and when that is gone or refused the adapter
logs in again. A download refused with 401/403 gets one new token and one more try (the harvest does that);
a second refusal fails the source with a message naming the credential settings. Search needs no token.
"""

from __future__ import annotations

import datetime as dt

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
