"""Chunked on-disk array store for stage outputs: exact, or compact for float movies.

Format: a directory ``<name>.npyd/`` holding one plain NumPy ``.npy`` file,
memory-mappable, so any frame range is random access and any tool that reads
``.npy`` (NumPy, Julia's NPZ, ...) reads it, and ``meta.json`` (JSON attributes:
frame rate, parameters, provenance).

* ``data.npy`` — exact: the array as written (uint8 denoised movies, traces, ...).
* ``data-int16.npy`` — scaled (``scale=[...]``): recorded volts kept as the ADC's int16
  counts and a scale per column, read back as the same float32 values bit for bit
  (:mod:`ace_assets.io.scaled_store`, with the exceptions it keeps exactly).
* ``data-uint8.npy`` — frame-affine (``frame_affine=True``): a movie that is its uint8
  frames times a gain plus an offset per frame (the preprocessed movie without ΔF/F), kept
  as those frames and pairs and read back as the same float32 values bit for bit
  (:mod:`ace_assets.io.frame_affine`).
* ``data-float16.npy`` — compact (``compact=True``): float movies stored as IEEE
  half floats, 2 bytes per pixel instead of 4. ``ArrayStore`` reads them back as
  float32, so every consumer computes in float32 as before. Why float16 and not
  scaled integers: no range to know before the first frame is written, NaN borders
  and negative ΔF/F survive, and the file is self-describing. The rounding error is
  at most 2^-11 of the value (0.06 grey levels at 128-255, half a step of the 8-bit
  camera's quantisation at worst is 8 times larger); values beyond +-65504 cannot be
  stored and are refused. The name differs from ``data.npy`` on purpose: code that
  reads ``data.npy`` itself (as extraction does, for speed) falls back to
  ``ArrayStore.read`` and so gets float32.

Why not compressed: stage outputs are read many times frame-by-frame by later
stages; uncompressed memmap gives O(1) seeks and zero decode cost (a float16 to
float32 conversion is ~0.15 ms per 608 x 608 frame, through :mod:`.half_float`). The raw
movies stay compressed (FFV1) under data_path.

A movie can be *dropped* once what needs it exists (``drop_store``): the data file
goes, ``meta.json`` stays and says so, and opening the store explains what to
re-materialize instead of failing on a missing file.

Writes are atomic: data goes to a hidden temporary directory beside the
target, and only a complete, flushed store is renamed into place. A failed run
leaves the previous good store untouched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from ace_assets.errors import AceInputError

# re-exported: defs and test helpers import the atomic writers from here
from ace_assets.io.atomic import atomic_write_bytes as atomic_write_bytes
from ace_assets.io.atomic import atomic_write_text as atomic_write_text
from ace_assets.io.frame_affine import AFFINE, FRAMES, FrameAffineDecoder, save_affine
from ace_assets.io.frame_affine import KIND as AFFINE_KIND
from ace_assets.io.half_float import cast
from ace_assets.io.jsonio import read_json, write_json
from ace_assets.io.page_range import release_rows
from ace_assets.io.publish import replace_dir
from ace_assets.io.row_file import RowFile
from ace_assets.io.scaled_store import SCALED, ScaledDecoder, ScaledEncoder

SUFFIX = ".npyd"
DATA = "data.npy"
COMPACT = "data-float16.npy"
COMPACT_DTYPE = np.dtype(np.float16)
#: the largest magnitude a compact store holds
COMPACT_MAX = float(np.finfo(np.float16).max)
DROPPED = "dropped"
#: ``meta['encoding']['kind']`` of a store that keeps a band below its input rate
#: (:mod:`ace_assets.ephys.band_store`; plain ``ArrayStore`` refuses it)
BAND_KIND = "band"


def store_path(root: str | Path, name: str) -> Path:
    """The directory a store called ``name`` lives in under ``root``."""
    return Path(root) / f"{name}{SUFFIX}"


class DroppedStoreError(FileNotFoundError):
    """The store's data was deleted on purpose; ``meta.json`` says by what and how to redo it."""


