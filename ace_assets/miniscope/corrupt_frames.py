"""Corrupted frames: found while the movie streams past, repaired from their neighbours.

Wireless Miniscopes and flaky cables deliver frames that are not the scene: blocks of
garbage or torn (sideways shifted) rows, all-black or all-white frames, a repeat of the
previous frame, or a frame the decoder cannot read at all. Left in, they drive motion
correction to its bounds, disturb the flicker low-pass of their neighbours and become
"events". Each kind has its own test, all relative to the movie itself (no grey-level
constants), so ordinary frames of any recording are not flagged:

* ``rows``: frame t is compared, row by row, with frames t-1 and t+1 after dividing each
  by its mean (flicker) and removing each row's own mean difference (horizontal bands and
  row offsets). A row is an outlier when it differs from *both* neighbours ``row_ratio``
  times more than the neighbours differ from each other. A cell firing (a step up that
  stays) or motion (smooth) differs from one neighbour only.
* ``black`` / ``white``: a blank frame, its standard deviation under a tenth of the
  movie's median (below or above the median brightness).
* ``duplicate``: its difference to the previous frame is under a twentieth of the
  movie's median frame-to-frame difference (sensor noise makes two real frames differ).
* ``decode``: the reader could not decode it (it names the file and frame).

Detection keeps a window of three frames and a few numbers per frame, so memory does not
grow with the movie. Repair interpolates linearly in time between the nearest intact
frames (only the bad rows of a ``rows`` frame), holding the nearest intact frame where a
run of bad frames is longer than ``max_gap`` or touches the movie's ends.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

KINDS = ("decode", "black", "white", "duplicate", "rows")
#: A blank frame's standard deviation is below this fraction of the movie's median.
BLANK_STD_FRACTION = 0.1
#: A repeated frame differs from the previous one by less than this fraction of the median.
DUPLICATE_FRACTION = 0.05
#: Rows next to outlier rows join the repaired block while their ratio exceeds this.
ROW_GROW_RATIO = 1.25
#: Fewest outlier rows (above ``row_ratio``) that make a frame corrupted.
MIN_ROWS = 2
#: Rows are compared across t-1 and t+1 only when a row differs from both neighbours more
#: than this many times the recent median row difference.
GATE = 1.2


def _row_rms(diff: np.ndarray) -> np.ndarray:
    """Per-row RMS of ``diff`` about the row's own mean (float64, (H,))."""
    w = diff.shape[1]
    mean = cv2.reduce(diff, 1, cv2.REDUCE_AVG)[:, 0].astype(np.float64)
    sq = np.vecdot(diff, diff).astype(np.float64) / w
    return np.sqrt(np.maximum(sq - mean * mean, 0.0))


def _normalised_diff(a: np.ndarray, ma: float, b: np.ndarray, mb: float) -> np.ndarray:
    """``a / ma - b / mb`` in float32 (a blank frame, mean 0, counts as all zero)."""
    sa = 1.0 / ma if ma > 0 else 0.0
    sb = 1.0 / mb if mb > 0 else 0.0
    return cv2.addWeighted(a, sa, b, -sb, 0.0, dtype=cv2.CV_32F)


def outlier_rows(ratio: np.ndarray, row_ratio: float) -> tuple[int, int] | None:
    """The block of rows [r0, r1) to repair, from per-row outlier ratios, or None.

    Runs of rows above ``ROW_GROW_RATIO`` that hold at least ``MIN_ROWS`` rows above
    ``row_ratio`` count; the block spans all of them, widened by one row each side.
    """
    strong = ratio > row_ratio
    if int(strong.sum()) < MIN_ROWS:
        return None
    weak = np.concatenate([[False], ratio > ROW_GROW_RATIO, [False]])
    edges = np.flatnonzero(np.diff(weak.astype(np.int8)))
    starts, stops = edges[0::2], edges[1::2]
    counted = [
        (a, b) for a, b in zip(starts, stops, strict=True) if int(strong[a:b].sum()) >= MIN_ROWS
    ]
    if not counted:
        return None
    h = len(ratio)
    return max(0, int(counted[0][0]) - 1), min(h, int(counted[-1][1]) + 1)


