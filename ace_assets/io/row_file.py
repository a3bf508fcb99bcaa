"""Fill a freshly created store's rows through its file (``pwrite``), not its memory map.

Why: storing into a new file's mapping faults every page in first, and the kernel reads the
file's holes to do so (large-folio readahead, zero-filled): measured here, writing 614 MB
that way cost 1-1.9 s of system time against 0.14-0.3 s for the same bytes written with
``pwrite``, and the gap grows with the recording. The bytes land in the same page cache the
store's mapping uses, and the writer's commit (``msync``) syncs them all the same.

Each ``pwrite`` carries at most :data:`PIECE_BYTES`: one 8 MiB call cost 0.3-1.1 s of system
time per 614 MB, 1 MiB calls 0.13-0.17 s (measured here, same bytes; the source stays in the
core's cache and the kernel's page-cache bookkeeping per call stays small).

``writeback=True`` (stores, not scratch files) starts the disk writing each few MiB as soon as
they are written (:mod:`ace_assets.io.writeback`), so the commit's sync waits for little.
``background=True`` hands each block to one writer thread, so the cast to the store's dtype
and the copy into the page cache overlap the caller's next block on the second core. A
block is copied first unless the caller hands it over (``owned=True``: it will not touch
it again). ``check`` (if given) looks at each block, in its own dtype, before the cast:
on the writer thread when there is one. At most :data:`QUEUE_BLOCKS` blocks wait, so
memory stays bounded, and a failed write or check is raised by the next call.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from ace_assets.io.half_float import cast
from ace_assets.io.threads import ClosesOnExit, InOrderThread
from ace_assets.io.writeback import Writeback

#: largest single ``pwrite``; bigger blocks are written in pieces of this size
PIECE_BYTES = 1 << 20
#: blocks queued for the background writer before ``write`` waits
QUEUE_BLOCKS = 2


def pwrite_all(fd: int, data: np.ndarray, position: int) -> int:
    """All bytes of a C-contiguous array into the file at ``position``, in ``pwrite`` calls
    of at most :data:`PIECE_BYTES` (a call may write less than asked); the bytes written."""
    view = memoryview(data.reshape(-1)).cast("B")
    done = 0
    while done < view.nbytes:
        done += os.pwrite(fd, view[done : done + PIECE_BYTES], position + done)
    return view.nbytes


def pread_into(fd: int, out: np.ndarray, position: int) -> None:
    """Fill a C-contiguous array with the file's bytes at ``position`` (``pread`` calls
    until it is full: a call may read less than asked). Raises ``EOFError`` at the end of
    the file."""
    view = memoryview(out.reshape(-1)).cast("B")
    done = 0
    while done < view.nbytes:
        got = os.preadv(fd, [view[done : done + PIECE_BYTES]], position + done)
        if got <= 0:
            raise EOFError(f"{view.nbytes - done} bytes short at byte {position + done}")
        done += got


class RowFile(ClosesOnExit):
    """Rows of an ``np.memmap`` (a store being written), written with ``os.pwrite``.

    Falls back to assigning through the array where ``pwrite`` or a file is missing.
    ``array`` must be a whole memmap (a slice's ``offset`` is its parent's). Rows are in
    the file once :meth:`close` (or the ``with`` block) returns."""

    def __init__(
        self,
        array: np.ndarray,
        *,
        writeback: bool = False,
        background: bool = False,
        check: Callable[[int, np.ndarray], None] | None = None,
    ) -> None:
        self.array = array
        self.check = check
        self.dtype = array.dtype
        self.row_bytes = int(array.dtype.itemsize * np.prod(array.shape[1:], dtype=np.int64))
        filename = getattr(array, "filename", None)
        self._fd: int | None = None
        self._writeback: Writeback | None = None
        self._behind: InOrderThread | None = None
        if filename is not None and hasattr(os, "pwrite"):
            self._fd = os.open(filename, os.O_WRONLY)
            self.offset = int(array.offset)
            if writeback:
                self._writeback = Writeback(self._fd)
            if background:
                self._behind = InOrderThread(self._put, QUEUE_BLOCKS, name="row-writer")

    def write(self, start: int, block: np.ndarray, *, owned: bool = False) -> None:
        """Rows ``start : start + len(block)``, cast to the array's dtype as assignment would.

        ``owned``: the caller hands ``block`` over and will not change it, so it is not
        copied before it waits for the writer thread."""
        if self._behind is None:
            self._put((start, block))
        else:
            self._behind.submit((start, block if owned else np.array(block, order="C")))

    def _put(self, item: tuple[int, np.ndarray]) -> None:
        start, block = item
        if self.check is not None:
            self.check(start, block)
        if self._fd is None:
            self.array[start : start + block.shape[0]] = block
            return
        data = cast(block, self.dtype)
        self._pwrite(self.offset + start * self.row_bytes, data)

    def _pwrite(self, position: int, data: np.ndarray) -> None:
        assert self._fd is not None
        nbytes = pwrite_all(self._fd, data, position)
        if self._writeback is not None:
            self._writeback.wrote(position, nbytes)

    def close(self) -> None:
        if self._fd is None:
            return
        try:
            behind, self._behind = self._behind, None
            if behind is not None:
                behind.close()
            if self._writeback is not None:
                self._writeback.start()
        finally:
            os.close(self._fd)
            self._fd = None
