"""Flow: census — is every upstream granule of the period in the lake, and in what state?"""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow

from flows.windows import resolve_window
from infra.census import census
from infra.ledger import read_granules
from infra.sources import find_granules
from infra.storage import open_lake


@flow(name="census")
def run_census(
    source: str,
    product: str = "no2",
    start: dt.date | None = None,
    end: dt.date | None = None,
    lake: str | None = None,
    days_back: int = 7,
) -> list[dict[str, Any]]:
    """Per day of the window: granules upstream, harvested, missing, quarantined and superseded."""
    start, end = resolve_window(start, end, days_back=days_back)
    upstream = find_granules(source, product=product, start=start, end=end)
    rows = census(
        upstream, read_granules(open_lake(lake, create=False)), product=product, start=start, end=end
    )
    _report(rows)
    return rows


def _report(rows: list[dict[str, Any]]) -> None:
    from prefect.artifacts import create_table_artifact

    table = [
        {
            "day": r["day"].isoformat(),
            "upstream": r["upstream"],
            "harvested": r["harvested"],
            "missing": len(r["missing"]),
            "quarantined": len(r["quarantined"]),
            "superseded": len(r["superseded"]),
        }
        for r in rows
    ]
    create_table_artifact(table, key=f"eolake-census-{rows[0]['product']}" if rows else "eolake-census")
