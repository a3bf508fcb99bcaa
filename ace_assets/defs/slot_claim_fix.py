"""A pool slot goes to one step at a time, even when two steps grab it at the same moment.

Dagster 1.13's SQL event log storage takes a pool slot in two statements: it SELECTs a free
slot row ``FOR UPDATE SKIP LOCKED`` and then UPDATEs that row by id alone. SQLite ignores the
row lock, so two processes that read the same free row both update it, both see one row
changed and both run: a 1-slot pool admitting two heavy steps (the backfill demo once measured
two ``ace_heavy`` steps overlapping). Registering a step has the same read-then-write gap:
``has_unassigned_slots`` is read in one transaction and the new pending step is inserted
(assigned or not) in another, so two steps registering at once are both assigned the last
slot, and a slot freed in between is assigned to nobody. ``assign_pending_steps`` reads the
next queued step and assigns it by id, so two frees can both hand their slot to one step.

Here every such write is a compare-and-set that SQLite executes atomically: a slot row is
taken only while its ``step_key`` is still NULL (a lost race tries the next free row, then
reports BLOCKED; the step stays pending and Dagster re-checks it), and a queued step is
assigned only while it is still unassigned and the pool has fewer assigned steps than slots.
Each half is installed on the SQLite storages only while a probe (two claimers interleaved on
a throwaway SQLite file) shows the installed Dagster still has that gap, so the patch retires
itself once Dagster is fixed.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as db
import sqlalchemy.exc as db_exc
from dagster._core.storage.event_log.schema import ConcurrencySlotsTable, PendingStepsTable
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._core.storage.event_log.sqlite.consolidated_sqlite_event_log import (
    ConsolidatedSqliteEventLogStorage,
)
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._utils.concurrency import ConcurrencySlotStatus
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

#: Storages whose slot claims rely on row locks that SQLite does not have.
SQLITE_STORAGES: tuple[type, ...] = (SqliteEventLogStorage, ConsolidatedSqliteEventLogStorage)
CLAIM = "_claim_concurrency_slot"
ASSIGN = ("add_pending_step", "assign_pending_steps")
#: Free rows a claim tries. A lost compare-and-set leaves the connection holding SQLite's
#: write lock, so the next try cannot lose again; the bound only guards against surprises.
MAX_CLAIM_ATTEMPTS = 3
PROBE_POOL = "slot_claim_probe"

#: Dagster's own methods (the SQLite storages inherit them; only those get patched).
ORIGINAL: dict[str, Callable[..., Any]] = {
    name: getattr(SqlEventLogStorage, name) for name in (CLAIM, *ASSIGN)
}


def _claim_concurrency_slot(
    self: SqliteEventLogStorage, concurrency_key: str, run_id: str, step_key: str
) -> ConcurrencySlotStatus:
    slots = ConcurrencySlotsTable
    free = db.and_(
        slots.c.concurrency_key == concurrency_key,
        slots.c.step_key.is_(None),
        slots.c.deleted == False,  # noqa: E712
    )
    with self.index_connection() as conn:
        for _ in range(MAX_CLAIM_ATTEMPTS):
            row = conn.execute(db.select(slots.c.id).where(free).limit(1)).first()
            if row is None:
                return ConcurrencySlotStatus.BLOCKED
            taken = conn.execute(
                slots.update()
                .values(run_id=run_id, step_key=step_key)
                .where(db.and_(slots.c.id == row[0], free))
            ).rowcount
            if taken:
                return ConcurrencySlotStatus.CLAIMED
    return ConcurrencySlotStatus.BLOCKED


def _assign_next_if_free(conn: Connection, concurrency_key: str) -> bool:
    """Assign the pool's first queued step, in one statement, if an unassigned slot is left."""
    steps = PendingStepsTable
    queued = steps.alias("queued")
    assigned = steps.alias("assigned")
    slots = ConcurrencySlotsTable
    next_id = (
        db.select(queued.c.id)
        .where(queued.c.concurrency_key == concurrency_key, queued.c.assigned_timestamp.is_(None))
        .order_by(queued.c.priority.desc(), queued.c.create_timestamp.asc(), queued.c.id.asc())
        .limit(1)
        .scalar_subquery()
    )
    slot_count = (
        db.select(db.func.count())
        .select_from(slots)
        .where(slots.c.concurrency_key == concurrency_key, slots.c.deleted == False)  # noqa: E712
        .scalar_subquery()
    )
    assigned_count = (
        db.select(db.func.count())
        .select_from(assigned)
        .where(
            assigned.c.concurrency_key == concurrency_key,
            assigned.c.assigned_timestamp.is_not(None),
        )
        .scalar_subquery()
    )
    return bool(
        conn.execute(
            steps.update()
            .values(assigned_timestamp=db.func.now())
            .where(steps.c.id == next_id, steps.c.assigned_timestamp.is_(None))
            .where(slot_count > assigned_count)
        ).rowcount
    )


