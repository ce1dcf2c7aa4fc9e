"""Background work for transfers on reused threads.

A granule transfer runs three short-lived pieces of work beside its download — writing blocks, hashing them,
and the fsync (or, on S3, creating the upload and sending the last part). Starting and joining a thread for
each costs 0.1–0.3 ms, about a tenth of a small granule's whole transfer on a fast link. Threads are
therefore kept: a finished worker waits for the next piece of work, and a new one starts only when every
kept worker is busy (a cached pool: never a queue that a download could wait on for ever).
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable

KEEP = 64
"""Idle workers kept at most; one that finishes beyond this many ends."""

_idle: list[queue.SimpleQueue[Callable[[], None]]] = []
_lock = threading.Lock()
_names = itertools.count(1)


def _loop(inbox: queue.SimpleQueue[Callable[[], None]]) -> None:
    while True:
        inbox.get()()  # the work handles its own errors (see Background)
        with _lock:
            if len(_idle) >= KEEP:
                return
            _idle.append(inbox)


def _submit(work: Callable[[], None]) -> None:
    with _lock:
        inbox = _idle.pop() if _idle else None
    if inbox is None:
        inbox = queue.SimpleQueue()
        name = f"eolake-transfer-{next(_names)}"
        threading.Thread(target=_loop, args=(inbox,), name=name, daemon=True).start()
    inbox.put(work)


class Background:
    """``fn(*args)`` on a worker thread, started at once; :meth:`wait` blocks until it returned and re-raises
    what it raised."""

    def __init__(self, fn: Callable[..., object], *args: object) -> None:
        self.error: BaseException | None = None
        self._done = threading.Event()
        self._fn, self._args = fn, args
        _submit(self._run)

    def _run(self) -> None:
        try:
            self._fn(*self._args)
        except BaseException as exc:  # handed to wait()
            self.error = exc
        finally:
            self._done.set()

    def wait(self) -> None:
        self._done.wait()
        if self.error is not None:
            raise self.error
