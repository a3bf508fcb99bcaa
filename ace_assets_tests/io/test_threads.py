"""The thread helpers: a count the user can cap, order kept, memory bounded, errors raised."""

from __future__ import annotations

import threading
import time

import pytest

from ace_assets.io.threads import MAX_THREADS, compute_threads, frame_pool, ordered_map


def test_thread_count_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACE_THREADS", "3")
    assert compute_threads() == 3
    monkeypatch.setenv("ACE_THREADS", "999")
    assert compute_threads() == MAX_THREADS
    monkeypatch.delenv("ACE_THREADS")
    assert 1 <= compute_threads() <= MAX_THREADS
    for bad in ("two", "0"):
        monkeypatch.setenv("ACE_THREADS", bad)
        with pytest.raises(ValueError, match="ACE_THREADS"):
            compute_threads()


def test_ordered_map_keeps_order_and_bounds_work_in_flight() -> None:
    started: list[int] = []
    lock = threading.Lock()

    def slow_square(i: int) -> int:
        with lock:
            started.append(i)
        time.sleep(0.01 * (i % 3))  # later items finish first
        return i * i

    def items():
        for i in range(40):
            # the consumer has taken all but at most 2 x threads of the items started
            assert len(started) - consumed[0] <= 2 * 3
            yield i

    consumed = [0]
    out = []
    for v in ordered_map(slow_square, items(), threads=3):
        out.append(v)
        consumed[0] += 1
    assert out == [i * i for i in range(40)]


def test_ordered_map_raises_the_workers_error() -> None:
    def fail_on_five(i: int) -> int:
        if i == 5:
            raise ValueError("item 5 is bad")
        return i

    with pytest.raises(ValueError, match="item 5"):
        list(ordered_map(fail_on_five, range(20), threads=2))


@pytest.mark.parametrize("threads", [1, 3])
def test_frame_pool_maps_in_order(threads: int) -> None:
    with frame_pool(threads) as pool:
        assert list(pool.map(lambda v: v + 1, range(10))) == list(range(1, 11))


def test_frame_pool_map_does_not_take_the_whole_iterator() -> None:
    """Executor.map would submit (and hold) every frame of a long movie at once."""
    taken = []

    def frames():
        for i in range(1000):
            taken.append(i)
            yield i

    with frame_pool(2) as pool:
        first = next(iter(pool.map(lambda v: v, frames())))
        assert first == 0 and len(taken) <= 2 * 2 + 1
