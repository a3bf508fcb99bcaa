"""Compact (float16) movie stores: round trip, rounding error against sensor noise, dropping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ace_assets.demo.families import family_member
from ace_assets.demo.miniscope_synth import SyntheticMiniscope
from ace_assets.errors import AceInputError
from ace_assets.io.store import (
    COMPACT,
    DATA,
    ArrayStore,
    ArrayStoreWriter,
    DroppedStoreError,
    drop_store,
)
from ace_assets.miniscope.extraction.movie import FloatFrames, as_movie
from ace_assets.miniscope.preprocess import output_shape, preprocess_movie


def write(path: Path, frames: np.ndarray, chunk: int = 7) -> ArrayStore:
    with ArrayStoreWriter(path, frames.shape, np.float32, {"fps": 30.0}, compact=True) as w:
        for s in range(0, len(frames), chunk):
            w.write(s, frames[s : s + chunk])
        return w.commit()


def test_round_trip_is_float32_half_the_bytes_and_within_float16_rounding(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = rng.uniform(-2.0, 300.0, (20, 33, 47)).astype(np.float32)
    frames[3, :2] = np.nan  # NaN borders (border_nan=True) survive
    store = write(tmp_path / "m.npyd", frames)
    assert (store.path / COMPACT).is_file() and not (store.path / DATA).exists()
    assert store.stored_dtype == np.float16 and store.dtype == np.float32
    assert store.nbytes < frames.nbytes / 2 + 1024  # 2 bytes per pixel plus the .npy header
    back = store.read()
    assert back.dtype == np.float32 and back.shape == frames.shape
    np.testing.assert_array_equal(np.isnan(back), np.isnan(frames))
    ok = np.isfinite(frames)
    # float16 keeps 11 significant bits: relative error at most 2^-11
    assert np.all(np.abs(back[ok] - frames[ok]) <= np.abs(frames[ok]) * 2.0**-11 + 1e-7)
    chunks = np.concatenate([b for _, b in store.iter_chunks(6)])
    np.testing.assert_array_equal(chunks, back)
    assert store.meta["fps"] == 30.0 and store.meta["encoding"]["dtype"] == "float16"
    # extraction reads the store through ArrayStore (no data.npy to read raw): float32 frames
    movie = FloatFrames(as_movie(ArrayStore(store.path)))
    np.testing.assert_array_equal(movie.read(2, 9), back[2:9])


def test_rounding_is_far_below_the_sensor_noise(tmp_path: Path) -> None:
    """A preprocessed family movie (grey levels 40-255, sensor noise SD 3) stored compactly."""
    cfg = family_member("bands19_240x300", n_frames=40)
    raw = SyntheticMiniscope(cfg).render(0, 40, bands=False)
    shape = output_shape(40, raw.shape[1:])
    with ArrayStoreWriter(tmp_path / "exact.npyd", shape, np.float32) as w:
        preprocess_movie(raw, 40, raw.shape[1:], cfg.fps, None, w)
        exact = w.commit().read()
    with ArrayStoreWriter(tmp_path / "c.npyd", shape, np.float32, compact=True) as w:
        preprocess_movie(raw, 40, raw.shape[1:], cfg.fps, None, w)
        compact = w.commit().read()
    err = compact.astype(np.float64) - exact
    rms = float(np.sqrt(np.mean(err**2)))
    assert 0 < rms < 0.02 * cfg.noise_sd  # adds < 0.04% to the noise variance
    assert np.abs(err).max() <= 0.125 + 1e-6  # half a float16 step at 256-511
    assert abs(float(err.mean())) < 1e-3  # and it is unbiased


def test_values_beyond_float16_are_refused_with_the_store_named(tmp_path: Path) -> None:
    frames = np.full((2, 8, 8), 7e4, np.float32)
    with pytest.raises(AceInputError, match="float16") as info:
        write(tmp_path / "big.npyd", frames)
    assert "big.npyd" in str(info.value)
    assert not (tmp_path / "big.npyd").exists()  # nothing half-written left behind
    with pytest.raises(ValueError, match="float movies"):
        ArrayStoreWriter(tmp_path / "u8.npyd", (2, 4, 4), np.uint8, compact=True)


def test_a_value_beyond_float16_names_the_setting_to_change(tmp_path: Path) -> None:
    """The movie assets name what bounds their values: the dff column of
    analysis_parameters.csv, and the crop and baseline settings that exist."""
    from ace_assets.catalog.parameter_specs import ENGINE_SPECS, SPECS
    from ace_assets.miniscope.preprocess import RANGE_HINT

    column, advice = RANGE_HINT
    assert column in SPECS and "crop_coords" in SPECS and "min_baseline" in ENGINE_SPECS
    frames = np.full((2, 8, 8), 1.0, np.float32)
    frames[1, 3, 4] = -9e4
    path = tmp_path / "dff.npyd"
    with pytest.raises(AceInputError, match="frames 0..1 .* min_baseline setting") as info:
        with ArrayStoreWriter(
            path, frames.shape, np.float32, compact=True, range_hint=RANGE_HINT
        ) as w:
            w.write(0, frames)
            w.commit()
    assert info.value.column == column and "dff.npyd" in str(info.value)
    assert f"column '{column}'" in str(info.value) and advice in str(info.value)
    assert not path.exists()


def test_exact_stores_are_unchanged(tmp_path: Path) -> None:
    frames = np.arange(2 * 4 * 5, dtype=np.uint8).reshape(2, 4, 5)
    with ArrayStoreWriter(tmp_path / "u.npyd", frames.shape, np.uint8) as w:
        w.write(0, frames)
        store = w.commit()
    assert (store.path / DATA).is_file() and store.dtype == np.uint8 and not store.compact
    np.testing.assert_array_equal(store.read(), frames)
    assert "encoding" not in store.meta


def test_drop_store_keeps_meta_and_explains(tmp_path: Path) -> None:
    store = write(tmp_path / "m.npyd", np.ones((4, 6, 6), np.float32))
    size = store.nbytes
    del store
    freed = drop_store(tmp_path / "m.npyd", "dropped after motion_corrected_movie was built")
    assert freed == size
    assert not (tmp_path / "m.npyd" / COMPACT).exists()
    assert (tmp_path / "m.npyd" / "meta.json").is_file()
    with pytest.raises(DroppedStoreError, match="after motion_corrected_movie"):
        ArrayStore(tmp_path / "m.npyd")
