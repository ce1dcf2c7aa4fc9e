"""Microsoft Planetary Computer: STAC search of ``sentinel-5p-l2-netcdf``, asset hrefs signed with SAS tokens.

Products are matched on item properties (``s5p:product_name``, ``s5p:processing_mode``) through the STAC
``query`` extension, never on item ids. A SAS token per collection comes from ``GET
<token_url>/<collection>`` (answer ``{"msft:expiry": "...Z", "token": "st=...&se=...&sig=..."}``), is cached until
shortly before its expiry, and is fetched anew when a download is refused (HTTP 403, e.g. a revoked token).
The signed href lives only in memory: the ledger and catalog keep ``redact_url(href)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from infra.adapters.base import Download, SourceConfig
from infra.adapters.stac import StacApiAdapter
from infra.adapters.tokens import Token, TokenCache, parse_instant, request_json
from infra.settings import get_settings
from infra.sources import DEFAULT_COLLECTION, UpstreamGranule
from transforms.errors import SourceError

SUBSCRIPTION_HEADER = "Ocp-Apim-Subscription-Key"


class PlanetaryComputerAdapter(StacApiAdapter):
    """Planetary Computer's STAC API with SAS-signed downloads."""

    credential_hint = "EOLAKE_PC_SUBSCRIPTION_KEY (optional) and the SAS token endpoint (token_url)"

    def __init__(self, config: SourceConfig) -> None:
        super().__init__(config)
        self.tokens = TokenCache(self._fetch_token)

    def query(self, product: str, timeliness: str | None) -> Mapping[str, Any] | None:
        q: dict[str, Any] = {"s5p:product_name": {"eq": product}}
        if timeliness is not None:
            q["s5p:processing_mode"] = {"eq": timeliness.upper()}
        return q

    def _fetch_token(self, collection: str, previous: Token | None) -> Token:
        key = get_settings().pc_subscription_key
        headers = {SUBSCRIPTION_HEADER: key.get_secret_value()} if key else {}
        url = f"{str(self.config.token_url).rstrip('/')}/{collection}"
        doc = request_json("GET", url, headers=headers, credential_hint=self.credential_hint)
        try:
            return Token(str(doc["token"]), parse_instant(str(doc["msft:expiry"])))
        except (KeyError, ValueError) as exc:
            raise SourceError(
                f"SAS token answer from {url} lacks {exc}: expected token and msft:expiry"
            ) from None

    def authorize(self, granule: UpstreamGranule, *, refresh: bool = False) -> Download:
        collection = str(granule.item.get("collection") or DEFAULT_COLLECTION)
        token = self.tokens.get(collection, refresh=refresh)
        parts = urlsplit(granule.href)  # an href may come pre-signed: replace its query with our token
        return Download(urlunsplit((parts.scheme, parts.netloc, parts.path, token.value, "")))
