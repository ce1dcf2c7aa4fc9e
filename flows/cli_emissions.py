"""``eolake emissions …``: the daily emissions table."""

from __future__ import annotations

import argparse
from typing import Any

from flows.cli import (
    DEFAULT_RESOLUTION,
    _check_period,
    _lake,
    _Parser,
    _prefect_env,
    _print_json,
    add_lake,
    add_period,
    parse_bbox,
    parse_product,
    parse_resolution,
)


def cmd_derive(args: argparse.Namespace) -> None:
    _check_period(args)
    lake = _lake(args.lake, create=False)
    _prefect_env()
    from flows.emissions import derive_daily_emissions

    _print_json(
        derive_daily_emissions(lake.url, args.product, args.start, args.end, args.resolution, args.bbox)
    )


def register(sub: Any) -> None:
    e = sub.add_parser("emissions", help="the daily emissions table")
    esub = e.add_subparsers(dest="emissions_command", required=True, parser_class=_Parser)
    ed = esub.add_parser("derive", help="derive a new release from the cube (on dask)")
    ed.add_argument("--product", type=parse_product, default="no2")
    ed.add_argument("--resolution", type=parse_resolution, default=DEFAULT_RESOLUTION)
    ed.add_argument("--bbox", type=parse_bbox, default=(-180.0, -90.0, 180.0, 90.0))
    add_period(ed, required=True)
    add_lake(ed)
    ed.set_defaults(func=cmd_derive)
