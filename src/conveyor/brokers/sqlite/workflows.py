"""The SQLite broker's workflow groups (``groups`` and ``group_slots`` in schema.sql). A join
runs inside the settle transaction of its member's outcome (``SQLiteBroker.settle`` calls
``_continue``), so the outcome, the count and the body's enqueue commit together or not at all."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable

from ... import states
from ..base import WorkflowStore
from ..records import Continuation, GroupJoin, GroupState, JobSpec, StoredResult
from .connection import SQLiteParts, _mapped


def insert_jobs(db: sqlite3.Connection, jobs: Iterable[JobSpec], now: float) -> list[bool]:
    """Enqueue jobs in ``db``'s transaction, idempotent by id (known or with a live result)."""
    seq0 = time.time_ns()
    added: list[bool] = []
    for i, spec in enumerate(jobs):
        eta = spec.eta if spec.eta is not None and spec.eta > now else None
        cur = db.execute(
            "INSERT INTO jobs (id, queue, priority, seq, eta, body, retries)"
            " SELECT ?, ?, ?, ?, ?, ?, ?"
            " WHERE NOT EXISTS (SELECT 1 FROM results WHERE id = ? AND expires_at > ?)"
            " ON CONFLICT (id) DO NOTHING",
            (spec.id, spec.queue, spec.priority, seq0 + i, eta, spec.body, spec.retries, spec.id, now),
        )
        added.append(cur.rowcount == 1)
    return added


def store_results(db: sqlite3.Connection, results: Iterable[StoredResult], expires: float) -> None:
    db.executemany(
        "INSERT OR REPLACE INTO results (id, state, payload, retries, expires_at) VALUES (?, ?, ?, 0, ?)",
        [(task_id, state, payload, expires) for task_id, state, payload in results],
    )


class SQLiteWorkflows(SQLiteParts, WorkflowStore):
    @_mapped
    def start_group(self, group_id: str, size: int, body: JobSpec | None, ttl: float) -> bool:
        if size <= 0:
            raise ValueError(f"a group needs at least one member, got size {size}")
        now = time.time()
        with self._conn.tx() as db:
            db.execute(
                "DELETE FROM group_slots WHERE group_id IN"
                " (SELECT id FROM groups WHERE id = ? AND expires_at <= ?)",
                (group_id, now),
            )
            db.execute("DELETE FROM groups WHERE id = ? AND expires_at <= ?", (group_id, now))
            cur = db.execute(
                "INSERT INTO groups (id, size, body_id, body_queue, body_priority, body_eta, body,"
                " expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (
                    group_id,
                    size,
                    body.id if body else None,
                    body.queue if body else None,
                    body.priority if body else None,
                    body.eta if body else None,
                    body.body if body else None,
                    now + ttl,
                ),
            )
            return cur.rowcount == 1

    @_mapped
    def group_state(self, group_id: str) -> GroupState | None:
        db = self._conn.db()
        row = db.execute(
            "SELECT size, joined, failed, body_id FROM groups WHERE id = ? AND expires_at > ?",
            (group_id, time.time()),
        ).fetchone()
        if row is None:
            return None
        slots: list[tuple[str, bytes | None] | None] = [None] * row[0]
        for idx, state, payload in db.execute(
            "SELECT idx, state, payload FROM group_slots WHERE group_id = ?", (group_id,)
        ):
            if 0 <= idx < row[0]:
                slots[idx] = (state, payload)
        return GroupState(row[0], row[1], bool(row[2]), row[3], tuple(slots))

    @staticmethod
    def _continue(db: sqlite3.Connection, then: Continuation, expires: float, joins: list[GroupJoin]) -> None:
        """Apply a current outcome's continuation inside its settle transaction; its join is
        added to ``joins``, which the settle applies with ``_join`` once per batch."""
        now = time.time()
        if then.enqueue:
            insert_jobs(db, then.enqueue, now)
        if then.results:
            store_results(db, then.results, expires)
        if then.join is not None:
            joins.append(then.join)

    @staticmethod
    def _join(db: sqlite3.Connection, joins: list[GroupJoin], expires: float) -> None:
        """Join a settle batch's members to their groups: per group, one insert of the slots and
        one update of the count (a chord's header tasks end in batches; a statement per member
        would hold SQLite's one write lock twice as long as the settle itself)."""
        now = time.time()
        by_group: dict[str, list[GroupJoin]] = {}
        for join in joins:
            by_group.setdefault(join.group, []).append(join)
        for group_id, members in by_group.items():
            failures = [j for j in members if j.state != states.SUCCESS]
            # Failures one by one, to know which one was first; successes together.
            for part in [[j] for j in failures] + [[j for j in members if j.state == states.SUCCESS]]:
                if part:
                    SQLiteWorkflows._join_part(db, group_id, part, now, expires)

    @staticmethod
    def _join_part(
        db: sqlite3.Connection, group_id: str, part: list[GroupJoin], now: float, expires: float
    ) -> None:
        # A slot is filled only in a live group, in range, and if still empty: the count grows
        # by the slots actually filled, so a member is counted once whatever arrives twice.
        group = db.execute(
            "SELECT size FROM groups WHERE id = ? AND expires_at > ?", (group_id, now)
        ).fetchone()
        if group is None:
            return  # expired or unknown: nothing left to complete
        cur = db.executemany(
            "INSERT INTO group_slots (group_id, idx, state, payload) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            [(group_id, j.slot, j.state, j.payload) for j in part if 0 <= j.slot < group[0]],
        )
        added = cur.rowcount
        if added <= 0:
            return  # counted before: those members already did everything below
        fails = part[0].state != states.SUCCESS  # a failure comes alone (see _join)
        size, joined, failed = db.execute(  # ``failed`` counts the members that failed
            "UPDATE groups SET joined = joined + ?, failed = failed + ? WHERE id = ?"
            " RETURNING size, joined, failed",
            (added, int(fails), group_id),
        ).fetchone()
        if fails and failed == 1:  # the first failure
            insert_jobs(db, part[0].on_failure, now)
            body_id = db.execute("SELECT body_id FROM groups WHERE id = ?", (group_id,)).fetchone()[0]
            failures = [
                (task_id or body_id, state, payload) for task_id, state, payload in part[0].failure_results
            ]
            store_results(db, [r for r in failures if r[0]], expires)
        if joined == size and not failed:
            row = db.execute(
                "SELECT body_id, body_queue, body, body_priority, body_eta FROM groups WHERE id = ?",
                (group_id,),
            ).fetchone()
            if row[0] is not None:
                insert_jobs(db, [JobSpec(*row)], now)
