"""What the NWB writers share: compression, chunked iteration of stores, time arguments."""

from __future__ import annotations

from typing import Any

import numpy as np
from hdmf.data_utils import GenericDataChunkIterator
from pynwb import H5DataIO

from ace_assets.io.store import ArrayStore

#: gzip is what every HDF5 reader (MATLAB, h5py, DANDI's viewers) decodes; shuffle helps floats
COMPRESSION: dict[str, Any] = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
#: samples per HDF5 chunk of a (samples, channels) series: 2 MB for 8 float32 channels
CHUNK_SAMPLES = 1 << 16
#: samples held in memory while writing: the only part of a recording in RAM at once
BUFFER_SAMPLES = 1 << 18


def compressed(data: Any, **kwargs: Any) -> H5DataIO:
    return H5DataIO(data=data, **COMPRESSION, **kwargs)


class StoreIterator(GenericDataChunkIterator):
    """A (samples, channels) :class:`ArrayStore` read a buffer at a time, never whole."""

    def __init__(self, store: ArrayStore, **kwargs: Any) -> None:
        self._store = store
        n, ch = store.shape
        # a buffer is a whole number of chunks, or the whole (short) recording
        chunk = (max(1, min(n, CHUNK_SAMPLES)), ch)
        buffer = (max(1, min(n, BUFFER_SAMPLES)), ch)
        super().__init__(chunk_shape=chunk, buffer_shape=buffer, **kwargs)

    def _get_data(self, selection: tuple[slice, ...]) -> np.ndarray:
        rows, cols = selection
        return self._store.read(rows.start or 0, rows.stop)[:, cols]

    def _get_maxshape(self) -> tuple[int, ...]:
        return tuple(self._store.shape)

    def _get_dtype(self) -> np.dtype:
        return np.dtype(self._store.dtype)


class TimesIterator(GenericDataChunkIterator):
    """Per-sample times computed a buffer at a time by ``times(start, stop)``."""

    def __init__(self, times: Any, n: int, **kwargs: Any) -> None:
        self._times, self._n = times, int(n)
        chunk = (max(1, min(self._n, CHUNK_SAMPLES)),)
        buffer = (max(1, min(self._n, BUFFER_SAMPLES)),)
        super().__init__(chunk_shape=chunk, buffer_shape=buffer, **kwargs)

    def _get_data(self, selection: tuple[slice, ...]) -> np.ndarray:
        (rows,) = selection
        return np.asarray(self._times(rows.start or 0, rows.stop), dtype=np.float64)

    def _get_maxshape(self) -> tuple[int, ...]:
        return (self._n,)

    def _get_dtype(self) -> np.dtype:
        return np.dtype(np.float64)


def time_args(times_s: np.ndarray) -> dict[str, Any]:
    """``starting_time`` and ``rate`` when the times are regular (to 1 ns), else ``timestamps``.

    NWB best practice: a constant rate is stated, not listed. Frame times measured from TTL
    pulses or camera stamps are irregular and are kept as measured.
    """
    t = np.asarray(times_s, dtype=np.float64)
    if len(t) > 2:
        step = np.diff(t)
        if step[0] > 0 and np.all(np.round(step - step[0], 9) == 0):
            return {"starting_time": float(t[0]), "rate": float(1.0 / step[0])}
    return {"timestamps": t}
