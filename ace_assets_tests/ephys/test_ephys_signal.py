"""Ephys signal science: zero-phase filters, multitaper spectrogram, Hilbert phase, artefacts."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import detrend, hilbert
from scipy.signal.windows import dpss

from ace_assets.ephys.artifacts import remove_artifacts, remove_artifacts_store
from ace_assets.ephys.filters import design_filter, filter_signal, filter_store
from ace_assets.ephys.multitaper import (
    multitaper_spectrogram,
    multitaper_spectrogram_chunked,
    store_reader,
)
from ace_assets.ephys.phase import analytic_signal, band_power, phase_store
from ace_assets.io.store import write_array

FS = 250.0


def _slow_wave_plus_theta(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1 Hz slow wave + 7 Hz oscillation (with drifting phase) + white noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    phase7 = 2 * np.pi * 7 * t + 0.8 * np.sin(2 * np.pi * 0.1 * t)
    theta = 0.5 * np.cos(phase7)
    x = 2.0 * np.sin(2 * np.pi * 1.0 * t) + theta + 0.5 * rng.normal(size=n)
    return x, theta, phase7


def test_bandpass_recovers_theta() -> None:
    n = int(FS * 120)
    x, theta, _ = _slow_wave_plus_theta(n)
    inner = slice(int(5 * FS), n - int(5 * FS))
    for ftype in ("butter", "fir"):
        y = filter_signal(x, FS, ftype, [5.0, 9.0], chunk_samples=3001)
        corr = np.corrcoef(y[inner], theta[inner])[0, 1]
        assert corr >= 0.95, (ftype, corr)


@pytest.mark.parametrize(
    ("ftype", "frange"),
    [("butter", [0.5, 30.0]), ("butter", [0, 20.0]), ("butter", [4.0, None]), ("fir", [5, 9])],
)
def test_chunked_equals_whole_signal(ftype: str, frange: list[float | None]) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40_011, 2)).cumsum(axis=0) * 0.05 + rng.normal(size=(40_011, 2))
    ref = design_filter(ftype, frange, FS).reference(x)  # scipy sosfiltfilt / filtfilt
    y = filter_signal(x, FS, ftype, frange, chunk_samples=4096)
    scale = np.abs(ref).max()
    assert np.abs(y - ref).max() <= 1e-9 * scale  # everywhere, ends included


def test_filter_store_segments_and_nans(tmp_path: Path) -> None:
    x, _, _ = _slow_wave_plus_theta(20_000)
    data = np.stack([x, -x], axis=1).astype(np.float32)
    segments = [{"start_index": 0, "stop_index": 7000}, {"start_index": 7000, "stop_index": 20_000}]
    src = write_array(tmp_path / "raw.npyd", data, {"sampling_rate_hz": FS, "segments": segments})
    (src.path / "clock.npz").write_bytes((src.path / "meta.json").read_bytes())  # any sidecar
    out = filter_store(src, tmp_path / "filt.npyd", "butter", [5, 9], chunk_samples=2500)
    assert out.shape == data.shape and out.dtype == np.float32
    assert (out.path / "clock.npz").is_file() and not list(out.path.glob("*.scratch"))
    assert out.meta["filter"]["cutoff_hz"] == [5.0, 9.0]
    filt = design_filter("butter", [5, 9], FS)
    d64 = data.astype(np.float64)
    ref = np.concatenate([filt.reference(d64[:7000]), filt.reference(d64[7000:])])
    assert np.abs(out.read(0, 20_000) - ref).max() <= 1e-5 * np.abs(ref).max()

    holed = x.copy()
    holed[5000:5100] = np.nan
    y = filter_signal(holed, FS, "butter", [5, 9])
    assert np.isnan(holed[5000:5100]).all()  # the caller's array is left alone
    assert np.isnan(y[5000:5100]).all() and np.isfinite(y[:5000]).all()
    assert np.isfinite(y[5100:]).all()


def _prerau_reference(x: np.ndarray, win: int, step: int, tw: float, k: int) -> np.ndarray:
    """Per-window loop as in Prerau's multitaper_spectrogram_python (unity weights)."""
    nfft = max(2 ** math.ceil(math.log2(win)), win)
    tapers = dpss(win, tw, k)
    cols = []
    for s in range(0, x.size - win + 1, step):
        seg = detrend(x[s : s + win], type="constant")
        p = (np.abs(np.fft.fft(seg[:, None] * tapers.T, nfft, axis=0)) ** 2).mean(axis=1)
        cols.append(p[: nfft // 2 + 1])
    m = np.array(cols).T
    m[1:-1] *= 2
    return m / FS


def test_spectrogram_peak_and_reference() -> None:
    n = int(FS * 60)
    t = np.arange(n) / FS
    x = np.sin(2 * np.pi * 11.3 * t) + 0.3 * np.random.default_rng(2).normal(size=n)
    spec, times, freqs = multitaper_spectrogram(x, FS, window_s=4, step_s=1, time_bandwidth=2)
    assert spec.shape == (freqs.size, times.size) == (513, 57)
    np.testing.assert_allclose(times, 2.0 + np.arange(57))
    df = freqs[1] - freqs[0]
    assert abs(freqs[np.argmax(spec.mean(axis=1))] - 11.3) <= df  # within one bin
    assert np.all(np.abs(freqs[np.argmax(spec, axis=0)] - 11.3) <= 2 / 4)  # inside the W lobe
    ref = _prerau_reference(x, 1000, 250, 2.0, 3)
    np.testing.assert_allclose(spec, ref, rtol=1e-9, atol=1e-12 * ref.max())
    # white noise of variance 1: one-sided PSD 2/fs
    noise = np.random.default_rng(3).normal(size=n)
    s2, _, f2 = multitaper_spectrogram(noise, FS, window_s=4, step_s=4, freq_range=(1, 100))
    assert np.mean(s2) == pytest.approx(2 / FS, rel=0.05)
    assert f2[0] >= 1 and f2[-1] <= 100


def test_spectrogram_chunked_reader_and_nan(tmp_path: Path) -> None:
    x, _, _ = _slow_wave_plus_theta(int(FS * 90))
    whole = multitaper_spectrogram(x, FS, window_s=3, step_s=0.5, freq_range=(0, 20))
    store = write_array(tmp_path / "s.npyd", np.stack([x, x], 1).astype(np.float64))
    chunked = multitaper_spectrogram_chunked(
        store_reader(store, 1), x.size, FS, window_s=3, step_s=0.5, freq_range=(0, 20),
        batch_bytes=20_000,
    )  # fmt: skip
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    holed = x.copy()
    holed[int(10 * FS)] = np.nan
    spec, times, _ = multitaper_spectrogram(holed, FS, window_s=3, step_s=0.5)
    bad = np.isnan(spec).any(axis=0)
    assert bad.sum() == 6 and np.all(np.abs(times[bad] - 10) <= 1.5)


def test_hilbert_phase_accuracy_and_chunking() -> None:
    n = int(FS * 200)
    x, _, phase7 = _slow_wave_plus_theta(n, seed=4)
    y = filter_signal(x, FS, "butter", [5, 9])
    z = analytic_signal(y, FS, low_hz=5, chunk_samples=2000)
    inner = slice(int(5 * FS), n - int(5 * FS))
    err = np.angle(np.exp(1j * (np.angle(z[inner]) - phase7[inner])))
    assert np.abs(np.angle(np.mean(np.exp(1j * err)))) < 0.2  # circular mean error
    assert np.mean(np.abs(err)) < 0.2
    whole = hilbert(y)
    assert np.abs(np.angle(z[inner] * np.conj(whole[inner]))).max() < 0.02


def test_phase_store_and_band_power(tmp_path: Path) -> None:
    t = np.arange(int(FS * 40)) / FS
    sig = np.stack([0.3 * np.cos(2 * np.pi * 6 * t), np.cos(2 * np.pi * 6 * t + 1.0)], 1)
    meta = {"sampling_rate_hz": FS, "filter": {"btype": "bandpass", "cutoff_hz": [4.0, 8.0]}}
    src = write_array(tmp_path / "bp.npyd", sig.astype(np.float32), meta)
    ph, amp = phase_store(src, tmp_path / "ph.npyd", tmp_path / "amp.npyd", chunk_samples=999)
    inner = slice(500, -500)
    expected = 2 * np.pi * 6 * t[inner, None] + np.array([0.0, 1.0])
    assert np.abs(np.angle(np.exp(1j * (ph.read(0, t.size)[inner] - expected)))).max() < 0.05
    np.testing.assert_allclose(amp.read(0, t.size)[inner].mean(0), [0.3, 1.0], rtol=0.02)
    times, power = band_power(sig, FS, window_s=2, step_s=1)
    np.testing.assert_allclose(power, np.broadcast_to([0.045, 0.5], power.shape), rtol=1e-3)
    assert times[0] == 1.0


def test_artifacts_detected_padded_excluded(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n = int(FS * 60)
    x = rng.normal(0, 2e-5, (n, 2))
    x[3000:3010, 0] += 6e-4  # large excursion on channel 0, within the ADC range
    x[9000:9050, 1] = 32767 * 3e-8  # saturated run on channel 1 (also a large excursion)
    clean, table = remove_artifacts(x, FS, threshold_sd=8, pad_s=0.2, ad_bit_volts=3e-8)
    assert table.channel.tolist() == [0, 1]
    assert table.kind.tolist() == ["amplitude", "amplitude+saturation"]
    _, sat_only = remove_artifacts(x, FS, threshold_sd=1000, pad_s=0.2, ad_bit_volts=3e-8)
    assert sat_only.kind.tolist() == ["saturation"]
    assert table.start_index.tolist() == [3000 - 50, 9000 - 50]
    assert table.stop_index.tolist() == [3010 + 50, 9050 + 50]
    assert np.abs(clean[2950:3060, 0]).max() < 1e-4  # bridged by a straight line
    np.testing.assert_array_equal(clean[:2950], x[:2950])
    nan_clean, _ = remove_artifacts(x, FS, threshold_sd=8, pad_s=0.2, mode="nan")
    assert np.isnan(nan_clean[2950:3060, 0]).all() and np.isnan(nan_clean).sum() == 110 + 150
    src = write_array(
        tmp_path / "raw.npyd",
        x.astype(np.float32),
        {"sampling_rate_hz": FS, "ad_bit_volts": [3e-8] * 2},
    )
    out, table2 = remove_artifacts_store(src, tmp_path / "clean.npyd", threshold_sd=8, pad_s=0.2,
                                         chunk_samples=4000)  # fmt: skip
    assert table2[["channel", "start_index", "stop_index"]].equals(
        table[["channel", "start_index", "stop_index"]]
    )
    assert out.meta["artifacts"]["intervals"][1]["kind"] == "amplitude+saturation"
    np.testing.assert_allclose(out.read(0, n), clean, atol=1e-9)


def test_mirror_padding_keeps_segment_ends_quiet() -> None:
    """60 Hz mains (2.5 mV) on a 5 mV offset over a 20 µV, 2 Hz wave, cut into segments:
    SciPy's default 27-sample odd pad leaves mV transients at every end; the mirror pad as
    long as the impulse response leaves what mirroring mains costs (about 4% of them)."""
    from scipy.signal import butter, sosfiltfilt

    fs = 2000.0
    t = np.arange(int(30 * fs)) / fs
    wave = 20e-6 * np.sin(2 * np.pi * 2 * t)
    segments = [(0, 20_000), (20_000, 20_005), (20_005, 60_000)]
    ends = np.r_[0:4000, 16_000:20_000, 20_005:24_000, 56_000:60_000]
    sos = butter(4, [0.5, 4], "bandpass", fs=fs, output="sos")
    for mains in (2.5e-3, 0.0):
        x = mains * np.sin(2 * np.pi * 60 * t + 0.3) + wave + 5e-3
        y = filter_signal(x, fs, "butter", [0.5, 4], segments=segments)
        old = np.concatenate(
            [sosfiltfilt(sos, x[a:b]) if b - a > 27 else x[a:b] for a, b in segments]
        )
        new_err, old_err = np.abs(y - wave)[ends].max(), np.abs(old - wave)[ends].max()
        assert new_err < (0.1 if mains else 0.5) * old_err, (mains, new_err, old_err)
        assert new_err < (0.05 * mains if mains else 10e-6), (mains, new_err)
    filt = design_filter("butter", [0.5, 4], fs)
    assert 10_000 < filt.padlen < 20_000  # about 7 s: the slowest pole's decay to 1e-3


def test_windows_per_segment_masked_across_pauses_and_adaptive() -> None:
    from ace_assets.ephys.windows import plan_windows, spectrogram
    from ace_assets.errors import AceInputError

    fs = 100.0
    plan = plan_windows([(0, 1000), (1000, 2500)], fs, window_s=4, step_s=1)
    starts, masked = plan.starts.tolist(), plan.masked.tolist()
    assert starts[:7] == [0, 100, 200, 300, 400, 500, 600]
    assert masked[:7] == [False] * 7 and all(masked[7:10])  # 700-900 would reach the pause
    assert starts[10] == 1000 and not any(masked[10:])
    assert plan.starts[-1] + plan.win <= 2500 and not plan.adapted
    x = np.sin(2 * np.pi * 11 * np.arange(2500) / fs)
    power, freqs = spectrogram(lambda a, b: x[a:b], plan, [(0, 1000), (1000, 2500)])
    assert np.isnan(power[:, plan.masked]).all() and np.isfinite(power[:, ~plan.masked]).all()
    assert abs(freqs[np.argmax(np.nanmean(power, axis=1))] - 11) < 0.5
    short = plan_windows([(0, 300)], fs, window_s=4, step_s=1)
    assert short.adapted and short.win == 300 and short.starts.tolist() == [0]
    assert "used instead" in short.warnings[0]
    with pytest.raises(AceInputError, match="set ephys_window_s to at most 1.500 s") as err:
        plan_windows([(0, 150), (150, 200)], fs, window_s=4, step_s=1)
    assert err.value.column == "ephys_window_s"


def test_prediction_fill_continues_oscillations() -> None:
    from ace_assets.io.neuralynx_fill import fill_missing

    fs = 2000.0
    t = np.arange(4000) / fs
    x = 2e-3 * np.sin(2 * np.pi * 60 * t) + 1e-3 * np.sin(2 * np.pi * 7 * t + 1)
    have = np.ones(t.size, bool)
    have[1500:1600] = False  # 50 ms hole
    have[3990:] = False  # at the end: one-sided
    y = x.copy()
    y[~have] = 0.0
    fill_missing(y, have)
    assert np.abs(y - x).max() < 1e-5  # a straight line would be off by ~3 mV
    few = np.zeros(60, bool)
    few[:20] = few[40:] = True  # too little context for a model: a straight line
    z = np.arange(60, dtype=float)
    z[20:40] = 0
    fill_missing(z, few)
    np.testing.assert_allclose(z, np.arange(60))
