"""EDF+ of a line's ephys channels, for sleep-staging tools (YASA, SleepEEGpy, AccuSleep) and
viewers (EDFbrowser, MNE).

Written here, record by record, rather than with a library: ``edfio`` writes only whole
in-memory arrays (an hour of 8 channels at 32 kHz would be 7 GB of float64), and the format
is small (EDF+ spec, Kemp & Olivan 2003): a 256-byte header, 256 bytes per signal, then
fixed-size data records of little-endian int16 with an ``EDF Annotations`` signal in each.
``edfio`` and ``pyedflib`` (edflib, a strict EDF+ reader) read the files back in the tests.

Samples. The analysis grid of ``ephys_channels`` at its own rate, unfiltered (volts -> µV):
the staging tools filter and resample on load themselves (YASA to 100 Hz), and EMG tone
needs the band a filter for the LFP would remove. Memory is one block of records plus the
annotations (about 30 bytes each), whatever the recording's length.

Quantisation. Per channel the physical range is the data's min/max (a first chunked pass)
widened by ``RANGE_MARGIN`` of the span on each side, written outward-rounded into EDF's
8 characters; one digital unit is then (max - min) / 65535 µV, rounding error at most half
of that. Unrecorded samples (NaN) are written as 0 µV (clipped into the range).

Timeline (EDF+C). Sample k of the file is at ``k / rate`` after the header's start time,
i.e. after the first recorded sample. A recording pause (a segment boundary of the grid)
keeps its length: its samples are interpolated linearly between the samples either side and
annotated ``BAD_ACQ_SKIP`` (MNE's name for an acquisition skip: MNE-based tools such as YASA
reject it), as are pauses and per-channel runs the reader filled or left NaN, and the padding
of the last record. A segment starts at the sample nearest its true time; the largest
difference between a sample's recorded time and its time in the file is measured and
returned. EDF+C rather than EDF+D because MNE, and so YASA and SleepEEGpy, reads EDF+D as if
it were continuous (mne-python issue 13429: every sample after a pause silently shifts), and
edflib (pyedflib) cannot read EDF+D at all.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ace_assets.errors import AceInputError
from ace_assets.io.store import ArrayStore

DIGITAL_MIN, DIGITAL_MAX = -32768, 32767
#: fraction of the data's span added below its minimum and above its maximum
RANGE_MARGIN = 0.01
#: EDF+ recommends data records of at most this many bytes
MAX_RECORD_BYTES = 61440
#: record durations tried, longest first: exact decimals, so rate x duration is whole
RECORD_DURATIONS = ("1", "0.5", "0.25", "0.2", "0.1", "0.05", "0.04", "0.025", "0.02", "0.01")
#: annotation text of samples that were not recorded (MNE's convention; ``BAD`` = reject)
UNRECORDED = "BAD_ACQ_SKIP"
ANNOTATIONS_LABEL = "EDF Annotations"
UNIT = "uV"
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


@dataclass(frozen=True)
class EdfSignal:
    """One ephys channel: EDF label (``EMG ...`` / ``EEG ...``), its source and hardware filter."""

    label: str
    transducer: str = ""
    prefilter: str = ""


@dataclass(frozen=True)
class Annotation:
    """An EDF+ annotation; seconds after the file's first sample (may be negative)."""

    onset_s: float
    text: str
    duration_s: float | None = None


@dataclass(frozen=True)
class EdfIdentity:
    """The header's subject and session fields (build them with :func:`patient_field` and
    :func:`recording_field`) and the wall-clock time of the first sample."""

    patient: str
    recording: str
    start: dt.datetime


# -- header text -------------------------------------------------------------------------------
def _ascii(text: str) -> str:
    """Printable US-ASCII only, as EDF requires of every header field."""
    return re.sub(r"[^\x20-\x7e]", "?", str(text))


def _field(text: str, width: int) -> bytes:
    value = _ascii(text)
    if len(value) > width:
        raise ValueError(f"EDF header field {value!r} is longer than {width} characters")
    return value.ljust(width).encode("ascii")


