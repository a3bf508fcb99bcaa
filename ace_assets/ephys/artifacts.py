"""Mark and exclude large-amplitude excursions and ADC saturation, streaming.

Detection, per channel:

- amplitude: ``|x - median| > threshold_sd * robust_sd`` with ``robust_sd = 1.4826 * MAD``.
  Median and MAD come from an evenly spread sample of the recording (``max_samples`` per
  channel, in contiguous blocks) so the scale is a property of the whole session yet
  estimating it reads a bounded amount.
- saturation: ``|x| >= (32767 - 0.5) * ADBitVolts``, i.e. the sample sits on an int16 rail
  (the reader's volts are counts x ADBitVolts, negated for inverted inputs, so either rail
  maps to that magnitude).

Runs of marked samples are padded by ``pad_s`` on both sides and merged per channel into
intervals ``[start_index, stop_index)``, reported as a table.

Exclusion (``mode``): ``"interpolate"`` (default) replaces each interval by the straight line
between the good samples on either side (held flat at the recording's ends), which keeps later
filters from smearing NaN over the whole segment; ``"nan"`` sets intervals to NaN (filters in
:mod:`ace_assets.ephys.filters` bridge NaNs and restore them, the spectrogram returns NaN
columns for windows touching them).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ace_assets.catalog.parameter_specs import SPECS
from ace_assets.ephys.sidecars import copy_sidecars
from ace_assets.io.pages import release_pages
from ace_assets.io.store import ArrayStore, ArrayStoreWriter

Reader = Callable[[int, int], np.ndarray]
MAD_TO_SD = 1.4826
RAIL_COUNTS = 32767 - 0.5
#: the catalog's default, so a notebook call runs what the asset runs
THRESHOLD_SD: float = SPECS["artifact_threshold_sd"].default
COLUMNS = ["channel", "kind", "start_index", "stop_index", "start_s", "stop_s", "n_samples"]


def robust_scale(
    read: Reader, n_samples: int, *, max_samples: int = 1_000_000, block: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (median, robust SD) from at most ``max_samples`` evenly spread samples."""
    if n_samples <= max_samples:
        data = _as2d(read(0, n_samples))
    else:
        n_blocks = max(1, max_samples // block)
        starts = np.linspace(0, n_samples - block, n_blocks).astype(np.int64)
        data = np.concatenate([_as2d(read(int(s), int(s) + block)) for s in starts], axis=0)
    med = np.nanmedian(data, axis=0)
    sd = MAD_TO_SD * np.nanmedian(np.abs(data - med), axis=0)
    return med, sd


def _as2d(block: np.ndarray) -> np.ndarray:
    arr = np.asarray(block, dtype=np.float64)
    return arr[:, None] if arr.ndim == 1 else arr


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and stop (exclusive) of True runs in a 1-D bool array."""
    d = np.diff(np.concatenate([[0], mask.view(np.int8), [0]]))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def detect_artifacts(
    read: Reader,
    n_samples: int,
    fs: float,
    *,
    threshold_sd: float = THRESHOLD_SD,
    pad_s: float = 0.1,
    ad_bit_volts: np.ndarray | list[float] | None = None,
    chunk_samples: int = 1 << 18,
    center: np.ndarray | None = None,
    scale: np.ndarray | None = None,
) -> pd.DataFrame:
    """Intervals to exclude, one row per (channel, merged interval); see module docstring.

    ``ad_bit_volts`` (per channel, or one value) enables saturation detection.
    ``center`` / ``scale`` override the robust median / SD estimate.
    """
    if center is None or scale is None:
        med, sd = robust_scale(read, n_samples)
        center = med if center is None else np.asarray(center, dtype=np.float64)
        scale = sd if scale is None else np.asarray(scale, dtype=np.float64)
    n_ch = center.shape[0]
    rails = None
    if ad_bit_volts is not None:
        rails = np.broadcast_to(np.asarray(ad_bit_volts, dtype=np.float64), (n_ch,)) * RAIL_COUNTS
    raw: list[list[tuple[int, int, str]]] = [[] for _ in range(n_ch)]
    limit = threshold_sd * np.where(scale > 0, scale, np.inf)
    for a in range(0, n_samples, chunk_samples):
        x = _as2d(read(a, min(n_samples, a + chunk_samples)))
        amp = np.abs(x - center) > limit
        sat = np.abs(x) >= rails if rails is not None else np.zeros_like(amp)
        for c in range(n_ch):
            for kind, m in (("amplitude", amp[:, c]), ("saturation", sat[:, c])):
                if m.any():
                    s0, s1 = _runs(m)
                    raw[c].extend(
                        (a + int(i), a + int(j), kind) for i, j in zip(s0, s1, strict=True)
                    )
    pad = int(round(pad_s * fs))
    rows = []
    for c in range(n_ch):
        for s, e, kinds in _merge(raw[c], pad, n_samples):
            rows.append((c, "+".join(sorted(kinds)), s, e, s / fs, e / fs, e - s))
    return pd.DataFrame(rows, columns=COLUMNS)


def _merge(runs: list[tuple[int, int, str]], pad: int, n: int) -> list[tuple[int, int, set[str]]]:
    merged: list[tuple[int, int, set[str]]] = []
    for s, e, kind in sorted(runs):
        s, e = max(0, s - pad), min(n, e + pad)
        if merged and s <= merged[-1][1]:
            ps, pe, pk = merged[-1]
            merged[-1] = (ps, max(pe, e), pk | {kind})
        else:
            merged.append((s, e, {kind}))
    return merged


def exclude_block(
    block: np.ndarray,
    a: int,
    table: pd.DataFrame,
    read: Reader,
    n_samples: int,
    mode: str = "interpolate",
) -> np.ndarray:
    """Apply the intervals of ``table`` to ``block`` (samples ``a:a+len``) in place."""
    b = a + block.shape[0]
    hits = table[(table.start_index < b) & (table.stop_index > a)]
    for row in hits.itertuples(index=False):
        c, s, e = int(row.channel), int(row.start_index), int(row.stop_index)
        lo, hi = max(s, a), min(e, b)
        if mode == "nan":
            block[lo - a : hi - a, c] = np.nan
            continue
        left = _as2d(read(s - 1, s))[0, c] if s > 0 else None
        right = _as2d(read(e, e + 1))[0, c] if e < n_samples else None
        if left is None and right is None:
            block[lo - a : hi - a, c] = 0.0
        elif left is None or right is None:
            block[lo - a : hi - a, c] = right if left is None else left
        else:
            frac = (np.arange(lo, hi) - (s - 1)) / (e - (s - 1))
            block[lo - a : hi - a, c] = left + frac * (right - left)
    return block


def remove_artifacts(
    x: np.ndarray,
    fs: float,
    *,
    threshold_sd: float = THRESHOLD_SD,
    pad_s: float = 0.1,
    ad_bit_volts: np.ndarray | list[float] | float | None = None,
    mode: str = "interpolate",
) -> tuple[np.ndarray, pd.DataFrame]:
    """In-memory version: ``x`` (n_samples,) or (n_samples, n_channels) -> (clean, table)."""
    _check_mode(mode)
    data = _as2d(x)
    table = detect_artifacts(
        lambda a, b: data[a:b], data.shape[0], fs, threshold_sd=threshold_sd, pad_s=pad_s,
        ad_bit_volts=ad_bit_volts,
    )  # fmt: skip
    out = exclude_block(data.copy(), 0, table, lambda a, b: data[a:b], data.shape[0], mode)
    return (out[:, 0] if np.ndim(x) == 1 else out), table


def _check_mode(mode: str) -> None:
    if mode not in ("interpolate", "nan"):
        raise ValueError(f"mode must be 'interpolate' or 'nan', got {mode!r}")


def remove_artifacts_store(
    src: ArrayStore | str | Path,
    dst_path: str | Path,
    *,
    threshold_sd: float = THRESHOLD_SD,
    pad_s: float = 0.1,
    mode: str = "interpolate",
    saturation: bool = True,
    chunk_samples: int = 1 << 18,
    meta: dict[str, Any] | None = None,
) -> tuple[ArrayStore, pd.DataFrame]:
    """Stream a (n_samples, n_channels) volts store into a cleaned float32 store.

    Sampling rate and ``ad_bit_volts`` come from ``src.meta`` (as written by
    :func:`ace_assets.io.neuralynx.write_session_store`). The interval table is also stored
    in the new store's meta under ``artifacts``.
    """
    _check_mode(mode)
    store = src if isinstance(src, ArrayStore) else ArrayStore(src)
    fs = float(store.meta["sampling_rate_hz"])
    n = store.shape[0]

    def read(a: int, b: int) -> np.ndarray:
        return _as2d(store.read(a, b))

    adbv = store.meta.get("ad_bit_volts") if saturation else None
    table = detect_artifacts(
        read, n, fs, threshold_sd=threshold_sd, pad_s=pad_s, ad_bit_volts=adbv,
        chunk_samples=chunk_samples,
    )  # fmt: skip
    info = {
        **store.meta,
        "artifacts": {
            "threshold_sd": threshold_sd,
            "pad_s": pad_s,
            "mode": mode,
            "saturation": bool(adbv is not None),
            "intervals": table.to_dict("records"),
        },
        **(meta or {}),
    }
    with ArrayStoreWriter(dst_path, store.shape, np.float32, info) as w:
        for a in range(0, n, chunk_samples):
            block = read(a, min(n, a + chunk_samples))
            cleaned = exclude_block(block, a, table, read, n, mode)
            w.write(a, cleaned.reshape((-1, *store.shape[1:])).astype(np.float32))
            release_pages(w.array)
        copy_sidecars(store.path, w.tmp)
        return w.commit(), table
