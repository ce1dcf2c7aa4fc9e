"""``eolake stac …``: serve the lake's catalog as a STAC API, load it into pgstac, export a static tree."""

from __future__ import annotations

import argparse
import ipaddress
import os
from typing import Any

from flows.cli import _fail, _lake, _Parser, _print_json, add_lake


def parse_port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: a number from 1 to 65535") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"invalid port {port}: choose 1 to 65535")
    return port


def parse_host(text: str) -> str:
    if text == "localhost":
        return text
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid host {text!r}: an IP address such as 127.0.0.1") from None
    return text


def _store(args: argparse.Namespace) -> Any:
    from infra.publish import catalog_store

    lake = _lake(args.lake, create=False)
    store = catalog_store(lake)
    if not lake.fs.exists(lake.path("stac", "catalog.json")):
        _fail(
            f"the lake {lake.url} has no STAC catalog yet: run `eolake demo` or the harvest/grid flows first"
        )
    return store


def _postgres_settings() -> Any:
    _quiet_stac_fastapi()
    from stac_fastapi.pgstac.config import PostgresSettings

    missing = [v for v in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE") if not os.environ.get(v)]
    if missing:
        _fail(f"the pgstac backend needs {', '.join(missing)} set to reach PostgreSQL")
    return PostgresSettings(
        pghost=os.environ["PGHOST"],
        pgport=int(os.environ["PGPORT"]),
        pguser=os.environ["PGUSER"],
        pgpassword=os.environ["PGPASSWORD"],
        pgdatabase=os.environ["PGDATABASE"],
    )


def _dsn() -> str:
    s = _postgres_settings()
    return f"postgresql://{s.pguser}:{s.pgpassword}@{s.pghost}:{s.pgport}/{s.pgdatabase}"


def _quiet_stac_fastapi() -> None:
    """stac-fastapi reads these at import and complains on stderr when they are unset."""
    os.environ.setdefault("STAC_FASTAPI_TITLE", "eolake")
    os.environ.setdefault(
        "STAC_FASTAPI_DESCRIPTION", "Carbon-satellite data lake: granules, cubes, emissions."
    )
    os.environ.setdefault("STAC_FASTAPI_LANDING_ID", "eolake")
    os.environ.setdefault("STAC_FASTAPI_VERSION", "1.0.0")


def cmd_serve(args: argparse.Namespace) -> None:
    postgres = _postgres_settings() if args.backend == "pgstac" else None
    store: Any = _store(args) if postgres is None else None
    _quiet_stac_fastapi()
    import uvicorn

    from catalog.api.app import create_embedded_app, create_pgstac_app

    app = create_pgstac_app(postgres) if store is None else create_embedded_app(store)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


def cmd_load_pgstac(args: argparse.Namespace) -> None:
    _quiet_stac_fastapi()
    from catalog.pgstac import load_store, migrate

    store = _store(args)
    dsn = _dsn()
    version = migrate(dsn)
    counts = load_store(store, dsn)
    _print_json({"pgstac": version, "items": counts})


def cmd_export(args: argparse.Namespace) -> None:
    import fsspec

    from catalog.store import export_static

    store = _store(args)
    out = os.path.abspath(args.out)
    n = export_static(store, fsspec.filesystem("file"), out)
    print(f"exported {n} items to {out}/catalog.json")


def register(sub: Any) -> None:
    s = sub.add_parser("stac", help="the STAC API and catalog exports")
    ssub = s.add_subparsers(dest="stac_command", required=True, parser_class=_Parser)

    sv = ssub.add_parser("serve", help="serve the lake's catalog as a STAC API (read-only)")
    add_lake(sv)
    sv.add_argument(
        "--host", type=parse_host, default="127.0.0.1", help="address to bind (default 127.0.0.1)"
    )
    sv.add_argument("--port", type=parse_port, default=8080)
    sv.add_argument(
        "--backend",
        choices=("embedded", "pgstac"),
        default="embedded",
        help="embedded: straight from the lake, no database (default); pgstac: PostgreSQL via PG* variables",
    )
    sv.set_defaults(func=cmd_serve)

    lp = ssub.add_parser(
        "load-pgstac", help="upsert the lake's collections and items into pgstac (PG* variables)"
    )
    add_lake(lp)
    lp.set_defaults(func=cmd_load_pgstac)

    ex = ssub.add_parser("export", help="write a static browsable STAC catalog")
    add_lake(ex)
    ex.add_argument("--out", required=True, help="output directory")
    ex.set_defaults(func=cmd_export)
