"""Run reports as Prefect artifacts: what a run did, in the Prefect UI/API beside the run.

Keys are stable per flow (``eolake-harvest-no2`` …) so the latest report of each kind is easy to find.
Reports name granules, days, rows and STAC items; they never contain credentials.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any


@contextmanager
def timed() -> Iterator[dict[str, float]]:
    """Measures the wall time of a block: ``with timed() as t: ...; t["seconds"]``."""
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        yield out
    finally:
        out["seconds"] = time.perf_counter() - t0


def _key(*parts: str) -> str:
    return "-".join(["eolake", *parts]).lower().replace("_", "-")


def _quarantined(quarantined: Sequence[tuple[str, str]]) -> list[str]:
    """A report's "Quarantined" section: every granule with its reason (nothing when there is none)."""
    if not quarantined:
        return []
    return ["", "## Quarantined", "", "| granule | reason |", "|---|---|"] + [
        f"| `{gid}` | {reason} |" for gid, reason in quarantined
    ]


def report_harvest(
    summary: Mapping[str, Any], *, product: str, seconds: float, item_links: Sequence[str] = ()
) -> None:
    """Markdown summary of a harvest run (counts, every quarantined granule with its reason, superseded ones)
    and links to the granule items it wrote (the first 50)."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact

    lines = [
        f"# Harvest of {product.upper()} from `{summary['source']}`",
        "",
        "| granules upstream | fetched | already in the lake | quarantined | superseded | time |",
        "|---|---|---|---|---|---|",
        f"| {summary['found']} | {summary['fetched']} | {summary['skipped']} | {len(summary['quarantined'])} "
        f"| {len(summary['superseded'])} | {seconds:.1f} s |",
    ]
    lines += _quarantined(summary["quarantined"])
    if summary["superseded"]:
        lines += ["", "## Superseded", ""] + [f"- `{gid}`" for gid in summary["superseded"]]
    if summary.get("days_to_regrid"):
        lines += ["", f"Days to re-grid: {', '.join(summary['days_to_regrid'])}"]
    create_markdown_artifact("\n".join(lines), key=_key("harvest", product), description="harvest report")
    for link in list(item_links)[:50]:
        create_link_artifact(link, link_text=link.rsplit("/", 1)[-1], key=_key("harvest", product, "items"))


def report_grid(
    summary: Mapping[str, Any],
    *,
    product: str,
    seconds: float,
    item_links: Sequence[str] = (),
    quicklooks: Sequence[str] = (),
) -> None:
    """Markdown summary of a gridding run (days, granules, coverage), links to the day items, quicklooks."""
    from prefect.artifacts import create_image_artifact, create_link_artifact, create_markdown_artifact

    lines = [
        f"# Daily {product.upper()} cube `{summary['grid']}`",
        "",
        f"Store: `{summary['cube']}` — {len(summary['days'])} day(s) gridded, {summary.get('unchanged', 0)} "
        f"unchanged, {seconds:.1f} s.",
        "",
        "| day | granules | coverage |",
        "|---|---|---|",
    ]
    lines += [f"| {d['day']} | {d['granules']} | {d['coverage']:.1%} |" for d in summary["days"]]
    lines += _quarantined(summary.get("quarantined", []))  # unreadable at grid time, left out of their days
    create_markdown_artifact("\n".join(lines), key=_key("grid", product), description="gridding report")
    for link in item_links:
        create_link_artifact(link, link_text=link.rsplit("/", 1)[-1], key=_key("grid", product, "items"))
    for url in quicklooks:
        create_image_artifact(url, key=_key("grid", product, "quicklook"), description=url.rsplit("/", 1)[-1])


def release_summary(table: Any) -> list[dict[str, Any]]:
    """Per country (and aggregate) of a release table: mean daily total (MtCO2/day), days, gap-filled days."""
    daily = table.groupby(["country", "iso3", "date"], as_index=False).agg(
        value=("value", "sum"), gap=("gap_filled", "any")
    )
    out = daily.groupby(["country", "iso3"], as_index=False).agg(
        mean_mtco2_per_day=("value", "mean"), days=("date", "nunique"), gap_filled_days=("gap", "sum")
    )
    out["mean_mtco2_per_day"] = out["mean_mtco2_per_day"].round(4)
    rows: list[dict[str, Any]] = out.sort_values("mean_mtco2_per_day", ascending=False).to_dict("records")
    return rows


def report_release(
    table_rows: Sequence[Mapping[str, Any]],
    *,
    release: str,
    created: bool,
    seconds: float,
    item_link: str = "",
) -> None:
    """The release as a table artifact (country totals), a markdown note and a link to its STAC item."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    create_table_artifact(
        [dict(r) for r in table_rows],
        key=_key("emissions", "release"),
        description=f"emissions release {release}",
    )
    note = "new release" if created else "inputs unchanged: existing release kept"
    create_markdown_artifact(
        f"# Emissions release `{release}`\n\n{note}; {len(table_rows)} countries and aggregates; {seconds:.1f} s.",
        key=_key("emissions"),
        description="emissions report",
    )
    if item_link:
        create_link_artifact(
            item_link, link_text=f"STAC item of release {release}", key=_key("emissions", "item")
        )
