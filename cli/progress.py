"""A progress bar for the jobs that take more than a few seconds, drawn on stderr when it is a terminal.

Stage code never imports this: a job hands its stages a plain callable (`Step`), or calls it between them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

# Called with the name of the step about to start; the previous step counts as done.
Step = Callable[[str], None]


@contextmanager
def job_steps(title: str, steps: Sequence[str], console: Console | None = None) -> Iterator[Step]:
    """A bar of `len(steps)` steps for one job; yields `step(name)`, to call as each step starts."""
    console = console or Console(stderr=True)
    bar = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal)
    with bar:
        task = bar.add_task(title, total=len(steps))
        started = [0]

        def step(name: str) -> None:
            if started[0]:
                bar.advance(task)
            started[0] += 1
            bar.update(task, description=f"{title}: {name}")

        yield step
        bar.update(task, completed=len(steps))
