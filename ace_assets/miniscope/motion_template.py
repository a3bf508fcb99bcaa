"""The registration template: the mean of confidently registered frames from across the movie.

Why not the mean of the first frames: in a sparse, quiet recording a neuron that does not
fire in the first ten seconds is absent from such a template, and a later frame in which
it is the only active cell has nothing to match, so its peak lands on another cell. The
template is read from ``template_blocks`` stretches spread evenly over the movie, by random
access where the source allows it (stores, recordings, arrays; a plain iterator gives the
first frames). ``template_frames`` images are registered, each the mean of up to
``template_bin`` consecutive frames: a long movie contributes four times more frames (and
neurons) for the same registration work, at four times the signal-to-noise per image.

Each refinement registers every template image, tracks the lags of each stretch in time
(:mod:`ace_assets.miniscope.shift_tracking`), and averages only the images whose own
measurement was confident: quiet, black, white or corrupted frames never enter it.

Why two halves: a frame registered against a template that contains its own noise is
pulled towards where it already is (at low SNR this shrinks the estimated motion). So
alternate stretches form two half-templates and each half is registered against the
*other* one; after every round the second half-template is aligned onto the first, and
the result is their average. Frames that moved off the field of view leave NaN, so
replicated border stripes never enter the template.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ace_assets.io.pages import release_pages
from ace_assets.io.row_file import RowFile
from ace_assets.io.threads import FramePool, frame_pool
from ace_assets.miniscope.chunks import MovieSource, background, chunk_factory
from ace_assets.miniscope.registrar import MotionParams, Registrar
from ace_assets.miniscope.shift_tracking import track


@dataclass(frozen=True)
class TemplateInfo:
    """Which frames made the template."""

    frames: np.ndarray
    """Indices of the frames read for the template."""
    bin: int
    """Consecutive frames averaged into one template image."""
    used: np.ndarray
    """(len(frames) // bin,) bool: the image entered the final template."""

    @property
    def used_fraction(self) -> float:
        return float(self.used.mean()) if len(self.used) else 0.0


def template_frame_ranges(n_frames: int, params: MotionParams) -> tuple[list[tuple[int, int]], int]:
    """``(start, stop)`` of the stretches the template is read from, and the frames per image.

    ``template_frames`` images are registered; each averages ``bin`` consecutive frames
    (up to ``template_bin``, fewer when the movie is short), so a long sparse movie
    contributes ``template_frames * template_bin`` frames: enough for a neuron that fires
    once in a minute to be in the template.
    """
    n_frames = max(int(n_frames), 1)
    images = max(1, min(params.template_frames, n_frames))
    k = int(min(params.template_bin, max(1, n_frames // images)))
    blocks = max(1, min(params.template_blocks, images // 10 or 1))
    per_block = -(-images // blocks)
    length = per_block * k
    if length * blocks >= n_frames or blocks == 1:
        usable = min(n_frames, images * k) // k * k
        return [(0, usable)], k
    starts = np.round(np.linspace(0, n_frames - length, blocks)).astype(int)
    return [(int(a), int(a) + length) for a in starts], k


def _random_access(source: MovieSource) -> bool:
    return isinstance(source, np.ndarray) or hasattr(source, "read")


def _read(source: MovieSource, start: int, stop: int) -> np.ndarray:
    block = source[start:stop] if isinstance(source, np.ndarray) else source.read(start, stop)  # type: ignore[union-attr]
    return np.asarray(block)


def _read_ranges(
    source: MovieSource, ranges: list[tuple[int, int]], chunk_frames: int, prefetch: bool
) -> Iterator[tuple[int, np.ndarray]]:
    """Frames of each range as ``(first index, block)``, from a plain iterator of blocks."""
    last = max(b for _, b in ranges)
    chunks = background(chunk_factory(source, chunk_frames)(), prefetch)
    try:
        for start, block in chunks:
            for a, b in ranges:
                lo, hi = max(a, start), min(b, start + len(block))
                if lo < hi:
                    yield lo, block[lo - start : hi - start]
            if start + len(block) >= last:
                break
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _mean_image(frames: Iterable[np.ndarray], k: int) -> np.ndarray:
    """The mean of ``k`` frames, summed in order in float32 and divided: numpy's mean of
    them, bit for bit, without stacking them."""
    total: np.ndarray | None = None
    for frame in frames:
        if total is None:
            total = np.array(frame, np.float32)
        else:
            total += np.asarray(frame, np.float32)
    assert total is not None
    if k > 1:
        total /= np.float32(k)
    return total


def _images(
    source: MovieSource,
    ranges: list[tuple[int, int]],
    k: int,
    chunk_frames: int,
    prefetch: bool,
    pool: FramePool,
) -> Iterator[tuple[int, np.ndarray]]:
    """``(image index, mean of its k frames)`` over the ranges, in order.

    With random access, a few images at a time are read and averaged on ``pool``'s
    threads (each image from its own frames: the same images whatever the threads).
    """
    first_image = np.cumsum([0] + [(b - a) // k for a, b in ranges])
    if _random_access(source):
        per_task = max(1, chunk_frames // k) * k
        spans = [
            (int(first_image[r] + (s - a) // k), s, min(s + per_task, b))
            for r, (a, b) in enumerate(ranges)
            for s in range(a, b, per_task)
        ]

        def averaged(span: tuple[int, int, int]) -> list[tuple[int, np.ndarray]]:
            index, s, e = span
            block = _read(source, s, e)
            return [
                (index + j, _mean_image(block[o : o + k], k))
                for j, o in enumerate(range(0, e - s, k))
            ]

        for images in pool.map(averaged, spans):
            yield from images
        return
    held: list[np.ndarray] = []
    for start, block in _read_ranges(source, ranges, chunk_frames, prefetch):
        r = next(i for i, (a, b) in enumerate(ranges) if a <= start < b)
        a = ranges[r][0]
        for j, frame in enumerate(block):
            held.append(frame)
            if len(held) == k:
                yield int(first_image[r] + (start + j - a) // k), _mean_image(held, k)
                held = []


def build_template(
    source: MovieSource,
    n_frames: int,
    shape: tuple[int, int],
    params: MotionParams | Mapping[str, Any] | None = None,
    *,
    chunk_frames: int = 16,
    prefetch: bool = True,
    scratch_dir: str | Path | None = None,
    threads: int | None = None,
) -> tuple[np.ndarray, TemplateInfo]:
    """Template (float32, raw intensities) and which frames made it.

    The movie is read once: the template images (``template_frames`` of them, each a mean
    of up to ``template_bin`` frames) go to a scratch file under ``scratch_dir`` that the
    refinement passes read back (608 x 608: 1.5 MB per image; with more than one round,
    the first round keeps each image's spectrum there too, 1.6 MB, so the later rounds
    neither filter nor transform it again), and each pass measures
    and warps them on ``threads`` threads.
    """
    p = params if isinstance(params, MotionParams) else MotionParams.from_mapping(params)
    shape = (int(shape[0]), int(shape[1]))
    p.validate(shape)
    ranges, k = template_frame_ranges(n_frames, p)
    frames = np.concatenate([np.arange(a, b) for a, b in ranges])
    counts = [(b - a) // k for a, b in ranges]
    n_images = int(sum(counts))
    starts = np.cumsum([0] + counts[:-1])
    if len(ranges) > 1:
        half_of = np.concatenate([np.full(c, i % 2) for i, c in enumerate(counts)])
    else:
        block_len = max(1, n_images // 20)
        half_of = (np.arange(n_images) // block_len) % 2
    rigid = p.rigid(border=True)
    with (
        tempfile.TemporaryDirectory(dir=scratch_dir, prefix="motion-template-") as tmp,
        frame_pool(threads) as pool,
    ):
        stack = np.lib.format.open_memmap(
            Path(tmp) / "images.npy", "w+", np.float32, (max(n_images, 1), *shape)
        )
        with RowFile(stack, background=True) as rows:  # through the file: see io.row_file
            for i, img in _images(source, ranges, k, chunk_frames, prefetch, pool):
                rows.write(i, img[None], owned=True)  # a fresh image

        def images() -> Iterator[tuple[int, np.ndarray]]:
            return _stored_images(stack, n_images, chunk_frames)

        used = np.ones(n_images, bool)
        halves = _plain_halves(images(), half_of, shape)
        spectra: np.ndarray | None = None
        for round_ in range(p.template_iterations):
            regs = [Registrar(h, rigid) for h in halves]
            windows = np.zeros((n_images, *regs[0].window_shape), np.float32)
            if spectra is not None:  # later rounds: the images' spectra, kept from the first
                measured = pool.map(
                    partial(_window_of_spectrum, regs, half_of),
                    _stored_images(spectra, n_images, chunk_frames),
                )
                for i, win in enumerate(measured):
                    windows[i] = win
            elif round_ + 1 < p.template_iterations:
                spectra = np.lib.format.open_memmap(
                    Path(tmp) / "spectra.npy",
                    "w+",
                    np.float32,
                    (max(n_images, 1), *regs[0].padded),
                )
                with RowFile(spectra, background=True) as rows:
                    for i, (spec, win) in enumerate(
                        pool.map(partial(_spectrum_and_window, regs, half_of), images())
                    ):
                        windows[i] = win
                        rows.write(i, spec[None], owned=True)  # a fresh spectrum
            else:
                for i, win in enumerate(pool.map(partial(_window, regs, half_of), images())):
                    windows[i] = win
            tr = track(windows, regs[0].limit, p.min_registration_confidence, starts)
            used = tr.smoothed.used & ~tr.pooled  # the image's own peak, not its neighbours'
            warp = partial(_warp, regs[0], -tr.smoothed.lags)
            sums = np.zeros((2, *shape), np.float64)
            seen = np.zeros((2, *shape), np.int32)
            for i, warped in pool.map(warp, ((i, img) for i, img in images() if used[i])):
                valid = np.isfinite(warped)
                cv2.accumulate(warped, sums[half_of[i]], mask=valid.view(np.uint8))
                seen[half_of[i]] += valid
            halves = _aligned_halves(sums, seen, halves, rigid)
    template = ((halves[0] + halves[1]) / 2).astype(np.float32)
    return template, TemplateInfo(frames, k, used)


def _stored_images(
    stack: np.ndarray, n_images: int, chunk: int
) -> Iterator[tuple[int, np.ndarray]]:
    for a in range(0, n_images, chunk):
        block = np.array(stack[a : a + chunk])
        release_pages(stack)
        yield from enumerate(block, start=a)


def _window(regs: list[Registrar], half_of: np.ndarray, item: tuple[int, np.ndarray]) -> np.ndarray:
    """An image's correlation window against the other half's template."""
    i, img = item
    return regs[1 - half_of[i]].measure(img, pw=False).window


def _spectrum_and_window(
    regs: list[Registrar], half_of: np.ndarray, item: tuple[int, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """An image's spectrum (kept for the later rounds) and its window, as :func:`_window`."""
    i, img = item
    spec = regs[0].spectrum(img)  # the same for either half's registrar
    return spec, regs[1 - half_of[i]].measure_spectrum(spec).window


def _window_of_spectrum(
    regs: list[Registrar], half_of: np.ndarray, item: tuple[int, np.ndarray]
) -> np.ndarray:
    i, spec = item
    return regs[1 - half_of[i]].measure_spectrum(spec).window


def _warp(
    reg: Registrar, shifts: np.ndarray, item: tuple[int, np.ndarray]
) -> tuple[int, np.ndarray]:
    i, img = item
    return i, reg.apply(img, shifts[i])


def _plain_halves(
    images: Iterator[tuple[int, np.ndarray]], half_of: np.ndarray, shape: tuple[int, int]
) -> list[np.ndarray]:
    sums = np.zeros((2, *shape), np.float64)
    counts = np.zeros(2)
    for i, img in images:
        h = half_of[i]
        f = np.asarray(img, np.float32)
        if np.isfinite(f).all():
            cv2.accumulate(f, sums[h])  # float64 sums of float32, as numpy adds them
        else:
            sums[h] += np.nan_to_num(f.astype(np.float64))
        counts[h] += 1
    if counts[1] == 0:
        mean = (sums[0] / max(counts[0], 1)).astype(np.float32)
        return [mean, mean]
    return [(sums[h] / counts[h]).astype(np.float32) for h in (0, 1)]


def _aligned_halves(
    sums: np.ndarray, seen: np.ndarray, previous: list[np.ndarray], rigid: MotionParams
) -> list[np.ndarray]:
    """New half-templates (previous one where a half saw no frame), second aligned onto first."""
    means = []
    for h in (0, 1):
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(seen[h] > 0, sums[h] / np.maximum(seen[h], 1), previous[h])
        means.append(mean.astype(np.float32))
    if not seen[0].any() and seen[1].any():
        means[0] = means[1]
    if not seen[1].any():
        return [means[0], means[0]]
    second = Registrar(means[0], rigid).register(means[1], pw=False)[0]
    second = np.where(np.isfinite(second), second, means[0]).astype(np.float32)
    return [means[0], second]


def estimate_template(
    source: MovieSource,
    n_frames: int,
    shape: tuple[int, int],
    params: MotionParams | Mapping[str, Any] | None = None,
    *,
    chunk_frames: int = 16,
    prefetch: bool = True,
) -> np.ndarray:
    """Template (float32, raw intensities) refined from confident frames across the movie."""
    return build_template(
        source, n_frames, shape, params, chunk_frames=chunk_frames, prefetch=prefetch
    )[0]
