"""Two steps racing for a 1-slot pool on SQLite: one claims it, the other waits its turn.

Each racer is a separate ``DagsterInstance`` on the same directory (as two run processes
are), in its own thread; a barrier forces the interleaving that once let two heavy steps
overlap: both read the pool's state before either writes. Run with Dagster's own methods
(``ORIGINAL``) the same interleaving shows the bug, so these tests could fail.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as db
from dagster._core.storage.event_log.schema import ConcurrencySlotsTable, PendingStepsTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._utils.concurrency import ConcurrencyClaimStatus, ConcurrencySlotStatus

from ace_assets.defs import slot_claim_fix

POOL = "ace_heavy"
RACERS = (("run-a", "heavy_a"), ("run-b", "heavy_b"))
BARRIER_TIMEOUT_S = 30.0


def _install(monkeypatch: pytest.MonkeyPatch, methods: Mapping[str, Callable[..., Any]]) -> None:
    for name, method in methods.items():
        monkeypatch.setattr(SqliteEventLogStorage, name, method)


def _storages(home: Path, count: int = 2) -> list[SqliteEventLogStorage]:
    storages = [dg.DagsterInstance.local_temp(str(home)).event_log_storage for _ in range(count)]
    assert all(isinstance(s, SqliteEventLogStorage) for s in storages)
    return storages  # type: ignore[return-value]


def _reads_free_slot(statement: Any) -> bool:
    """The read a claim makes before it writes: the id of a slot row."""
    if not isinstance(statement, db.Select):
        return False
    columns = list(statement.selected_columns)
    return len(columns) == 1 and columns[0] is ConcurrencySlotsTable.c.id


def _pause_after_first_slot_read(
    storage: SqliteEventLogStorage, barrier: threading.Barrier
) -> None:
    """The storage's first read of a free slot completes, then waits for the other racer."""
    index_connection = storage.index_connection
    paused = False

    class Pausing:
        def __init__(self, conn: Any) -> None:
            self._conn = conn

        def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
            nonlocal paused
            result = self._conn.execute(statement, *args, **kwargs)
            if paused or not _reads_free_slot(statement):
                return result
            paused = True
            frozen = result.freeze()  # read and cursor closed, as after Dagster's fetchone
            barrier.wait()
            return frozen()

    @contextmanager
    def pausing_connection() -> Iterator[Any]:
        with index_connection() as conn:
            yield Pausing(conn)

    storage.index_connection = pausing_connection  # type: ignore[method-assign]


def _pause_after_free_slot_count(
    storage: SqliteEventLogStorage, barrier: threading.Barrier
) -> None:
    """The storage reads whether the pool has an unassigned slot, then waits for the other."""
    has_unassigned_slots = storage.has_unassigned_slots

    def read_then_wait(concurrency_key: str) -> bool:
        free = has_unassigned_slots(concurrency_key)
        barrier.wait()
        return free

    storage.has_unassigned_slots = read_then_wait  # type: ignore[method-assign]


def _race(
    storages: list[SqliteEventLogStorage],
    claim: Callable[[SqliteEventLogStorage, str, str], ConcurrencyClaimStatus],
) -> list[ConcurrencyClaimStatus]:
    with ThreadPoolExecutor(len(RACERS)) as pool:
        futures = [
            pool.submit(claim, storage, run_id, step_key)
            for storage, (run_id, step_key) in zip(storages, RACERS, strict=True)
        ]
        return [f.result(timeout=2 * BARRIER_TIMEOUT_S) for f in futures]


def _claim(storage: SqliteEventLogStorage, run_id: str, step_key: str) -> ConcurrencyClaimStatus:
    return storage.claim_concurrency_slot(POOL, run_id, step_key)


def _slot_holders(storage: SqliteEventLogStorage) -> list[tuple[str, str]]:
    info = storage.get_concurrency_info(POOL)
    return [(s.run_id, s.step_key) for s in info.claimed_slots]


def _assigned_steps(storage: SqliteEventLogStorage) -> set[str]:
    with storage.index_connection() as conn:
        rows = conn.execute(
            db.select(PendingStepsTable.c.step_key).where(
                PendingStepsTable.c.concurrency_key == POOL,
                PendingStepsTable.c.assigned_timestamp.is_not(None),
            )
        ).fetchall()
    return {row[0] for row in rows}


def _both_assigned_one_slot(home: Path) -> list[SqliteEventLogStorage]:
    """Two steps assigned, one free slot: the pool's limit was lowered from 2 while they queued
    (and the state two steps registering at once reach in unpatched Dagster)."""
    storages = _storages(home)
    storages[0].set_concurrency_slots(POOL, 2)
    for storage, (run_id, step_key) in zip(storages, RACERS, strict=True):
        storage.add_pending_step(POOL, run_id, step_key, should_assign=True)
    storages[0].set_concurrency_slots(POOL, 1)
    assert _assigned_steps(storages[0]) == {"heavy_a", "heavy_b"}
    assert storages[0].get_concurrency_info(POOL).slot_count == 1
    return storages