def subfield(value: Any) -> str:
    """One EDF+ subfield: ASCII, no spaces (``_``), ``X`` when unknown."""
    text = "" if value is None else _ascii(str(value)).strip()
    return re.sub(r"\s+", "_", text) or "X"


def _fit(fields: list[str], width: int = 80) -> str:
    """Space-joined subfields; optional trailing ones dropped until the text fits."""
    text = " ".join(fields)
    while len(text) > width and len(fields) > 4:
        fields = fields[:-1]
        text = " ".join(fields)
    return text[:width]


def patient_field(
    code: Any,
    *,
    sex: str | None = None,
    birthdate: dt.date | None = None,
    name: Any = None,
    extra: Sequence[str] = (),
) -> str:
    """EDF+ 'local patient identification': code, sex (F/M/X), birthdate, name, then extras."""
    born = (
        f"{birthdate.day:02d}-{MONTHS[birthdate.month - 1]}-{birthdate.year}" if birthdate else "X"
    )
    fields = [subfield(code), subfield(sex), born, subfield(name), *map(subfield, extra)]
    return _fit(fields)


def recording_field(
    start: dt.date | None,
    *,
    admin_code: Any = None,
    technician: Any = None,
    equipment: Any = None,
    extra: Sequence[str] = (),
) -> str:
    """EDF+ 'local recording identification': ``Startdate dd-MMM-yyyy``, code, technician,
    equipment, then extras."""
    date = f"{start.day:02d}-{MONTHS[start.month - 1]}-{start.year}" if start else "X"
    fields = [
        "Startdate",
        date,
        subfield(admin_code),
        subfield(technician),
        subfield(equipment),
        *map(subfield, extra),
    ]
    return _fit(fields)


def signal_labels(names: Sequence[str], emg: str | None) -> list[str]:
    """EDF+ labels 'type specification' of at most 16 characters, unique: ``EMG`` for the
    catalog's EMG channel, ``EEG`` for the others (cortical and hippocampal LFP included)."""
    labels: list[str] = []
    for name in names:
        kind = "EMG" if emg is not None and name == emg else "EEG"
        text = subfield(name)
        label = text if text.upper().startswith(kind) else f"{kind} {text}"
        label = label[:16]
        k = 2
        while label in labels:
            suffix = f"~{k}"
            label = label[: 16 - len(suffix)] + suffix
            k += 1
        labels.append(label)
    return labels


def edf_number(value: float, *, up: bool) -> str:
    """``value`` in at most 8 characters, rounded up (``up``) or down, never toward the data."""
    for decimals in range(7, -1, -1):
        scale = 10**decimals
        scaled = value * scale
        whole = np.ceil(scaled - 1e-9) if up else np.floor(scaled + 1e-9)
        text = f"{whole / scale:.{decimals}f}"
        if float(text) == 0:
            text = text.lstrip("-")
        if len(text) <= 8:
            return text
    raise ValueError(f"{value} does not fit EDF's 8-character number fields")


def physical_range(lo_uv: float, hi_uv: float) -> tuple[str, str]:
    """Header physical minimum and maximum: the data's, widened by ``RANGE_MARGIN``."""
    if not (np.isfinite(lo_uv) and np.isfinite(hi_uv)):
        lo_uv, hi_uv = -1.0, 1.0
    span = max(hi_uv - lo_uv, 1e-3)
    lo = edf_number(lo_uv - RANGE_MARGIN * span, up=False)
    return lo, edf_number(hi_uv + RANGE_MARGIN * span, up=True)


def resolution(pmin: str, pmax: str) -> float:
    """Physical units per digital unit of a signal with these header fields."""
    return (float(pmax) - float(pmin)) / (DIGITAL_MAX - DIGITAL_MIN)


