"""Progress of a long step in the run log: done/total, rate and ETA, at least every 30 s.

A 70-minute extraction must not be silent. Movie and signal stages read their input and
write their output in chunks, so wrapping the source they read (:meth:`Progress.source`,
counted pass by pass) or the writer they fill (:meth:`Progress.sink`) reports progress
without the pure stage code knowing about Dagster; stages that report in words (source
extraction's phases) pass :meth:`Progress.message` as their callback.
"""

from __future__ import annotations

import threading
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
        every_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log, self.what, self.total, self.unit = log, what, int(total), unit
        self.every_s, self.clock = EVERY_S if every_s is None else every_s, clock
        self.start = self.last = clock()
        self.done = 0
        self.read = 0  # units read by a counted source, over all its passes
        self._lock = threading.Lock()  # stages read and write on several threads

    def update(self, done: int) -> None:
        """``done`` units finished so far; logs if the last line is ``every_s`` old."""
        with self._lock:
            self.done = max(self.done, int(done))
            line = self._due_line(finished=self.done >= self.total > 0)
        if line is not None:
            self.log(line)

    def advance(self, n: int) -> None:
        """A counted source delivered ``n`` more units; a stage may read its input in passes."""
        with self._lock:
            self.read += int(n)
            line = self._due_line()
        if line is not None:
            self.log(line)

    def _due_line(self, finished: bool = False) -> str | None:
        """The line to log now (under the lock), if the last is ``every_s`` old or the work
        just finished with nothing logged yet; it is logged outside the lock."""
        now = self.clock()
        if now - self.last >= self.every_s or (finished and self.last == self.start):
            self.last = now
            return self.line(now)
        return None

    def line(self, now: float | None = None) -> str:
        now = self.clock() if now is None else now
        elapsed = max(now - self.start, 1e-9)
        if self.read:  # counted reads: which pass over the input, and how far into it
            whole, done = divmod(self.read, max(self.total, 1))
            if done == 0 and whole:
                whole, done = whole - 1, self.total
            label, rate = f"pass {whole + 1}, ", self.read / elapsed
            eta_what = "ETA of this pass"
        else:
            label, done, rate, eta_what = "", self.done, self.done / elapsed, "ETA"
        left = (self.total - done) / rate if rate > 0 else float("inf")
        share = 100.0 * done / self.total if self.total else 100.0
        eta = f"{eta_what} {left:.0f} s" if left != float("inf") else f"{eta_what} unknown"
        return (
            f"{self.what}: {label}{done}/{self.total} {self.unit} ({share:.0f}%), "
            f"{rate:.1f} {self.unit}/s, {eta}"
        )

    def message(self, text: str) -> None:
        """A phase reported in words, with the time since the step started."""
        self.last = self.clock()
        self.log(f"{self.what}: {text} ({self.last - self.start:.0f} s)")

    def sink(self, writer: Any) -> _ProgressSink:
        """``writer`` with every ``write(start, block)`` counted (other attributes pass through)."""
        return _ProgressSink(writer, self)

    def source(self, source: Any) -> _CountedSource:
        """``source`` with every frame or sample delivered by ``read``/``iter_chunks`` counted."""
        return _CountedSource(source, self)

    def throughput(self) -> dict[str, float]:
        """Metadata: seconds taken and units of the input (or output) per second of step time."""
        elapsed = max(self.clock() - self.start, 1e-9)
        units = self.total if self.read else self.done
        return {
            "seconds": round(elapsed, 2),
            f"throughput_{self.unit}_per_s": round(units / elapsed, 2),
        }


class _ProgressSink:
    def __init__(self, writer: Any, progress: Progress) -> None:
        self._writer = writer
        self._progress = progress

    def write(self, start: int, block: Any, *, owned: bool = False) -> None:
        self._writer.write(start, block, owned=owned)
        self._progress.update(start + len(block))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


class _CountedSource:
    """Reads pass through unchanged; their length advances the progress."""

    def __init__(self, source: Any, progress: Progress) -> None:
        self._source = source
        self._progress = progress

    def read(self, *args: Any, **kwargs: Any) -> Any:
        block = self._source.read(*args, **kwargs)
        self._progress.advance(len(block))
        return block

    def iter_chunks(self, *args: Any, **kwargs: Any) -> Any:
        for start, block in self._source.iter_chunks(*args, **kwargs):
            self._progress.advance(len(block))
            yield start, block

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)
