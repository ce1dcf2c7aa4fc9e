"""Progress bars for long CLI work: shown (rich, on stderr) only when a person is watching a terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def completed(futures: Sequence[Any], description: str) -> Iterator[Any]:
    """Yield Prefect futures as they finish, with a progress bar when stderr is a terminal."""
    from prefect.futures import as_completed

    if not futures:
        return
    if not sys.stderr.isatty():
        yield from as_completed(list(futures))
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(description, total=len(futures))
        for fut in as_completed(list(futures)):
            progress.advance(task)
            yield fut