# -- layout -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RecordLayout:
    duration: str
    """record duration as written in the header (seconds)"""
    samples: int
    """samples per record of each channel"""

    @property
    def rate_hz(self) -> float:
        return self.samples / float(self.duration)


def choose_record(fs: float, n_channels: int) -> RecordLayout:
    """The longest listed duration holding a whole number of samples within the recommended
    record size; if none is whole (a rate like 1017.25 Hz), the nearest rate that fits."""
    fitting = [
        d for d in RECORD_DURATIONS if 2 * n_channels * fs * float(d) <= MAX_RECORD_BYTES
    ] or [RECORD_DURATIONS[-1]]
    for d in fitting:
        n = fs * float(d)
        if abs(n - round(n)) < 1e-6 * max(1.0, n) and round(n) >= 1:
            return RecordLayout(d, int(round(n)))
    n = max(1, int(round(fs * float(fitting[0]))))
    return RecordLayout(edf_number(n / fs, up=False), n)


@dataclass(frozen=True)
class Placement:
    """Store samples ``start:stop`` go to file samples ``slot:slot + stop - start``."""

    start: int
    stop: int
    slot: int


def place_segments(segments: Sequence[dict[str, Any]], rate_hz: float) -> list[Placement]:
    """Each gap-free segment at the file sample nearest its time (never overlapping)."""
    if not segments:
        raise ValueError("no segments to place")
    t0 = float(segments[0]["t_start_s"])
    out: list[Placement] = []
    end = 0
    for s in segments:
        a, b = int(s["start_index"]), int(s["stop_index"])
        slot = max(int(round((float(s["t_start_s"]) - t0) * rate_hz)), end)
        out.append(Placement(a, b, slot))
        end = slot + b - a
    return out


# -- annotations ------------------------------------------------------------------------------
def _seconds(t: float) -> str:
    text = f"{t:+.6f}".rstrip("0").rstrip(".")
    return "+0" if text in ("+0", "-0") else text


def _clean_text(text: str) -> str:
    """Annotation text: UTF-8 without the TAL separators (0x14, 0x15) or NUL."""
    return re.sub(r"[\x00-\x1f]", " ", str(text)).strip() or "?"


def annotation_tal(a: Annotation) -> bytes:
    duration = "" if a.duration_s is None else "\x15" + _seconds(a.duration_s)[1:]
    return f"{_seconds(a.onset_s)}{duration}\x14{_clean_text(a.text)}\x14\x00".encode()


def timekeeping_tal(onset: Decimal) -> bytes:
    text = f"{onset:f}"
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return f"+{text}\x14\x14\x00".encode("ascii")


