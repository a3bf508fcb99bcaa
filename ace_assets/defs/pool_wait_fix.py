"""A step waiting for a pool slot must sleep between checks, not spin.

Dagster 1.13 waits for a pool slot in a tight loop, a whole core per waiting run:
- ``InstanceConcurrencyContext.interval_to_next_pending_claim_check`` returns
  ``min([0, *remaining])``, never positive, so the in-process executor never sleeps
  (measured: 93 % of a core; upstream's fix, dagster-io/dagster#20367, was closed unmerged);
- the multiprocess executor never sleeps at all when every step it could start is blocked
  and none is running (it only waits on running children's event queues).
The corrected interval is the time until the earliest pending re-check; and a plan with
nothing running and only blocked steps sleeps until that re-check (at most
``MAX_IDLE_WAIT_S``) before it reports "nothing to start". Both are installed only while
a probe shows the installed Dagster still returns no wait for a re-check that lies in the
future, so they retire themselves once Dagster is fixed.
"""

from __future__ import annotations

import time

from dagster._core.execution.plan.active import ActiveExecution
from dagster._core.execution.plan.instance_concurrency_context import (
    InstanceConcurrencyContext,
)

PROBE_DELAY_S = 5.0
#: Longest nap of an idle plan: a slot freed meanwhile is noticed within this time.
MAX_IDLE_WAIT_S = 1.0
_get_steps_to_execute = ActiveExecution.get_steps_to_execute


def _interval_to_next_pending_claim_check(self: InstanceConcurrencyContext) -> float:
    if not self._pending_claims or not self._pending_timeouts:
        return 0.0
    return max(0.0, min(self._pending_timeouts.values()) - time.time())


def _get_steps_or_wait(self: ActiveExecution, limit: int | None = None) -> list:
    steps = _get_steps_to_execute(self, limit=limit)
    waiting = self._instance_concurrency_context
    if not steps and not self._in_flight and waiting is not None and waiting.has_pending_claims():
        time.sleep(min(MAX_IDLE_WAIT_S, waiting.interval_to_next_pending_claim_check()))
    return steps


def waits_without_sleeping() -> bool:
    """Does the installed Dagster return no wait for a re-check due in the future?"""
    probe = InstanceConcurrencyContext.__new__(InstanceConcurrencyContext)
    probe._pending_claims = {"step"}
    probe._pending_timeouts = {"step": time.time() + PROBE_DELAY_S}
    return probe.interval_to_next_pending_claim_check() <= 0.0


def apply() -> bool:
    """Install the corrected interval if Dagster needs it; True when installed."""
    if InstanceConcurrencyContext.interval_to_next_pending_claim_check is (
        _interval_to_next_pending_claim_check
    ):
        return True
    if not waits_without_sleeping():
        return False
    InstanceConcurrencyContext.interval_to_next_pending_claim_check = (  # type: ignore[method-assign]
        _interval_to_next_pending_claim_check
    )
    ActiveExecution.get_steps_to_execute = _get_steps_or_wait  # type: ignore[method-assign]
    return True