def test_dagsters_claim_gives_one_slot_to_two_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install(monkeypatch, slot_claim_fix.ORIGINAL)
    storages = _both_assigned_one_slot(tmp_path)
    barrier = threading.Barrier(2, timeout=BARRIER_TIMEOUT_S)
    for storage in storages:
        _pause_after_first_slot_read(storage, barrier)

    statuses = _race(storages, _claim)

    assert [s.slot_status for s in statuses] == [ConcurrencySlotStatus.CLAIMED] * 2
    assert len(_slot_holders(storages[0])) == 1  # the second write overwrote the first


def test_patched_claim_gives_the_slot_to_one_step_and_the_other_waits_its_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install(monkeypatch, slot_claim_fix.PATCHED)
    storages = _both_assigned_one_slot(tmp_path)
    barrier = threading.Barrier(2, timeout=BARRIER_TIMEOUT_S)
    for storage in storages:
        _pause_after_first_slot_read(storage, barrier)

    statuses = _race(storages, _claim)

    assert sorted(s.slot_status.value for s in statuses) == ["BLOCKED", "CLAIMED"]
    winner = next(i for i, s in enumerate(statuses) if s.is_claimed)
    loser = 1 - winner
    assert _slot_holders(storages[0]) == [RACERS[winner]]
    again = _claim(storages[loser], *RACERS[loser])  # Dagster's re-check while it waits
    assert again.slot_status == ConcurrencySlotStatus.BLOCKED

    storages[winner].free_concurrency_slot_for_step(*RACERS[winner])
    assert _claim(storages[loser], *RACERS[loser]).is_claimed
    assert _slot_holders(storages[0]) == [RACERS[loser]]


@pytest.mark.parametrize("patched", [False, True], ids=["dagster", "patched"])
def test_steps_registering_at_once_are_assigned_the_last_slot_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, patched: bool
) -> None:
    _install(monkeypatch, slot_claim_fix.PATCHED if patched else slot_claim_fix.ORIGINAL)
    storages = _storages(tmp_path)
    storages[0].set_concurrency_slots(POOL, 1)
    barrier = threading.Barrier(2, timeout=BARRIER_TIMEOUT_S)
    for storage in storages:
        _pause_after_free_slot_count(storage, barrier)

    statuses = _race(storages, _claim)

    if not patched:
        assert _assigned_steps(storages[0]) == {"heavy_a", "heavy_b"}  # two for one slot
        return
    assert sorted(s.slot_status.value for s in statuses) == ["BLOCKED", "CLAIMED"]
    winner = next(i for i, s in enumerate(statuses) if s.is_claimed)
    loser = 1 - winner
    assert not statuses[loser].is_assigned  # queued behind the winner, not racing it
    assert _assigned_steps(storages[0]) == {RACERS[winner][1]}

    storages[winner].free_concurrency_slot_for_step(*RACERS[winner])
    assert _assigned_steps(storages[0]) == {RACERS[loser][1]}
    assert _claim(storages[loser], *RACERS[loser]).is_claimed


@pytest.mark.parametrize("patched", [False, True], ids=["dagster", "patched"])
def test_a_slot_freed_while_a_step_registers_is_not_left_idle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, patched: bool
) -> None:
    _install(monkeypatch, slot_claim_fix.PATCHED if patched else slot_claim_fix.ORIGINAL)
    holder, waiter = _storages(tmp_path)
    holder.set_concurrency_slots(POOL, 1)
    assert _claim(holder, "run-h", "heavy_h").is_claimed
    has_unassigned_slots = waiter.has_unassigned_slots

    def read_then_holder_frees(concurrency_key: str) -> bool:
        free = has_unassigned_slots(concurrency_key)  # False: the holder has the slot
        holder.free_concurrency_slot_for_step("run-h", "heavy_h")  # nobody queued to assign
        return free

    waiter.has_unassigned_slots = read_then_holder_frees  # type: ignore[method-assign]
    first = _claim(waiter, "run-w", "heavy_w")
    again = _claim(waiter, "run-w", "heavy_w")  # Dagster's re-check

    assert bool(holder.get_concurrency_info(POOL).claimed_slots) is patched
    assert first.is_claimed is patched
    assert again.is_claimed is patched  # unpatched: queued, unassigned, beside an idle slot


def test_probes_find_dagsters_gaps_and_none_once_patched() -> None:
    assert slot_claim_fix.apply() == {"claim", "assign"}  # importing ace_assets.defs did it
    assert slot_claim_fix.claims_one_slot_twice(slot_claim_fix.ORIGINAL)
    assert slot_claim_fix.assigns_one_slot_twice(slot_claim_fix.ORIGINAL)
    assert not slot_claim_fix.claims_one_slot_twice()
    assert not slot_claim_fix.assigns_one_slot_twice()
    for storage in slot_claim_fix.SQLITE_STORAGES:
        for name, method in slot_claim_fix.PATCHED.items():
            assert getattr(storage, name) is method, (storage, name)
