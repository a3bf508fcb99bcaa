"""The filtered band kept at its internal rate reads back as the full-rate output did
(to float32 rounding: BLAS may sum a product of another shape in another order)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ace_assets.ephys.band_store import BandStore, open_signal_store
from ace_assets.ephys.filters import filter_signal, filter_store
from ace_assets.io.store import ArrayStore, write_array

FS = 32_000.0
BAND = [0.5, 30.0]


def _source(tmp_path: Path, n: int, n_ch: int, cut: int) -> tuple[ArrayStore, np.ndarray]:
    rng = np.random.default_rng(3)
    t = np.arange(n) / FS
    x = rng.standard_normal((n, n_ch)) * 1e-4 + 1e-3 * np.sin(2 * np.pi * 3 * t)[:, None]
    x = x.astype(np.float32)
    x[50_000:50_100, 1 % n_ch] = np.nan  # a stretch one channel lacks
    x[cut + 7, 0] = np.nan
    meta = {
        "sampling_rate_hz": FS,
        "segments": [
            {"start_index": 0, "stop_index": cut},
            {"start_index": cut, "stop_index": n},
        ],
    }
    return write_array(tmp_path / "src.npyd", x if n_ch > 1 else x[:, 0], meta), x


@pytest.mark.parametrize("n_ch", [3, 1])
def test_band_store_reads_back_the_full_rate_output(tmp_path: Path, n_ch: int) -> None:
    n, cut = 200_003, 120_001
    src, x = _source(tmp_path, n, n_ch, cut)
    band = filter_store(src, tmp_path / "band.npyd", "butter", BAND, chunk_samples=20_000)
    assert isinstance(band, BandStore) and band.shape == src.shape
    # the same engine writing every input sample (the polyphase interpolation of the
    # forward-backward output), with the input's NaNs put back
    ref = filter_signal(
        x, FS, "butter", BAND, segments=[(0, cut), (cut, n)], decimate=True, chunk_samples=20_000
    ).astype(np.float32)
    ref[np.isnan(x)] = np.nan
    ref = ref if n_ch > 1 else ref[:, 0]
    whole = band.read()
    assert np.array_equal(np.isnan(whole), np.isnan(ref))
    tol = 1e-6 * np.nanmax(np.abs(ref))
    assert np.nanmax(np.abs(whole - ref)) <= tol
    rng = np.random.default_rng(0)
    for a in [0, cut - 5, n - 3, *rng.integers(0, n, 40).tolist()]:
        b = min(n, a + int(rng.integers(1, 30_000)))
        np.testing.assert_allclose(band.read(a, b), whole[a:b], rtol=0, atol=tol)  # any range
    if n_ch > 1:
        np.testing.assert_array_equal(band.read(cut - 9, cut + 9, 1), whole[cut - 9 : cut + 9, 1])
    chunks = np.concatenate([c for _, c in band.iter_chunks(7_777)])
    np.testing.assert_allclose(chunks, whole, rtol=0, atol=tol)


def test_band_store_is_the_band_at_its_rate_on_disk(tmp_path: Path) -> None:
    n = 1_200_000  # long against the padding, as real recordings are
    src, _ = _source(tmp_path, n, 2, n // 2)
    band = filter_store(src, tmp_path / "band.npyd", "butter", BAND)
    factor = band.meta["encoding"]["factor"]
    assert factor >= 4 and band.meta["filter"]["decimated"]["factor"] == factor
    pad_rows = sum(s[3] for s in band.meta["encoding"]["segments"]) - n / factor
    assert band.nbytes <= (n / factor + pad_rows) * 2 * 4 + 4096
    assert band.nbytes < src.nbytes / 3


def test_plain_reader_refuses_a_band_store_and_says_what_opens_it(tmp_path: Path) -> None:
    src, _ = _source(tmp_path, 200_000, 2, 100_000)
    filter_store(src, tmp_path / "band.npyd", "butter", BAND)
    with pytest.raises(TypeError, match="open_signal_store"):
        ArrayStore(tmp_path / "band.npyd")
    band = open_signal_store(tmp_path / "band.npyd")
    with pytest.raises(TypeError, match="read\\(start, stop\\)"):
        _ = band.mmap
    assert type(open_signal_store(src.path)) is ArrayStore


def test_a_failed_band_write_keeps_the_last_good_store(tmp_path: Path) -> None:
    src, _ = _source(tmp_path, 200_000, 2, 100_000)
    good = filter_store(src, tmp_path / "band.npyd", "butter", BAND).read(0, 1000)
    calls = []

    def fail_midway(k: int) -> None:
        calls.append(k)
        if len(calls) > 3:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        filter_store(src, tmp_path / "band.npyd", "butter", [0.5, 20.0], progress=fail_midway)
    again = open_signal_store(tmp_path / "band.npyd")
    np.testing.assert_array_equal(again.read(0, 1000), good)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".band")]