def _assign_while_free(conn: Connection, concurrency_key: str) -> None:
    while _assign_next_if_free(conn, concurrency_key):
        pass


def _add_pending_step(
    self: SqliteEventLogStorage,
    concurrency_key: str,
    run_id: str,
    step_key: str,
    priority: int | None = None,
    should_assign: bool = False,
) -> None:
    # ``should_assign`` was read in an earlier transaction and may be stale either way; the
    # assignment is decided again here, atomically, for the queue's first steps.
    del should_assign
    with self.index_connection() as conn:
        try:
            conn.execute(
                PendingStepsTable.insert().values(
                    run_id=run_id,
                    step_key=step_key,
                    concurrency_key=concurrency_key,
                    priority=priority or 0,
                    assigned_timestamp=None,
                )
            )
        except db_exc.IntegrityError:
            return  # already queued (by a concurrent claim of the same step)
        _assign_while_free(conn, concurrency_key)


def _assign_pending_steps(self: SqliteEventLogStorage, concurrency_keys: Any) -> None:
    if not concurrency_keys:
        return
    with self.index_connection() as conn:
        for key in dict.fromkeys(concurrency_keys):
            _assign_while_free(conn, key)


PATCHED: dict[str, Callable[..., Any]] = {
    CLAIM: _claim_concurrency_slot,
    "add_pending_step": _add_pending_step,
    "assign_pending_steps": _assign_pending_steps,
}


class _ProbeStorage(SqliteEventLogStorage):
    """The concurrency tables of a throwaway SQLite file; nothing else of a storage is used."""

    def __init__(self, engine: db.Engine, before_write: Callable[[], None] | None = None):
        self._probe_engine = engine
        self._before_write = before_write

    @contextmanager
    def index_connection(self) -> Iterator[Any]:
        with self._probe_engine.connect() as conn, conn.begin():
            yield _InterleavingConnection(conn, self) if self._before_write else conn

    def run_before_write(self) -> None:
        hook, self._before_write = self._before_write, None
        if hook is not None:
            hook()


class _InterleavingConnection:
    """Runs the probe's other claimer right after the first read of the slots table."""

    def __init__(self, conn: Connection, storage: _ProbeStorage):
        self._conn = conn
        self._storage = storage

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        result = self._conn.execute(statement, *args, **kwargs)
        if (
            isinstance(statement, db.Select)
            and ConcurrencySlotsTable in statement.get_final_froms()
        ):
            frozen = result.freeze()  # the read is complete before the other claimer writes
            self._storage.run_before_write()
            return frozen()
        return result


def _throwaway_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """No fsync and no journal file: the probe's database is deleted right after."""
    dbapi_conn.execute("PRAGMA synchronous=OFF")
    dbapi_conn.execute("PRAGMA journal_mode=MEMORY")


