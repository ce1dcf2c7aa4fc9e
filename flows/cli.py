"""The ``eolake`` command line. Arguments are validated before anything is imported heavily or written:
bad input prints one ``eolake: error: …`` line and exits with status 2."""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib
import json
import os
import pkgutil
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from transforms.errors import EolakeError
from transforms.products import XCO2_PRODUCTS, get_product

DEFAULT_BBOX = (-5.0, 42.0, 20.0, 56.0)
DEFAULT_START = dt.date(2020, 3, 2)
DEFAULT_END = dt.date(2020, 3, 8)
DEFAULT_RESOLUTION = 0.1
PRODUCTS = ("no2",)  # products the emissions method uses (readers exist for co and ch4 as well)
LAKE_PRODUCTS = ("no2", *XCO2_PRODUCTS)  # products simulate, harvest and grid handle end to end
EARLIEST = dt.date(2018, 4, 30)


class UsageError(EolakeError):
    """Bad command-line input (exit status 2)."""


def _fail(message: str) -> NoReturn:
    print(f"eolake: error: {message}", file=sys.stderr)
    raise SystemExit(2)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, status 2, like every other bad input
        _fail(message)


# ---- argument types: normalise loose input once, at the edge ----


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid date {text!r}: use YYYY-MM-DD") from None


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    try:
        parts = [float(p) for p in text.replace(" ", "").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid bbox {text!r}: use W,S,E,N in degrees, e.g. -5,42,20,56"
        ) from None
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"invalid bbox {text!r}: need 4 numbers W,S,E,N, got {len(parts)}")
    w, s, e, n = parts
    if not (-90 <= s < n <= 90):
        raise argparse.ArgumentTypeError(f"invalid bbox {text!r}: south must be below north, both within ±90")
    if not (-180 <= w < e <= w + 360 and e <= 540):
        raise argparse.ArgumentTypeError(
            f"invalid bbox {text!r}: west must be below east (to cross the antimeridian give east beyond 180, "
            "e.g. 170,-20,190,0)"
        )
    return (w, s, e, n)


def parse_resolution(text: str) -> float:
    try:
        r = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid resolution {text!r}: a number of degrees, e.g. 0.1"
        ) from None
    if not (0.01 <= r <= 5.0):
        raise argparse.ArgumentTypeError(f"resolution {r} out of range: choose 0.01 to 5 degrees")
    return r


def parse_product(text: str) -> str:
    p = text.strip().lower()
    if p not in PRODUCTS:
        raise argparse.ArgumentTypeError(f"unknown product {text!r}: choose one of {', '.join(PRODUCTS)}")
    return p


def parse_lake_product(text: str) -> str:
    p = text.strip().lower()
    if p not in LAKE_PRODUCTS:
        raise argparse.ArgumentTypeError(
            f"unknown product {text!r}: choose one of {', '.join(LAKE_PRODUCTS)}"
        )
    return p


def _check_period(args: argparse.Namespace) -> None:
    if args.end < args.start:
        _fail(f"inverted date range: --start {args.start} is after --end {args.end}")
    spec = get_product(getattr(args, "product", None) or "no2")
    earliest = EARLIEST if spec.family == "s5p" else spec.mission_start
    if args.start < earliest:
        mission = "Sentinel-5P" if spec.family == "s5p" else spec.platform
        _fail(f"--start {args.start} is before {mission} data begins ({earliest})")
    if (args.end - args.start).days > 3660:
        _fail("date range longer than 10 years: split it into several runs")


def _check_truth(args: argparse.Namespace) -> None:
    """Read and validate the truth (file or built-in scenario) for the period and domain before any run."""
    from infra.scenario import load_truth

    if args.truth is not None and not os.path.isfile(args.truth):
        _fail(f"truth file {args.truth} not found")
    load_truth(args.truth, start=args.start, end=args.end, bounds=args.bbox)  # raises TruthTableError


def _lake(url: str | None, *, create: bool = True) -> Any:
    from infra.storage import open_lake

    return open_lake(url, create=create)  # None: the settings' lake (EOLAKE_LAKE, default ./lake)


