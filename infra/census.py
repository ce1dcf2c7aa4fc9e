"""Completeness: the ledger compared with upstream, per product and day.

For each UTC day a granule overlaps: how many upstream offers, how many are harvested, and which are missing
(upstream, not in the ledger), quarantined, or superseded by a better version.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from infra.sources import UpstreamGranule


def _days(start: pd.Timestamp, end: pd.Timestamp, lo: dt.date, hi: dt.date) -> list[dt.date]:
    first, last = max(start.date(), lo), min((end - pd.Timedelta(microseconds=1)).date(), hi)
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def census(
    upstream: list[UpstreamGranule], ledger: pd.DataFrame, *, product: str, start: dt.date, end: dt.date
) -> list[dict[str, Any]]:
    """One row per day of ``start``…``end``: counts and the ids of missing/quarantined/superseded granules."""
    status = dict(zip(ledger["granule_id"], ledger["status"], strict=True)) if not ledger.empty else {}
    rows: dict[dt.date, dict[str, Any]] = {
        start + dt.timedelta(days=i): {
            "product": product,
            "day": start + dt.timedelta(days=i),
            "upstream": 0,
            "harvested": 0,
            "missing": [],
            "quarantined": [],
            "superseded": [],
        }
        for i in range((end - start).days + 1)
    }
    for g in upstream:
        for day in _days(pd.Timestamp(g.name.start), pd.Timestamp(g.name.end), start, end):
            row = rows[day]
            row["upstream"] += 1
            state = status.get(g.granule_id)
            if state == "harvested":
                row["harvested"] += 1
            elif state is None:
                row["missing"].append(g.granule_id)
            else:
                row[state].append(g.granule_id)
    return list(rows.values())
