"""Progress bars and the console (rich). Logs and bars share one stderr console so they do not garble."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


def _console(stderr: bool) -> Console:
    # Rich assumes 80 columns when output is not a terminal; tables of handles and counts need more.
    probe = Console(stderr=stderr)
    return probe if probe.is_terminal else Console(stderr=stderr, width=max(probe.width, 140))


console = _console(stderr=True)
"""Progress bars and logs (stderr)."""
stdout = _console(stderr=False)
"""Command results: tables, summaries (stdout)."""


def setup_logging(verbosity: int = 0) -> None:
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    handler = RichHandler(console=console, show_path=False, rich_tracebacks=False, markup=False)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO; keep it quiet unless debugging.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbosity > 1 else logging.WARNING)


class _RateColumn(ProgressColumn):
    """Items of the task's `unit` field processed per second (e.g. tweets/s)."""

    def render(self, task: Task) -> Text:
        items = task.fields.get("items", 0)
        unit = task.fields.get("unit", "items")
        elapsed = task.elapsed or 0.0
        rate = items / elapsed if elapsed > 0 else 0.0
        return Text(f"{items:,} {unit} ({rate:,.0f}/s)", style="progress.data.speed")


def make_progress(show: bool = True) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not show,
        transient=False,
    )


class Advance:
    """Handle returned by the progress context managers."""

    def __init__(self, progress: Progress, task_id: int):
        self._progress = progress
        self._task = task_id
        self.items = 0
        self.started = time.perf_counter()

    def set_total(self, total: int | None) -> None:
        """The number of steps, once it is known (after planning)."""
        self._progress.update(self._task, total=total)  # type: ignore[arg-type]

    def advance(self, items: int = 0, steps: int = 1) -> None:
        self.items += items
        self._progress.update(self._task, advance=steps, items=self.items)  # type: ignore[arg-type]


@contextmanager
def progress_task(description: str, total: int | None, unit: str, show: bool = True) -> Iterator[Advance]:
    with make_progress(show) as progress:
        task_id = progress.add_task(description, total=total, items=0, unit=unit)
        yield Advance(progress, task_id)


def ingest_progress(total: int | None, show: bool = True) -> AbstractContextManager[Advance]:
    return progress_task("ingest", total, "tweets", show)
