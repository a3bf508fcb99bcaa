"""Peak memory of one stage, measured in a fresh subprocess.

Why a subprocess: a process's peak RSS never goes down, so stages measured in
the bench's own process would inherit each other's peaks. The child runs
``module:function(**kwargs)``, and reports

* ``peak_rss_mb`` — ``VmHWM`` from ``/proc/self/status``: the peak of everything
  resident, including file-backed pages of memory-mapped stores it read or wrote
  (the kernel can drop those clean pages at will, so this overstates what the
  stage *needs* when it streams through a large memmap). Not
  ``getrusage(RUSAGE_SELF).ru_maxrss``: on Linux that survives fork + exec, so a
  child spawned by a big parent reports the parent's size;
* ``peak_anon_mb`` — the largest ``RssAnon`` (heap, arrays, thread stacks)
  sampled from ``/proc/self/status`` every ``interval`` seconds: the memory the
  stage actually holds, the number that must stay flat with recording length.

Usage from a bench::

    from _memory import measure
    stats = measure("bench_denoise:stage", {"folder": "...", "out": "..."})

The function's return value must be JSON-serialisable; it comes back as
``stats["result"]``.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

MARKER = "@@MEMORY@@"


def measure(
    target: str,
    kwargs: dict[str, Any] | None = None,
    *,
    interval: float = 0.05,
    timeout: float | None = None,
    extra_path: list[str] | None = None,
) -> dict[str, Any]:
    """Run ``target`` ("module:function") in a child Python and return its memory stats."""
    here = Path(__file__).resolve().parent
    paths = [str(here), *(extra_path or [])]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = [
        sys.executable,
        str(here / "_memory.py"),
        target,
        json.dumps(kwargs or {}),
        str(interval),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{target} failed in subprocess:\n{proc.stderr[-4000:]}")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER) :])
    raise RuntimeError(f"{target}: no report from subprocess:\n{proc.stdout[-2000:]}")


def _status_kb(field: str) -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _rss_anon_kb() -> int:
    return _status_kb("RssAnon")


class _AnonSampler(threading.Thread):
    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak_kb = _rss_anon_kb()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.peak_kb = max(self.peak_kb, _rss_anon_kb())

    def stop(self) -> int:
        self._halt.set()
        self.join()
        self.peak_kb = max(self.peak_kb, _rss_anon_kb())
        return self.peak_kb


def _child(target: str, kwargs_json: str, interval: float) -> None:
    module_name, func_name = target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    baseline_anon = _rss_anon_kb()
    sampler = _AnonSampler(interval)
    sampler.start()
    t0 = time.perf_counter()
    result = func(**json.loads(kwargs_json))
    wall = time.perf_counter() - t0
    peak_anon = sampler.stop()
    report = {
        "result": result,
        "wall_s": wall,
        "peak_rss_mb": (_status_kb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        / 1024.0,
        "peak_anon_mb": peak_anon / 1024.0,
        "import_anon_mb": baseline_anon / 1024.0,
    }
    print(MARKER + json.dumps(report), flush=True)


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 0.05)
