"""Keep memory-mapped inputs and outputs from accumulating in the process's resident set.

Pages of a file mapping that a stage has touched stay mapped (and counted in its RSS) until
the mapping is closed, so streaming a long recording through ``np.memmap`` looks, to
``ru_maxrss``, like loading it. Telling the kernel we no longer need them
(``MADV_DONTNEED``) unmaps them from this process only: the data stays in the page cache
(dirty pages of shared file mappings are still written back), and later reads fault it back
in. Best effort: arrays that are not memory-mapped, or platforms without ``madvise``, are
left alone.
"""

from __future__ import annotations

import mmap
from typing import Any


def release_pages(*arrays: Any) -> None:
    """Drop this process's mapping of the pages behind each ``np.memmap`` (or view of one)."""
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if advice is None:
        return
    for arr in arrays:
        handle = getattr(arr, "_mmap", None)
        if handle is None or not hasattr(handle, "madvise"):
            continue
        try:
            handle.madvise(advice)
        except (OSError, ValueError):
            pass
