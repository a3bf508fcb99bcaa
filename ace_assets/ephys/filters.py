"""Zero-phase Butterworth / FIR filtering of long recordings with memory flat in length.

``filter_type`` ``"butter"`` gives ``scipy.signal.sosfiltfilt`` (Butterworth, second-order
sections); ``"fir"`` gives ``scipy.signal.filtfilt(b, [1.0], ...)`` with a Hamming-window
``firwin`` design. ``filter_range`` is ``[low, high]`` Hz: ``low`` 0/None -> low-pass at
``high``; ``high`` None -> high-pass at ``low``; both -> band-pass.

How it streams. A forward-backward filter is a causal pass followed by an anti-causal one.
Rather than re-filtering overlapping chunks (which costs the overlap in compute and is only
approximate), the causal pass runs over time-ordered chunks carrying the filter state, writes
its output to a scratch buffer, and the anti-causal pass runs over the scratch buffer in
reverse chunk order, again carrying state. The result equals the whole-signal
``sosfiltfilt`` / ``filtfilt`` of the padded segment (``ZeroPhaseFilter.reference``) to float
rounding (plus float32 rounding of the scratch buffer when filtering a float32 store).
Memory is one chunk plus the pads; FIR steps use FFT (overlap-add) convolution, so long FIR
designs stay fast.

Padding. Each segment (recording section between pauses) is filtered on its own, and its
ends are padded by even reflection (mirror about the end sample, repeated if the segment is
shorter than the pad) for as long as the filter's impulse response lasts (``padlen``: until
the slowest pole has decayed to 1e-3; the taps' length for FIR). SciPy's default, an odd
extension of ``3 * order`` samples, is far shorter than a 0.5 Hz band's response, and an odd
extension shifts the pad's mean by twice the end sample's deviation: both leave a transient
of the signal's size after every pause. The filter starts in steady state for the first pad
sample, so what remains of its start-up has decayed before the real samples.

NaN samples (excluded artefacts, channels without samples in a segment) are bridged by
linear interpolation inside the chunk before filtering and set back to NaN afterwards.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import signal

from ace_assets.ephys.sidecars import copy_sidecars, segments_from_meta
from ace_assets.io.page_range import release_rows
from ace_assets.io.row_file import RowFile
from ace_assets.io.store import ArrayStore, ArrayStoreWriter

Reader = Callable[[int, int], np.ndarray]
Writer = Callable[[int, np.ndarray], None]
FILTER_TYPES = ("butter", "fir")


@dataclass(frozen=True)
class ZeroPhaseFilter:
    """A designed filter: Butterworth SOS or FIR taps, plus what its forward-backward needs."""

    filter_type: str
    btype: str
    cutoff: tuple[float, ...]
    fs: float
    sos: np.ndarray | None = None
    taps: np.ndarray | None = None

    @property
    def padlen(self) -> int:
        """Reflection pad per segment end: the impulse response's length (see module doc)."""
        if self.sos is not None:
            return impulse_response_length(self.sos)
        assert self.taps is not None
        return len(self.taps)

    def stepper(self) -> _Stepper:
        if self.sos is not None:
            return _SosStepper(self.sos)
        assert self.taps is not None
        return _FirStepper(self.taps)

    def reference(self, x: np.ndarray) -> np.ndarray:
        """In memory: mirror-pad ``x`` (time on axis 0) by ``padlen``, run SciPy's
        ``sosfiltfilt`` / ``filtfilt`` without its own padding, crop (for tests and baselines)."""
        arr = np.asarray(x, dtype=np.float64)
        n, pad = arr.shape[0], self.padlen
        idx = mirror_indices(np.arange(-pad, n + pad), 0, n)
        padded = arr[idx]
        if self.sos is not None:
            y = signal.sosfiltfilt(self.sos, padded, axis=0, padtype=None)
        else:
            y = signal.filtfilt(self.taps, [1.0], padded, axis=0, padtype=None)
        return y[pad : pad + n]


