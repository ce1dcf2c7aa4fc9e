"""Real local services as child processes bound to 127.0.0.1: an S3 server (``rclone serve s3``) and a Prefect
server. Each is started, waited on until healthy, and stopped by its own PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Service:
    """A started child process and how to reach it."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, *, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Stop the process by its PID: ``sig`` first, SIGKILL if it has not exited after ``timeout`` s."""
        if self.process.poll() is not None:
            return
        try:
            os.kill(self.process.pid, sig)
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
        except ProcessLookupError:
            pass


def _bin(name: str) -> str:
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: install the project with `uv sync` (it ships {name})")
    return found


def _wait(
    check: Callable[[], bool], *, what: str, process: subprocess.Popen[bytes], log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{what} exited with status {process.returncode}; see {log}:\n{log.read_text()[-2000:]}"
            )
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    raise TimeoutError(f"{what} did not become healthy within {timeout:.0f} s; see {log}")


def start_s3_server(
    data_dir: Path, *, key: str, secret: str, port: int | None = None, log_dir: Path | None = None
) -> Service:
    """``rclone serve s3`` over ``data_dir`` (a bucket is a sub-directory) on 127.0.0.1."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = (log_dir or data_dir.parent) / f"rclone-s3-{port}.log"
    cmd = [
        _bin("rclone"),
        "serve",
        "s3",
        "--addr",
        f"127.0.0.1:{port}",
        "--auth-key",
        f"{key},{secret}",
        "--dir-cache-time",
        "2s",
        "--poll-interval",
        "0",
        "--config",
        "/dev/null",
        str(data_dir),
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True

    _wait(healthy, what="rclone S3 server", process=proc, log=log, timeout=30)
    return Service(
        "s3",
        proc,
        url,
        log,
        {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret},
    )


def start_prefect_server(home: Path, *, port: int | None = None) -> Service:
    """``prefect server start`` with its SQLite database in ``home``, on 127.0.0.1."""
    port = port or free_port()
    home.mkdir(parents=True, exist_ok=True)
    log = home / f"prefect-server-{port}.log"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_UI_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [_bin("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    api = f"http://127.0.0.1:{port}/api"

    def healthy() -> bool:
        with urllib.request.urlopen(f"{api}/health", timeout=2) as r:
            return bool(r.status == 200)

    _wait(healthy, what="Prefect server", process=proc, log=log, timeout=90)
    return Service("prefect", proc, api, log, {"PREFECT_API_URL": api})


def stop_group(pid: int, sig: int, *, timeout: float) -> None:
    """Send ``sig`` to process group ``pid`` (a service started with its own session) and wait until no member
    is left; SIGKILL the group after ``timeout`` seconds."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _group_alive(pid):
            return
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    time.sleep(0.5)


def _group_alive(pgid: int) -> bool:
    return bool(group_members(pgid))


def group_members(pgid: int) -> list[int]:
    """PIDs (not zombies) in process group ``pgid``."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().split(")")[-1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append(int(entry))
    return out
