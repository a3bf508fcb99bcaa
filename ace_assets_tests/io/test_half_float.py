"""The OpenCV half-float casts give numpy's values on every input that matters."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ace_assets.io.half_float import cast


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit, or both NaN (a NaN's payload is not part of its value)."""
    bits = {2: np.uint16, 4: np.uint32}[a.dtype.itemsize]
    both_nan = np.isnan(a) & np.isnan(b)
    return a.dtype == b.dtype and bool(((a.view(bits) == b.view(bits)) | both_nan).all())


def test_every_half_float_widens_as_numpy_does() -> None:
    halves = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)
    got = cast(halves.reshape(256, 256), np.float32)
    assert _same(got, halves.reshape(256, 256).astype(np.float32))
    assert got.flags.c_contiguous


def test_narrowing_rounds_as_numpy_does_at_every_boundary() -> None:
    """float32 values at and around each half float and each midpoint between two of them
    (where nearest-even rounding decides), overflow to inf, and subnormals."""
    halves = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)
    finite = halves[np.isfinite(halves)].astype(np.float32).view(np.uint32).astype(np.int64)
    steps = np.r_[-4097:-4090, -3:4, 4090:4098, 8191:8194]  # 8192 float32 ulps per half ulp
    bits = (finite[:, None] + steps[None, :]).ravel()
    bits = bits[(bits >= 0) & (bits < 2**32)].astype(np.uint32)
    values = np.concatenate([bits.view(np.float32), [65504, 65519.996, 65520, 1e9, np.inf]])
    values = np.concatenate([values, -values, [np.nan, 1e-8, -3e-6]]).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's overflow warning
        expected = values.astype(np.float16)
    assert _same(cast(values, np.float16), expected)
    assert _same(cast(values.reshape(1, -1), np.float16), expected.reshape(1, -1))


@pytest.mark.parametrize("shape", [(3, 5, 7), (0, 4, 4), (6,), ()])
def test_shapes_and_other_casts_follow_numpy(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 300, shape).astype(np.float32)
    for source, target in [(np.float32, np.float16), (np.float16, np.float32)]:
        src = x.astype(source)
        got = cast(src, target)
        assert got.shape == np.ascontiguousarray(src, target).shape
        assert _same(np.atleast_1d(got), np.atleast_1d(src.astype(target)))
    # not contiguous, or not a half-float cast: numpy's own
    strided = x.reshape(-1)[::2] if x.ndim else x
    assert _same(
        np.atleast_1d(cast(strided, np.float16)), np.atleast_1d(strided.astype(np.float16))
    )
    assert cast(x.astype(np.float64), np.float16).dtype == np.float16
    same = cast(x, np.float32)
    assert same.dtype == np.float32 and np.array_equal(same, np.ascontiguousarray(x))