def impulse_response_length(sos: np.ndarray, decay: float = 1e-3) -> int:
    """Samples until the slowest pole of ``sos`` has decayed to ``decay`` (at least 3 x order)."""
    poles = np.concatenate([np.roots(section[3:]) for section in sos])
    radius = float(np.max(np.abs(poles))) if poles.size else 0.0
    floor = 3 * (2 * len(sos) + 1)
    if radius <= 0.0:
        return floor
    if radius >= 1.0:
        raise ValueError("the filter is unstable (a pole on or outside the unit circle)")
    return max(floor, int(math.ceil(math.log(decay) / math.log(radius))))


def mirror_indices(idx: np.ndarray, a: int, b: int) -> np.ndarray:
    """Indices reflected into ``[a, b)`` about the end samples, repeatedly (even extension)."""
    n = b - a
    if n == 1:
        return np.full(np.shape(idx), a)
    period = 2 * (n - 1)
    k = np.mod(np.asarray(idx) - a, period)
    return a + np.where(k < n, k, period - k)


def _fir_numtaps(low: float | None, high: float | None, fs: float) -> int:
    """Hamming-window length for the transition bands MNE-Python uses by default."""
    widths = []
    if low:
        widths.append(min(max(0.25 * low, 2.0), low))
    if high is not None:
        widths.append(min(max(0.25 * high, 2.0), fs / 2 - high))
    n = int(math.ceil(3.3 / min(widths) * fs))
    return n + 1 if n % 2 == 0 else n


def design_filter(
    filter_type: str,
    filter_range: tuple[float | None, float | None] | list[float | None],
    fs: float,
    *,
    order: int = 4,
    numtaps: int | None = None,
) -> ZeroPhaseFilter:
    """Design the filter named by the ``filter_type`` / ``filter_range`` parameters."""
    kind = str(filter_type).lower()
    if kind not in FILTER_TYPES:
        raise ValueError(f"filter_type must be 'butter' or 'fir', got {filter_type!r}")
    if len(filter_range) != 2:
        raise ValueError(f"filter_range must be [low, high], got {filter_range!r}")
    low, high = filter_range
    low = None if low is None or float(low) <= 0 else float(low)
    high = None if high is None else float(high)
    nyq = fs / 2
    if low is None and high is None:
        raise ValueError("filter_range needs a low or a high cutoff")
    if high is not None and not 0 < high < nyq:
        raise ValueError(f"high cutoff {high} Hz must be between 0 and Nyquist ({nyq} Hz)")
    if low is not None and not low < nyq:
        raise ValueError(f"low cutoff {low} Hz must be below Nyquist ({nyq} Hz)")
    if low is not None and high is not None and not low < high:
        raise ValueError(f"filter_range low {low} must be below high {high}")
    if low is None:
        btype, cutoff = "lowpass", (high,)
    elif high is None:
        btype, cutoff = "highpass", (low,)
    else:
        btype, cutoff = "bandpass", (low, high)
    wn = cutoff[0] if len(cutoff) == 1 else list(cutoff)
    if kind == "butter":
        sos = signal.butter(order, wn, btype=btype, fs=fs, output="sos")
        return ZeroPhaseFilter("butter", btype, cutoff, float(fs), sos=sos)
    n = int(numtaps) if numtaps is not None else _fir_numtaps(low, high, fs)
    if btype in ("highpass", "bandpass") and n % 2 == 0:
        n += 1  # type I FIR: an even length cannot pass Nyquist / be high-pass
    taps = signal.firwin(n, wn, window="hamming", pass_zero=btype == "lowpass", fs=fs)
    return ZeroPhaseFilter("fir", btype, cutoff, float(fs), taps=taps)


