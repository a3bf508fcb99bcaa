"""Volts kept as int16 counts and a scale read back as the float32 values written, exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ace_assets.ephys.filters import filter_store
from ace_assets.io.store import ArrayStore, ArrayStoreWriter, write_array

SCALE = [3.05e-8, -1.52e-8, 6.1e-9]  # a negative one: an inverted input


def _volts(n: int) -> np.ndarray:
    """Counts times the scale, with what counts cannot hold: filled (interpolated) stretches,
    NaN runs (one across block edges, one a channel's whole end), beyond the int16 range."""
    rng = np.random.default_rng(2)
    counts = np.cumsum(rng.integers(-40, 41, (n, 3)), axis=0).clip(-32768, 32767)
    x = np.empty((n, 3), dtype=np.float32)
    np.multiply(counts.astype(np.int16), np.asarray(SCALE), out=x, casting="unsafe")
    x[1000:1100, 0] = np.linspace(x[999, 0], x[1100, 0], 102)[1:-1]  # a fill
    x[2990:3020, 1] = np.nan  # across a block edge
    x[n - 500 :, 2] = np.nan  # to the end
    x[4000, 2] = 40_000 * SCALE[2]  # no int16 count for it
    return x


def _write(path: Path, x: np.ndarray, block: int = 1000) -> ArrayStore:
    with ArrayStoreWriter(path, x.shape, np.float32, {"units": "V"}, scale=SCALE) as w:
        for a in range(0, len(x), block):
            w.write(a, x[a : a + block])
        return w.commit()


def test_scaled_store_reads_back_every_value_exactly(tmp_path: Path) -> None:
    x = _volts(10_000)
    store = _write(tmp_path / "s.npyd", x)
    assert store.stored.dtype == np.int16 and store.nbytes < x.nbytes * 0.51
    enc = store.meta["encoding"]
    assert enc["patched_rows"] == 101 and enc["nan_runs"] == 2  # the fill, beyond int16
    np.testing.assert_array_equal(store.read(), x)  # NaN where NaN, every bit elsewhere
    for a, b in [(0, 1), (995, 1105), (2500, 3500), (9600, 10_000), (3999, 4001)]:
        np.testing.assert_array_equal(store.read(a, b), x[a:b])
        for c in range(3):
            np.testing.assert_array_equal(store.read(a, b, c), x[a:b, c])
    assert store.counts(0, 900) is not None and store.counts(950, 1050) is None
    assert store.counts(3000, 3001) is None and store.counts(5000, 9000) is not None
    with pytest.raises(TypeError, match="read"):
        _ = store.mmap


def test_a_failed_scaled_write_leaves_the_last_good_store(tmp_path: Path) -> None:
    x = _volts(5000)
    good = _write(tmp_path / "s.npyd", x).read()
    with (
        pytest.raises(RuntimeError, match="killed"),
        ArrayStoreWriter(tmp_path / "s.npyd", x.shape, np.float32, scale=SCALE) as w,
    ):
        w.write(0, x[:1000] * 2)
        raise RuntimeError("killed")
    np.testing.assert_array_equal(ArrayStore(tmp_path / "s.npyd").read(), good)
    assert [p.name for p in tmp_path.iterdir()] == ["s.npyd"]


def test_band_of_a_scaled_store_equals_the_band_of_its_volts(tmp_path: Path) -> None:
    """The band is filtered in counts (linear: scaled on output); NaN and fills included."""
    fs, n = 32_000.0, 150_000
    rng = np.random.default_rng(4)
    t = np.arange(n) / fs
    counts = (3000 * np.sin(2 * np.pi * 4 * t)[:, None] + rng.normal(0, 300, (n, 3))).round()
    x = np.empty((n, 3), dtype=np.float32)
    np.multiply(counts.astype(np.int16), np.asarray(SCALE), out=x, casting="unsafe")
    x[60_000:60_200, 1] = np.nan
    x[90_000:90_050, 0] = x[90_000, 0] + np.float32(1e-9)  # not counts: patched
    meta = {"sampling_rate_hz": fs}
    with ArrayStoreWriter(tmp_path / "s.npyd", x.shape, np.float32, meta, scale=SCALE) as w:
        w.write(0, x)
        scaled = w.commit()
    plain = write_array(tmp_path / "p.npyd", x, meta)
    band = filter_store(scaled, tmp_path / "bs.npyd", "butter", [0.5, 30.0]).read()
    ref = filter_store(plain, tmp_path / "bp.npyd", "butter", [0.5, 30.0]).read()
    assert np.array_equal(np.isnan(band), np.isnan(ref)) and np.isnan(band[60_100, 1])
    peak = np.nanmax(np.abs(ref), axis=0)
    assert np.all(np.nanmax(np.abs(band - ref), axis=0) <= 1e-5 * peak)
