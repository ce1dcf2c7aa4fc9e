"""Choose a source adapter by configuration: a name from the sources file, or any STAC catalog/API URL or path.

The sources file (default ``deployments/sources.yaml`` in the repository; ``EOLAKE_SOURCES_FILE`` points
elsewhere) holds no secrets: credentials come from settings. ``EOLAKE_SOURCE_URLS`` (a JSON object) overrides a
configured source's root URL (``{"cdse": "http://mirror/stac"}``) or its token endpoint (key ``"cdse.token_url"``)
without editing the file — for mirrors, and for tests that replay recorded responses.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from infra.adapters.base import SourceAdapter, SourceConfig
from infra.settings import get_settings
from transforms.errors import InputError

REPO_SOURCES_FILE = Path(__file__).resolve().parents[2] / "deployments" / "sources.yaml"
AUTH_KINDS = ("none", "sas", "oauth2", "earthdata")


class SourcesFileError(InputError):
    """The sources file is missing, unreadable, or has a bad entry."""


class UnknownSourceError(InputError, KeyError):
    """Neither a configured source name nor a STAC catalog/API URL or path."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def _stac_api(config: SourceConfig) -> SourceAdapter:
    from infra.adapters.stac import StacApiAdapter

    return StacApiAdapter(config)


def _planetary_computer(config: SourceConfig) -> SourceAdapter:
    from infra.adapters.planetary_computer import PlanetaryComputerAdapter

    return PlanetaryComputerAdapter(config)


def _cdse(config: SourceConfig) -> SourceAdapter:
    from infra.adapters.cdse import CdseAdapter

    return CdseAdapter(config)


def _listing(config: SourceConfig) -> SourceAdapter:
    from infra.adapters.listing import ListingAdapter

    return ListingAdapter(config)


def _cmr_stac(config: SourceConfig) -> SourceAdapter:
    from infra.adapters.cmr import CmrStacAdapter

    return CmrStacAdapter(config)


def _static(config: SourceConfig) -> SourceAdapter:
    from infra.adapters.stac import StaticCatalogAdapter
    from infra.sources import resolve_source

    href, root = resolve_source(config.url)
    return StaticCatalogAdapter(config.name, href, root, max_connections=config.max_connections)


ADAPTER_KINDS: dict[str, Callable[[SourceConfig], SourceAdapter]] = {
    "stac-static": _static,
    "stac-api": _stac_api,
    "planetary-computer": _planetary_computer,
    "cdse": _cdse,
    "listing": _listing,
    "cmr-stac": _cmr_stac,
}
"""Adapter constructors by the ``kind`` of a sources-file entry. Add new services here."""