def _prefect_env() -> None:
    """Quiet, loopback-only Prefect defaults unless the operator set them."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_API_HOST", "127.0.0.1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    # the temporary server can take longer than Prefect's 20 s default on a busy 2-core machine
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


# ---- commands ----


def cmd_simulate(args: argparse.Namespace) -> None:
    _check_period(args)
    _check_truth(args)
    _prefect_env()
    from flows.simulate import simulate_archive

    _print_json(
        simulate_archive(
            os.path.abspath(args.out), args.start, args.end, args.bbox, args.truth, args.seed, args.product
        )
    )


def cmd_harvest(args: argparse.Namespace) -> None:
    if (args.start is None) != (args.end is None):
        _fail(
            "give both --start and --end (a backfill), or neither (incremental since the last successful run)"
        )
    if args.start is not None:
        _check_period(args)
    elif args.days_back < 1:
        _fail(f"--days-back must be at least 1, got {args.days_back}")
    from infra.adapters.registry import check_source

    for source in args.source.split(","):
        check_source(source.strip())  # a typo or a bad sources file: one line, before anything starts
    if args.plan:
        _print_plan(args)
        return
    lake = _lake(args.lake)
    _prefect_env()
    from flows.harvest import harvest_granules

    summary = harvest_granules(
        args.source,
        args.product,
        args.start,
        args.end,
        lake.url,
        days_back=args.days_back,
        timeliness=args.timeliness,
    )
    _print_harvest(summary)
    if summary.get("failed"):
        raise SystemExit(1)  # some sources failed (each named above); the others were harvested


def _print_plan(args: argparse.Namespace) -> None:
    """``harvest --plan``: read upstream and the ledger (if the lake exists), print, write nothing."""
    import pandas as pd

    from infra.adapters import day_window, open_source
    from infra.harvest import incremental_window, plan_report
    from infra.ledger import GRANULE_SCHEMA, last_mark, read_granules
    from infra.sources import search_granules
    from transforms.errors import LakeError

    try:
        lake = _lake(args.lake, create=False)
        ledger = read_granules(lake)
    except LakeError:  # no lake yet: everything would be new
        lake, ledger = None, pd.DataFrame(columns=GRANULE_SCHEMA.names)
    upstream = []
    for source in (s.strip() for s in args.source.split(",") if s.strip()):
        if args.start is not None:
            lo, hi = day_window(args.start, args.end)
        else:
            mark = last_mark(lake, source, args.product) if lake is not None else None
            now = dt.datetime.now(dt.UTC)
            lo, hi = incremental_window(
                None if mark is None else mark.to_pydatetime(), now, days_back=args.days_back
            )
            print(f"incremental window for {source}: {lo.isoformat()} to {hi.isoformat()}")
        upstream += search_granules(
            open_source(source), product=args.product, start=lo, end=hi, timeliness=args.timeliness
        )
    plan = plan_report(upstream, ledger)
    size = sum(s or 0 for _, s in plan["fetch"] + plan["retry"])
    unknown = sum(1 for _, s in plan["fetch"] + plan["retry"] if s is None)
    print(
        f"plan: {len(plan['fetch'])} new and {len(plan['retry'])} retried granule(s) to fetch, "
        f"{size / 1e6:.1f} MB{f' (+{unknown} of unknown size)' if unknown else ''}; "
        f"{plan['present']} already in the lake"
    )
    for gid, nbytes in plan["fetch"]:
        print(f"  fetch {gid} ({'?' if nbytes is None else f'{nbytes / 1e6:.1f} MB'})")
    for gid, nbytes in plan["retry"]:
        print(f"  retry {gid} ({'?' if nbytes is None else f'{nbytes / 1e6:.1f} MB'})")
    for old, new in plan["supersede"]:
        print(f"  supersede {old} by {new}")
    if plan["days_to_regrid"]:
        print(f"  days to re-grid: {', '.join(plan['days_to_regrid'])}")
    print("nothing was written (--plan)")


def _print_harvest(summary: dict[str, Any]) -> None:
    print(
        f"harvest from {summary['source']}: {summary['found']} granules upstream, {summary['fetched']} fetched, "
        f"{summary['skipped']} already in the lake, {len(summary['quarantined'])} quarantined, "
        f"{len(summary['superseded'])} superseded"
    )
    for source, error in summary.get("failed", []):
        print(f"  source {source} failed: {error}")
    for gid, reason in summary["quarantined"]:
        print(f"  quarantined {gid}: {reason}")
    for gid in summary["superseded"]:
        print(f"  superseded {gid}")


def cmd_grid(args: argparse.Namespace) -> None:
    _check_period(args)
    lake = _lake(args.lake, create=False)
    _prefect_env()
    from flows.grid import build_daily_cube

    summary = build_daily_cube(
        args.product,
        args.start,
        args.end,
        lake.url,
        args.resolution or get_product(args.product).default_resolution,
        args.bbox,
        args.force,
        method=args.method,
        weighting=args.weighting,
    )
    print(
        f"cube {summary['cube']} (grid {summary['grid']}): {len(summary['days'])} day(s) gridded, "
        f"{summary['unchanged']} unchanged"
    )
    for d in summary["days"]:
        print(f"  {d['day']}: {d['granules']} granules, coverage {d['coverage']:.1%}")
    for gid, reason in summary.get("quarantined", []):
        print(f"  quarantined {gid}: {reason}")


def cmd_publish(args: argparse.Namespace) -> None:
    lake = _lake(args.lake, create=False)
    from infra.publish import publish_intake

    print(publish_intake(lake))


def cmd_demo(args: argparse.Namespace) -> None:
    _check_period(args)
    _check_truth(args)
    lake = _lake(args.lake)
    archive = args.archive or default_archive(lake.url)
    _prefect_env()
    from flows.demo import demo, describe_demo

    summary = demo(lake.url, archive, args.start, args.end, args.bbox, args.resolution, args.truth)
    print(describe_demo(summary))


def default_archive(lake_url: str) -> str:
    """The simulated upstream lives beside a local lake (``<lake>-upstream``), or under the working directory
    for an S3 lake."""
    if "://" in lake_url:
        return os.path.abspath("eolake-upstream")
    return lake_url.rstrip("/") + "-upstream"


def add_period(sp: argparse.ArgumentParser, *, required: bool) -> None:
    if required:
        sp.add_argument("--start", type=parse_date, required=True, help="first day, YYYY-MM-DD")
        sp.add_argument("--end", type=parse_date, required=True, help="last day, YYYY-MM-DD (inclusive)")
    else:
        sp.add_argument(
            "--start", type=parse_date, default=DEFAULT_START, help=f"first day (default {DEFAULT_START})"
        )
        sp.add_argument(
            "--end", type=parse_date, default=DEFAULT_END, help=f"last day (default {DEFAULT_END})"
        )


def add_lake(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--lake",
        default=os.environ.get("EOLAKE_LAKE", "./lake"),
        help="lake directory or s3:// URL (default ./lake)",
    )


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="eolake", description="An open Earth-observation data lake for carbon-satellite data.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser(
        "simulate", help="write a simulated archive (any product, real format) with a STAC catalog"
    )
    s.add_argument("--out", required=True, help="archive directory")
    s.add_argument(
        "--product", type=parse_lake_product, default="no2", help=f"one of {', '.join(LAKE_PRODUCTS)}"
    )
    s.add_argument(
        "--truth", help="Carbon Monitor CSV (country,date,sector,value); default: built-in scenario"
    )
    s.add_argument("--bbox", type=parse_bbox, default=DEFAULT_BBOX, help="W,S,E,N degrees")
    s.add_argument("--seed", type=int, default=0)
    add_period(s, required=False)
    s.set_defaults(func=cmd_simulate)

    h = sub.add_parser("harvest", help="copy granules from a STAC catalog/API into the lake")
    h.add_argument(
        "--source",
        required=True,
        help="a source named in the sources file (deployments/sources.yaml, e.g. cdse, planetary-computer), "
        "or a static catalog path/URL or STAC API root; several: comma-separated",
    )
    h.add_argument("--product", type=parse_lake_product, default="no2")
    h.add_argument(
        "--timeliness", choices=["nrti", "offl", "rpro"], help="only this processing mode (default: all)"
    )
    h.add_argument(
        "--plan", action="store_true", help="print what would be fetched and changed; write nothing"
    )
    h.add_argument("--start", type=parse_date, help="first day, YYYY-MM-DD (with --end: a backfill)")
    h.add_argument("--end", type=parse_date, help="last day, YYYY-MM-DD (inclusive)")
    h.add_argument(
        "--days-back",
        type=int,
        default=2,
        help="without --start/--end: search from the last successful run's high-water mark less this many "
        "days (late and reprocessed granules) to now; the first run takes this many days (default 2)",
    )
    add_lake(h)
    h.set_defaults(func=cmd_harvest)

    g = sub.add_parser("grid", help="grid harvested granules into the daily Zarr cube")
    g.add_argument("--product", type=parse_lake_product, default="no2")
    g.add_argument(
        "--resolution",
        type=parse_resolution,
        default=None,
        help="degrees (default: the product's, 0.1 for S5P, 1 for OCO-2/OCO-3/TanSat, 2 for GOSAT)",
    )
    g.add_argument(
        "--bbox", type=parse_bbox, default=(-180.0, -90.0, 180.0, 90.0), help="W,S,E,N (default: global)"
    )
    g.add_argument(
        "--force", action="store_true", help="re-grid days even when their granules did not change"
    )
    g.add_argument(
        "--method",
        choices=["centre", "footprint"],
        default="centre",
        help="pixel-centre binning, or area-weighted pixel footprints (default centre); "
        "changing it for days already gridded needs --force",
    )
    g.add_argument(
        "--weighting", choices=["plain", "inverse_variance"], default="inverse_variance", help="pixel weights"
    )
    add_period(g, required=True)
    add_lake(g)
    g.set_defaults(func=cmd_grid)

    pb = sub.add_parser("publish", help="regenerate the lake's intake catalog from its STAC catalog")
    add_lake(pb)
    pb.set_defaults(func=cmd_publish)

    d = sub.add_parser("demo", help="simulate → harvest → grid → catalog → emissions → intake, end to end")
    add_lake(d)
    d.add_argument("--truth", help="Carbon Monitor CSV truth; default: built-in scenario")
    d.add_argument(
        "--bbox",
        type=parse_bbox,
        default=DEFAULT_BBOX,
        help=f"W,S,E,N (default {','.join(map(str, DEFAULT_BBOX))})",
    )
    d.add_argument("--resolution", type=parse_resolution, default=DEFAULT_RESOLUTION)
    d.add_argument("--archive", help="where the simulated upstream archive goes (default: <lake>-upstream)")
    add_period(d, required=False)
    d.set_defaults(func=cmd_demo)

    # each area adds its own commands from flows/cli_<area>.py: a register(subparsers) function
    for module in sorted(
        m.name for m in pkgutil.iter_modules([os.path.dirname(__file__)]) if m.name.startswith("cli_")
    ):
        importlib.import_module(f"flows.{module}").register(sub)
    return p


GC_YOUNG_THRESHOLD = 10_000
"""Allocations between young-generation garbage collections while a command runs (Python's default: 700). A
command imports Prefect and pandas and may list thousands of granules: millions of long-lived objects, which
every older-generation collection traverses again. In a no-op harvest of 10,000 granules collections took
0.6–0.9 s at the default and 0.25–0.35 s at this threshold (``bench/README.md``, Harvest)."""


def main(argv: Sequence[str] | None = None) -> None:
    previous = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *previous[1:])
    try:
        _run(argv)
    finally:
        gc.set_threshold(*previous)


def _run(argv: Sequence[str] | None) -> None:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], None] = args.func
    try:
        func(args)
    except EolakeError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted")
    except Exception as exc:  # an unexpected failure: say so in one line after whatever the run logged
        print(f"eolake: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
