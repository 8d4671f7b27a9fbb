"""Messages and progress bars on stderr, so that stdout stays clean for --json output."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any


def main_process() -> bool:
    """False in the processes torchrun starts beside rank 0: they stay quiet."""
    return os.environ.get("RANK", "0") in ("0", "")


def enabled() -> bool:
    return os.environ.get("SOCKET_EDGE_PROGRESS", "1") != "0" and main_process()


def warn(message: str) -> None:
    """A one-line warning on stderr (also recorded by the ``warnings`` of tests that capture it)."""
    if main_process():
        print(f"warning: {message}", file=sys.stderr, flush=True)


def info(message: str) -> None:
    if main_process():
        print(message, file=sys.stderr, flush=True)


class _Bar:
    def __init__(self, progress: Any, task: Any):
        self._progress, self._task = progress, task

    def advance(self, n: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def set(self, description: str | None = None, **fields: Any) -> None:
        """Update the live text after the bar (e.g. current losses)."""
        if self._progress is None:
            return
        status = "  ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in fields.items()
        )
        kw: dict[str, Any] = {"status": status}
        if description is not None:
            kw["description"] = description
        self._progress.update(self._task, **kw)


@contextlib.contextmanager
def bar(description: str, total: float | None, show: bool = True) -> Iterator[_Bar]:
    """A progress bar on stderr; a no-op when ``show`` is false or SOCKET_EDGE_PROGRESS=0."""
    if not (show and enabled()):
        yield _Bar(None, None)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(file=sys.stderr)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total, status="")
        yield _Bar(progress, task)
