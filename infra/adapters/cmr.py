"""NASA CMR-STAC (``https://cmr.earthdata.nasa.gov/stac/GES_DISC``): OCO-2 and OCO-3 Lite FP daily files.

Search is open; downloads from GES DISC need Earthdata Login. Collection ids carry the product version
(``<ShortName>_<version>``, ``OCO2_L2_Lite_FP_11.2r``, as CMR-STAC's ``collectionToId`` makes them) and change
with reprocessings, so a sources-file entry names the collection *short name* per product (``oco2-xco2:
OCO2_L2_Lite_FP``) and the adapter lists ``<provider>/collections`` at run time (plain JSON, following
``next`` links, which carry a ``cursor``) and searches every collection whose id is that short name followed
by a version; an exact id in the sources file is used as is. The listing is read directly, not through
pystac-client: a CMR-STAC provider catalog's ``root`` link is the global ``/stac`` catalog, not itself. Items
are matched on their data asset's file name (:func:`transforms.granules.parse_granule_name`), never on item
ids; when two versions of one day are found, the harvest keeps the newer build (version precedence in the
ledger).

Credentials, in this order (never logged or stored):

1. ``EOLAKE_EARTHDATA_TOKEN``: an Earthdata Login user token, sent as ``Authorization: Bearer <token>``;
2. a ``~/.netrc`` (or ``$NETRC``) entry for the Earthdata Login host (``token_url`` of the source, default
   ``urs.earthdata.nasa.gov``): the download is sent without headers and ``requests`` answers Earthdata's
   redirect to the login host with that entry (basic auth, cookies kept along the redirects).

Neither → :class:`infra.http.UpstreamAuthError` naming both. A refused download (401/403) with a token is not
retried with the same token: the message says to renew ``EOLAKE_EARTHDATA_TOKEN``.
"""

from __future__ import annotations

import netrc
import os
import re
from urllib.parse import urlsplit

from infra.adapters.base import Download, SourceConfig
from infra.adapters.stac import StacApiAdapter
from infra.http import UpstreamAuthError
from infra.settings import get_settings
from infra.sources import UpstreamGranule, redact_url
from transforms.errors import SourceError

EARTHDATA_HOST = "urs.earthdata.nasa.gov"
_VERSION = re.compile(r"[._](?P<version>\d+(?:\.\d+)*)r?$")


def version_of(collection_id: str, short_name: str) -> tuple[int, ...] | None:
    """The version numbers of ``collection_id`` if it is ``short_name`` plus a version (``_11.2r``, ``.10r``)."""
    if not collection_id.startswith(short_name):
        return None
    m = _VERSION.fullmatch(collection_id[len(short_name) :])
    return tuple(int(p) for p in m["version"].split(".")) if m else None


class CmrStacAdapter(StacApiAdapter):
    """CMR-STAC search of the OCO Lite collections, Earthdata Login for downloads."""

    credential_hint = (
        "EOLAKE_EARTHDATA_TOKEN (an Earthdata Login user token) or a ~/.netrc entry "
        f"'machine {EARTHDATA_HOST} login <user> password <password>'"
    )

    page_size = 250
    """CMR-STAC answers large pages slowly (pystac-client's maintainers: ~250 at most before timeouts); a
    Lite collection has one file a day, so a year is two pages."""

    def __init__(self, config: SourceConfig) -> None:
        super().__init__(config)
        self.login_host = urlsplit(config.token_url).hostname if config.token_url else EARTHDATA_HOST
        self._listed: list[str] | None = None

    def collections(self, product: str, timeliness: str | None) -> list[str]:
        wanted = self.config.collections_for(product)
        if not wanted:
            return []
        listed = self._collection_ids()
        out = []
        for name in wanted:
            if name in listed:
                out.append(name)
                continue
            versions = sorted((v, cid) for cid in listed if (v := version_of(cid, name)) is not None)
            out.extend(cid for _, cid in versions)
        if not out:
            raise SourceError(
                f"{self.name}: no collection at {redact_url(self.config.url)} matches {', '.join(wanted)} "
                "(check the collection short names in the sources file)"
            )
        return out

    def _collection_ids(self) -> list[str]:
        if self._listed is None:
            self._listed = self._list_collections()
        return self._listed

    def _list_collections(self) -> list[str]:
        """Every collection id at ``<url>/collections``, page after page (``next`` links)."""
        import requests

        from infra.adapters.item_search import PageRequest, fetch_page, next_request

        request: PageRequest | None = PageRequest("GET", self.config.url.rstrip("/") + "/collections")
        seen: set[tuple[str, str, bytes, bytes]] = set()
        ids: list[str] = []
        try:
            with requests.Session() as session:
                while request is not None and request.key() not in seen:
                    seen.add(request.key())
                    page = fetch_page(session, request)
                    listed = [c for c in page.get("collections") or [] if isinstance(c, dict)]
                    ids += [str(c["id"]) for c in listed if c.get("id")]
                    request = next_request(page, request) if listed else None
        except Exception as exc:
            what = str(exc) if isinstance(exc, SourceError) else f"{type(exc).__name__}: {exc}"
            raise SourceError(
                f"listing collections at {redact_url(self.config.url)} ({self.name}) failed: {what}"
            ) from exc
        return ids

    def authorize(self, granule: UpstreamGranule, *, refresh: bool = False) -> Download:
        token = get_settings().earthdata_token
        if token is not None:
            if refresh:
                raise UpstreamAuthError(
                    f"{redact_url(granule.href)} refused the Earthdata token: renew EOLAKE_EARTHDATA_TOKEN"
                )
            return Download(granule.href, {"Authorization": f"Bearer {token.get_secret_value()}"})
        if self._netrc_entry() is None:
            raise UpstreamAuthError(
                f"no Earthdata Login credential for {self.name}: set {self.credential_hint}"
            )
        if refresh:
            raise UpstreamAuthError(
                f"{redact_url(granule.href)} refused the ~/.netrc login for {self.login_host}: check it, and that "
                "the GES DISC application is authorized in your Earthdata profile"
            )
        return Download(granule.href)

    def _netrc_entry(self) -> tuple[str, str | None, str] | None:
        path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
        try:
            return netrc.netrc(path).authenticators(self.login_host or EARTHDATA_HOST)
        except FileNotFoundError:
            return None
        except (netrc.NetrcParseError, OSError) as exc:
            raise UpstreamAuthError(f"cannot read {path} ({type(exc).__name__}): fix or remove it") from None
