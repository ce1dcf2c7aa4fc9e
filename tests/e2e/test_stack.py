"""The local stack: `eolake up` starts real services on 127.0.0.1 and deploys; a deployment triggered from the
CLI completes through the worker; a schedule fires and its run completes; `eolake status` notices a dead
service; `eolake down` leaves no process behind; logs and lake hold no secret."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from infra.services import group_members
from infra.stack import read_state
from tests.conftest import REPO, _base_env


def _eolake(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _prefect(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "prefect"), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _api(api: str, path: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        f"{api}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _listening_addresses(pids: set[int]) -> list[str]:
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    addrs = []
    for line in out.splitlines():
        if any(f"pid={p}," in line for p in pids):
            addrs.append(line.split()[3])
    return addrs


def test_stack_up_deploy_run_schedule_down(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = _base_env(tmp_path / "home")
    env.pop("PREFECT_API_URL", None)
    # a quick scheduler and worker poll, so a schedule's run happens within the test
    env.update(
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="5",
        PREFECT_WORKER_QUERY_SECONDS="3",
        PREFECT_WORKER_PREFETCH_SECONDS="5",
    )
    up = _eolake(env, "up", "--state-dir", str(state), "--dask-workers", "1")
    services = read_state(state)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        for label in ("S3 endpoint", "Prefect API", "dask scheduler", "STAC API", "Prefect worker"):
            assert label in up.stdout
        assert "http://127.0.0.1:" in up.stdout and "/api" in up.stdout
        assert set(services) >= {"s3", "prefect", "dask-scheduler", "dask-worker-0", "worker", "stac-api"}
        pids = {p for svc in services.values() for p in group_members(svc.pid)}
        addrs = _listening_addresses(pids)
        assert addrs and all(a.startswith("127.0.0.1:") for a in addrs), addrs
        assert _eolake(env, "status", "--state-dir", str(state)).returncode == 0

        client = {**env, **_stack_env(state)}
        api = client["PREFECT_API_URL"]
        names = {d["name"] for d in _api(api, "/deployments/filter", {"limit": 100})}
        assert {
            "catalog-maintenance",
            "demo",
            "harvest-no2-nrt",
            "grid-no2-daily",
            "emissions-daily",
            "backfill",
        } <= names

        # triggered from the CLI, run by the worker
        run = _prefect(
            client,
            "deployment",
            "run",
            "maintain_catalog/catalog-maintenance",
            "--watch",
            "--watch-timeout",
            "240",
        )
        assert run.returncode == 0 and "Completed" in run.stdout, run.stdout[-2000:] + run.stderr[-2000:]

        # logs are structured: the worker's flow-run records are JSON objects
        records = [
            json.loads(line)
            for line in Path(services["worker"].log).read_text().splitlines()
            if line.startswith("{")
        ]
        assert any(r["name"] == "prefect.flow_runs" and r.get("flow_run_id") for r in records)

        # a schedule fires and its run completes
        sched = _prefect(
            client,
            "deployment",
            "schedule",
            "create",
            "maintain_catalog/catalog-maintenance",
            "--interval",
            "15",
        )
        assert sched.returncode == 0, sched.stderr
        deadline = time.monotonic() + 240
        done: list[Any] = []
        while time.monotonic() < deadline and not done:
            runs = _api(
                api,
                "/flow_runs/filter",
                {"flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}, "limit": 50},
            )
            done = [r for r in runs if r.get("auto_scheduled")]
            time.sleep(3)
        assert done, "no scheduled run completed within 4 minutes"

        # status notices a dead service
        os.kill(services["dask-worker-0"].pid, signal.SIGKILL)
        time.sleep(1)
        st = _eolake(env, "status", "--state-dir", str(state))
        assert st.returncode == 1 and "DOWN" in st.stdout
    finally:
        down = _eolake(env, "down", "--state-dir", str(state))
    assert down.returncode == 0, down.stderr
    for svc in services.values():
        assert group_members(svc.pid) == [], f"{svc.name} left processes behind"
    leftovers = subprocess.run(["pgrep", "-f", str(state)], capture_output=True, text=True).stdout.split()
    assert leftovers == []
    _assert_no_secret(state)


def _stack_env(state: Path) -> dict[str, str]:
    out = {}
    for line in (state / "stack.env").read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        out[key] = value.strip("'")
    assert oct((state / "stack.env").stat().st_mode & 0o777) == "0o600"
    return out


def _assert_no_secret(state: Path) -> None:
    secret = json.loads((state / "credentials.json").read_text())["s3_secret"]
    for path in [*(state / "logs").glob("*.log"), *(state / "s3").rglob("*")]:
        if path.is_file() and path.suffix != ".nc":
            assert secret.encode() not in path.read_bytes(), f"the S3 secret leaked into {path}"
