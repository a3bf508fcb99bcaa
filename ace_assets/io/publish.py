"""Publishing a finished result folder: one writer at a time, an atomic swap, no leftovers.

A result is built in a hidden ``.<name>.tmp-*`` folder beside its final place. Publishing
swaps it in with Linux ``renameat2(RENAME_EXCHANGE)``: readers see the old folder or the new
one, never neither, and a kill at any instant leaves the last good result visible. Where the
filesystem cannot exchange, two renames are used and a folder left hidden as
``.<name>.old-*`` by a kill between them is restored by the next writer.

Writers of one folder take an exclusive ``fcntl`` lock on ``.<name>.lock`` for the whole
write, so the next writer knows every ``.tmp-*`` / ``.old-*`` it finds is stale (a killed
writer's lock dies with its process) and removes it before it starts.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _find_renameat2() -> Callable[..., int] | None:
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # not glibc >= 2.28, or not Linux
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_RENAMEAT2 = _find_renameat2()


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step; False where the system or filesystem cannot."""
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def replace_dir(tmp: Path, final: Path) -> None:
    """Put the finished folder ``tmp`` in place of ``final``; the old version goes afterwards."""
    tmp, final = Path(tmp), Path(final)
    if final.exists() and exchange(tmp, final):
        shutil.rmtree(tmp, ignore_errors=True)  # ``tmp`` now holds the old version
        return
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def recover(final: Path) -> list[str]:
    """Under the writer lock: restore a result a cut-short swap left hidden, drop stale parts.

    Returns what was done, one phrase per folder, for the log.
    """
    done: list[str] = []
    olds = sorted(final.parent.glob(f".{final.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if olds and not final.exists():
        os.replace(olds.pop(), final)
        done.append(f"restored the last good {final.name} from a swap cut short")
    for stale in [*final.parent.glob(f".{final.name}.tmp-*"), *olds]:
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
        done.append(f"removed {stale.name}, left by a writer that did not finish")
    return done


@contextmanager
def publishing(final: Path, log: Callable[[str], None] | None = None) -> Iterator[Path]:
    """A fresh hidden folder to fill; swapped in for ``final`` if the block succeeds.

    Holds ``final``'s writer lock throughout: a second writer of the same folder waits
    (blocked in the kernel, not spinning) and then publishes its own result after this one.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".{final.name}.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for what in recover(final):
            if log is not None:
                log(what)
        tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        replace_dir(tmp, final)
