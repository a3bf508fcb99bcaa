"""A step blocked by a pool sleeps until its next re-check instead of polling in a loop."""

from __future__ import annotations

import time

from dagster._core.execution.plan.instance_concurrency_context import (
    InstanceConcurrencyContext,
)

from ace_assets.defs import pool_wait_fix


def _context(due_in: list[float]) -> InstanceConcurrencyContext:
    probe = InstanceConcurrencyContext.__new__(InstanceConcurrencyContext)
    now = time.time()
    probe._pending_claims = {f"s{i}" for i in range(len(due_in))}
    probe._pending_timeouts = {f"s{i}": now + d for i, d in enumerate(due_in)}
    return probe


def test_waiting_step_sleeps_until_its_earliest_recheck() -> None:
    assert pool_wait_fix.apply()  # importing ace_assets.defs installed it already
    assert not pool_wait_fix.waits_without_sleeping()
    wait = _context([3.0, 7.0]).interval_to_next_pending_claim_check()
    assert 2.5 < wait <= 3.0
    assert _context([-1.0, 4.0]).interval_to_next_pending_claim_check() == 0.0  # one is due
    assert _context([]).interval_to_next_pending_claim_check() == 0.0
