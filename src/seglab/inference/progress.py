"""Progress of long predictions: a bar with pictures/s on a terminal, plain lines elsewhere."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

PLAIN_EVERY_S = 10.0


class Throughput:
    """Counts finished pictures (or frames) of `total` and shows the rate."""

    def __init__(self, total: int, unit: str = "images") -> None:
        self.total, self.unit, self.done = total, unit, 0
        self.started = self._last_line = time.perf_counter()
        self.console = Console(stderr=True)
        self.bar = None
        if self.console.is_terminal:
            self.bar = Progress(TextColumn("predict"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                                console=self.console, transient=True)
            self.task = self.bar.add_task("predict", total=total or None, rate="")
            self.bar.start()

    @property
    def rate(self) -> float:
        elapsed = time.perf_counter() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def advance(self, count: int) -> None:
        self.done += count
        if self.bar is not None:
            self.bar.update(self.task, advance=count, rate=f"{self.rate:.1f} {self.unit}/s")
        elif time.perf_counter() - self._last_line >= PLAIN_EVERY_S:
            self._last_line = time.perf_counter()
            print(f"predict: {self.done}/{self.total or '?'} {self.unit}, "
                  f"{self.rate:.1f} {self.unit}/s", flush=True)

    def close(self) -> float:
        """Stop the bar; the seconds taken."""
        if self.bar is not None:
            self.bar.stop()
        return time.perf_counter() - self.started
