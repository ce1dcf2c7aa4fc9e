"""The one small interface every upstream source implements.

An adapter does two things, and nothing else:

* :meth:`SourceAdapter.search` — the granules of one product whose sensing time overlaps a window, as
  :class:`~infra.sources.UpstreamGranule` (name parsed from the file name, href, published size/SHA-256, the
  upstream STAC item or a minimal one for plain listings). Paging, per-timeliness collections and property
  matching are the adapter's business; the caller only sees granules.
* :meth:`SourceAdapter.authorize` — what to GET for one granule: a :class:`Download` with the href (signed when
  the service signs URLs) and headers (e.g. ``Authorization: Bearer …``). ``refresh=True`` means the last
  attempt was refused (HTTP 401/403): drop cached tokens and get new ones once. An adapter that cannot get a
  credential raises :class:`infra.http.UpstreamAuthError` naming the setting to fix.

Each adapter also says how many connections the source allows (``max_connections``): the harvest never runs
more transfers than that against the source at once. Secrets come from :mod:`infra.settings` (environment),
never from the sources file, and never appear in an href that is logged or stored (see
:func:`infra.sources.redact_url`: signed query strings are cut before anything is written).

Writing a new adapter (e.g. NASA CMR-STAC):

1. a class with the attributes and two methods of :class:`SourceAdapter` (a frozen ``SourceConfig`` is passed
   to its constructor by :func:`infra.adapters.registry.open_source`);
2. register its ``kind`` in ``ADAPTER_KINDS`` of :mod:`infra.adapters.registry`;
3. add an entry to ``deployments/sources.yaml`` and recorded responses under ``tests/data/recorded/<service>/``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from infra.sources import UpstreamGranule


@dataclass(frozen=True)
class Download:
    """How to fetch one granule: GET ``href`` with ``headers``. Either may carry a secret (a SAS signature in
    the query, a bearer token in a header): never log or store them; store ``redact_url(href)`` only."""

    href: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # no secrets in reprs (Prefect and tracebacks print arguments)
        from infra.sources import redact_url

        return f"Download(href={redact_url(self.href)!r}, headers=<{len(self.headers)} hidden>)"


@dataclass(frozen=True)
class SourceConfig:
    """One entry of the sources file (``deployments/sources.yaml``), validated.

    ``collections`` maps a product (``no2``) to a collection id, or to ``{timeliness: collection id}`` for
    services with one collection per timeliness (``nrti``/``offl``/``rpro``). ``auth`` names the credential
    kind: ``none``, ``sas`` (Planetary Computer), ``oauth2`` (CDSE), ``earthdata`` (token or .netrc).
    """

    name: str
    kind: str
    url: str
    collections: Mapping[str, Mapping[str, str]]  # product -> timeliness ("*" = any) -> collection id
    max_connections: int = 4
    auth: str = "none"
    token_url: str | None = None  # OAuth2 token endpoint, or the SAS token endpoint root
    description: str = ""
    page_size: int | None = None  # items per search page (STAC API ``limit``); None: the adapter's default

    def collections_for(self, product: str, timeliness: str | None = None) -> list[str]:
        """Collection ids to search for ``product`` (all timeliness modes unless one is named)."""
        by_mode = self.collections.get(product) or self.collections.get("*") or {}
        if timeliness is None:
            return sorted(set(by_mode.values()))
        wanted = by_mode.get(timeliness.lower()) or by_mode.get("*")
        return [wanted] if wanted else []


@runtime_checkable
class SourceAdapter(Protocol):
    """A source of granules (see the module docstring for the contract)."""

    name: str  # the configured source name, or the URL/path given on the command line
    max_connections: int  # at most this many concurrent downloads from this source
    credential_hint: str  # which setting(s) to fix when the source refuses access

    def search(
        self, product: str, start: dt.datetime, end: dt.datetime, *, timeliness: str | None = None
    ) -> Iterator[UpstreamGranule]:
        """Granules of ``product`` whose sensing span overlaps [``start``, ``end``) (tz-aware UTC), in any
        order; each granule once. ``timeliness`` (nrti/offl/rpro) narrows the search when given. Raises
        :class:`transforms.errors.SourceError` when the source cannot be searched."""
        ...

    def authorize(self, granule: UpstreamGranule, *, refresh: bool = False) -> Download:
        """The href and headers to GET ``granule`` with. ``refresh``: the previous credential was refused,
        get a new one (once). Raises :class:`infra.http.UpstreamAuthError` naming the credential to fix."""
        ...


def day_window(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The UTC instants bounding the days ``start``…``end`` (inclusive): [start 00:00, end+1 00:00)."""
    lo = dt.datetime.combine(start, dt.time(), dt.UTC)
    return lo, dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC)


def overlaps(granule: UpstreamGranule, start: dt.datetime, end: dt.datetime) -> bool:
    """Whether the granule's sensing span overlaps [``start``, ``end``)."""
    return granule.name.start < end and granule.name.end > start
