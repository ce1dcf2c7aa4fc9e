"""``eolake census``: completeness of the lake against upstream, per product and day."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flows.cli import _check_period, _lake, _prefect_env, add_lake, add_period, parse_lake_product


def cmd_census(args: argparse.Namespace) -> None:
    _check_period(args)
    lake = _lake(args.lake, create=False)
    _prefect_env()
    from flows.census import run_census

    rows = run_census(args.source, args.product, args.start, args.end, lake.url)
    print(
        f"{'day':<11} {'upstream':>8} {'harvested':>9} {'missing':>7} {'quarantined':>11} {'superseded':>10}"
    )
    for r in rows:
        print(
            f"{r['day'].isoformat():<11} {r['upstream']:>8} {r['harvested']:>9} {len(r['missing']):>7} "
            f"{len(r['quarantined']):>11} {len(r['superseded']):>10}"
        )
        for kind in ("missing", "quarantined", "superseded"):
            for gid in r[kind]:
                print(f"  {kind} {gid}")
    if any(r["missing"] or r["quarantined"] for r in rows):
        sys.exit(1)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "census", help="compare the lake's ledger with upstream: missing, quarantined, superseded"
    )
    p.add_argument("--source", required=True, help="static catalog path/URL or STAC API root")
    p.add_argument("--product", type=parse_lake_product, default="no2")
    add_period(p, required=True)
    add_lake(p)
    p.set_defaults(func=cmd_census)
