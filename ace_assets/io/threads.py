"""Use every core a heavy step has, through threads.

The movie stages run one at a time (the ``ace_heavy`` pool has one slot), and their
per-frame work (OpenCV filters, warps and DFTs; numpy and scipy.fft on whole frames)
releases the GIL, so a few threads working on different frames or tiles use the machine's
cores without copying the movie into other processes. ``ACE_THREADS`` caps the count (for
a server shared with other work); the default is every core this process may run on.
It lives in ``io`` beside :mod:`~ace_assets.io.prefetch`, the other thread helper every
stage already imports.
"""

from __future__ import annotations

import functools
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Self, TypeVar

from threadpoolctl import ThreadpoolController

T = TypeVar("T")
R = TypeVar("R")

#: ``map`` or :meth:`FramePool.map`: how a step that splits into independent parts is
#: told whether to run them on threads (each part writes only its own output).
MapFn = Callable[[Callable[[Any], Any], Iterable[Any]], Iterable[Any]]

#: Threads beyond this gain nothing for frame-sized work and cost memory.
MAX_THREADS = 8
ENV = "ACE_THREADS"


def compute_threads() -> int:
    """Threads a heavy step uses: ``ACE_THREADS`` if set, else the cores available."""
    raw = os.environ.get(ENV, "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{ENV}={raw!r} must be a whole number of threads, e.g. 2") from None
        if value < 1:
            raise ValueError(f"{ENV}={raw!r} must be at least 1")
        return min(value, MAX_THREADS)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_THREADS))


class FramePool:
    """Threads shared by several maps of one step: :meth:`map` is ordered and bounded.

    ``concurrent.futures.Executor.map`` submits every item at once, so mapping a long
    iterator of frames would hold all of them (and their results); here at most
    ``2 x threads`` items are in flight. One thread: plain ``map`` (tracebacks unchanged).
    """

    def __init__(self, executor: Executor | None, threads: int) -> None:
        self._executor = executor
        self.threads = threads

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        if self._executor is None:
            return map(fn, items)
        return _bounded(self._executor, fn, items, 2 * self.threads)


@contextmanager
def frame_pool(threads: int | None = None) -> Iterator[FramePool]:
    """A :class:`FramePool` of ``threads`` threads (default :func:`compute_threads`)."""
    n = compute_threads() if threads is None else max(1, int(threads))
    if n == 1:
        yield FramePool(None, 1)
        return
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="ace") as executor:
        yield FramePool(executor, n)


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], threads: int | None = None
) -> Iterator[R]:
    """``map(fn, items)`` on a pool of its own (:class:`FramePool`): in input order, at most
    ``2 x threads`` items in flight, so memory stays bounded however long ``items`` is."""
    with frame_pool(threads) as pool:
        yield from pool.map(fn, items)


def _bounded(
    pool: Executor, fn: Callable[[T], R], items: Iterable[T], in_flight: int
) -> Iterator[R]:
    pending: deque[Future[R]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= in_flight:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for fut in pending:
            fut.cancel()


@functools.cache
def _blas_controller() -> ThreadpoolController:
    """The process's thread pools, found once: the search takes 1-40 ms (more with more
    shared libraries loaded)."""
    import numpy  # noqa: F401  (its BLAS must be loaded to be found)
    import scipy.linalg  # noqa: F401

    return ThreadpoolController()


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS on one thread while frame threads run: small products on a BLAS pool of their
    own oversubscribe the cores (2-4x slower on a shared 2-core machine)."""
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield


class ClosesOnExit:
    """``with`` support for an object whose :meth:`close` waits for work and may raise: on
    leaving the block it is closed, and a failure of the block itself is the error that
    propagates (a close failure then stays silent)."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            self.close()
        except BaseException:
            if exc_type is None:
                raise  # else the caller's own error is the one to see


class InOrderThread(ClosesOnExit):
    """Runs ``fn(item)`` for each submitted item on one thread of its own, in submission
    order, while the caller goes on.

    Why: work that must see items in order (sums whose rounding depends on the order, rows
    written to a file) can still leave the caller's thread. At most ``depth`` items wait,
    so memory stays bounded. After a failure the rest are dropped, and the error is raised
    by the next :meth:`submit` or by :meth:`close`, which waits for every item.
    """

    def __init__(self, fn: Callable[[T], object], depth: int = 2, name: str = "in-order") -> None:
        self._fn = fn
        self._queue: queue.Queue[tuple[T] | None] = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = threading.Thread(
            target=self._run, name=name, daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:  # after a failure, only empty the queue
                try:
                    self._fn(item[0])
                except BaseException as exc:  # raised in the caller's thread
                    self._error = exc

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, item: T) -> None:
        self._raise_pending()
        self._queue.put((item,))

    def close(self) -> None:
        """Wait for every submitted item; raise the first failure."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self._raise_pending()
