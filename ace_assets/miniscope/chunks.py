"""What the movie stages read from and write to, so each can stream in chunks.

A *source* is anything that can be walked more than once in ``(start, frames)``
blocks: a :class:`~ace_assets.io.miniscope.MiniscopeRecording`, an
:class:`~ace_assets.io.store.ArrayStore`, an in-memory array (tests), or a
zero-argument callable returning a fresh iterator. Stages that need two passes
(denoise: means, then filtering) call it twice. A *sink* has
``write(start, block)``; :class:`~ace_assets.io.store.ArrayStoreWriter` is one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ace_assets.io.prefetch import prefetched

Chunks = Iterable[tuple[int, np.ndarray]]


@runtime_checkable
class ChunkedMovie(Protocol):
    def iter_chunks(self, chunk_frames: int = ...) -> Iterator[tuple[int, np.ndarray]]: ...


class FrameSink(Protocol):
    def write(self, start: int, block: np.ndarray, *, owned: bool = False) -> None:
        """Rows ``start : start + len(block)``; ``owned``: the caller hands the block over
        and will not change it, so a sink that keeps it need not copy it."""


MovieSource = ChunkedMovie | np.ndarray | Callable[[], Chunks]

DEFAULT_CHUNK = 64


def chunk_factory(source: MovieSource, chunk_frames: int = DEFAULT_CHUNK) -> Callable[[], Chunks]:
    """A callable that starts a new pass over ``source`` each time it is called."""
    if isinstance(source, np.ndarray):
        arr = source

        def from_array() -> Chunks:
            return (
                (s, np.asarray(arr[s : s + chunk_frames])) for s in range(0, len(arr), chunk_frames)
            )

        return from_array
    if isinstance(source, ChunkedMovie):
        movie = source
        return lambda: movie.iter_chunks(chunk_frames)
    if callable(source):
        return source
    raise TypeError(f"cannot stream frames from {type(source).__name__}")


def background(chunks: Chunks, enabled: bool = True) -> Iterator[Any]:
    """Produce the next block in a thread while the caller computes on this one."""
    return prefetched(chunks) if enabled else iter(chunks)


class ArraySink:
    """An in-memory sink (tests, small movies)."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype | type | str) -> None:
        self.array = np.zeros(shape, dtype)

    def write(self, start: int, block: np.ndarray, *, owned: bool = False) -> None:
        self.array[start : start + len(block)] = block
