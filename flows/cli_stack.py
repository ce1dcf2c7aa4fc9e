"""``eolake up | status | down``: the local stack of real services (see infra/stack.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def _state(args: argparse.Namespace) -> Path:
    from infra.settings import get_settings

    return Path(args.state_dir or get_settings().resolved_state_dir()).expanduser().resolve()


def cmd_up(args: argparse.Namespace) -> None:
    from infra.stack import up

    state = _state(args)
    services = up(state, dask_workers=args.dask_workers)
    print(f"eolake stack is up (state in {state}):")
    labels = {
        "s3": "S3 endpoint",
        "prefect": "Prefect API",
        "dask-scheduler": "dask scheduler",
        "stac-api": "STAC API",
    }
    for name, svc in services.items():
        if name in labels:
            print(f"  {labels[name]:<15} {svc.url}")
    workers = sorted(n for n in services if n.startswith("dask-worker"))
    print(f"  {'dask workers':<15} {len(workers)}")
    print(f"  {'Prefect worker':<15} pool eolake-process (pid {services['worker'].pid})")
    print(f"  {'lake':<15} s3://eolake/lake")
    print(f"Use it from a shell with:  source {state / 'stack.env'}   (holds the generated S3 credentials)")


def cmd_status(args: argparse.Namespace) -> None:
    from infra.stack import read_state, status

    state = _state(args)
    health = status(state)
    if not health:
        print(f"no stack recorded in {state}: run `eolake up`")
        raise SystemExit(1)
    services = read_state(state)
    for name, ok in health.items():
        print(f"  {name:<15} {'up  ' if ok else 'DOWN'}  pid {services[name].pid:<8} {services[name].url}")
    if not all(health.values()):
        print("eolake: some services are down: `eolake down && eolake up` restarts them", file=sys.stderr)
        raise SystemExit(1)


def cmd_down(args: argparse.Namespace) -> None:
    from infra.stack import down

    stopped = down(_state(args))
    print(f"stopped {', '.join(stopped)}" if stopped else "nothing to stop")


def register(sub: Any) -> None:
    for name, func, text in (
        (
            "up",
            cmd_up,
            "start the local stack: S3, Prefect server + worker, dask, STAC API; deploy the flows",
        ),
        ("status", cmd_status, "health of each service of the local stack (exit 1 if one is down)"),
        ("down", cmd_down, "stop every service the stack started, by PID"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument(
            "--state-dir", help="stack state directory (default: EOLAKE_STATE_DIR or the user data dir)"
        )
        if name == "up":
            p.add_argument("--dask-workers", type=int, default=2, choices=range(1, 17), metavar="N")
        p.set_defaults(func=func)
