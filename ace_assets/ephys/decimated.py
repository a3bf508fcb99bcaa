"""Zero-phase Butterworth of a low band at a reduced internal rate, output on the input grid.

Why: a 0.5-30 Hz band of a 32 kHz recording asks a forward-backward IIR to run over 32,000
samples a second whose content above ~130 Hz it throws away. Here the signal is low-passed
and decimated by ``factor`` (polyphase FIR), the same Butterworth band is applied forward
and backward at ``fs / factor``, and the result is interpolated back onto every input
sample (the same FIR, polyphase), so clocks and every consumer keep the input rate. A store
keeps the band at ``fs / factor`` and interpolates on read (:mod:`ace_assets.ephys.band_store`,
via :func:`filtfilt_low`); the in-memory path interpolates as it goes.

Accuracy (the constants below; ``test_decimated_filter.py`` measures it). The FIR is a
Kaiser low-pass flat (ripple ``10**(-RIPPLE_DB / 20)``) up to ``pass_hz``, where the
forward-backward Butterworth is down to ``BAND_EPS``, and stops everything that would alias
onto that range; the internal rate is at least ``MIN_RATE_OVER_EDGE`` times the band's
upper edge, so the bilinear transform's frequency warping differs little between the two
rates. Against SciPy's full-rate ``sosfiltfilt`` (0.5-30 Hz at 32 kHz, factor 8): in-band
content within 3e-5 of the output's peak (phase within 1e-4 rad); content just above the
band, which an order-4 Butterworth only attenuates (mains at 60 Hz keeps 0.4%), keeps a
residue a few percent different (1e-7 V for 1 mV of mains), and the phase of a band
signal 50x weaker than that mains within 5e-3 rad.

Streaming and edges. Per segment, exactly as :func:`~ace_assets.ephys.filters.filtfilt_stream`:
the segment is mirror-padded at the input rate by the full-rate filter's ``padlen`` (so
the padding is the same signal as the reference's), decimated block by block, filtered
forward into a low-rate scratch buffer and backward in place, then interpolated block by
block. Blocks overlap by the FIR's length, so no block edge leaves a trace. NaN samples are
bridged before filtering and NaN again in the output, as in the full-rate path.

Channels are processed together, with no per-channel loop: each block is one matrix
product per direction (the polyphase table against all channels' samples, see
:class:`PolyphaseKernels`) and one 2-D ``sosfilt`` over (samples, channels) at the low rate. The
products run in float32, the partial sums and the Butterworth in float64: rounding of
about 1e-7 of the input's amplitude, like the float32 stores' own (under a 5 mV offset a
20 µV band keeps it within the 2e-4 above).

Threads. Blocks are decimated, and later interpolated, on :data:`MAX_WORKERS` threads
(fewer if ``ACE_THREADS`` says so; NumPy and BLAS release the GIL), while the calling thread runs the Butterworth over them in order; at
most a few blocks are in flight, so memory stays flat. Each block's input and work arrays
fit a core's L2 cache (:data:`BLOCK_BYTES`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import signal

from ace_assets.ephys.filters import ZeroPhaseFilter, bridge_nans, design_filter, mirror_indices
from ace_assets.io.page_range import release_rows
from ace_assets.io.row_file import RowFile
from ace_assets.io.threads import compute_threads, frame_pool, one_blas_thread

Reader = Callable[[int, int], np.ndarray]
Writer = Callable[[int, np.ndarray], None]

#: forward-backward Butterworth amplitude at ``pass_hz``: beyond it the FIR may differ
BAND_EPS = 1e-5
#: Kaiser FIR pass-band ripple / stop-band attenuation
RIPPLE_DB = 100.0
#: the internal rate is at least this many times the band's upper edge (bilinear warping)
MIN_RATE_OVER_EDGE = 128.0
#: below this factor the full-rate filter is about as fast: not worth the approximation
MIN_FACTOR = 4
#: input bytes per block: every work array of a block then fits in a core's L2 cache
#: (4 MiB here); 8 MiB blocks cost 20-30% more CPU, most of it in copies
BLOCK_BYTES = 1 << 20
#: threads decimating / interpolating blocks (the IIR runs in order on the calling thread);
#: ``read`` and ``write`` must allow calls from several threads for disjoint ranges
MAX_WORKERS = 2


@dataclass(frozen=True)
class DecimationPlan:
    """How a band is filtered at a lower rate: factor, FIR, and the band at that rate."""

    factor: int
    fs: float
    taps: np.ndarray  # symmetric low-pass at fs, DC gain 1, odd length
    low: ZeroPhaseFilter  # the band designed at fs / factor
    pass_hz: float

    @property
    def fs_low(self) -> float:
        return self.fs / self.factor

    @property
    def half(self) -> int:
        return (self.taps.size - 1) // 2

    def describe(self) -> dict[str, float | int]:
        return {
            "factor": self.factor,
            "internal_rate_hz": self.fs_low,
            "fir_taps": int(self.taps.size),
            "fir_pass_hz": round(self.pass_hz, 3),
        }


def plan_decimation(filt: ZeroPhaseFilter, order: int) -> DecimationPlan | None:
    """The plan for a Butterworth low-pass / band-pass whose upper edge lies far below
    Nyquist; None when the band must stay at the input rate (high-pass, FIR, or too
    little to gain)."""
    if filt.filter_type != "butter" or filt.btype not in ("lowpass", "bandpass"):
        return None
    edge = float(filt.cutoff[-1])
    pass_hz = edge * BAND_EPS ** (-1.0 / (2 * order))
    fs_low_min = max(4.0 * pass_hz, MIN_RATE_OVER_EDGE * edge)
    factor = int(math.floor(filt.fs / fs_low_min))
    if factor < MIN_FACTOR:
        return None
    fs_low = filt.fs / factor
    width = (fs_low - 2 * pass_hz) / (filt.fs / 2)
    numtaps, beta = signal.kaiserord(RIPPLE_DB, width)
    numtaps += 1 - numtaps % 2  # odd: symmetric about a sample, zero delay
    taps = signal.firwin(numtaps, fs_low / 2, window=("kaiser", beta), fs=filt.fs)
    low = design_filter("butter", list(filt.cutoff) if filt.btype == "bandpass" else
                        [None, edge], fs_low, order=order)  # fmt: skip
    return DecimationPlan(factor, float(filt.fs), taps, low, pass_hz)


def _polyphase(taps: np.ndarray, factor: int, lo: int, hi: int) -> np.ndarray:
    """Table ``P[j, d] = taps[(lo + j) * factor + d + half]`` (0 outside the taps)."""
    half = (taps.size - 1) // 2
    j = np.arange(lo, hi + 1)[:, None]
    t = j * factor + np.arange(factor)[None, :] + half
    ok = (t >= 0) & (t < taps.size)
    return np.where(ok, taps[np.clip(t, 0, taps.size - 1)], 0.0)


class PolyphaseKernels:
    """Polyphase tables of one FIR, applied to time-major ``(samples, channels)`` float32 blocks.

    Decimating: the block, as rows of ``factor`` samples, is regrouped phase-major
    (``(factor, rows * channels)``, one copy of contiguous channel runs) so that one thin
    matrix product (``(n_s, factor)`` table) gives every channel's polyphase partial sums,
    added up along contiguous rows. Interpolating: ``n_u`` shifted copies of the low-rate
    signal against the ``(factor, n_u)`` table give each output phase, regrouped back to
    time-major. BLAS does the multiplications; no per-channel loop.
    """

    def __init__(self, taps: np.ndarray, factor: int) -> None:
        d, m = factor, (taps.size - 1) // 2
        self.factor = d
        # decimate: z[k] = sum_t h[t] x[p_k + t], t = s*D + e  ->  rows k+s, table (s, e)
        self.s_lo, self.s_hi = -math.ceil(m / d), m // d
        self.dec = _polyphase(taps, d, self.s_lo, self.s_hi).astype(np.float32)
        # interpolate: y(p_q + e) = sum_s y_l[q + s] * D * h(e - s*D)
        self.u_lo, self.u_hi = -(m // d), (d - 1 + m) // d
        s = np.arange(self.u_lo, self.u_hi + 1)[:, None]
        t = np.arange(d)[None, :] - s * d + m
        ok = (t >= 0) & (t < taps.size)
        table = np.where(ok, taps[np.clip(t, 0, taps.size - 1)], 0.0) * d
        self.interp = np.ascontiguousarray(table.T, dtype=np.float32)  # (D, n_u)
        self._buffers: dict[str, np.ndarray] = {}

    @property
    def n_s(self) -> int:
        return self.s_hi - self.s_lo + 1

    @property
    def n_u(self) -> int:
        return self.u_hi - self.u_lo + 1

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        """A work array reused from block to block: fresh memory for every block costs
        more in page faults (and huge-page zeroing) than the arithmetic on it."""
        size = math.prod(shape)
        buf = self._buffers.get(name)
        if buf is None or buf.size < size:
            buf = self._buffers[name] = np.empty(size, dtype=dtype)
        return buf[:size].reshape(shape)

    def decimate(self, x: np.ndarray, n_out: int) -> np.ndarray:
        """``(n_out, C)`` float64 low-rate samples from ``(n_out + n_s - 1) * D`` inputs
        (a work array: used before the next call)."""
        d, n_ch = self.factor, x.shape[1]
        rows = x.shape[0] // d
        phases = self._buffer("phases", (d, rows, n_ch), np.float32)
        np.copyto(phases, x.reshape(rows, d, n_ch).transpose(1, 0, 2))
        t = self._buffer("partial", (self.n_s, rows * n_ch), np.float32)
        np.matmul(self.dec, phases.reshape(d, rows * n_ch), out=t)
        t = t.reshape(self.n_s, rows, n_ch)
        z = self._buffer("low", (n_out, n_ch), np.float64)
        np.copyto(z, t[0, :n_out])
        for j in range(1, self.n_s):
            z += t[j, j : j + n_out]
        return z

    def interpolate(self, y: np.ndarray, n_q: int) -> np.ndarray:
        """``(n_q * D, C)`` float32 samples from ``n_q + n_u - 1`` low-rate ones (a work
        array: used before the next call)."""
        n_ch = y.shape[1]
        flat = self._buffer("low32", (y.size,), np.float32)
        np.copyto(flat.reshape(y.shape), y)
        view = np.lib.stride_tricks.as_strided(
            flat, shape=(self.n_u, n_q * n_ch), strides=(n_ch * 4, 4), writeable=False
        )
        shifted = self._buffer("shifted", (self.n_u, n_q * n_ch), np.float32)
        np.copyto(shifted, view)
        phases = self._buffer("phases", (self.factor, n_q * n_ch), np.float32)
        np.matmul(self.interp, shifted, out=phases)
        out = self._buffer("out", (n_q, self.factor, n_ch), np.float32)
        np.copyto(out, phases.reshape(self.factor, n_q, n_ch).transpose(1, 0, 2))
        return out.reshape(n_q * self.factor, n_ch)


def filtfilt_decimated(
    plan: DecimationPlan,
    read: Reader,
    write: Writer,
    start: int,
    stop: int,
    scratch: np.ndarray,
    *,
    pad: int,
    chunk_samples: int = 1 << 18,
) -> None:
    """Forward-backward ``plan.low`` over samples ``start:stop``, output at the input rate.

    ``read`` / ``write`` as in :func:`~ace_assets.ephys.filters.filtfilt_stream`, called
    from worker threads for disjoint ranges (``write`` must copy what it keeps); ``pad``
    is the full-rate filter's ``padlen``; ``scratch`` a writable float64 array of shape
    ``(>= low_length(stop - start, pad, plan.factor), n_channels)``.
    """
    if stop <= start:
        return
    # The products are many and small: BLAS threads spin more than they help (on a
    # shared 2-core machine they doubled the wall time), so one thread.
    with one_blas_thread():
        _filtfilt_decimated(plan, read, write, start, stop, scratch, pad, chunk_samples, None)


def filtfilt_low(
    plan: DecimationPlan,
    read: Reader,
    start: int,
    stop: int,
    scratch: np.ndarray,
    low_out: Writer,
    *,
    pad: int,
    chunk_samples: int = 1 << 18,
) -> list[tuple[int, int]]:
    """As :func:`filtfilt_decimated`, but the band stays at the internal rate.

    The ``low_length(stop - start, pad, plan.factor)`` low-rate samples (sample ``k`` at
    segment position ``-pad + k * plan.factor``) are handed to ``low_out(k, block)``, last
    block first; :class:`PolyphaseKernels` ``.interpolate`` gives any input sample back
    from them, as :func:`filtfilt_decimated` does. Returns the input ranges (absolute) that
    held a NaN: bridged here, so the band has values there; the caller marks them.
    """
    if stop <= start:
        return []
    with one_blas_thread():
        return _filtfilt_decimated(
            plan, read, None, start, stop, scratch, pad, chunk_samples, low_out
        )


def _filtfilt_decimated(
    plan: DecimationPlan,
    read: Reader,
    write: Writer | None,
    start: int,
    stop: int,
    scratch: np.ndarray,
    pad: int,
    chunk_samples: int,
    low_out: Writer | None,
) -> list[tuple[int, int]]:
    n = stop - start
    d = plan.factor
    n_ch = scratch.shape[1]
    local = threading.local()

    def kernels() -> PolyphaseKernels:  # one set of work arrays per thread
        ker = getattr(local, "ker", None)
        if ker is None:
            ker = local.ker = PolyphaseKernels(plan.taps, plan.factor)
        return ker

    ker = kernels()
    n_low = low_length(n, pad, d)
    fit = BLOCK_BYTES // (4 * d * n_ch)  # low-rate samples per cache-sized block
    kb = max(8 * max(ker.n_s, ker.n_u), min(chunk_samples // d, fit))
    nan_ranges: list[tuple[int, int]] = []

    def virtual(i0: int, i1: int, bridge: bool) -> np.ndarray:
        """Input samples at segment positions ``i0:i1`` (mirrored outside ``[0, n)``),
        float32, time-major, contiguous; with ``bridge``, NaNs bridged in a copy."""
        if 0 <= i0 and i1 <= n:
            block = np.asarray(read(start + i0, start + i1))
        else:
            idx = mirror_indices(np.arange(i0, i1), 0, n)
            r0, r1 = int(idx.min()), int(idx.max()) + 1
            block = np.asarray(read(start + r0, start + r1))[idx - r0]
        # int16 counts stay int16: the products' copy converts them (half the bytes read)
        kind = None if block.dtype == np.int16 else np.float32
        block = np.ascontiguousarray(block.reshape(i1 - i0, n_ch), dtype=kind)
        if bridge:
            block = block.copy()
            bridge_nans(block)
        return block

    def decimated(ka: int) -> tuple[np.ndarray, tuple[int, int] | None]:
        """Low-rate samples ``ka:ka+kb`` (a copy) and the input range bridged, if any."""
        ker = kernels()
        kz = min(n_low, ka + kb)
        r0, r1 = ka + ker.s_lo, kz + ker.s_hi  # rows of d input samples
        i0, i1 = -pad + r0 * d, -pad + r1 * d
        z = ker.decimate(virtual(i0, i1, bridge=False), kz - ka)
        if not np.isnan(z).any():
            return z.copy(), None
        # a NaN input reaches z (NaN x 0 is NaN): bridge, redo
        z = ker.decimate(virtual(i0, i1, bridge=True), kz - ka)
        bridged = (max(i0, 0), min(i1, n)) if min(i1, n) > max(i0, 0) else None
        return z.copy(), bridged

    def interpolated(qa: int) -> None:
        """Output samples of low-rate block ``qa:qa+kb``, written."""
        ker = kernels()
        qz = min(q_last + 1, qa + kb)
        lo, hi = qa + ker.u_lo, qz + ker.u_hi
        if 0 <= lo and hi <= n_low:
            y = scratch[lo:hi]
        else:  # only when the pad is shorter than the FIR: hold the end values
            y = scratch[np.clip(np.arange(lo, hi), 0, n_low - 1)]
        full = ker.interpolate(y, qz - qa)
        release_rows(scratch, lo, hi)  # only these rows: see ace_assets.io.page_range
        p0 = -pad + qa * d  # segment position of full[0]
        a, b = max(0, p0), min(n, p0 + full.shape[0])
        block = full[a - p0 : b - p0]
        if any(r0 < b and a < r1 for r0, r1 in nan_ranges):
            raw = np.asarray(read(start + a, start + b)).reshape(b - a, n_ch)
            block = np.where(np.isnan(raw), np.float32(np.nan), block)
        write(start + a, block)

    sos = plan.low.sos
    assert sos is not None
    zi0 = signal.sosfilt_zi(sos)
    workers = min(MAX_WORKERS, compute_threads())
    with frame_pool(workers) as pool:
        # 1: decimate (blocks in parallel) and filter forward (in order); low sample k sits
        # at segment position p_k = -pad + k*d
        state = None
        with RowFile(scratch) as forward:  # a fresh file's pages: cheaper written than faulted
            for ka, (z, bridged) in zip(
                range(0, n_low, kb),
                pool.map(decimated, range(0, n_low, kb)),
                strict=True,
            ):
                if bridged is not None:
                    nan_ranges.append(bridged)
                if state is None:
                    state = zi0[:, :, None] * z[0][None, None, :]
                low, state = signal.sosfilt(sos, z, axis=0, zi=state)
                forward.write(ka, low)
        # 2: backward, in place, from the steady state of the last forward output
        state = zi0[:, :, None] * np.asarray(scratch[n_low - 1])[None, None, :]
        kb_low = max(kb, 2 * BLOCK_BYTES // (8 * n_ch))  # low-rate only: fewer, larger calls
        for kz in range(n_low, 0, -kb_low):
            ka = max(0, kz - kb_low)
            rev = np.asarray(scratch[ka:kz])[::-1]
            out, state = signal.sosfilt(sos, rev, axis=0, zi=state)
            if low_out is None:
                scratch[ka:kz] = out[::-1]
            else:
                low_out(ka, out[::-1])
            release_rows(scratch, ka, kz)
        if low_out is not None:
            return [(start + a, start + b) for a, b in nan_ranges]
        assert write is not None
        # 3: interpolate onto every input sample of the segment and write (blocks in parallel)
        q_first, q_last = pad // d, (n - 1 + pad) // d
        for _ in pool.map(interpolated, range(q_first, q_last + 1, kb)):
            pass
    return []


def low_length(n: int, pad: int, factor: int) -> int:
    """Low-rate samples covering a segment of ``n`` plus ``pad`` mirrored each side."""
    return -(-(n + 2 * pad) // factor) + 1
