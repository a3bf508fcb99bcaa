"""A movie kept as its uint8 frames and one gain and offset per frame: exact, a byte a pixel.

Why: the preprocessed movie is the denoised uint8 frames, cropped, times a per-frame
bleaching gain (or plus an offset). As float16 it took 2 bytes a pixel and rounded every
value to 11 bits; 8,000 frames of 608 x 608 were 5.9 GB, whose writing was most of the
stage's 28 s. Kept as the uint8 frames and the pair ``(gain, offset)`` per frame it is half
the bytes, and :meth:`FrameAffineDecoder.decode` computes what the stage computed, in the
same float32 steps (``float32(frame) * gain``, then ``+ offset``), so every read gives the
stage's values bit for bit.

Files beside ``data-uint8.npy``: ``frame-affine.npy`` (float32 ``(frames, 2)``: gain,
offset).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FRAMES = "data-uint8.npy"
AFFINE = "frame-affine.npy"
KIND = "frame_affine"


class FrameAffineDecoder:
    """uint8 frames to float32 values: ``float32(frame) * gain[t] + offset[t]``."""

    def __init__(self, path: Path) -> None:
        pairs = np.load(path / AFFINE).astype(np.float32, copy=False).reshape(-1, 2)
        self.gain = np.ascontiguousarray(pairs[:, 0])
        self.offset = np.ascontiguousarray(pairs[:, 1])

    def decode(self, frames: np.ndarray, start: int) -> np.ndarray:
        """Frames ``start : start + len(frames)`` as float32 (a new array).

        A gain of exactly 1 or an offset of exactly 0 leaves a value unchanged, so a block
        whose frames all have one is not multiplied (or added) at all."""
        out = frames.astype(np.float32)
        span = slice(start, start + len(out))
        lead = (slice(None),) + (None,) * (out.ndim - 1)
        gain, offset = self.gain[span], self.offset[span]
        if np.any(gain != 1):
            out *= gain[lead]
        if np.any(offset != 0):
            out += offset[lead]
        return out


def save_affine(folder: Path, gain: np.ndarray, offset: np.ndarray) -> None:
    """The per-frame pairs, beside the frames."""
    pairs = np.stack([np.asarray(gain, np.float32), np.asarray(offset, np.float32)], axis=1)
    if not np.isfinite(pairs).all():
        raise ValueError("a frame's gain or offset is not finite")
    np.save(folder / AFFINE, pairs)