def pack_annotations(
    annotations: Sequence[Annotation], layout: RecordLayout, n_records: int
) -> tuple[int, list[bytes]]:
    """Bytes of the annotation signal per record (even) and each record's TALs.

    Each record starts with its time-keeping TAL; an annotation goes into the record holding
    its onset or, when that one is full, the next with room (the smallest size that holds
    every annotation is searched upward from the mean need).
    """
    duration = Decimal(layout.duration)
    keeping = [timekeeping_tal(duration * k) for k in range(n_records)]
    ordered = sorted(annotations, key=lambda a: a.onset_s)
    tals = [annotation_tal(a) for a in ordered]
    hints = [min(n_records - 1, max(0, int(a.onset_s // float(layout.duration)))) for a in ordered]
    tk_max = max(len(t) for t in keeping)
    total = sum(len(t) for t in keeping) + sum(len(t) for t in tals)
    size = max(tk_max + max((len(t) for t in tals), default=0), -(-total // n_records))
    while True:
        size += size % 2
        packed = _assign(keeping, tals, hints, size)
        if packed is not None:
            return size, packed
        size = int(size * 1.25) + 2


def _assign(
    keeping: list[bytes], tals: list[bytes], hints: list[int], size: int
) -> list[bytes] | None:
    parts = [[k] for k in keeping]
    used = [len(k) for k in keeping]
    r = 0
    for tal, hint in zip(tals, hints, strict=True):
        r = max(r, hint)
        while r < len(parts) and used[r] + len(tal) > size:
            r += 1
        if r == len(parts):
            return None
        parts[r].append(tal)
        used[r] += len(tal)
    return [b"".join(p) for p in parts]


# -- samples ----------------------------------------------------------------------------------
def channel_extremes(store: ArrayStore, chunk: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    """Per channel min and max (volts) over finite samples: the first of the two passes."""
    n_ch = store.shape[1]
    lo, hi = np.full(n_ch, np.inf), np.full(n_ch, -np.inf)
    for _, block in store.iter_chunks(chunk):
        x = block.astype(np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: fmin skips it
            lo = np.fmin(lo, np.nanmin(x, axis=0))
            hi = np.fmax(hi, np.nanmax(x, axis=0))
    return lo, hi


@dataclass(frozen=True)
class _Quantiser:
    pmin: np.ndarray  # µV, as written
    step: np.ndarray  # µV per digital unit
    zero: np.ndarray  # digital value written for an unrecorded (NaN) sample

    @classmethod
    def of(cls, ranges: list[tuple[str, str]]) -> _Quantiser:
        pmin = np.array([float(lo) for lo, _ in ranges])
        step = np.array([resolution(lo, hi) for lo, hi in ranges])
        pmax = np.array([float(hi) for _, hi in ranges])
        zero_uv = np.clip(0.0, pmin, pmax)
        return cls(pmin, step, cls._digital(zero_uv, pmin, step))

    @staticmethod
    def _digital(x_uv: np.ndarray, pmin: np.ndarray, step: np.ndarray) -> np.ndarray:
        d = np.rint((x_uv - pmin) / step) + DIGITAL_MIN
        return np.clip(d, DIGITAL_MIN, DIGITAL_MAX)

    def __call__(self, volts: np.ndarray) -> np.ndarray:
        d = self._digital(volts * 1e6, self.pmin, self.step)
        d = np.where(np.isnan(d), self.zero, d)
        return d.astype("<i2")


class _Timeline:
    """File samples of any range: recorded ones from the store, the rest interpolated."""

    def __init__(self, store: ArrayStore, placements: list[Placement], n_slots: int) -> None:
        self.store = store
        self.placements = placements
        self.n_slots = n_slots
        self.first = [store.read(p.start, p.start + 1)[0].astype(np.float64) for p in placements]
        self.last = [store.read(p.stop - 1, p.stop)[0].astype(np.float64) for p in placements]

    def read(self, s0: int, s1: int) -> np.ndarray:
        out = np.empty((s1 - s0, self.store.shape[1]), dtype=np.float64)
        for i, p in enumerate(self.placements):
            end = p.slot + p.stop - p.start
            a, b = max(s0, p.slot), min(s1, end)
            if a < b:
                out[a - s0 : b - s0] = self.store.read(p.start + a - p.slot, p.start + b - p.slot)
            nxt = self.placements[i + 1].slot if i + 1 < len(self.placements) else self.n_slots
            a, b = max(s0, end), min(s1, nxt)
            if a < b:  # a pause (interpolated) or the last record's padding (held)
                target = self.first[i + 1] if i + 1 < len(self.placements) else self.last[i]
                w = (np.arange(a, b) - end + 1)[:, None] / (nxt - end + 1)
                out[a - s0 : b - s0] = self.last[i] + w * (target - self.last[i])
        return out

    def unfilled_slots(self) -> list[tuple[int, int]]:
        """File sample ranges holding no recorded sample (pauses and the final padding)."""
        out = []
        for i, p in enumerate(self.placements):
            end = p.slot + p.stop - p.start
            nxt = self.placements[i + 1].slot if i + 1 < len(self.placements) else self.n_slots
            if nxt > end:
                out.append((end, nxt))
        return out


def unrecorded_annotations(
    meta: dict[str, Any], placements: list[Placement], labels: Sequence[str], rate_hz: float
) -> list[Annotation]:
    """``BAD_ACQ_SKIP`` over samples the reader filled or left NaN (``@@label`` when only one
    channel lacks them, the EDF+ form of a channel-specific annotation)."""
    out: list[Annotation] = []
    t0 = float((meta.get("segments") or [{"t_start_s": 0.0}])[0]["t_start_s"])

    def slot_time(index: int) -> float:
        p = next((p for p in placements if p.start <= index < p.stop), placements[-1])
        return (p.slot + index - p.start) / rate_hz

    pauses = set()
    for g in meta.get("gaps") or []:
        if g.get("filled"):
            a = int(g["sample_index"])
            pauses.add((a, a + int(g["filled_samples"])))
            out.append(Annotation(float(g["start_s"]) - t0, UNRECORDED, float(g["duration_s"])))
    for r in meta.get("channel_runs") or []:
        a, b = int(r["start_index"]), int(r["stop_index"])
        if any(pa <= a and b <= pb for pa, pb in pauses):
            continue
        text = f"{UNRECORDED}@@{labels[int(r['column'])]}"
        out.append(Annotation(slot_time(a), text, (b - a) / rate_hz))
    return out


# -- writer -----------------------------------------------------------------------------------
def _header(
    identity: EdfIdentity,
    signals: Sequence[EdfSignal],
    ranges: list[tuple[str, str]],
    layout: RecordLayout,
    n_records: int,
    annotation_bytes: int,
) -> bytes:
    ns = len(signals) + 1
    start = identity.start
    head = b"".join(
        [
            _field("0", 8),
            _field(identity.patient, 80),
            _field(identity.recording, 80),
            _field(f"{start:%d.%m.%y}", 8),
            _field(f"{start:%H.%M.%S}", 8),
            _field(str(256 * (ns + 1)), 8),
            _field("EDF+C", 44),
            _field(str(n_records), 8),
            _field(layout.duration, 8),
            _field(str(ns), 4),
        ]
    )
    ann = (ANNOTATIONS_LABEL, "", "", "-1", "1", annotation_bytes // 2)
    rows = [
        (s.label, s.transducer, UNIT, lo, hi, layout.samples)
        for s, (lo, hi) in zip(signals, ranges, strict=True)
    ]
    parts = [head]
    for index, width in ((0, 16), (1, 80), (2, 8), (3, 8), (4, 8)):
        parts += [_field(str(r[index]), width) for r in [*rows, ann]]
    parts += [_field(str(DIGITAL_MIN), 8) for _ in range(ns)]
    parts += [_field(str(DIGITAL_MAX), 8) for _ in range(ns)]
    parts += [_field(s.prefilter, 80) for s in signals] + [_field("", 80)]
    parts += [_field(str(r[5]), 8) for r in [*rows, ann]]
    parts += [_field("", 32) for _ in range(ns)]
    header = b"".join(parts)
    assert len(header) == 256 * (ns + 1)
    return header


def write_edf(
    target: str | Path,
    store: ArrayStore,
    signals: Sequence[EdfSignal],
    annotations: Sequence[Annotation],
    identity: EdfIdentity,
    *,
    clock: Any = None,
    block_samples: int = 1 << 16,
) -> dict[str, Any]:
    """Write ``store`` (volts, ``(n_samples, n_channels)``, segments in its meta) as EDF+C.

    Two chunked passes (ranges, then records); the file appears under ``target`` only when
    complete. ``clock`` (a :class:`~ace_assets.io.neuralynx_grid.SampleClock`) gives the
    recorded sample times the file's timeline is measured against. Returns what was written,
    JSON-ready: rate, record layout, per-channel range and resolution, timing error.
    """
    target = Path(target)
    meta = store.meta
    n_ch = store.shape[1]
    if len(signals) != n_ch:
        raise AceInputError(
            f"{len(signals)} EDF signals for a store of {n_ch} channels", file=store.path
        )
    fs = float(meta["sampling_rate_hz"])
    segments = meta.get("segments") or [
        {"start_index": 0, "stop_index": store.n_frames, "t_start_s": 0.0}
    ]
    layout = choose_record(fs, n_ch)
    placements = place_segments(segments, layout.rate_hz)
    last = placements[-1]
    n_records = max(1, -(-(last.slot + last.stop - last.start) // layout.samples))
    n_slots = n_records * layout.samples
    timeline = _Timeline(store, placements, n_slots)

    lo, hi = channel_extremes(store, block_samples)
    ranges = [physical_range(a * 1e6, b * 1e6) for a, b in zip(lo, hi, strict=True)]
    quantise = _Quantiser.of(ranges)

    labels = [s.label for s in signals]
    skips = [
        Annotation(a / layout.rate_hz, UNRECORDED, (b - a) / layout.rate_hz)
        for a, b in timeline.unfilled_slots()
    ]
    everything = [*skips, *unrecorded_annotations(meta, placements, labels, layout.rate_hz)]
    everything += list(annotations)
    ann_bytes, tals = pack_annotations(everything, layout, n_records)

    per_block = max(1, block_samples // layout.samples)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(_header(identity, signals, ranges, layout, n_records, ann_bytes))
            for r0 in range(0, n_records, per_block):
                r1 = min(n_records, r0 + per_block)
                _write_records(fh, timeline, quantise, layout, tals[r0:r1], ann_bytes, r0, r1)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    t0 = float(segments[0]["t_start_s"])
    return {
        "file": str(target),
        "format": "EDF+C",
        "bytes": target.stat().st_size,
        "sampling_rate_hz": layout.rate_hz,
        "source_rate_hz": fs,
        "record_duration_s": float(layout.duration),
        "samples_per_record": layout.samples,
        "n_records": n_records,
        "duration_s": n_slots / layout.rate_hz,
        "channels": [
            {
                "label": s.label,
                "transducer": s.transducer,
                "physical_min_uV": float(a),
                "physical_max_uV": float(b),
                "resolution_uV": resolution(a, b),
            }
            for s, (a, b) in zip(signals, ranges, strict=True)
        ],
        "annotations": len(annotations),
        "unrecorded_annotations": len(everything) - len(annotations),
        "annotation_bytes_per_record": ann_bytes,
        "interpolated_samples": sum(b - a for a, b in timeline.unfilled_slots()),
        "timing_error_max_ms": _timing_error(clock, placements, layout.rate_hz, t0) * 1e3,
    }


def _write_records(
    fh: BinaryIO,
    timeline: _Timeline,
    quantise: _Quantiser,
    layout: RecordLayout,
    tals: list[bytes],
    ann_bytes: int,
    r0: int,
    r1: int,
) -> None:
    n = layout.samples
    digital = quantise(timeline.read(r0 * n, r1 * n))  # (records * n, channels)
    k = r1 - r0
    data = digital.reshape(k, n, -1).transpose(0, 2, 1).reshape(k, -1)  # signal after signal
    ann = np.zeros((k, ann_bytes), dtype=np.uint8)
    for i, tal in enumerate(tals):
        ann[i, : len(tal)] = np.frombuffer(tal, dtype=np.uint8)
    fh.write(np.concatenate([np.ascontiguousarray(data).view(np.uint8), ann], axis=1).tobytes())


def _timing_error(clock: Any, placements: list[Placement], rate: float, t0: float) -> float:
    """Largest |recorded time - time in the file| (s) over every sample, from the clock."""
    if clock is None:
        return 0.0
    worst = 0.0
    for p in placements:
        for a in range(p.start, p.stop, 1 << 18):
            b = min(p.stop, a + (1 << 18))
            recorded = clock.times(a, b) - t0
            in_file = (p.slot + np.arange(a, b) - p.start) / rate
            worst = max(worst, float(np.max(np.abs(recorded - in_file))))
    return worst