class ArrayStore:
    """Read-only view of a finished store; frames are never all loaded.

    A compact store presents float32 frames: ``dtype`` is float32, ``read`` returns float32;
    ``stored_dtype`` and ``mmap`` show what is on disk.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        meta_file = self.path / "meta.json"
        self.meta: dict[str, Any] = read_json(meta_file) if meta_file.exists() else {}
        if (self.meta.get("encoding") or {}).get("kind") == BAND_KIND:
            raise TypeError(
                f"{self.path} keeps a band below its input rate: open it with "
                "ace_assets.ephys.band_store.open_signal_store"
            )
        self.compact = (self.path / COMPACT).is_file()
        self._decoder: ScaledDecoder | None = None
        if (self.path / SCALED).is_file():
            self._decoder = ScaledDecoder(self.path, self.meta["encoding"]["scale"])
        self._affine: FrameAffineDecoder | None = None
        if (self.path / FRAMES).is_file():
            self._affine = FrameAffineDecoder(self.path)
        data = self.path / (
            COMPACT
            if self.compact
            else SCALED
            if self._decoder is not None
            else FRAMES
            if self._affine is not None
            else DATA
        )
        if not data.is_file():
            if DROPPED in self.meta:
                raise DroppedStoreError(
                    f"{self.path}: {self.meta[DROPPED].get('reason', 'dropped')}"
                )
            raise FileNotFoundError(f"{self.path}: not a finished array store (no {DATA})")
        self.file = data
        self._data = np.load(data, mmap_mode="r")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._data.shape)

    @property
    def dtype(self) -> np.dtype:
        """The dtype ``read`` returns."""
        return np.dtype(np.float32) if not self.direct else self._data.dtype

    @property
    def scale(self) -> np.ndarray | None:
        """Volts per count of each column of a scaled store (None for any other)."""
        return None if self._decoder is None else self._decoder.scale

    @property
    def stored(self) -> np.ndarray:
        """The mapped array exactly as on disk (int16 counts for a scaled store)."""
        return self._data

    def counts(self, start: int, stop: int) -> np.ndarray | None:
        """A scaled store's int16 rows ``start:stop`` (a view of the mapping) when each is
        a count times the scale; None when an exception lies there (then ``read``)."""
        if self._decoder is None or not self._decoder.exact(start, stop):
            return None
        return self._data[start:stop]

    @property
    def direct(self) -> bool:
        """Whether the mapped rows are the values (not float16, int16 or uint8 counts)."""
        return not self.compact and self._decoder is None and self._affine is None

    @property
    def stored_dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def nbytes(self) -> int:
        """Bytes on disk of the data file."""
        return int(self.file.stat().st_size)

    @property
    def n_frames(self) -> int:
        return int(self._data.shape[0])

    def __len__(self) -> int:
        return self.n_frames

    def read(
        self, start: int = 0, stop: int | None = None, column: int | None = None
    ) -> np.ndarray:
        """Frames ``start:stop`` (of one ``column`` of a 2-D store, if given) as an in-memory
        array (a copy); the mapping's pages are released."""
        first, last, _ = slice(start, stop).indices(self.n_frames)
        rows = self._data[first:last] if column is None else self._data[first:last, column]
        if self._decoder is not None:
            out = self._decoder.decode(rows, first, column)
        elif self._affine is not None:
            out = self._affine.decode(rows, first)
        elif self.compact:
            out = cast(rows, np.float32)
        else:
            out = np.array(rows)
        release_rows(self._data, first, last)  # these rows only: see io.page_range
        return out

    def iter_chunks(self, chunk: int = 256) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start, frames)`` blocks of at most ``chunk`` frames."""
        for start in range(0, self.n_frames, chunk):
            yield start, self.read(start, start + chunk)

    @property
    def mmap(self) -> np.ndarray:
        """The memory-mapped array as stored (float16 for a compact store), without copying.

        A scaled or frame-affine store has none to offer (its counts are not the values):
        ``read`` it."""
        if self._decoder is not None:
            raise TypeError(f"{self.path} holds int16 counts and a scale: read(start, stop)")
        if self._affine is not None:
            raise TypeError(f"{self.path} holds uint8 frames and their gains: read(start, stop)")
        return self._data


def drop_store(path: str | Path, reason: str) -> int:
    """Delete a finished store's data, keep ``meta.json`` and record why; bytes freed.

    The record goes first (atomically), so a reader never meets a half-deleted store
    without the explanation.
    """
    path = Path(path)
    meta_file = path / "meta.json"
    meta = read_json(meta_file) if meta_file.exists() else {}
    freed = 0
    for name in (DATA, COMPACT, FRAMES, AFFINE):
        if (path / name).is_file():
            freed += (path / name).stat().st_size
    meta[DROPPED] = {"reason": reason, "bytes_freed": freed}
    write_json(meta_file, meta)
    for name in (DATA, COMPACT, FRAMES, AFFINE):
        (path / name).unlink(missing_ok=True)
    return freed


class ArrayStoreWriter:
    """Create a store of known shape, fill it in blocks, commit atomically.

    Use as a context manager: on an exception nothing is renamed into place
    and the temporary directory is removed. With ``compact=True`` a float array is
    stored as float16 (see the module docstring); blocks are written as float32. With
    ``frame_affine=True`` a float32 movie is written as its uint8 frames, and
    :meth:`set_frame_affine` gives each frame's gain and offset. ``range_hint``: the
    ``(column, advice)`` to give when a compact movie's value is beyond float16's range.
    ``data_file`` names the data file of a store that only its own reader may open
    (a band store: :mod:`ace_assets.ephys.band_store`).
    """

    def __init__(
        self,
        path: str | Path,
        shape: tuple[int, ...],
        dtype: np.dtype | type | str,
        meta: dict[str, Any] | None = None,
        *,
        compact: bool = False,
        data_file: str = DATA,
        scale: list[float] | None = None,
        frame_affine: bool = False,
        range_hint: tuple[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.range_hint = range_hint
        dtype = np.dtype(dtype)
        if compact and dtype.kind != "f":
            raise ValueError(f"a compact store holds float movies, not {dtype}")
        if frame_affine and (compact or scale is not None or dtype != np.float32):
            raise ValueError("a frame-affine store holds a float32 movie, and nothing else")
        if scale is not None and (compact or dtype != np.float32 or len(shape) != 2):
            raise ValueError("a scaled store holds (samples, channels) float32 volts")
        self.compact = compact
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.parent / f".{self.path.name}.tmp-{uuid.uuid4().hex[:8]}"
        self.tmp.mkdir()
        self.meta: dict[str, Any] = dict(meta or {})
        self.meta.pop("encoding", None)  # a source store's, copied with its meta: not ours
        if compact:
            self.meta["encoding"] = {"file": COMPACT, "dtype": "float16", "read_as": "float32"}
        self.encoder: ScaledEncoder | None = None
        if scale is not None:
            self.encoder = ScaledEncoder(self.tmp, scale)
            self.meta["encoding"] = {
                "kind": "scaled",
                "file": SCALED,
                "dtype": "int16",
                "scale": [float(v) for v in scale],
                "read_as": "float32: count * scale, exceptions from patch-*.npy, nan-runs.npy",
            }
            data_file, dtype = SCALED, np.dtype(np.int16)
        self.affine: tuple[np.ndarray, np.ndarray] | None = None
        if frame_affine:
            n = int(shape[0])
            self.affine = (np.ones(n, np.float32), np.zeros(n, np.float32))
            self.meta["encoding"] = {
                "kind": AFFINE_KIND,
                "file": FRAMES,
                "dtype": "uint8",
                "read_as": f"float32: float32(frame) * gain + offset, per frame from {AFFINE}",
            }
            data_file, dtype = FRAMES, np.dtype(np.uint8)
        self._array = np.lib.format.open_memmap(
            self.tmp / (COMPACT if compact else data_file),
            mode="w+",
            dtype=COMPACT_DTYPE if compact else dtype,
            shape=tuple(shape),
        )
        self._rows: RowFile | None = None
        self._committed = False

    @property
    def array(self) -> np.ndarray:
        return self._array

    def write(self, start: int, block: np.ndarray, *, owned: bool = False) -> None:
        """Rows ``start : start + len(block)``. ``owned``: the caller hands the block over
        and will not change it (it is then not copied).

        The rows go through the file on a second thread, writeback started early
        (:mod:`~ace_assets.io.row_file`): a fresh mapping's page faults cost seconds of
        system time per GB. A compact store's range check and float16 cast run there too;
        a block it refuses is raised by the next write or the commit, and nothing is
        published."""
        if self.encoder is not None:
            block, owned = self.encoder.encode(start, block), True
        if self.affine is not None and block.dtype != np.uint8:
            raise TypeError(
                f"{self.path}: a frame-affine store takes uint8 frames, not {block.dtype}"
            )
        if self._rows is None:
            check = self._check_range if self.compact else None
            self._rows = RowFile(self._array, writeback=True, background=True, check=check)
        self._rows.write(start, block, owned=owned)

    def set_frame_affine(self, gain: np.ndarray, offset: np.ndarray) -> None:
        """Each frame's gain and offset (a frame-affine store): value = frame * gain + offset."""
        if self.affine is None:
            raise TypeError(f"{self.path} is not a frame-affine store")
        n = len(self.affine[0])
        pair = (
            np.asarray(gain, np.float32).reshape(-1),
            np.asarray(offset, np.float32).reshape(-1),
        )
        if any(len(v) != n for v in pair):
            raise ValueError(f"{self.path}: {n} frames need {n} gains and offsets")
        self.affine = (pair[0].copy(), pair[1].copy())

    def _close_rows(self) -> None:
        rows, self._rows = self._rows, None
        if rows is not None:
            rows.close()

    def _check_range(self, start: int, block: np.ndarray) -> None:
        with np.errstate(invalid="ignore"):
            peak = float(np.nanmax(np.abs(block))) if block.size else 0.0
        if peak > COMPACT_MAX and np.isfinite(peak):
            column, hint = self.range_hint or (None, "")
            raise AceInputError(
                f"frames {start}..{start + len(block) - 1} hold a value of magnitude {peak:.6g}, "
                f"beyond the {COMPACT_MAX:g} a compact (float16) movie can store"
                + (f"; {hint}" if hint else ""),
                file=self.path,
                column=column,
            )

    def commit(self) -> ArrayStore:
        self.publish()
        return ArrayStore(self.path)

    def publish(self) -> Path:
        """Commit without opening the result (a store only its own reader opens)."""
        self._close_rows()
        self._array.flush()
        del self._array
        if self.encoder is not None:
            self.meta["encoding"].update(self.encoder.save())
        if self.affine is not None:
            save_affine(self.tmp, *self.affine)
        write_json(self.tmp / "meta.json", self.meta)
        replace_dir(self.tmp, self.path)
        self._committed = True
        return self.path

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # the failure being handled is what matters
            self._close_rows()
        if hasattr(self, "_array"):
            del self._array
        if self.encoder is not None:
            self.encoder.discard()
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


def write_array(
    path: str | Path, array: np.ndarray, meta: dict[str, Any] | None = None
) -> ArrayStore:
    """Store a small in-memory array (traces, footprints) atomically."""
    with ArrayStoreWriter(path, array.shape, array.dtype, meta) as writer:
        writer.array[...] = array
        return writer.commit()


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
