"""Chunked, lossless on-disk array store for stage outputs.

Format: a directory ``<name>.npyd/`` holding ``data.npy`` (a plain NumPy
``.npy`` file, memory-mappable, so any frame range is random access and any
tool that reads ``.npy`` — NumPy, MATLAB's npy-matlab, Julia's NPZ — reads it)
and ``meta.json`` (JSON attributes: frame rate, parameters, provenance).

Why not compressed: stage outputs are read many times frame-by-frame by later
stages; uncompressed memmap gives O(1) seeks and zero decode cost. The raw
movies stay compressed (FFV1) under data_path.

Writes are atomic: data goes to a hidden temporary directory beside the
target, and only a complete, flushed store is renamed into place. A failed run
leaves the previous good store untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from ace_assets.io.pages import release_pages

SUFFIX = ".npyd"


def store_path(root: str | Path, name: str) -> Path:
    """The directory a store called ``name`` lives in under ``root``."""
    return Path(root) / f"{name}{SUFFIX}"


class ArrayStore:
    """Read-only view of a finished store; frames are never all loaded."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        data = self.path / "data.npy"
        if not data.is_file():
            raise FileNotFoundError(f"{self.path}: not a finished array store (no data.npy)")
        self._data = np.load(data, mmap_mode="r")
        meta_file = self.path / "meta.json"
        self.meta: dict[str, Any] = json.loads(meta_file.read_text()) if meta_file.exists() else {}

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._data.shape)

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def n_frames(self) -> int:
        return int(self._data.shape[0])

    def __len__(self) -> int:
        return self.n_frames

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames ``start:stop`` as an in-memory array (a copy); the mapping's pages are released."""
        out = np.array(self._data[start:stop])
        release_pages(self._data)
        return out

    def iter_chunks(self, chunk: int = 256) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start, frames)`` blocks of at most ``chunk`` frames."""
        for start in range(0, self.n_frames, chunk):
            yield start, self.read(start, start + chunk)

    @property
    def mmap(self) -> np.ndarray:
        """The memory-mapped array, for strided access without copying."""
        return self._data


class ArrayStoreWriter:
    """Create a store of known shape, fill it in blocks, commit atomically.

    Use as a context manager: on an exception nothing is renamed into place
    and the temporary directory is removed.
    """

    def __init__(
        self,
        path: str | Path,
        shape: tuple[int, ...],
        dtype: np.dtype | type | str,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.parent / f".{self.path.name}.tmp-{uuid.uuid4().hex[:8]}"
        self.tmp.mkdir()
        self.meta: dict[str, Any] = dict(meta or {})
        self._array = np.lib.format.open_memmap(
            self.tmp / "data.npy", mode="w+", dtype=np.dtype(dtype), shape=tuple(shape)
        )
        self._committed = False

    @property
    def array(self) -> np.ndarray:
        return self._array

    def write(self, start: int, block: np.ndarray) -> None:
        self._array[start : start + block.shape[0]] = block
        release_pages(self._array)  # written pages stay in the page cache, not in our RSS

    def commit(self) -> ArrayStore:
        self._array.flush()
        del self._array
        (self.tmp / "meta.json").write_text(json.dumps(self.meta, indent=2, default=_jsonable))
        replace_dir(self.tmp, self.path)
        self._committed = True
        return ArrayStore(self.path)

    def abort(self) -> None:
        if hasattr(self, "_array"):
            del self._array
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> ArrayStoreWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None or not self._committed:
            self.abort()


def replace_dir(tmp: Path, final: Path) -> None:
    """Swap ``tmp`` into ``final``; the old version is removed only afterwards."""
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_array(
    path: str | Path, array: np.ndarray, meta: dict[str, Any] | None = None
) -> ArrayStore:
    """Store a small in-memory array (traces, footprints) atomically."""
    with ArrayStoreWriter(path, array.shape, array.dtype, meta) as writer:
        writer.array[...] = array
        return writer.commit()


def atomic_write_bytes(path: str | Path, payload: bytes) -> Path:
    """Write a single file via a temporary name and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_bytes(payload)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    """``np.savez_compressed`` atomically; arrays only, loaded with allow_pickle=False."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}.npz"
    try:
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)
