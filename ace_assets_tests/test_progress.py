"""Progress lines: at least every 30 s of work, with done/total, rate and ETA."""

from __future__ import annotations

import numpy as np

from ace_assets.defs.progress import Progress
from ace_assets.miniscope.chunks import ArraySink


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_logs_every_interval_with_rate_and_eta() -> None:
    clock, lines = Clock(), []
    p = Progress(lines.append, "denoised_movie", 1000, every_s=30, clock=clock)
    sink = p.sink(ArraySink((1000, 2, 2), np.uint8))
    for start in range(0, 1000, 100):
        clock.t += 10.0  # 10 frames/s
        sink.write(start, np.zeros((100, 2, 2), np.uint8))
    assert len(lines) == 3  # at 30, 60 and 90 s
    assert lines[0] == "denoised_movie: 300/1000 frames (30%), 10.0 frames/s, ETA 70 s"
    assert sink.array.shape == (1000, 2, 2)  # the wrapped writer's attributes pass through
    assert p.throughput() == {"seconds": 100.0, "throughput_frames_per_s": 10.0}


def test_a_short_step_still_says_it_finished_and_words_are_timed() -> None:
    clock, lines = Clock(), []
    p = Progress(lines.append, "filtered_ephys", 50, unit="samples", clock=clock)
    clock.t = 2.0
    p.update(50)
    assert lines == ["filtered_ephys: 50/50 samples (100%), 25.0 samples/s, ETA 0 s"]
    clock.t = 5.0
    p.message("seeding patch 1/4")
    assert lines[-1] == "filtered_ephys: seeding patch 1/4 (5 s)"
