"""A step waiting for a pool slot must sleep between checks, not spin.

Dagster 1.13's ``InstanceConcurrencyContext.interval_to_next_pending_claim_check`` returns
``min([0, *remaining])``, which is never positive, so an executor whose step is blocked by a
pool polls the instance in a tight loop: a whole core per waiting run (measured: 93 %;
upstream's fix, dagster-io/dagster#20367, was closed unmerged). The corrected interval is
the time until the earliest pending re-check, never negative. The fix is applied only
while a probe shows the installed Dagster still returns a non-positive wait for a re-check
that lies in the future, so it retires itself once Dagster is fixed.
"""

from __future__ import annotations

import time

from dagster._core.execution.plan.instance_concurrency_context import (
    InstanceConcurrencyContext,
)

PROBE_DELAY_S = 5.0


def _interval_to_next_pending_claim_check(self: InstanceConcurrencyContext) -> float:
    if not self._pending_claims or not self._pending_timeouts:
        return 0.0
    return max(0.0, min(self._pending_timeouts.values()) - time.time())


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
    return True
