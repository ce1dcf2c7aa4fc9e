"""Source adapters: one small interface (:mod:`infra.adapters.base`), chosen by configuration
(:mod:`infra.adapters.registry`, ``deployments/sources.yaml``)."""

from infra.adapters.base import Download, SourceAdapter, SourceConfig, day_window, overlaps
from infra.adapters.registry import load_sources, open_source

__all__ = [
    "Download",
    "SourceAdapter",
    "SourceConfig",
    "day_window",
    "load_sources",
    "open_source",
    "overlaps",
]
