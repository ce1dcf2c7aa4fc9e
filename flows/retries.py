"""The one retry policy: which failures are worth retrying, and how long to wait between attempts."""

from __future__ import annotations

from typing import Any

from transforms.errors import GranuleReadError, InputError, LakeError, SourceError

RETRYABLE: tuple[type[BaseException], ...] = (SourceError, LakeError, TimeoutError, ConnectionError)
"""Transient: upstream or storage unreachable, timeouts, resets. Retried with backoff."""

FINAL: tuple[type[BaseException], ...] = (InputError, GranuleReadError, PermissionError)
"""Never retried: bad input, unreadable granules (quarantined instead), refused credentials."""

RETRIES = 3
RETRY_DELAYS_S = [1.0, 4.0, 16.0]


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, FINAL):
        return False
    return isinstance(exc, RETRYABLE)


def retry_condition(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only failures listed as retryable."""
    try:
        state.result()
    except BaseException as exc:  # the task's own exception, re-raised by Prefect
        return is_retryable(exc)
    return False
