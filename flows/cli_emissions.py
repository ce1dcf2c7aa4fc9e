"""``eolake emissions …``: the daily emissions table: derive, export, diff, and the OSSE's scenario and compare."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from flows.cli import (
    DEFAULT_BBOX,
    DEFAULT_RESOLUTION,
    _check_period,
    _fail,
    _lake,
    _Parser,
    _prefect_env,
    _print_json,
    add_lake,
    add_period,
    parse_bbox,
    parse_date,
    parse_product,
    parse_resolution,
)

EXPORT_FORMATS = ("carbon-monitor",)


def cmd_derive(args: argparse.Namespace) -> None:
    _check_period(args)
    lake = _lake(args.lake, create=False)
    from infra.emissions import committed_in_period
    from transforms.grid import GridSpec

    grid = GridSpec.snapped(args.resolution, args.bbox)
    committed_in_period(lake, product=args.product, grid=grid, start=args.start, end=args.end)  # or exit 2
    _prefect_env()
    from flows.emissions import derive_daily_emissions

    _print_json(
        derive_daily_emissions(lake.url, args.product, args.start, args.end, args.resolution, args.bbox)
    )


def cmd_export(args: argparse.Namespace) -> None:
    if args.start and args.end and args.end < args.start:
        _fail(f"inverted date range: --start {args.start} is after --end {args.end}")
    if args.out != "-" and not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        _fail(f"cannot write {args.out}: its folder does not exist")
    lake = _lake(args.lake, create=False)
    from infra.emissions import export_carbon_monitor

    if args.out == "-":
        export_carbon_monitor(lake, args.release, sys.stdout, start=args.start, end=args.end)
        return
    partial = args.out + ".partial"
    try:
        rows = export_carbon_monitor(lake, args.release, partial, start=args.start, end=args.end)
        os.replace(partial, args.out)  # nothing half-written under the asked name
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    print(f"wrote {rows} rows (Carbon Monitor CSV: country,date,sector,value; DD/MM/YYYY) to {args.out}")


def cmd_diff(args: argparse.Namespace) -> None:
    lake = _lake(args.lake, create=False)
    from infra.emissions import latest_release, list_releases, read_diff

    release = args.release or latest_release(lake)
    if release not in list_releases(lake):
        _fail(f"no emissions release {release!r} in {lake.url}")
    rows, summary = read_diff(lake, release)
    if summary is None:
        print(f"release {release} is the first release: nothing to compare with")
        return
    print(
        f"release {release} vs {summary['previous']}: {summary['changed']} rows changed "
        f"(max |Δ| {summary['max_abs_delta']:.3g} MtCO2/day, Σ|Δ| {summary['sum_abs_delta']:.3g}, "
        f"max relative {summary['max_abs_relative']:.1%}), {summary['added']} added, "
        f"{summary['removed']} removed, {summary['unchanged']} unchanged"
    )
    if rows is not None and args.rows:
        print(rows.head(args.rows).to_string(index=False))


def cmd_scenario(args: argparse.Namespace) -> None:
    _check_period(args)
    if os.path.exists(args.out) and os.path.isdir(args.out):
        _fail(f"{args.out} is a directory; give a file name for the truth CSV")
    from infra.scenario import write_scenario
    from transforms.regions import resolve_country

    countries = None
    if args.countries:
        countries = [resolve_country(c).iso3 for c in args.countries.split(",") if c.strip()]
    _print_json(
        write_scenario(args.out, start=args.start, end=args.end, bounds=args.bbox, countries=countries)
    )


def cmd_compare(args: argparse.Namespace) -> None:
    if not os.path.isfile(args.truth):
        _fail(f"truth file {args.truth} not found")
    from transforms.truth import read_carbon_monitor_csv

    read_carbon_monitor_csv(args.truth)  # validate before touching the lake (TruthTableError: one line)
    lake = _lake(args.lake, create=False)
    from infra.scenario import compare_with_truth

    result = compare_with_truth(lake, args.truth, release=args.release, out_dir=os.path.abspath(args.out))
    print(f"release {result['release']} vs {args.truth}")
    print(result["report"])
    print(f"plots and scores in {result['out']}")
    if args.require_goals and not result["meets_goals"]:
        print("eolake: goals not met", file=sys.stderr)
        raise SystemExit(1)


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

    ex = esub.add_parser("export", help="write a release as a Carbon Monitor CSV")
    ex.add_argument("--format", choices=EXPORT_FORMATS, default="carbon-monitor")
    ex.add_argument("--release", help="release id (default: the newest)")
    ex.add_argument("--out", default="-", help="CSV file (default: standard output)")
    ex.add_argument("--start", type=parse_date, help="first day to export (default: all)")
    ex.add_argument("--end", type=parse_date, help="last day to export (default: all)")
    add_lake(ex)
    ex.set_defaults(func=cmd_export)

    di = esub.add_parser("diff", help="what a release changed against the previous one")
    di.add_argument("--release", help="release id (default: the newest)")
    di.add_argument("--rows", type=int, default=20, help="changed rows to print (default 20)")
    add_lake(di)
    di.set_defaults(func=cmd_diff)

    sc = esub.add_parser("scenario", help="write the built-in truth scenario as a Carbon Monitor CSV")
    sc.add_argument("--out", required=True, help="truth CSV to write")
    sc.add_argument(
        "--bbox", type=parse_bbox, default=DEFAULT_BBOX, help="W,S,E,N: countries with land inside"
    )
    sc.add_argument(
        "--countries", help="ISO3 codes or names, comma-separated; the first gets the step change"
    )
    add_period(sc, required=True)
    sc.set_defaults(func=cmd_scenario)

    co = esub.add_parser("compare", help="score a release against a truth CSV (OSSE): metrics and PNG plots")
    co.add_argument("--truth", required=True, help="Carbon Monitor CSV the simulation was made from")
    co.add_argument("--release", help="release id (default: the newest)")
    co.add_argument("--out", default="osse-compare", help="folder for report, scores and plots")
    co.add_argument("--require-goals", action="store_true", help="exit 1 when the OSSE goals are not met")
    add_lake(co)
    co.set_defaults(func=cmd_compare)
