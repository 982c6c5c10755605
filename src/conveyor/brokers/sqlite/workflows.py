"""The SQLite broker's workflow groups (``groups`` and ``group_slots`` in schema.sql). A join
runs inside the settle transaction of its member's outcome (``SQLiteBroker.settle`` calls
``_continue``), so the outcome, the count and the body's enqueue commit together or not at all."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable

from ... import states
from ..base import WorkflowStore
from ..records import Continuation, GroupState, JobSpec, StoredResult
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
    def _continue(db: sqlite3.Connection, then: Continuation, expires: float) -> None:
        """Apply a current outcome's continuation inside its settle transaction."""
        now = time.time()
        if then.enqueue:
            insert_jobs(db, then.enqueue, now)
        if then.results:
            store_results(db, then.results, expires)
        join = then.join
        if join is None:
            return
        row = db.execute(
            "SELECT size, failed FROM groups WHERE id = ? AND expires_at > ?", (join.group, now)
        ).fetchone()
        if row is None or not 0 <= join.index < row[0]:
            return  # expired or unknown: nothing left to complete
        cur = db.execute(
            "INSERT INTO group_slots (group_id, idx, state, payload) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (join.group, join.index, join.state, join.payload),
        )
        if cur.rowcount != 1:
            return  # counted before: this member already did everything below
        fails = join.state != states.SUCCESS and not row[1]
        joined, failed, body_id, queue, priority, eta, body = db.execute(
            "UPDATE groups SET joined = joined + 1, failed = failed OR ? WHERE id = ?"
            " RETURNING joined, failed, body_id, body_queue, body_priority, body_eta, body",
            (int(fails), join.group),
        ).fetchone()
        if fails:
            insert_jobs(db, join.on_failure, now)
            store_results(db, join.failure_results, expires)
        if joined == row[0] and not failed and body_id is not None:
            insert_jobs(db, [JobSpec(body_id, queue, body, priority, eta)], now)
