"""Progress of a long step in the run log: done/total, rate and ETA, at least every 30 s.

A 70-minute extraction must not be silent. Movie and signal stages write their output in
chunks, so wrapping the writer they are given (:meth:`Progress.sink`) reports progress
without the pure stage code knowing about Dagster; stages that report in words (source
extraction's phases) pass :meth:`Progress.message` as their callback.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

EVERY_S = 30.0


class Progress:
    """Counts units of work and logs a line when ``every_s`` seconds have passed."""

    def __init__(
        self,
        log: Callable[[str], None],
        what: str,
        total: int,
        unit: str = "frames",
        *,
        every_s: float = EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log, self.what, self.total, self.unit = log, what, int(total), unit
        self.every_s, self.clock = every_s, clock
        self.start = self.last = clock()
        self.done = 0

    def update(self, done: int) -> None:
        """``done`` units finished so far; logs if the last line is ``every_s`` old."""
        self.done = max(self.done, int(done))
        now = self.clock()
        if now - self.last >= self.every_s or (
            self.done >= self.total > 0 and self.last == self.start
        ):
            self.last = now
            self.log(self.line(now))

    def line(self, now: float | None = None) -> str:
        now = self.clock() if now is None else now
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        share = 100.0 * self.done / self.total if self.total else 100.0
        eta = f"ETA {left:.0f} s" if left != float("inf") else "ETA unknown"
        return (
            f"{self.what}: {self.done}/{self.total} {self.unit} ({share:.0f}%), "
            f"{rate:.1f} {self.unit}/s, {eta}"
        )

    def message(self, text: str) -> None:
        """A phase reported in words, with the time since the step started."""
        self.last = self.clock()
        self.log(f"{self.what}: {text} ({self.last - self.start:.0f} s)")

    def sink(self, writer: Any) -> _ProgressSink:
        """``writer`` with every ``write(start, block)`` counted (other attributes pass through)."""
        return _ProgressSink(writer, self)

    def throughput(self) -> dict[str, float]:
        """Metadata: seconds taken and units per second."""
        elapsed = max(self.clock() - self.start, 1e-9)
        return {
            "seconds": round(elapsed, 2),
            f"throughput_{self.unit}_per_s": round(self.done / elapsed, 2),
        }


class _ProgressSink:
    def __init__(self, writer: Any, progress: Progress) -> None:
        self._writer = writer
        self._progress = progress

    def write(self, start: int, block: Any) -> None:
        self._writer.write(start, block)
        self._progress.update(start + len(block))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)