class FrameScreen:
    """Streaming statistics for corrupted-frame detection, one frame at a time (pass 1).

    :meth:`push` takes frame t; the row verdict on frame t-1 is final then (it needs t).
    The comparison across t-1 and t+1 is only made when some row of frame t differs from
    both neighbours more than ordinary frames do (:data:`GATE` times the recent median),
    which keeps the screen at about one frame difference per frame.
    """

    def __init__(self, n_frames: int, shape: tuple[int, int], row_ratio: float = 2.0) -> None:
        self.n_frames = int(n_frames)
        self.shape = (int(shape[0]), int(shape[1]))
        self.row_ratio = float(row_ratio)
        self.std = np.zeros(n_frames)
        self.change = np.full(n_frames, np.nan)
        """Mean row RMS of the (gain-normalised) difference to the previous frame."""
        self.rows = np.full((n_frames, 2), -1, np.int64)
        self.row_score = np.zeros(n_frames)
        self._window: list[tuple[int, np.ndarray, float]] = []
        self._rms_last: np.ndarray | None = None
        self._recent: deque[float] = deque(maxlen=64)

    def push(self, t: int, frame: np.ndarray, mean: float) -> int | None:
        """Add frame ``t`` (uint8 or float32) with its mean; returns the frame just judged."""
        mean = float(mean)
        self.std[t] = cv2.meanStdDev(frame)[1][0, 0]
        judged = None
        if self._window:
            t1, f1, m1 = self._window[-1]
            if t1 != t - 1:
                raise ValueError(f"frames must be pushed in order: got {t} after {t1}")
            rms_now = _row_rms(_normalised_diff(frame, mean, f1, m1))
            self.change[t] = float(rms_now.mean())
            if len(self._window) == 2 and self._rms_last is not None:
                judged = t1
                closest = np.minimum(self._rms_last, rms_now)
                level = float(np.median(self._recent)) if len(self._recent) >= 8 else 0.0
                if float(closest.max()) > GATE * level:
                    _, f0, m0 = self._window[0]
                    across = _row_rms(_normalised_diff(frame, mean, f0, m0))
                    with np.errstate(divide="ignore", invalid="ignore"):
                        ratio = np.where(across > 0, closest / across, 0.0)
                    self.row_score[t1] = float(ratio.max()) if ratio.size else 0.0
                    block = outlier_rows(ratio, self.row_ratio)
                    if block is not None:
                        self.rows[t1] = block
            self._rms_last = rms_now
            self._recent.append(float(np.median(rms_now)))
        self._window = [*self._window[-1:], (t, frame, mean)]
        return judged


