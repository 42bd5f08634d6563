"""Progress bars on the command line for epochs and trials, shown only on an interactive terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipelines.training.progress import ProgressListener, listening


class ProgressBars(ProgressListener):
    """One bar per trained model (epochs) and one for the Optuna study (trials)."""

    def __init__(self, console: Console):
        self.progress = Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.bars: dict[str, int] = {}

    def _bar(self, name: str, total: int):
        if name not in self.bars:
            self.bars[name] = self.progress.add_task(name, total=total, note="")
        return self.bars[name]

    def epoch(self, role: str, epoch: int, epochs: int, metrics: dict[str, float]) -> None:
        note = f"val/acc {metrics['val/acc']:.4f}" if "val/acc" in metrics else ""
        self.progress.update(self._bar(role, epochs), completed=epoch, total=epochs, note=note)

    def trials(self, done: int, total: int, best: float | None) -> None:
        note = "" if best is None else f"best val/acc {best:.4f}"
        self.progress.update(self._bar("trials", total), completed=done, total=total, note=note)


def wants_bars(stream=None) -> bool:
    """Bars on a terminal; plain log lines when the output goes to a file, a pipe or CI."""
    stream = stream or sys.stderr
    return hasattr(stream, "isatty") and stream.isatty()


@contextmanager
def progress_bars(console: Console | None = None) -> Iterator[ProgressBars | None]:
    if console is None and not wants_bars():
        with nullcontext():
            yield None
        return
    bars = ProgressBars(console or Console(stderr=True))
    with bars.progress, listening(bars):
        yield bars
