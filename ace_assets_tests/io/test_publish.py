"""Publishing results: a kill at any instant keeps the last good folder, writers take turns."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ace_assets.io.publish import exchange, publishing, replace_dir
from ace_assets_tests.helpers.paths import REPO


def publish(folder: Path, token: str) -> None:
    with publishing(folder) as tmp:
        (tmp / "a.txt").write_text(token)
        (tmp / "b.txt").write_text(token)


def leftovers(folder: Path) -> list[str]:
    """Hidden parts beside ``folder`` (its writer lock file is meant to stay)."""
    return sorted(
        p.name
        for p in folder.parent.iterdir()
        if p.name.startswith(f".{folder.name}.") and not p.name.endswith(".lock")
    )


def read_version(folder: Path) -> tuple[str, str]:
    """Both files of one version: the folder is opened first, the files relative to it."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        texts = []
        for name in ("a.txt", "b.txt"):
            f = os.open(name, os.O_RDONLY, dir_fd=fd)
            with os.fdopen(f) as fh:
                texts.append(fh.read())
        return texts[0], texts[1]
    finally:
        os.close(fd)


def worker(folder: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "ace_assets_tests.helpers.publish_worker", str(folder), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_swap_is_one_exchange_here(tmp_path: Path) -> None:
    """On Linux the new folder replaces the old in one step: no moment without a folder."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    assert exchange(a, b)
    assert (b / "x").read_text() == "a" and not (a / "x").exists()
    (tmp_path / "new").mkdir()
    replace_dir(tmp_path / "new", b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_a_failed_write_keeps_the_last_good_result(tmp_path: Path) -> None:
    folder = tmp_path / "denoised_movie"
    publish(folder, "good")
    with pytest.raises(RuntimeError), publishing(folder) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("the stage failed")
    assert (folder / "a.txt").read_text() == "good"
    assert leftovers(folder) == []


def test_a_killed_writer_leaves_the_last_good_result_and_its_parts_are_removed(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "denoised_movie"
    publish(folder, "good")
    proc = worker(folder, "die")
    proc.communicate(timeout=120)
    assert proc.returncode == -9  # SIGKILL, mid-write
    assert (folder / "a.txt").read_text() == "good"  # readers still see the last good result
    assert any(".tmp-" in name for name in leftovers(folder))  # the killed writer's part
    publish(folder, "next")  # the next writer cleans up before it starts
    assert (folder / "a.txt").read_text() == "next"
    assert leftovers(folder) == []


def test_a_swap_cut_between_two_renames_is_restored(tmp_path: Path) -> None:
    """Where the filesystem cannot exchange, a kill between the renames hides the result as
    ``.old-*``; the next writer restores it before anything else, then works as usual."""
    folder = tmp_path / "miniscope_sources"
    publish(folder, "good")
    hidden = tmp_path / ".miniscope_sources.old-1a2b3c4d"
    os.replace(folder, hidden)  # the state a kill between the two renames leaves
    with pytest.raises(RuntimeError), publishing(folder):
        assert (folder / "a.txt").read_text() == "good"  # restored before the write began
        raise RuntimeError("this run fails too")
    assert (folder / "a.txt").read_text() == "good"
    assert leftovers(folder) == []


def test_two_writers_and_a_reader_never_collide(tmp_path: Path) -> None:
    """Two processes publish the same folder 1,000 times each while a thread reads it."""
    folder = tmp_path / "calcium_events"
    publish(folder, "first")
    torn: list[str] = []
    stop = threading.Event()

    missing: list[int] = []

    def read() -> None:
        while not stop.is_set():
            try:
                fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            except FileNotFoundError:  # a moment without a result: what must never happen
                missing.append(1)
                continue
            os.close(fd)
            try:
                a, b = read_version(folder)
            except FileNotFoundError:  # that version was superseded and removed mid-read
                continue
            if a != b:
                torn.append(f"{a} != {b}")

    reader = threading.Thread(target=read)
    reader.start()
    procs = [worker(folder, "commit", "1000") for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    stop.set()
    reader.join()
    assert [p.returncode for p in procs] == [0, 0], outs
    assert torn == [] and missing == []
    assert folder.is_dir() and (folder / "a.txt").read_text().endswith("-999")
    assert leftovers(folder) == []