class _Stepper:
    def reset(self, value: np.ndarray) -> None:  # steady state for a constant input
        raise NotImplementedError

    def step(self, block: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class _SosStepper(_Stepper):
    def __init__(self, sos: np.ndarray) -> None:
        self.sos = sos
        self.zi0 = signal.sosfilt_zi(sos)  # (n_sections, 2)
        self.state: np.ndarray | None = None

    def reset(self, value: np.ndarray) -> None:
        self.state = self.zi0[:, :, None] * np.asarray(value, dtype=np.float64)[None, None, :]

    def step(self, block: np.ndarray) -> np.ndarray:
        out, self.state = signal.sosfilt(self.sos, block, axis=0, zi=self.state)
        return out


class _FirStepper(_Stepper):
    """Causal FIR as FFT convolution over [history, block]; history = last M-1 inputs."""

    def __init__(self, taps: np.ndarray) -> None:
        self.taps = taps
        self.history: np.ndarray | None = None

    def reset(self, value: np.ndarray) -> None:
        value = np.asarray(value, dtype=np.float64)
        self.history = np.repeat(value[None, :], len(self.taps) - 1, axis=0)

    def step(self, block: np.ndarray) -> np.ndarray:
        assert self.history is not None
        if block.shape[0] == 0:
            return block.copy()
        full = np.concatenate([self.history, block], axis=0)
        m = len(self.taps)
        if block.shape[0] * m < 50_000:
            out = np.stack(
                [np.convolve(full[:, c], self.taps, mode="valid") for c in range(full.shape[1])],
                axis=1,
            )
        else:
            out = signal.oaconvolve(full, self.taps[:, None], mode="valid", axes=0)
        self.history = full[full.shape[0] - (m - 1) :]
        return out


def bridge_nans(block: np.ndarray) -> np.ndarray | None:
    """Linearly interpolate NaNs per channel in place; returns the NaN mask (None if none)."""
    mask = np.isnan(block)
    if not mask.any():
        return None
    idx = np.arange(block.shape[0])
    for c in np.flatnonzero(mask.any(axis=0)):
        good = ~mask[:, c]
        block[mask[:, c], c] = (
            np.interp(idx[mask[:, c]], idx[good], block[good, c]) if good.any() else 0.0
        )
    return mask


def _read2d(read: Reader, a: int, b: int) -> tuple[np.ndarray, np.ndarray | None]:
    block = np.asarray(read(a, b), dtype=np.float64)
    if block.ndim == 1:
        block = block[:, None]
    if not np.isnan(block).any():
        return block, None
    block = block.copy()  # the reader may hand out a view of the caller's data
    return block, bridge_nans(block)


def filtfilt_stream(
    filt: ZeroPhaseFilter,
    read: Reader,
    write: Writer,
    start: int,
    stop: int,
    scratch: np.ndarray,
    *,
    chunk_samples: int = 1 << 18,
) -> None:
    """Forward-backward filter samples ``start:stop`` of ``read`` into ``write``.

    ``read(a, b)`` returns ``(b - a, n_channels)``; ``write(a, block)`` receives the
    output for absolute indices ``a:a+len(block)``; ``scratch`` is a writable
    ``(>= stop - start + filt.padlen, n_channels)`` buffer (memmap or array) for the forward
    pass.
    Equals ``filt.reference`` of ``[start, stop)`` alone (mirror pads of ``filt.padlen``).
    """
    n = stop - start
    if n <= 0:
        return
    chunk = max(int(chunk_samples), 1)
    pad = filt.padlen

    def mirrored(i0: int, i1: int) -> np.ndarray:
        """Pad samples at virtual indices ``i0:i1`` (outside ``[0, n)``), read as needed."""
        idx = mirror_indices(np.arange(i0, i1), 0, n)
        lo, hi = int(idx.min()), int(idx.max()) + 1
        block, _ = _read2d(read, start + lo, start + hi)
        return block[idx - lo]

    step = filt.stepper()
    # forward (causal) pass, starting in steady state at the first pad sample; the pad's
    # outputs are dropped, the post pad's are kept after the segment's in the scratch buffer
    step.reset(mirrored(-pad, -pad + 1)[0])
    for a in range(-pad, 0, chunk):
        step.step(mirrored(a, min(0, a + chunk)))
    nan_ranges: list[tuple[int, int]] = []  # forward chunks that held NaN (re-read later)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        block, mask = _read2d(read, start + a, start + b)
        if mask is not None:
            nan_ranges.append((a, b))
        scratch[a:b] = step.step(block)
        release_rows(scratch, a, b)  # see ace_assets.io.page_range (a no-op in memory)
    for a in range(n, n + pad, chunk):
        b = min(n + pad, a + chunk)
        scratch[a:b] = step.step(mirrored(a, b))
        release_rows(scratch, a, b)
    # backward (anti-causal) pass from the end of the post pad
    step.reset(np.asarray(scratch[n + pad - 1], dtype=np.float64))
    for b in range(n + pad, 0, -chunk):
        a = max(0, b - chunk)
        lo = min(b, max(a, n))  # [a, lo) real samples, [lo, b) post pad
        if b > lo:  # post pad: advance the state only
            step.step(np.asarray(scratch[lo:b], dtype=np.float64)[::-1])
        if lo == a:
            release_rows(scratch, a, b)
            continue
        rev = np.asarray(scratch[a:lo], dtype=np.float64)[::-1]
        release_rows(scratch, a, b)
        out = step.step(rev)[::-1]
        if any(r0 < lo and a < r1 for r0, r1 in nan_ranges):
            raw = np.asarray(read(start + a, start + lo))
            out[np.isnan(raw.reshape(out.shape))] = np.nan
        write(start + a, out)


def filter_signal(
    x: np.ndarray,
    fs: float,
    filter_type: str,
    filter_range: tuple[float | None, float | None] | list[float | None],
    *,
    order: int = 4,
    numtaps: int | None = None,
    segments: list[tuple[int, int]] | None = None,
    chunk_samples: int = 1 << 18,
    decimate: bool = False,
) -> np.ndarray:
    """Zero-phase filter an in-memory ``(n_samples,)`` or ``(n_samples, n_channels)`` array.

    Same engine as :func:`filter_store`; ``segments`` are independent ``(start, stop)``
    sample ranges (default: the whole signal). ``decimate``: filter a low band at a reduced
    internal rate as :func:`filter_store` does (:mod:`ace_assets.ephys.decimated`); off by
    default here, so the in-memory path stays SciPy's filter to rounding.
    """
    from ace_assets.ephys.decimated import filtfilt_decimated, low_length, plan_decimation

    arr = np.asarray(x, dtype=np.float64)
    flat = arr.ndim == 1
    data = arr[:, None] if flat else arr
    filt = design_filter(filter_type, filter_range, fs, order=order, numtaps=numtaps)
    plan = plan_decimation(filt, order) if decimate else None
    out = np.empty_like(data)

    def write(a: int, block: np.ndarray) -> None:
        out[a : a + block.shape[0]] = block

    for s0, s1 in segments or [(0, data.shape[0])]:
        if plan is not None:
            scratch = np.empty((low_length(s1 - s0, filt.padlen, plan.factor), data.shape[1]))
            filtfilt_decimated(
                plan, lambda a, b: data[a:b], write, s0, s1, scratch,
                pad=filt.padlen, chunk_samples=chunk_samples,
            )  # fmt: skip
            continue
        scratch = np.empty((s1 - s0 + filt.padlen, data.shape[1]))
        filtfilt_stream(
            filt, lambda a, b: data[a:b], write, s0, s1, scratch, chunk_samples=chunk_samples
        )
    return out[:, 0] if flat else out


def filter_store(
    src: ArrayStore | str | Path,
    dst_path: str | Path,
    filter_type: str,
    filter_range: tuple[float | None, float | None] | list[float | None],
    *,
    fs: float | None = None,
    order: int = 4,
    numtaps: int | None = None,
    segments: list[tuple[int, int]] | None = None,
    chunk_samples: int = 1 << 18,
    meta: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
    decimate: bool = True,
) -> ArrayStore:
    """Filter a ``(n_samples, n_channels)`` store into a new float32 store, chunk by chunk.

    ``progress`` is called with the number of samples each read delivered. ``decimate``:
    a Butterworth band whose upper edge lies far below Nyquist is filtered at a reduced
    internal rate (:mod:`ace_assets.ephys.decimated`) and kept at that rate: the result is a
    :class:`~ace_assets.ephys.band_store.BandStore`, read back at the input's rate and grid
    (``meta['filter']['decimated']`` says how).

    ``fs`` defaults to ``src.meta['sampling_rate_hz']``; ``segments`` to
    ``src.meta['segments']`` (each filtered independently). The forward-pass scratch file
    lives in the new store's temporary directory and is deleted before the atomic commit.
    """
    from ace_assets.ephys.band_store import write_band_store
    from ace_assets.ephys.decimated import plan_decimation

    store = src if isinstance(src, ArrayStore) else ArrayStore(src)
    rate = float(fs if fs is not None else store.meta["sampling_rate_hz"])
    filt = design_filter(filter_type, filter_range, rate, order=order, numtaps=numtaps)
    plan = plan_decimation(filt, order) if decimate else None
    n = store.shape[0]
    n_ch = store.shape[1] if len(store.shape) > 1 else 1
    bounds = segments or segments_from_meta(store.meta, n)
    info = {
        **{k: v for k, v in store.meta.items()},
        "filter": {
            "filter_type": filt.filter_type,
            "btype": filt.btype,
            "cutoff_hz": list(filt.cutoff),
            "order": order if filt.filter_type == "butter" else None,
            "numtaps": None if filt.taps is None else int(len(filt.taps)),
            "zero_phase": True,
            "decimated": None if plan is None else plan.describe(),
        },
        **(meta or {}),
    }
    src_mm = store.mmap if store.direct else None  # an encoded store is read()
    one_d = len(store.shape) == 1
    progress_lock = threading.Lock()
    last = threading.local()  # the rows this thread read before (decimated path)

    # A scaled store's band is filtered in counts (the filter is linear; scaled on output):
    # its int16 rows go to the decimating product as they are, half the bytes of volts
    scale = store.scale if plan is not None else None
    # the decimated path reads views of these rows, released at this thread's next read
    viewed = None if plan is None else store.stored if scale is not None else src_mm

    def read(a: int, b: int) -> np.ndarray:
        if viewed is not None:
            release_rows(viewed, *getattr(last, "rows", (0, 0)))
            last.rows = (a, b)
            counts = store.counts(a, b) if scale is not None else None
            if scale is None:
                block = viewed[a:b]
            elif counts is not None:
                block = counts
            else:  # an exception (fill, NaN) lies here: its volts in counts
                block = store.read(a, b) / scale.astype(np.float32)
        elif not store.direct:  # decoded into a new array
            block = store.read(a, b)
            block = block.astype(np.float64) if plan is None else block
        else:
            assert src_mm is not None
            block = np.array(src_mm[a:b], dtype=np.float64)
            release_rows(src_mm, a, b)
        if progress is not None:
            with progress_lock:  # the decimated path reads from worker threads
                progress(b - a)
        return block[:, None] if block.ndim == 1 else block

    if plan is not None:
        band = write_band_store(
            plan, read, n, n_ch, bounds, dst_path, info,
            pad=filt.padlen, one_d=one_d, chunk_samples=chunk_samples, unit=scale,
            sidecars_from=store.path,
        )  # fmt: skip
        return band
    with ArrayStoreWriter(dst_path, (n,) if one_d else (n, n_ch), np.float32, info) as w:
        scratch_path = w.tmp / "forward.scratch"
        longest = max(b - a for a, b in bounds)
        shape = (longest + filt.padlen, n_ch)
        scratch = np.lib.format.open_memmap(scratch_path, mode="w+", dtype=np.float32, shape=shape)
        dst = w.array

        # written through the file by a second thread, writeback started early: see row_file
        rows = RowFile(dst, writeback=True, background=True)

        def write(a: int, block: np.ndarray) -> None:
            rows.write(a, block[:, 0] if dst.ndim == 1 else block)

        with rows:
            for s0, s1 in bounds:
                filtfilt_stream(filt, read, write, s0, s1, scratch, chunk_samples=chunk_samples)
        scratch_path.unlink()  # its mapping goes when this function returns
        copy_sidecars(store.path, w.tmp)
        return w.commit()
