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


def test_a_counted_source_reports_the_pass_and_its_eta() -> None:
    clock, lines = Clock(), []
    p = Progress(lines.append, "motion_corrected_movie", 100, every_s=30, clock=clock)
    movie = np.arange(100 * 4, dtype=np.float32).reshape(100, 2, 2)

    class Store:  # what the stages read: .read(a, b), .iter_chunks(n), .shape
        shape = movie.shape

        def read(self, a: int, b: int) -> np.ndarray:
            return movie[a:b]

        def iter_chunks(self, n: int):
            for a in range(0, 100, n):
                yield a, movie[a : a + n]

    counted = p.source(Store())
    assert counted.shape == (100, 2, 2)  # other attributes pass through
    for _, _block in counted.iter_chunks(10):  # pass 1: 10 s per 10 frames
        clock.t += 10.0
    # the 4th block is counted as it arrives at 30 s
    assert lines[0] == (
        "motion_corrected_movie: pass 1, 40/100 frames (40%), 1.3 frames/s, ETA of this pass 45 s"
    )
    got = [counted.read(a, a + 25) for a in range(0, 100, 25)]  # pass 2, read by index
    clock.t += 50.0
    counted.read(0, 50)
    assert np.array_equal(np.concatenate(got), movie)
    assert lines[-1].startswith("motion_corrected_movie: pass 3, 50/100 frames (50%)")
    assert p.throughput() == {"seconds": 150.0, "throughput_frames_per_s": round(100 / 150, 2)}
