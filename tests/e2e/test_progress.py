"""Long CLI work shows a progress bar in a terminal, and none when output is not a terminal (logs, workers)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def _run_in_terminal(args: list[str], env: dict[str, str], timeout: float = 300) -> str:
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", *args],
        env={**env, "COLUMNS": "100"},
        cwd=REPO,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        close_fds=True,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=timeout)
    os.close(leader)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")[-2000:]
    return b"".join(chunks).decode(errors="replace")


def test_progress_bar_only_in_a_terminal(cli, tmp_path: Path) -> None:
    args = [
        "simulate",
        "--out",
        str(tmp_path / "a"),
        "--bbox",
        "4,47,12,53",
        "--start",
        "2020-03-02",
        "--end",
        "2020-03-03",
    ]
    shown = _run_in_terminal(args, cli.env)
    assert "simulating days" in shown and "2/2" in shown
    piped = cli(*[a if a != str(tmp_path / "a") else str(tmp_path / "b") for a in args])
    assert "simulating days" not in piped.stdout + piped.stderr
