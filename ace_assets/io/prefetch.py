"""Overlap producing the next item with consuming this one, in a background thread.

Decoding a movie block (OpenCV) and reading a memory-mapped store release the GIL, so
a one-item look-ahead hides most of the read time behind the computation on the
previous block. It lives in ``io`` because both the Miniscope reader and the chunked
movie stages (``miniscope.chunks``) stream through it, and ``io`` is the layer both
already import.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def prefetched(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Iterate ``items`` in a background thread, ``depth`` items ahead.

    Exceptions raised by the producer are re-raised in the consumer; closing the
    consumer early stops the producer.
    """
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(depth, 1))
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("done", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put(("error", exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, payload = q.get()
            if kind == "item":
                yield payload
            elif kind == "error":
                raise payload
            else:
                return
    finally:
        stop.set()
        thread.join(timeout=10)
