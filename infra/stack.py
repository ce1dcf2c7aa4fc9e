"""The local stack behind ``eolake up``: real services as detached processes on 127.0.0.1.

An S3 server (rclone) over ``<state>/s3``, a Prefect server (SQLite in ``<state>/prefect``), dask scheduler and
workers, the process work pool with the deployments from ``deployments/prefect.yaml`` and a worker, and the
STAC API. Everything the stack knows lives in the state directory: ``stack.json`` (PIDs, URLs, logs),
``credentials.json`` and ``stack.env`` (mode 0600; generated on first run, never printed or logged).
Each service is its own process group, so stopping it by PID also stops the children it spawned
(flow-run processes, dask nannies).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from infra.services import _bin, free_port, stop_group

POOL = "eolake-process"
BUCKET = "eolake"
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Running:
    """One service of the stack, as recorded in ``stack.json``."""

    name: str
    pid: int
    url: str
    log: str
    stop_signal: str = "SIGTERM"
    health: str = "tcp"  # "tcp", "http:<url>" or "pid"


def _credentials(state: Path) -> dict[str, str]:
    path = state / "credentials.json"
    if path.exists():
        creds: dict[str, str] = json.loads(path.read_text())
        return creds
    creds = {"s3_key": "eolake" + secrets.token_hex(8), "s3_secret": secrets.token_hex(20)}
    path.touch(mode=0o600)
    path.write_text(json.dumps(creds))
    return creds


def _spawn(
    name: str, cmd: list[str], *, env: dict[str, str], logs: Path, cwd: Path | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    log = logs / f"{name}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )
    return proc, log


def _tcp_ok(url: str) -> bool:
    hostport = url.split("://", 1)[-1].split("/", 1)[0]
    host, port = hostport.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return bool(200 <= r.status < 300)
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def healthy(svc: Running) -> bool:
    if not _alive(svc.pid):
        return False
    if svc.health == "pid":
        return True
    if svc.health.startswith("http:"):
        return _http_ok(svc.health[5:])
    return _tcp_ok(svc.url)


def _wait_for(check: Any, what: str, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}; see {log}")
        if check():
            return
        time.sleep(0.3)
    raise TimeoutError(f"{what} did not become healthy within {timeout:.0f} s; see {log}")


def read_state(state: Path) -> dict[str, Running]:
    path = state / "stack.json"
    if not path.exists():
        return {}
    doc = json.loads(path.read_text())
    return {name: Running(**svc) for name, svc in doc.get("services", {}).items()}


def _write_state(state: Path, services: dict[str, Running], extra: dict[str, Any]) -> None:
    doc = {"services": {k: asdict(v) for k, v in services.items()}, **extra}
    tmp = state / "stack.json.tmp"
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(state / "stack.json")


def stack_env(state: Path) -> dict[str, str]:
    """The environment a client of the running stack needs (includes credentials: never print it)."""
    path = state / "stack.env"
    out: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.startswith("export "):
                k, _, v = line[7:].partition("=")
                out[k] = v.strip("'")
    return out


def up(state: Path, *, dask_workers: int = 2, extra_env: dict[str, str] | None = None) -> dict[str, Running]:
    """Start every service not already running; create the work pool and deploy. Returns the services."""
    state.mkdir(parents=True, exist_ok=True)
    logs = state / "logs"
    logs.mkdir(exist_ok=True)
    services = {k: v for k, v in read_state(state).items() if healthy(v)}
    extra = {"lake": f"s3://{BUCKET}/lake", "pool": POOL}

    def started(
        svc: Running,
    ) -> None:  # recorded at once, so `eolake down` can stop it even if `up` fails later
        services[svc.name] = svc
        _write_state(state, services, extra)

    creds = _credentials(state)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API_URL", "EOLAKE_", "AWS_"))}
    base.update(extra_env or {})
    base.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    base.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    base.setdefault(
        "PREFECT_LOGGING_HANDLERS_CONSOLE_FORMATTER", "json"
    )  # structured logs: one JSON object a line

    if "s3" not in services:
        port = free_port()
        (state / "s3" / BUCKET).mkdir(parents=True, exist_ok=True)
        cmd = [
            _bin("rclone"),
            "serve",
            "s3",
            "--addr",
            f"127.0.0.1:{port}",
            "--auth-key",
            f"{creds['s3_key']},{creds['s3_secret']}",
            "--dir-cache-time",
            "2s",
            "--poll-interval",
            "0",
            "--config",
            "/dev/null",
            str(state / "s3"),
        ]
        proc, log = _spawn("s3", cmd, env=base, logs=logs)
        url = f"http://127.0.0.1:{port}"
        _wait_for(lambda: _tcp_ok(url), "S3 server", 30, proc, log)
        started(Running("s3", proc.pid, url, str(log)))
    s3_url = services["s3"].url
    lake = f"s3://{BUCKET}/lake"
    client_env = {
        "AWS_ENDPOINT_URL": s3_url,
        "AWS_ACCESS_KEY_ID": creds["s3_key"],
        "AWS_SECRET_ACCESS_KEY": creds["s3_secret"],
        "EOLAKE_LAKE": lake,
        "EOLAKE_STATE_DIR": str(state),
    }

    if "prefect" not in services:
        port = free_port()
        env = {
            **base,
            "PREFECT_HOME": str(state / "prefect"),
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(port),
            "PREFECT_UI_ENABLED": "false",
        }
        proc, log = _spawn(
            "prefect",
            [_bin("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            logs=logs,
        )
        api = f"http://127.0.0.1:{port}/api"
        _wait_for(lambda: _http_ok(f"{api}/health"), "Prefect server", 120, proc, log)
        started(Running("prefect", proc.pid, api, str(log), health=f"http:{api}/health"))
    api = services["prefect"].url
    client_env["PREFECT_API_URL"] = api

    if "dask-scheduler" not in services:
        port = free_port()
        proc, log = _spawn(
            "dask-scheduler",
            [
                _bin("dask"),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--dashboard-address",
                "127.0.0.1:0",
            ],
            env=base,
            logs=logs,
        )
        addr = f"tcp://127.0.0.1:{port}"
        _wait_for(lambda: _tcp_ok(addr), "dask scheduler", 60, proc, log)
        started(Running("dask-scheduler", proc.pid, addr, str(log)))
    dask_addr = services["dask-scheduler"].url
    client_env["EOLAKE_DASK_ADDRESS"] = dask_addr
    for i in range(dask_workers):
        name = f"dask-worker-{i}"
        if name not in services:
            proc, log = _spawn(
                name,
                [
                    _bin("dask"),
                    "worker",
                    dask_addr,
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "1",
                    "--dashboard-address",
                    "127.0.0.1:0",
                    "--name",
                    name,
                ],
                env={**base, **client_env},
                logs=logs,
            )
            started(Running(name, proc.pid, dask_addr, str(log), health="pid"))

    env_file = state / "stack.env"
    env_file.touch(mode=0o600)
    env_file.write_text("".join(f"export {k}='{v}'\n" for k, v in sorted(client_env.items())))
    run_env = {**base, **client_env, "EOLAKE_REPO_DIR": str(REPO), "EOLAKE_SOURCE": str(state / "upstream")}

    _run(
        [_bin("prefect"), "work-pool", "create", POOL, "--type", "process", "--overwrite"],
        env=run_env,
        logs=logs,
    )
    _run(
        [
            _bin("prefect"),
            "--no-prompt",
            "deploy",
            "--all",
            "--prefect-file",
            str(REPO / "deployments" / "prefect.yaml"),
        ],
        env=run_env,
        logs=logs,
        cwd=REPO,
    )

    if "worker" not in services:
        proc, log = _spawn(
            "worker",
            [_bin("prefect"), "worker", "start", "--pool", POOL, "--name", "eolake-local"],
            env=run_env,
            logs=logs,
            cwd=REPO,
        )
        started(Running("worker", proc.pid, api, str(log), stop_signal="SIGINT", health="pid"))

    if "stac-api" not in services and _has_stac_command():
        _init_lake(lake, {**base, **client_env}, logs)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc, log = _spawn(
            "stac-api",
            [
                sys.executable,
                "-m",
                "flows.cli",
                "stac",
                "serve",
                "--lake",
                lake,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env={**base, **client_env},
            logs=logs,
            cwd=REPO,
        )
        _wait_for(lambda: _http_ok(f"{url}/"), "STAC API", 90, proc, log)
        started(Running("stac-api", proc.pid, url, str(log), health=f"http:{url}/"))

    _write_state(state, services, {"lake": lake, "pool": POOL})
    return services


def _init_lake(lake: str, env: dict[str, str], logs: Path) -> None:
    """Create the bucket and an empty catalog in the stack's lake (idempotent)."""
    code = "from infra.maintenance import init_catalog; from infra.storage import open_lake; init_catalog(open_lake())"
    _run([sys.executable, "-c", code], env={**env, "EOLAKE_LAKE": lake}, logs=logs, cwd=REPO)


def _has_stac_command() -> bool:
    return (REPO / "flows" / "cli_stac.py").exists()


def _run(cmd: list[str], *, env: dict[str, str], logs: Path, cwd: Path | None = None) -> None:
    with open(logs / "setup.log", "ab") as out:
        out.write(f"$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(cmd[:4])} …` failed with status {proc.returncode}; see {logs / 'setup.log'}"
        )


def status(state: Path) -> dict[str, bool]:
    """Each recorded service's health."""
    return {name: healthy(svc) for name, svc in read_state(state).items()}


def down(state: Path, *, timeout: float = 30.0) -> list[str]:
    """Stop every recorded service by PID (its whole process group), newest first. Returns the names."""
    services = read_state(state)
    order = [
        "stac-api",
        "worker",
        *sorted(k for k in services if k.startswith("dask-worker")),
        "dask-scheduler",
        "prefect",
        "s3",
    ]
    stopped = []
    for name in [n for n in order if n in services] + [n for n in services if n not in order]:
        svc = services[name]
        stop_group(svc.pid, getattr(signal, svc.stop_signal), timeout=timeout)
        stopped.append(name)
    _write_state(state, {}, {})
    return stopped
