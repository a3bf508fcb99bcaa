"""Frame pulses from the ``.nev`` digital-input port word, one bit at a time.

Neuralynx logs every change of the digital input port as an event whose ``ttl`` field is the
whole 16-bit port word. Two forms occur in the wild:

- Cheetah 6 / AcqSystem: ``event_id`` 11, string ``TTL Input on AcqSystem1_0 board 0 port 0
  value (0x0001).``; an idle port reads 0.
- Cheetah 5.6 Digital Lynx: ``event_id`` 0, string ``Digital Lynx Parallel Input Port TTL
  (0x3003)``; the idle word is 0x3000 (two lines held high) and other lines (behaviour
  cameras, levers) toggle between the frame pulses. Words above 0x7FFF arrive as negative
  int16 in some exports (0xB000 reads as -20480).

So the word is taken as uint16 and a frame pulse is a rising edge of ONE bit: masking all
bits over an idle word of 0x3000 finds almost no edges. The sync bit is either named
(``ttl_sync_bit``) or chosen as the bit whose rising edges best match the Miniscope frame
count and frame interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ace_assets.errors import AceInputError

TTL_EVENT_ID = 11
N_BITS = 16
SYNC_BIT_COLUMN = "ttl_sync_bit"
#: a bit is a frame clock only if its median pulse interval is this close to the camera's
INTERVAL_TOLERANCE = 0.25


def port_events(events: pd.DataFrame) -> pd.DataFrame:
    """Events that report the digital-input port: event_id 11, or a string mentioning TTL."""
    if events.empty:
        return events
    is_port = events["event_id"].to_numpy() == TTL_EVENT_ID
    if "string" in events:
        is_port |= events["string"].astype(str).str.contains("TTL", case=False).to_numpy()
    return events[is_port]


def port_words(port: pd.DataFrame) -> np.ndarray:
    """The port word of each event as uint16 (negative int16 exports wrap to their bits)."""
    return (port["ttl"].to_numpy(dtype=np.int64) & 0xFFFF).astype(np.uint16)


def bit_rising_edges(words: np.ndarray, bit: int) -> np.ndarray:
    """Indices of the events at which ``bit`` goes from 0 to 1 (the port starts low)."""
    level = (np.asarray(words, dtype=np.int64) >> int(bit)) & 1
    prev = np.concatenate([[0], level[:-1]])
    return np.flatnonzero((level == 1) & (prev == 0))


def ttl_rising_edges(
    events: pd.DataFrame, *, bit: int | None = None, time_column: str = "timestamp_s"
) -> np.ndarray:
    """Times of rising edges of ``bit`` of the port word; ``bit=None``: of any bit (0 -> non-0)."""
    port = port_events(events)
    if port.empty:
        return np.empty(0)
    words = port_words(port)
    times = port[time_column].to_numpy(dtype=np.float64)
    if bit is not None:
        return times[bit_rising_edges(words, bit)]
    level = words != 0
    prev = np.concatenate([[False], level[:-1]])
    return times[level & ~prev]


@dataclass(frozen=True)
class BitEdges:
    """What one bit of the port did: its rising edges and their typical spacing."""

    bit: int
    times_s: np.ndarray
    median_interval_ms: float

    @property
    def n_edges(self) -> int:
        return int(self.times_s.size)

    def summary(self) -> dict[str, Any]:
        return {
            "bit": self.bit,
            "mask": f"0x{1 << self.bit:04X}",
            "rising_edges": self.n_edges,
            "median_interval_ms": None
            if np.isnan(self.median_interval_ms)
            else round(self.median_interval_ms, 3),
        }


def edges_per_bit(events: pd.DataFrame, time_column: str = "timestamp_s") -> list[BitEdges]:
    """Rising edges of every bit of the port word."""
    port = port_events(events)
    words = port_words(port) if not port.empty else np.zeros(0, dtype=np.uint16)
    times = port[time_column].to_numpy(dtype=np.float64) if not port.empty else np.zeros(0)
    out = []
    for bit in range(N_BITS):
        t = times[bit_rising_edges(words, bit)]
        interval = float(np.median(np.diff(t)) * 1e3) if t.size > 1 else float("nan")
        out.append(BitEdges(bit, t, interval))
    return out


def _edge_table(bits: list[BitEdges]) -> str:
    active = [b for b in bits if b.n_edges]
    if not active:
        return "no rising edge on any bit"
    return "; ".join(
        f"bit {b.bit} (0x{1 << b.bit:04X}): {b.n_edges} rising edges"
        + ("" if np.isnan(b.median_interval_ms) else f", median {b.median_interval_ms:.1f} ms")
        for b in active
    )


@dataclass(frozen=True)
class SyncBitChoice:
    """Which bit of the port word carries the frame pulses, and why."""

    edges_per_bit: list[dict[str, Any]]  #: every bit that rises: its edges and intervals
    events_file: str | None
    sync_bit: int
    sync_bit_source: str  #: "parameter" (ttl_sync_bit set) or "automatic"
    frame_interval_ms: float | None = None  #: the camera's median interval (automatic only)
    candidate_bits: list[int] | None = None  #: bits pulsing at the frame rate (automatic only)

    def manifest(self) -> dict[str, Any]:
        """The JSON the alignment manifest has always carried (automatic-only keys omitted)."""
        out: dict[str, Any] = {
            "edges_per_bit": self.edges_per_bit,
            "events_file": self.events_file,
            "sync_bit": self.sync_bit,
            "sync_bit_source": self.sync_bit_source,
        }
        if self.sync_bit_source == "automatic":
            out["frame_interval_ms"] = self.frame_interval_ms
            out["candidate_bits"] = self.candidate_bits
        return out


def choose_sync_bit(
    events: pd.DataFrame,
    n_frames: int,
    frame_timestamps_ms: np.ndarray,
    *,
    bit: int | None = None,
    events_file: str | None = None,
    n_deleted: int = 0,
) -> tuple[BitEdges, SyncBitChoice]:
    """The bit carrying one pulse per frame, and a report of every bit's edges.

    ``bit`` given: that bit, whatever its edges look like (the count is reconciled later).
    Otherwise the candidates are bits whose median rising-edge interval is within
    ``INTERVAL_TOLERANCE`` of the camera's median frame interval; among them the one whose
    edge count (less ``n_deleted`` spurious pulses) is closest to ``n_frames`` wins.
    """
    bits = edges_per_bit(events)
    summary = [b.summary() for b in bits if b.n_edges]
    where = events_file or "the events file"
    if bit is not None:
        if not 0 <= int(bit) < N_BITS:
            raise AceInputError(
                f"{SYNC_BIT_COLUMN} = {bit} is not a bit of the 16-bit port word (0-15)",
                column=SYNC_BIT_COLUMN,
            )
        chosen = bits[int(bit)]
        if chosen.n_edges == 0:
            raise AceInputError(
                f"{SYNC_BIT_COLUMN} = {bit}, but bit {bit} of the port word never rises in "
                f"{where}. Edges per bit: {_edge_table(bits)}. Set {SYNC_BIT_COLUMN} to the bit "
                "that pulses once per frame, or leave it empty to choose automatically",
                file=events_file,
                column=SYNC_BIT_COLUMN,
            )
        return chosen, SyncBitChoice(summary, events_file, chosen.bit, "parameter")
    cam = np.asarray(frame_timestamps_ms, dtype=np.float64)
    frame_ms = float(np.median(np.diff(cam))) if cam.size > 1 else float("nan")
    candidates = [
        b
        for b in bits
        if b.n_edges >= 2
        and np.isfinite(frame_ms)
        and abs(b.median_interval_ms - frame_ms) <= INTERVAL_TOLERANCE * frame_ms
    ]
    if not candidates:
        raise AceInputError(
            f"no bit of the TTL port word pulses once per Miniscope frame ({n_frames} frames, "
            f"median interval {frame_ms:.1f} ms). Edges per bit: {_edge_table(bits)}. Set "
            f"{SYNC_BIT_COLUMN} (column '{SYNC_BIT_COLUMN}' of analysis_parameters.csv or the "
            f"run-config key ops.analysis_parameters.config.overrides.{SYNC_BIT_COLUMN}) to the "
            "bit wired to the Miniscope DAQ's frame output, or check the events file",
            file=events_file,
            column=SYNC_BIT_COLUMN,
        )
    chosen = min(
        candidates,
        key=lambda b: (
            abs(b.n_edges - n_deleted - n_frames),
            abs(b.median_interval_ms - frame_ms),
            b.bit,
        ),
    )
    return chosen, SyncBitChoice(
        summary,
        events_file,
        chosen.bit,
        "automatic",
        frame_interval_ms=frame_ms,
        candidate_bits=[b.bit for b in candidates],
    )


def describe_edges(events: pd.DataFrame) -> str:
    """One line per active bit, for error messages."""
    return _edge_table(edges_per_bit(events))
