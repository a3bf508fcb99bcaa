"""FrameFilter equals cv2.filter2D: any odd kernel, any border, frames of any size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ace_assets.miniscope.extraction.summary_images import center_psf_kernel, spatial_filter
from ace_assets.miniscope.frame_filter import FrameFilter

BORDERS = [cv2.BORDER_REPLICATE, cv2.BORDER_REFLECT, cv2.BORDER_REFLECT_101, cv2.BORDER_CONSTANT]


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("shape", [(61, 97), (608, 608), (17, 40)])
def test_equals_filter2d_for_an_asymmetric_kernel(shape: tuple[int, int], border: int) -> None:
    """An asymmetric kernel with a bright corner tells correlation from convolution and a
    misplaced anchor by a whole-pixel shift; a sloped frame tells the border modes apart."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    frame = (rng.random(shape) * 50 + 3 * yy + 2 * xx).astype(np.float32)
    kernel = rng.random((7, 11)).astype(np.float32)
    kernel[0, 0] = 5.0
    got = FrameFilter(shape, kernel, border).apply(frame)
    ref = cv2.filter2D(frame, -1, kernel, borderType=border)
    assert got.dtype == np.float32 and got.shape == shape
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-6 * np.abs(ref).max())


def test_writes_into_out_and_cnmfe_kernel_matches() -> None:
    rng = np.random.default_rng(4)
    frames = rng.normal(100, 20, (3, 90, 120)).astype(np.float32)
    kernel = center_psf_kernel((7, 7))
    ref = np.stack([cv2.filter2D(f, -1, kernel, borderType=cv2.BORDER_REPLICATE) for f in frames])
    np.testing.assert_allclose(spatial_filter(frames, kernel), ref, rtol=0, atol=1e-4)
    out = np.full((90, 120), np.nan, np.float32)
    filt = FrameFilter((90, 120), kernel, cv2.BORDER_REPLICATE)
    assert filt.apply(frames[0], out) is out
    np.testing.assert_allclose(out, ref[0], rtol=0, atol=1e-4)
    assert spatial_filter(frames[:0], kernel).shape == (0, 90, 120)


def test_even_kernel_is_refused() -> None:
    with pytest.raises(ValueError, match="odd"):
        FrameFilter((10, 10), np.ones((4, 3), np.float32), cv2.BORDER_REPLICATE)
