"""The operator half of the SQLite broker: queue stats, purge, workers, dead letters, cleanup."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence

from ..base import BrokerAdmin
from ..records import DeadLetter, QueueStats, WorkerRecord
from .connection import SQLiteParts, _mapped
from .history import history_requeued

WORKER_EXPIRY = 30.0  # a worker with no heartbeat for this long is not listed
BRING_FORWARD_SLICE = 500  # ids per UPDATE (SQLite bounds a statement's parameters)


class SQLiteAdmin(SQLiteParts, BrokerAdmin):
    @_mapped
    def queue_stats(self) -> dict[str, QueueStats]:
        rows = (
            self._conn.db()
            .execute(
                "SELECT queue,"
                " SUM(lease_owner IS NULL AND eta IS NULL), SUM(lease_owner IS NULL AND eta IS NOT NULL),"
                " SUM(lease_owner IS NOT NULL) FROM jobs GROUP BY queue ORDER BY queue"
            )
            .fetchall()
        )
        db = self._conn.db()
        by_priority: dict[str, dict[int, int]] = {}
        for queue, priority, count in db.execute(
            "SELECT queue, priority, COUNT(*) FROM jobs WHERE lease_owner IS NULL AND eta IS NULL"
            " GROUP BY queue, priority ORDER BY queue, priority"
        ):
            by_priority.setdefault(queue, {})[priority] = count
        stats = {}
        for queue, ready, delayed, leased in rows:
            per = by_priority.get(queue, {})
            stats[queue] = QueueStats(ready, delayed, leased, per, self._oldest_ready(db, queue, per))
        return stats

    @staticmethod
    def _oldest_ready(db: sqlite3.Connection, queue: str, priorities: Iterable[int]) -> bytes | None:
        # The head of each priority (an index seek each, at most 10), then the earliest of those:
        # one ORDER BY seq over the whole queue would scan every ready row.
        heads = [
            db.execute(
                "SELECT seq, body FROM jobs WHERE queue = ? AND priority = ? AND lease_owner IS NULL"
                " AND eta IS NULL ORDER BY seq LIMIT 1",
                (queue, priority),
            ).fetchone()
            for priority in priorities
        ]
        heads = [h for h in heads if h is not None]
        return bytes(min(heads)[1]) if heads else None

    @_mapped
    def purge(self, queues: Sequence[str]) -> int:
        marks = ",".join("?" * len(queues))
        with self._conn.tx() as db:
            cur = db.execute(
                f"DELETE FROM jobs WHERE queue IN ({marks}) AND lease_owner IS NULL", tuple(queues)
            )
            return cur.rowcount

    @_mapped
    def bring_forward(self, task_ids: Sequence[str]) -> int:
        ids = list(dict.fromkeys(task_ids))
        moved = 0
        with self._conn.tx() as db:
            for start in range(0, len(ids), BRING_FORWARD_SLICE):
                part = ids[start : start + BRING_FORWARD_SLICE]
                marks = ",".join("?" * len(part))
                # Ready from now, as a job whose eta passed is (broker.py's _lease).
                cur = db.execute(
                    f"UPDATE jobs SET eta = NULL WHERE id IN ({marks}) AND eta IS NOT NULL"
                    " AND lease_owner IS NULL",
                    tuple(part),
                )
                moved += cur.rowcount
        return moved

    @_mapped
    def workers(self) -> list[WorkerRecord]:
        rows = (
            self._conn.db()
            .execute(
                "SELECT name, heartbeat, info FROM workers WHERE heartbeat >= ? ORDER BY name",
                (time.time() - WORKER_EXPIRY,),
            )
            .fetchall()
        )
        return [WorkerRecord(r[0], r[1], r[2]) for r in rows]

    @_mapped
    def dead_letters(self, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        rows = (
            self._conn.db()
            .execute(
                "SELECT id, queue, body, reason, failed_at, deaths, priority FROM dead_letters"
                " ORDER BY failed_at DESC LIMIT ? OFFSET ?",
                (limit, offset),
            )
            .fetchall()
        )
        return [DeadLetter(*r) for r in rows]

    @_mapped
    def dead_letter_count(self) -> int:
        count: int = self._conn.db().execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0]
        return count

    @_mapped
    def delete_dead(self, task_ids: Sequence[str]) -> int:
        with self._conn.tx() as db:
            delete = "DELETE FROM dead_letters WHERE id = ?"
            return sum(db.execute(delete, (task_id,)).rowcount for task_id in task_ids)

    @_mapped
    def requeue_dead(self, task_ids: Sequence[str]) -> int:
        moved = 0
        seq0 = time.time_ns()
        with self._conn.tx() as db:
            for i, task_id in enumerate(task_ids):
                row = db.execute(
                    "SELECT queue, priority, body FROM dead_letters WHERE id = ?", (task_id,)
                ).fetchone()
                if row is None:
                    continue
                db.execute("DELETE FROM dead_letters WHERE id = ?", (task_id,))
                db.execute("DELETE FROM results WHERE id = ?", (task_id,))
                db.execute("DELETE FROM revoked WHERE id = ?", (task_id,))
                cur = db.execute(
                    "INSERT INTO jobs (id, queue, priority, seq, body) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (id) DO NOTHING",
                    (task_id, row[0], row[1], seq0 + i, row[2]),
                )
                moved += cur.rowcount
                if cur.rowcount:
                    history_requeued(db, [task_id])
        return moved

    @_mapped
    def purge_dead(self) -> int:
        with self._conn.tx() as db:
            return db.execute("DELETE FROM dead_letters").rowcount

    @_mapped
    def cleanup(self, dead_letter_ttl: float) -> None:
        # Nothing in SQLite expires by itself: every expired row of every table goes here,
        # coordination keys included.
        now = time.time()
        with self._conn.tx() as db:
            db.execute("DELETE FROM results WHERE expires_at <= ?", (now,))
            db.execute("DELETE FROM revoked WHERE expires_at <= ?", (now,))
            db.execute("DELETE FROM dead_letters WHERE failed_at <= ?", (now - dead_letter_ttl,))
            db.execute("DELETE FROM workers WHERE heartbeat < ?", (now - WORKER_EXPIRY * 10,))
            db.execute("DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,))
            db.execute(
                "DELETE FROM group_slots WHERE group_id IN (SELECT id FROM groups WHERE expires_at <= ?)",
                (now,),
            )
            db.execute("DELETE FROM groups WHERE expires_at <= ?", (now,))
