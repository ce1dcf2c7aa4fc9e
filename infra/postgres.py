"""A throwaway PostgreSQL + PostGIS cluster on 127.0.0.1 (for pgstac): initdb in a directory, started with
``pg_ctl``-equivalent ``postgres`` as a child process, stopped by its PID.

initdb refuses to run as root, so as root the cluster runs as the ``postgres`` system user. PostGIS comes
from the distribution (``postgresql-<major>-postgis-3``); :func:`ensure_postgis` installs it with apt-get
when it is missing and that is possible.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from infra.services import Service, _wait, free_port, stop_group

SUPERUSER = "postgres"


def postgres_bin() -> Path:
    """The newest installed PostgreSQL server's bin directory."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        found = shutil.which("initdb")
        if found is None:
            raise FileNotFoundError(
                "PostgreSQL server binaries not found: install them, e.g. apt-get install -y postgresql"
            )
        return Path(found).parent
    return Path(candidates[-1]).parent


def _major(bindir: Path) -> str:
    return bindir.parts[-2] if bindir.parts[-3] == "postgresql" else ""


def ensure_postgis(bindir: Path | None = None) -> None:
    """Install the distribution's PostGIS for this PostgreSQL when its extension files are missing."""
    bindir = bindir or postgres_bin()
    major = _major(bindir)
    if glob.glob(f"/usr/share/postgresql/{major}/extension/postgis.control"):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError(
            f"PostGIS is not installed for PostgreSQL {major}: run `apt-get install -y postgresql-{major}-postgis-3`"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    package = f"postgresql-{major}-postgis-3"
    proc = subprocess.run(
        ["apt-get", "install", "-y", "-q", package], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
        proc = subprocess.run(
            ["apt-get", "install", "-y", "-q", package], env=env, capture_output=True, text=True
        )
    if proc.returncode != 0:
        raise RuntimeError(f"could not install {package}: {proc.stderr[-1000:]}")


def _as_owner(cmd: Sequence[str], owner: str | None) -> list[str]:
    if owner is None:
        return list(cmd)
    return ["runuser", "-u", owner, "--", *cmd]


def start_postgres(data_dir: Path, *, port: int | None = None, database: str = "eolake") -> Service:
    """initdb ``data_dir`` (if new), start PostgreSQL on 127.0.0.1 with a random password, create
    ``database`` and return the service; ``env`` holds the ``PG*`` variables to reach it."""
    bindir = postgres_bin()
    ensure_postgis(bindir)
    port = port or free_port()
    owner = SUPERUSER if os.geteuid() == 0 else None
    data_dir.mkdir(parents=True, exist_ok=True)
    socket_dir = data_dir / "sockets"
    socket_dir.mkdir(exist_ok=True)
    password = secrets.token_hex(16)
    pwfile = data_dir / "pwfile"
    pwfile.write_text(password)
    if owner is not None:
        entry = pwd.getpwnam(owner)
        for path in (data_dir, socket_dir, pwfile):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        parent = data_dir.parent
        while parent != parent.parent:  # the owner must be able to reach the directory
            os.chmod(parent, os.stat(parent).st_mode | 0o011)
            parent = parent.parent
    pgdata = data_dir / "pgdata"
    log = data_dir / f"postgres-{port}.log"
    if not (pgdata / "PG_VERSION").exists():
        subprocess.run(
            _as_owner(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    SUPERUSER,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
                owner,
            ),
            check=True,
            capture_output=True,
        )
    pwfile.unlink()
    with open(log, "wb") as out:
        if owner is not None:
            entry = pwd.getpwnam(owner)
            os.chown(log, entry.pw_uid, entry.pw_gid)
        proc = subprocess.Popen(
            _as_owner(
                [
                    str(bindir / "postgres"),
                    "-D",
                    str(pgdata),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-p",
                    str(port),
                    "-k",
                    str(socket_dir),
                    "-c",
                    "fsync=off",
                    "-c",
                    "max_connections=50",
                ],
                owner,
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    env = {
        "PGHOST": "127.0.0.1",
        "PGPORT": str(port),
        "PGUSER": SUPERUSER,
        "PGPASSWORD": password,
        "PGDATABASE": database,
    }

    def ready() -> bool:
        r = subprocess.run(
            [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True
        )
        return r.returncode == 0

    _wait(ready, what="PostgreSQL", process=proc, log=log, timeout=60)
    created = subprocess.run(
        [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", SUPERUSER, database],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    if created.returncode != 0 and "already exists" not in created.stderr:
        raise RuntimeError(f"createdb {database} failed: {created.stderr.strip()}")
    dsn = f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{port}/{database}"
    return Service("postgres", proc, dsn, log, env)


def stop_postgres(service: Service) -> None:
    """Fast shutdown by PID: SIGINT to the server's process group, which holds the ``runuser`` wrapper and
    postgres itself with its children; waits until none is left."""
    import signal

    stop_group(service.process.pid, signal.SIGINT, timeout=30)
    service.process.wait(timeout=10)