@dataclass
class CorruptFrames:
    """Which frames are corrupted, how, and (for ``rows``) which rows."""

    n_frames: int
    frames: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    kinds: np.ndarray = field(default_factory=lambda: np.zeros(0, "<U9"))
    rows: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    """[r0, r1) per frame; -1, -1 for a whole frame."""
    decode_errors: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.frames = np.asarray(self.frames, np.int64).reshape(-1)
        self.kinds = np.asarray(self.kinds, "<U9").reshape(-1)
        rows = np.asarray(self.rows, np.int64).reshape(-1, 2)
        self.rows = rows if len(rows) == len(self.frames) else np.full((len(self.frames), 2), -1)
        self._index = {int(t): i for i, t in enumerate(self.frames)}

    def __contains__(self, t: object) -> bool:
        return int(t) in self._index  # type: ignore[call-overload]

    def __len__(self) -> int:
        return len(self.frames)

    def rows_of(self, t: int) -> tuple[int, int] | None:
        """The rows to repair in frame t, or None for the whole frame."""
        r0, r1 = self.rows[self._index[int(t)]]
        return None if r0 < 0 else (int(r0), int(r1))

    def counts(self) -> dict[str, int]:
        return {k: int((self.kinds == k).sum()) for k in KINDS}

    @property
    def fraction(self) -> float:
        return len(self.frames) / self.n_frames if self.n_frames else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: indices, kinds, rows, counts, decode errors."""
        return {
            "corrupted_frames": self.frames.tolist(),
            "corrupted_kinds": self.kinds.tolist(),
            "corrupted_rows": self.rows.tolist(),
            "corrupted_counts": self.counts(),
            "corrupted_fraction": self.fraction,
            "decode_errors": list(self.decode_errors),
        }


def classify_frames(
    screen: FrameScreen,
    means: np.ndarray,
    decode_errors: Mapping[int, Any] | None = None,
) -> CorruptFrames:
    """Combine the per-frame statistics of pass 1 into one verdict per frame.

    One kind per frame, the first that applies in: decode, black/white, duplicate, rows.
    ``decode_errors`` maps a frame index to where it came from (``{"file", "file_frame"}``).
    """
    n = screen.n_frames
    means = np.asarray(means, np.float64)
    kind = np.full(n, "", "<U9")
    errors = {int(k): v for k, v in (decode_errors or {}).items() if 0 <= int(k) < n}
    for t in errors:
        kind[t] = "decode"
    readable = kind == ""
    std_ref = float(np.median(screen.std[readable])) if readable.any() else 0.0
    if std_ref > 0:
        blank = readable & (screen.std < BLANK_STD_FRACTION * std_ref)
        level = float(np.median(means[readable & ~blank])) if (readable & ~blank).any() else 0.0
        kind[blank & (means < level)] = "black"
        kind[blank & (means >= level)] = "white"
    change = screen.change
    finite = np.isfinite(change) & (kind == "")
    change_ref = float(np.median(change[finite])) if finite.any() else 0.0
    if change_ref > 0:
        kind[finite & (change < DUPLICATE_FRACTION * change_ref)] = "duplicate"
    kind[(kind == "") & (screen.rows[:, 0] >= 0)] = "rows"
    frames = np.flatnonzero(kind != "").astype(np.int64)
    rows = np.where((kind[frames] == "rows")[:, None], screen.rows[frames], -1)
    described = []
    for t in sorted(errors):
        entry = errors[t] if isinstance(errors[t], Mapping) else {"detail": str(errors[t])}
        described.append({"frame": t, **entry})
    return CorruptFrames(
        n_frames=n,
        frames=frames,
        kinds=kind[frames],
        rows=rows.reshape(-1, 2).astype(np.int64),
        decode_errors=described,
    )


def clean_means(means: np.ndarray, corrupt: CorruptFrames) -> np.ndarray:
    """Frame means with the corrupted frames' replaced by interpolation from intact ones.

    For the flicker low-pass, which a white or black frame would otherwise pull on for
    several neighbours.
    """
    means = np.asarray(means, np.float64).copy()
    if not len(corrupt):
        return means
    good = np.ones(len(means), bool)
    good[corrupt.frames] = False
    if good.any():
        idx = np.flatnonzero(good)
        means[~good] = np.interp(np.flatnonzero(~good), idx, means[idx])
    return means


class _Repairer:
    """State of :func:`repaired_blocks`: the last intact frame and the frames waiting for
    the next one."""

    def __init__(self, corrupt: CorruptFrames, max_gap: int) -> None:
        self.corrupt = corrupt
        self.max_gap = max_gap
        self.last: tuple[int, np.ndarray] | None = None
        self.pending: list[tuple[int, np.ndarray]] = []

    def resolve(self, nxt: tuple[int, np.ndarray] | None) -> list[tuple[int, np.ndarray]]:
        out = []
        for t, frame in self.pending:
            prev = self.last
            if prev is not None and nxt is not None:
                wgt = (t - prev[0]) / (nxt[0] - prev[0])
                fill = cv2.addWeighted(prev[1], 1.0 - wgt, nxt[1], wgt, 0.0, dtype=cv2.CV_32F)
            elif prev is not None or nxt is not None:
                fill = (prev or nxt)[1]  # type: ignore[index]
            else:
                fill = frame
            rows = self.corrupt.rows_of(t)
            if rows is None:
                frame = np.array(fill, np.float32)
            else:
                frame[rows[0] : rows[1]] = fill[rows[0] : rows[1]]
            out.append((t, frame))
        self.pending = []
        return out


def repaired_blocks(
    blocks: Iterable[tuple[int, np.ndarray]], corrupt: CorruptFrames, max_gap: int = 64
) -> Iterator[tuple[int, np.ndarray]]:
    """The same blocks with corrupted frames (or their bad rows) interpolated in time.

    Blocks without a corrupted frame pass through untouched; a block holding one is
    yielded once the next intact frame has been read (so possibly merged with the
    following block's first frames), as float32. At most ``max_gap`` frames wait.
    """
    state = _Repairer(corrupt, max_gap)
    for start, block in blocks:
        k = len(block)
        bad = [t for t in range(start, start + k) if t in corrupt]
        if not bad and not state.pending:
            state.last = (start + k - 1, np.array(block[-1], np.float32))
            yield start, block
            continue
        ready: list[tuple[int, np.ndarray]] = []
        for i in range(k):
            t = start + i
            frame = np.array(block[i], np.float32)
            if t in corrupt:
                state.pending.append((t, frame))
                anchor = state.last[0] if state.last is not None else state.pending[0][0]
                if t - anchor >= max_gap:
                    ready += state.resolve(None)
                continue
            ready += state.resolve((t, frame))
            ready.append((t, block[i]))
            state.last = (t, frame)
        if ready:
            yield ready[0][0], np.stack([np.asarray(f, np.float32) for _, f in ready])
    tail = state.resolve(None)
    if tail:
        yield tail[0][0], np.stack([f for _, f in tail])


def repaired_fraction_text(corrupt: CorruptFrames) -> str:
    """'12 of 1000 frames (0.0120): 3 rows, 2 black, ...' for check texts."""
    counts = ", ".join(f"{v} {k}" for k, v in corrupt.counts().items() if v)
    text = f"{len(corrupt)} of {corrupt.n_frames} frames ({corrupt.fraction:.4f})"
    return text + (f": {counts}" if counts else "")