def _collections(name: str, value: Any) -> dict[str, dict[str, str]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SourcesFileError(f"source {name!r}: collections must map a product to a collection id")
    out: dict[str, dict[str, str]] = {}
    for product, spec in value.items():
        if isinstance(spec, str):
            out[str(product)] = {"*": spec}
        elif isinstance(spec, Mapping) and all(isinstance(v, str) for v in spec.values()):
            out[str(product)] = {str(k).lower(): v for k, v in spec.items()}
        else:
            raise SourcesFileError(
                f"source {name!r}: collections.{product} must be a collection id or a mapping "
                "of timeliness (nrti/offl/rpro) to collection id"
            )
    return out


def parse_source(name: str, entry: Any, *, overrides: Mapping[str, str] | None = None) -> SourceConfig:
    """Validate one sources-file entry; raises SourcesFileError saying what to fix."""
    if not isinstance(entry, Mapping):
        raise SourcesFileError(f"source {name!r}: expected a mapping of settings, got {type(entry).__name__}")
    known = {"kind", "url", "collections", "max_connections", "auth", "token_url", "description", "page_size"}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise SourcesFileError(
            f"source {name!r}: unknown key(s) {', '.join(unknown)} (allowed: {sorted(known)})"
        )
    kind = entry.get("kind")
    if kind not in ADAPTER_KINDS:
        raise SourcesFileError(
            f"source {name!r}: kind {kind!r} is not one of {', '.join(sorted(ADAPTER_KINDS))}"
        )
    overrides = overrides or {}
    url = overrides.get(name) or entry.get("url")
    if not isinstance(url, str) or not url:
        raise SourcesFileError(f"source {name!r}: url is required (the catalog/API root or listing prefix)")
    auth = entry.get("auth", "none")
    if auth not in AUTH_KINDS:
        raise SourcesFileError(f"source {name!r}: auth {auth!r} is not one of {', '.join(AUTH_KINDS)}")
    conns = entry.get("max_connections", 4)
    if not isinstance(conns, int) or isinstance(conns, bool) or not 1 <= conns <= 64:
        raise SourcesFileError(
            f"source {name!r}: max_connections must be a whole number from 1 to 64, got {conns!r}"
        )
    page_size = entry.get("page_size")
    if page_size is not None and (
        not isinstance(page_size, int) or isinstance(page_size, bool) or not 1 <= page_size <= 10000
    ):
        raise SourcesFileError(
            f"source {name!r}: page_size must be a whole number from 1 to 10000 (items per search page), "
            f"got {page_size!r}"
        )
    token_url = overrides.get(f"{name}.token_url") or entry.get("token_url")
    if auth in ("sas", "oauth2") and not token_url:
        raise SourcesFileError(f"source {name!r}: auth {auth} needs token_url (the token endpoint)")
    return SourceConfig(
        name=name,
        kind=kind,
        url=url,
        collections=_collections(name, entry.get("collections")),
        max_connections=conns,
        auth=auth,
        token_url=token_url,
        description=str(entry.get("description", "")),
        page_size=page_size,
    )


def load_sources(path: str | os.PathLike[str] | None = None) -> dict[str, SourceConfig]:
    """All configured sources by name (validated). ``path`` defaults to ``EOLAKE_SOURCES_FILE`` or the repo's."""
    settings = get_settings()
    file = Path(path or settings.sources_file or REPO_SOURCES_FILE)
    try:
        doc = yaml.safe_load(file.read_text())
    except FileNotFoundError:
        raise SourcesFileError(f"sources file {file} not found (set EOLAKE_SOURCES_FILE)") from None
    except yaml.YAMLError as exc:
        raise SourcesFileError(f"sources file {file} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("sources"), Mapping):
        raise SourcesFileError(
            f"sources file {file}: expected a top-level 'sources:' mapping of name to settings"
        )
    overrides = settings.source_urls
    try:
        return {str(n): parse_source(str(n), e, overrides=overrides) for n, e in doc["sources"].items()}
    except SourcesFileError as exc:
        raise SourcesFileError(f"sources file {file}: {exc}") from None


def _looks_like_location(source: str) -> bool:
    return "://" in source or os.sep in source or source.endswith(".json") or os.path.exists(source)


def check_source(source: str) -> None:
    """Raise UnknownSourceError (or SourcesFileError) unless ``source`` is configured or looks like a location;
    reads only the sources file, so the CLI can reject a typo before starting anything."""
    sources = load_sources()
    if source not in sources and not _looks_like_location(source):
        raise UnknownSourceError(
            f"unknown source {source!r}: choose one of {', '.join(sorted(sources))} "
            "or give a STAC catalog/API URL or path"
        )


def open_source(source: str) -> SourceAdapter:
    """The adapter for a configured source name, or for a STAC catalog/API given by URL or path."""
    check_source(source)
    sources = load_sources()
    if source in sources:
        config = sources[source]
        return ADAPTER_KINDS[config.kind](config)
    from infra.adapters.stac import StacApiAdapter, StaticCatalogAdapter
    from infra.sources import is_stac_api, resolve_source

    href, root = resolve_source(source)
    concurrency = get_settings().harvest_concurrency
    if is_stac_api(root):
        config = SourceConfig(source, "stac-api", href, {}, max_connections=concurrency)
        return StacApiAdapter(config, root=root)  # the landing page is read once
    return StaticCatalogAdapter(source, href, root, max_connections=concurrency)
