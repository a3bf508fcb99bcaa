"""Frame <-> TTL alignment, TTL edges from .nev, phase locking and period event rates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ace_assets.demo.neuralynx_writer import write_nev
from ace_assets.errors import AceInputError
from ace_assets.io.neuralynx import SampleClock, read_events
from ace_assets.io.store import write_array
from ace_assets.multimodal.alignment import align_frames, align_frames_to_ttl, ttl_rising_edges
from ace_assets.multimodal.phase_locking import (
    circular_stats,
    compare_period_rates,
    event_phases,
    event_phases_store,
    phase_locking_table,
    rayleigh_test,
)
from ace_assets.multimodal.ttl import choose_sync_bit

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
    assert report.method == "repaired"
    assert report.repaired_frames == [250]
    assert report.mismatch == 1 and report.n_deleted == 2
    assert np.abs(times - (true_t - 1.5)).max() < 1e-3
    assert report.clock_slope == pytest.approx(1 + 5e-5, abs=1e-5)


def test_alignment_direct_tail_repair_and_errors() -> None:
    n = 300
    true_t, cam_ms = _recording(n, seed=1)
    times, report = align_frames_to_ttl(true_t, n, cam_ms, [], 0.0)
    assert report.method == "direct" and report.repaired_frames == []
    np.testing.assert_array_equal(times, true_t)
    # last three pulses lost: extrapolated from the camera clock
    times, report = align_frames_to_ttl(true_t[:-3], n, cam_ms, None, 0.0)
    assert report.repaired_frames == [297, 298, 299]
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


def _port_events(words: list[int], times_s: np.ndarray, event_id: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp_us": (times_s * 1e6).astype(np.int64),
            "timestamp_s": times_s,
            "ttl": words,
            "event_id": event_id,
            "string": [f"Digital Lynx Parallel Input Port TTL (0x{w & 0xFFFF:04X})" for w in words],
        }
    )


def test_sync_bit_chosen_by_count_and_interval_or_named() -> None:
    """Idle 0x3000; bit 5 pulses per frame, bit 0 at half the frame rate (a behaviour
    camera), bit 15 now and then (stored as a negative int16)."""
    n = 300
    true_t, cam_ms = _recording(n)
    changes = [(t, 1 << 5, 1) for t in true_t] + [(t + 0.001, 1 << 5, 0) for t in true_t]
    changes += [(t + 0.01, 1, 1) for t in true_t[::2]] + [(t + 0.012, 1, 0) for t in true_t[::2]]
    changes += [(true_t[k] + 0.02, 0x8000, v) for k, v in ((50, 1), (60, 0), (200, 1), (210, 0))]
    changes.sort()
    word, words, times = 0x3000, [], []
    for t, mask, level in changes:
        word = word | mask if level else word & ~mask
        words.append(word - 0x10000 if word > 0x7FFF else word)
        times.append(t)
    events = _port_events(words, np.array(times))
    assert any(w < 0 for w in words)
    chosen, report = choose_sync_bit(events, n, cam_ms)
    assert chosen.bit == 5 and report.candidate_bits == [5]
    np.testing.assert_allclose(chosen.times_s, true_t)
    edges = {r["bit"]: r["rising_edges"] for r in report.edges_per_bit}
    assert edges == {0: 150, 5: 300, 12: 1, 13: 1, 15: 2}
    named, report = choose_sync_bit(events, n, cam_ms, bit=5)
    assert report.sync_bit_source == "parameter" and named.n_edges == 300
    times, ttl, report = align_frames(events, n, cam_ms, events_file="Events.nev")
    np.testing.assert_allclose(times, true_t)
    np.testing.assert_allclose(ttl, true_t)
    with pytest.raises(AceInputError, match="bit 9 of the port word never rises") as err:
        choose_sync_bit(events, n, cam_ms, bit=9, events_file="Events.nev")
    assert "bit 5 (0x0020): 300 rising edges" in str(err.value)
    with pytest.raises(AceInputError, match="0-15"):
        choose_sync_bit(events, n, cam_ms, bit=16)
    # bit 0 named: 150 pulses for 300 frames fails with the edges and the setting
    with pytest.raises(AceInputError, match="ttl_sync_bit") as err:
        align_frames(events, n, cam_ms, sync_bit=0, events_file="Events.nev")
    assert "Events.nev" in str(err.value) and "bit 5 (0x0020)" in str(err.value)


def test_no_bit_matches_the_frames() -> None:
    n = 100
    true_t, cam_ms = _recording(n)
    slow = np.arange(0, 10, 0.5)
    words = [0x3001 if i % 2 == 0 else 0x3000 for i in range(slow.size)]
    events = _port_events(words, slow)
    with pytest.raises(AceInputError, match="no bit of the TTL port word") as err:
        choose_sync_bit(events, n, cam_ms, events_file="Events.nev")
    text = str(err.value)
    assert "bit 0 (0x0001): 10 rising edges, median 1000.0 ms" in text
    assert "ops.analysis_parameters.config.overrides.ttl_sync_bit" in text


def test_old_acqsystem_form_still_aligns() -> None:
    """event_id 11, 'TTL Input on AcqSystem1_0 ... (0x0001)': bit 0 chosen, frames exact."""
    n = 120
    true_t, cam_ms = _recording(n)
    times = np.sort(np.concatenate([true_t, true_t + 0.001]))
    words = [1, 0] * n
    events = _port_events(words, times, event_id=11)
    events["string"] = [
        f"TTL Input on AcqSystem1_0 board 0 port 0 value (0x000{w})." for w in words
    ]
    got, _, report = align_frames(events, n, cam_ms)
    assert report.sync_bit == 0
    np.testing.assert_allclose(got, true_t)
