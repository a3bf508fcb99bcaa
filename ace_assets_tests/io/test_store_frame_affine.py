"""Frame-affine stores: uint8 frames and a gain and offset per frame, read back exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ace_assets.io.frame_affine import AFFINE, FRAMES
from ace_assets.io.store import ArrayStore, ArrayStoreWriter, drop_store


def _frames(n: int = 23, h: int = 9, w: int = 11) -> np.ndarray:
    return np.random.default_rng(5).integers(0, 256, (n, h, w), dtype=np.uint8)


@pytest.mark.parametrize("mode", ["gain", "offset", "both", "identity"])
def test_reads_back_the_float32_steps_bit_for_bit(tmp_path: Path, mode: str) -> None:
    """What a reader gets is ``float32(frame) * gain``, then ``+ offset``, in float32: the
    values preprocess computes, in any block of rows."""
    frames = _frames()
    n = len(frames)
    rng = np.random.default_rng(6)
    gain = np.ones(n, np.float32)
    offset = np.zeros(n, np.float32)
    if mode in ("gain", "both"):
        gain = rng.uniform(0.7, 1.6, n).astype(np.float32)
        gain[3] = 1.0  # an identity frame among others
    if mode in ("offset", "both"):
        offset = rng.uniform(-9, 9, n).astype(np.float32)
    expected = frames.astype(np.float32)
    expected *= gain[:, None, None]
    expected += offset[:, None, None]
    with ArrayStoreWriter(tmp_path / "m.npyd", frames.shape, np.float32, frame_affine=True) as w:
        for a in range(0, n, 5):
            w.write(a, frames[a : a + 5])
        w.set_frame_affine(gain, offset)
        store = w.commit()
    assert {p.name for p in store.path.iterdir()} == {FRAMES, AFFINE, "meta.json"}
    assert store.dtype == np.float32 and store.stored_dtype == np.uint8 and not store.direct
    assert store.nbytes < frames.nbytes + 200  # a byte a pixel (and the .npy header)
    assert store.meta["encoding"]["kind"] == "frame_affine"
    whole = store.read()
    assert whole.dtype == np.float32
    assert np.array_equal(whole.view(np.uint32), expected.view(np.uint32))
    for a, b in [(0, 1), (3, 4), (7, 19), (20, 23)]:
        assert np.array_equal(store.read(a, b), expected[a:b])
    with pytest.raises(TypeError, match="read"):
        _ = store.mmap


def test_refuses_what_it_cannot_keep(tmp_path: Path) -> None:
    frames = _frames()
    with pytest.raises(ValueError, match="float32 movie"):
        ArrayStoreWriter(
            tmp_path / "a.npyd", frames.shape, np.float32, compact=True, frame_affine=True
        )
    with ArrayStoreWriter(tmp_path / "b.npyd", frames.shape, np.float32, frame_affine=True) as w:
        with pytest.raises(TypeError, match="uint8"):
            w.write(0, frames.astype(np.float32))
        with pytest.raises(ValueError, match="23 gains"):
            w.set_frame_affine(np.ones(5), np.zeros(5))
    with ArrayStoreWriter(tmp_path / "c.npyd", frames.shape, np.float32, compact=True) as w:
        with pytest.raises(TypeError, match="not a frame-affine"):
            w.set_frame_affine(np.ones(23), np.zeros(23))
    assert not (tmp_path / "b.npyd").exists()  # nothing published after a failure


def test_a_failed_rewrite_keeps_the_last_store_and_drop_frees_both_files(tmp_path: Path) -> None:
    frames = _frames()
    path = tmp_path / "m.npyd"
    with ArrayStoreWriter(path, frames.shape, np.float32, frame_affine=True) as w:
        w.write(0, frames)
        w.set_frame_affine(np.full(len(frames), 2.0), np.zeros(len(frames)))
        w.commit()
    with (
        pytest.raises(RuntimeError),
        ArrayStoreWriter(path, frames.shape, np.float32, frame_affine=True) as w,
    ):
        w.write(0, frames[::-1].copy())
        raise RuntimeError("killed mid-run")
    assert np.array_equal(ArrayStore(path).read(0, 2), 2 * frames[:2].astype(np.float32))
    freed = drop_store(path, "keep_intermediate_movies=FALSE")
    assert freed >= frames.nbytes
    assert sorted(p.name for p in path.iterdir()) == ["meta.json"]
