"""Frame <-> TTL alignment, TTL edges from .nev, phase locking and period event rates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ace_assets.demo.neuralynx_writer import write_nev
from ace_assets.errors import AceInputError
from ace_assets.io.neuralynx import SampleClock, read_events
from ace_assets.io.store import write_array
from ace_assets.multimodal.alignment import align_frames_to_ttl, ttl_rising_edges
from ace_assets.multimodal.phase_locking import (
    circular_stats,
    compare_period_rates,
    event_phases,
    event_phases_store,
    phase_locking_table,
    rayleigh_test,
)

FPS = 30.0


def _recording(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """True frame times on the ephys clock (offset 12.3 s, 50 ppm drift) + camera ms stamps."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    true_t = 12.3 + i / FPS * (1 + 5e-5)
    cam_ms = 431.0 + i * 1000 / FPS + rng.uniform(-0.3, 0.3, n)
    return true_t, cam_ms


def test_alignment_spurious_and_missing_pulses() -> None:
    n = 900
    true_t, cam_ms = _recording(n)
    ttl = np.delete(true_t, 250)  # one lost pulse
    spurious = [true_t[100] + 0.005, true_t[600] + 0.012]
    raw = np.sort(np.concatenate([ttl, spurious]))
    delete = [int(np.flatnonzero(raw == s)[0]) for s in spurious]
    times, report = align_frames_to_ttl(raw, n, cam_ms, delete, zero_time_s=1.5)
    assert report["method"] == "repaired"
    assert report["repaired_frames"] == [250]
    assert report["mismatch"] == 1 and report["n_deleted"] == 2
    assert np.abs(times - (true_t - 1.5)).max() < 1e-3
    assert report["clock_slope"] == pytest.approx(1 + 5e-5, abs=1e-5)


def test_alignment_direct_tail_repair_and_errors() -> None:
    n = 300
    true_t, cam_ms = _recording(n, seed=1)
    times, report = align_frames_to_ttl(true_t, n, cam_ms, [], 0.0)
    assert report["method"] == "direct" and report["repaired_frames"] == []
    np.testing.assert_array_equal(times, true_t)
    # last three pulses lost: extrapolated from the camera clock
    times, report = align_frames_to_ttl(true_t[:-3], n, cam_ms, None, 0.0)
    assert report["repaired_frames"] == [297, 298, 299]
    assert np.abs(times - true_t).max() < 1e-3
    with pytest.raises(AceInputError, match="too many") as err:
        align_frames_to_ttl(np.sort(np.append(true_t, true_t[10] + 0.004)), n, cam_ms, [], 0.0)
    assert "[11]" in str(err.value)  # the spurious pulse is suggested for deletion
    with pytest.raises(AceInputError, match="max_repair"):
        align_frames_to_ttl(true_t[:-50], n, cam_ms, [], 0.0, max_repair=10)
    with pytest.raises(AceInputError, match="outside"):
        align_frames_to_ttl(true_t, n, cam_ms, [n + 5], 0.0)


def test_ttl_rising_edges_from_nev(tmp_path: Path) -> None:
    rises = 1_000_000 + np.arange(5) * 33_333
    ts = np.concatenate([[500_000], np.sort(np.concatenate([rises, rises + 2000]))])
    ttl = np.concatenate([[0], np.tile([1, 0], 5)])
    strings = ["Starting Recording"] + [
        f"TTL Input on AcqSystem1_0 board 0 port 0 value (0x000{v})." for v in ttl[1:]
    ]
    path = write_nev(tmp_path / "Events.nev", ts, ttl, strings)
    events = read_events(path, origin_us=1_000_000)
    edges = ttl_rising_edges(events)
    np.testing.assert_allclose(edges, np.arange(5) * 0.033333)
    # a second line held high: only transitions of bit 0 count
    events.loc[1:, "ttl"] = events.loc[1:, "ttl"] | 2
    np.testing.assert_allclose(ttl_rising_edges(events, bit=0), edges)


