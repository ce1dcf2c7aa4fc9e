"""Flow: catalog maintenance — re-derive collection extents from their items and regenerate the Intake catalog."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from infra.maintenance import refresh_collections
from infra.publish import publish_intake
from infra.storage import open_lake


@task(cache_policy=NO_CACHE)
def refresh_task(lake_url: str) -> list[str]:
    return refresh_collections(open_lake(lake_url))


@flow(name="maintain_catalog")
def maintain_catalog(lake: str | None = None) -> dict[str, Any]:
    """Recompute every collection's extent and links from the items present, then rewrite ``catalog.yaml``."""
    the_lake = open_lake(lake)
    refreshed = refresh_task(the_lake.url)
    return {"collections": refreshed, "intake": publish_intake(the_lake)}