@contextmanager
def _probe_engine() -> Iterator[db.Engine]:
    with tempfile.TemporaryDirectory(prefix="ace-slot-probe-") as tmp:
        engine = db.create_engine(f"sqlite:///{Path(tmp) / 'probe.db'}", poolclass=NullPool)
        db.event.listen(engine, "connect", _throwaway_pragmas)
        try:
            ConcurrencySlotsTable.metadata.create_all(
                engine, tables=[ConcurrencySlotsTable, PendingStepsTable]
            )
            with engine.begin() as conn:
                conn.execute(
                    ConcurrencySlotsTable.insert().values(
                        concurrency_key=PROBE_POOL, run_id=None, step_key=None, deleted=False
                    )
                )
            yield engine
        finally:
            engine.dispose()


def _probe_class(methods: Mapping[str, Callable[..., Any]] | None) -> type[_ProbeStorage]:
    return type("_Probe", (_ProbeStorage,), dict(methods or {}))


def claims_one_slot_twice(methods: Mapping[str, Callable[..., Any]] | None = None) -> bool:
    """Do two claimers that read the same free row of a 1-slot pool both claim it?

    ``methods`` replaces storage methods (e.g. ``ORIGINAL``); by default the installed ones.
    """
    probe = _probe_class(methods)
    with _probe_engine() as engine:
        second = probe(engine)
        statuses: list[ConcurrencySlotStatus] = []

        def second_claims() -> None:
            statuses.append(second._claim_concurrency_slot(PROBE_POOL, "run-b", "step"))

        first = probe(engine, before_write=second_claims)
        statuses.append(first._claim_concurrency_slot(PROBE_POOL, "run-a", "step"))
    return statuses.count(ConcurrencySlotStatus.CLAIMED) > 1


def assigns_one_slot_twice(methods: Mapping[str, Callable[..., Any]] | None = None) -> bool:
    """Are two steps that register at once on a 1-slot pool both assigned its slot?"""
    probe = _probe_class(methods)
    with _probe_engine() as engine:
        second = probe(engine)
        first = probe(engine)
        has_unassigned_slots = first.has_unassigned_slots

        def read_then_let_second_register(concurrency_key: str) -> bool:
            free = has_unassigned_slots(concurrency_key)
            second.claim_concurrency_slot(PROBE_POOL, "run-b", "step")
            return free

        first.has_unassigned_slots = read_then_let_second_register  # type: ignore[method-assign]
        first.claim_concurrency_slot(PROBE_POOL, "run-a", "step")
        with engine.connect() as conn:
            assigned = conn.execute(
                db.select(db.func.count())
                .select_from(PendingStepsTable)
                .where(PendingStepsTable.c.assigned_timestamp.is_not(None))
            ).scalar_one()
    return assigned > 1


def _probe_says_needed(probe: Callable[[], bool]) -> bool:
    """A probe that cannot run (Dagster's internals changed, no temp dir) must not stop the
    code location from loading: the patch stays out and the warning says so."""
    try:
        return probe()
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot tell"
        warnings.warn(
            f"ace_assets could not probe Dagster's pool slot claims ({probe.__name__}: {exc!r}); "
            "the compare-and-set fix is not installed, so on SQLite two steps may share a "
            "1-slot pool. Check ace_assets/defs/slot_claim_fix.py against the installed Dagster.",
            RuntimeWarning,
            stacklevel=3,
        )
        return False


def apply() -> set[str]:
    """Install the compare-and-set writes Dagster still needs; the names of those installed."""
    installed: set[str] = set()
    parts = {"claim": (CLAIM,), "assign": ASSIGN}
    for part, names in parts.items():
        if all(getattr(SqliteEventLogStorage, n) is PATCHED[n] for n in names):
            installed.add(part)
    needed = {
        "claim": "claim" not in installed and _probe_says_needed(claims_one_slot_twice),
        "assign": "assign" not in installed and _probe_says_needed(assigns_one_slot_twice),
    }
    for part, names in parts.items():
        if not needed[part]:
            continue
        for storage in SQLITE_STORAGES:
            for name in names:
                if getattr(storage, name) is ORIGINAL[name]:  # a storage's own override stays
                    setattr(storage, name, PATCHED[name])
        installed.add(part)
    return installed
