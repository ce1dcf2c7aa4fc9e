"""Reused worker threads (infra.workers): work runs, errors come back, threads are reused, and work that waits
on other work never waits for a free worker."""

from __future__ import annotations

import threading

import pytest

from infra.workers import Background


def test_background_returns_and_reraises() -> None:
    out: list[int] = []
    Background(out.append, 1).wait()
    assert out == [1]
    failing = Background(int, "not a number")
    with pytest.raises(ValueError, match="not a number"):
        failing.wait()


def test_a_finished_worker_runs_the_next_piece_of_work() -> None:
    names: list[str] = []
    for _ in range(5):
        Background(lambda: names.append(threading.current_thread().name)).wait()
    assert len(set(names)) == 1 and names[0].startswith("eolake-transfer-")
    assert names[0] != threading.current_thread().name


def test_work_waiting_on_other_work_gets_a_worker_of_its_own() -> None:
    # 80 pieces that can only finish together: a fixed-size pool would hang here (the barrier times out)
    barrier = threading.Barrier(80, timeout=30)
    jobs = [Background(barrier.wait) for _ in range(80)]
    for job in jobs:
        job.wait()
    assert not barrier.broken