def _phase_series(fs: float = 500.0, dur: float = 120.0) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(int(fs * dur)) / fs
    return t, np.angle(np.exp(1j * 2 * np.pi * 1.3 * t))


def test_event_phases_interpolate_across_wrap() -> None:
    t, ph = _phase_series()
    ev = np.array([0.0, 0.3771, 10.00123, t[-1], t[-1] + 1.0, -0.5])
    got = event_phases(ev, t, ph)
    want = np.angle(np.exp(1j * 2 * np.pi * 1.3 * ev[:4]))
    np.testing.assert_allclose(np.angle(np.exp(1j * (got[:4] - want))), 0, atol=1e-3)
    assert np.isnan(got[4:]).all()
    # gap in the phase series: events inside it are NaN
    keep = (t < 50) | (t > 60)
    assert np.isnan(event_phases(np.array([55.0]), t[keep], ph[keep]))[0]


def test_locked_vs_uniform_events(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    t, ph = _phase_series()
    # locked: events near phase pi/3 of each cycle
    cycles = np.arange(2, 150)
    locked_phase = np.pi / 3 + rng.vonmises(0, 4, cycles.size)
    locked = (cycles + locked_phase / (2 * np.pi)) / 1.3
    uniform = np.sort(rng.uniform(1, 110, 150))
    table = phase_locking_table({"n1": locked, "n2": uniform}, t, np.stack([ph, ph], 1), ["A", "B"])
    assert table.shape[0] == 4
    a = table[(table.component == "n1") & (table.channel == "A")].iloc[0]
    assert a.mrl > 0.7 and a.rayleigh_p < 1e-10
    assert abs(np.angle(np.exp(1j * (a.mean_phase - np.pi / 3)))) < 0.1
    b = table[(table.component == "n2") & (table.channel == "A")].iloc[0]
    assert b.mrl < 0.2 and b.rayleigh_p > 0.05

    # store + clock version reads only neighbouring samples, same answer
    fs = 500.0
    n = t.size
    first = np.arange(0, n, 512)
    clock = SampleClock(fs, 7_000_000, first, 7_000_000 + np.rint(first * 1e6 / fs).astype(int), n)
    store = write_array(tmp_path / "phase.npyd", np.stack([ph, -ph], 1).astype(np.float32))
    via_store = event_phases_store(locked, store, clock)
    np.testing.assert_allclose(via_store[:, 0], event_phases(locked, t, ph), atol=1e-5)
    np.testing.assert_allclose(via_store[:, 1], -via_store[:, 0], atol=1e-5)


def test_rayleigh_reference_values() -> None:
    # Zar (1999) table B.34: critical z for n=10 at alpha=0.05 is 2.919
    n, z = 10, 2.919
    r = np.sqrt(z / n)
    # phases with exactly that resultant: split symmetric pairs around 0
    half = np.arccos(r)
    phases = np.array([half, -half] * 5)
    got_z, got_p = rayleigh_test(phases)
    assert got_z == pytest.approx(z, rel=1e-9)
    assert got_p == pytest.approx(0.05, abs=0.002)
    assert circular_stats(np.array([np.nan]))["n_events"] == 0


def test_period_rates() -> None:
    events = {"n1": np.array([1, 2, 3, 4, 12, 25, 26]), "n2": np.array([15.0, 16.0])}
    rates = compare_period_rates(events, [[0, 10], [20, 30]], [10, 20])
    r1 = rates.iloc[0]
    assert (r1.n_high, r1.n_control) == (6, 1)
    assert r1.high_rate_hz == pytest.approx(0.3) and r1.control_rate_hz == pytest.approx(0.1)
    assert rates.iloc[1].high_rate_hz == 0.0
    with pytest.raises(ValueError, match="start < end"):
        compare_period_rates(events, [[5, 1]], [])
