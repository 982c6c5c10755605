"""The embedded default broker: one SQLite file, shared safely by processes on one host.

``sqlite:///conveyor.db`` (relative path) or ``sqlite:////var/lib/app/conveyor.db`` (absolute).
This module is the job lifecycle; admin.py the operator's calls, coordination.py the key/value
store, connection.py the connections, and schema.sql the tables.

How it stays correct with several producers and worker processes on one file:
- WAL journal, so readers never block the writer; ``synchronous=NORMAL`` (durable across a
  process crash, may lose the last commits on power loss; ``?synchronous=FULL`` changes that).
- Every state change is one ``BEGIN IMMEDIATE`` transaction, so two workers never lease the
  same job; ``busy_timeout`` makes contenders wait rather than fail.
- One connection per thread (sqlite3 connections are not shared across threads).

How it avoids busy polling: an idle ``fetch`` or ``wait`` checks ``PRAGMA data_version``, which
changes only when *another* connection commits, every couple of milliseconds. That check reads
shared memory, not the tables, so idle workers cost almost nothing yet see new work within ~2 ms.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor

from ... import states
from ..base import LOST_SUFFIX, AsyncProducer, Broker, LostContinuation
from ..payloads import malformed_id_payload, revoked_payload, worker_lost_payload, worker_lost_reason
from ..records import WORKFLOW_MARK, Delivery, GroupJoin, JobSpec, Outcome, ReclaimReport, StatusRecord
from .admin import SQLiteAdmin
from .connection import Connections, _mapped
from .coordination import SQLiteCoordination
from .history import SQLiteHistory
from .url import parse_sqlite_url, synchronous_mode
from .workflows import SQLiteWorkflows, insert_jobs

IDLE_CHECK = 0.002  # seconds between data_version checks while idle


class SQLiteBroker(SQLiteAdmin, SQLiteCoordination, SQLiteHistory, SQLiteWorkflows, Broker):
    """The embedded broker. Thread-safe; each thread opens its own connection on first use.

    >>> broker = SQLiteBroker("sqlite:///conveyor.db")                  # doctest: +SKIP
    >>> broker.enqueue([JobSpec("id-1", "default", b"{...}")])          # doctest: +SKIP
    [True]
    """

    def __init__(self, url: str = "sqlite:///conveyor.db") -> None:
        self.url = url
        self.path, options = parse_sqlite_url(url)
        self._conn = Connections(self.path, synchronous_mode(options))
        self._conn.db()  # fail fast on a bad path; applies the schema
        self._async_threads: tuple[ThreadPoolExecutor, ThreadPoolExecutor] | None = None
        self._async_lock = threading.Lock()

    def close(self) -> None:
        with self._async_lock:
            threads, self._async_threads = self._async_threads, None
        for pool in threads or ():
            pool.shutdown(wait=True)
        self._conn.close()

    def async_producer(self) -> AsyncProducer | None:
        from .aio import SQLiteAsyncProducer

        return SQLiteAsyncProducer(self)

    def async_threads(self) -> tuple[ThreadPoolExecutor, ThreadPoolExecutor]:
        """The writer and reader threads of the async producers (sqlite/aio.py), made on first
        use and again after ``close()``."""
        with self._async_lock:
            if self._async_threads is None:
                self._async_threads = (
                    ThreadPoolExecutor(1, thread_name_prefix="conveyor-sqlite-writer"),
                    ThreadPoolExecutor(1, thread_name_prefix="conveyor-sqlite-reader"),
                )
            return self._async_threads

    # -- producers -------------------------------------------------------------------------
    @_mapped
    def enqueue(self, jobs: Sequence[JobSpec]) -> list[bool]:
        with self._conn.tx() as db:
            added = insert_jobs(db, jobs, time.time())
        return added

    @_mapped
    def status(self, task_id: str) -> StatusRecord | None:
        db = self._conn.db()
        row = db.execute(
            "SELECT state, payload, retries FROM results WHERE id = ? AND expires_at > ?",
            (task_id, time.time()),
        ).fetchone()
        if row is not None:
            return StatusRecord(row[0], row[1], row[2])
        row = db.execute("SELECT lease_owner, retries, info FROM jobs WHERE id = ?", (task_id,)).fetchone()
        if row is None:
            return None
        if row[0] is not None:
            return StatusRecord(states.STARTED, None, row[1])
        if row[1] > 0:
            return StatusRecord(states.RETRY, row[2], row[1])
        return StatusRecord(states.PENDING, None, 0)

    @_mapped
    def wait(self, task_id: str, timeout: float | None) -> StatusRecord | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        self._conn.changed()
        record = self.status(task_id)
        while record is None or record.state not in states.READY_STATES:
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(IDLE_CHECK)
            if self._conn.changed():
                record = self.status(task_id)
        return record

    @_mapped
    def revoke(
        self, task_ids: Sequence[str], terminate: bool, ttl: float, lost: LostContinuation | None = None
    ) -> None:
        now = time.time()
        joins: list[GroupJoin] = []
        with self._conn.tx() as db:
            for task_id in task_ids:
                db.execute(
                    "INSERT OR REPLACE INTO revoked (id, terminate, expires_at) VALUES (?, ?, ?)",
                    (task_id, int(terminate), now + ttl),
                )
                row = db.execute(
                    "SELECT body FROM jobs WHERE id = ? AND lease_owner IS NULL", (task_id,)
                ).fetchone()
                if row is not None and (lost is not None or WORKFLOW_MARK not in row[0]):
                    # (Without ``lost`` a workflow step stays queued: the fetch hands it out
                    # flagged revoked, and its worker ends its workflow.)
                    db.execute("DELETE FROM jobs WHERE id = ?", (task_id,))
                    payload = revoked_payload()
                    self._store(db, task_id, states.REVOKED, payload, now + ttl, 0)
                    then = lost(task_id, row[0], states.REVOKED, payload) if lost else None
                    if then is not None:
                        self._continue(db, then, now + ttl, joins)
            if joins:
                self._join(db, joins, now + ttl)

    @_mapped
    def forget(self, task_id: str) -> None:
        with self._conn.tx() as db:
            db.execute("DELETE FROM results WHERE id = ?", (task_id,))

    @staticmethod
    def _store(
        db: sqlite3.Connection, task_id: str, state: str, payload: bytes | None, expires: float, retries: int
    ) -> None:
        db.execute(
            "INSERT OR REPLACE INTO results (id, state, payload, retries, expires_at) VALUES (?, ?, ?, ?, ?)",
            (task_id, state, payload, retries, expires),
        )

    # -- workers ---------------------------------------------------------------------------
    @_mapped
    def fetch(
        self, queues: Sequence[str], owner: str, limit: int, lease_timeout: float, wait: float
    ) -> list[Delivery]:
        deadline = time.monotonic() + wait
        marks = ",".join("?" * len(queues))
        ready_sql = (
            f"SELECT 1 FROM jobs WHERE queue IN ({marks}) AND lease_owner IS NULL AND eta IS NULL LIMIT 1"
        )
        due_sql = "SELECT MIN(eta) FROM jobs WHERE eta IS NOT NULL AND lease_owner IS NULL"
        db = self._conn.db()
        self._conn.changed()
        while True:
            now = time.time()
            next_eta = db.execute(due_sql).fetchone()[0]
            has_ready = db.execute(ready_sql, tuple(queues)).fetchone() is not None
            if has_ready or (next_eta is not None and next_eta <= now):
                out = self._lease(queues, owner, limit, lease_timeout)
                if out:
                    return out
            # Nothing to lease: sleep in short steps until someone commits, a delayed job comes
            # due, or the wait is over.
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                if next_eta is not None and next_eta <= time.time():
                    break
                time.sleep(min(IDLE_CHECK, remaining))
                if self._conn.changed():
                    break

    def _lease(self, queues: Sequence[str], owner: str, limit: int, lease_timeout: float) -> list[Delivery]:
        now = time.time()
        with self._conn.tx() as db:
            db.execute(
                "UPDATE jobs SET eta = NULL WHERE eta IS NOT NULL AND eta <= ? AND lease_owner IS NULL",
                (now,),
            )
            candidates: list[tuple[int, int, bytes, str, bytes, int, int, str]] = []
            for queue in queues:
                # The id as bytes: a row written by something else than Conveyor may hold an
                # id that is not UTF-8 (or not text), which sqlite3 would fail to decode,
                # failing every fetch of the queue. Such a job is dead-lettered on its own.
                for row in db.execute(
                    "SELECT priority, seq, CAST(id AS BLOB), queue, body, delivery, deaths, typeof(id)"
                    " FROM jobs WHERE queue = ? AND lease_owner IS NULL AND eta IS NULL"
                    " ORDER BY priority DESC, seq LIMIT ?",
                    (queue, limit),
                ):
                    candidates.append((-row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7]))
            candidates.sort()
            chosen = []
            for c in candidates[:limit]:
                try:
                    if c[7] != "text":
                        raise UnicodeDecodeError("utf-8", c[2], 0, len(c[2]), f"a {c[7]} id, not text")
                    chosen.append((c[2].decode(), c[3], c[4], c[5], c[6]))
                except UnicodeDecodeError:
                    self._quarantine(db, c[2], c[3], c[4], c[6], now)
            if not chosen:
                return []
            ids = [c[0] for c in chosen]
            marks = ",".join("?" * len(ids))
            live = f"SELECT id FROM revoked WHERE id IN ({marks}) AND expires_at > ?"
            revoked = {r[0] for r in db.execute(live, [*ids, now])}
            out: list[Delivery] = []
            leased: list[tuple[str, float, str]] = []
            for job_id, queue, body, delivery, deaths in chosen:
                # A revoked job is handed out flagged: its worker settles it as REVOKED, never
                # running it, with its history (records.py Delivery.revoked).
                leased.append((owner, now + lease_timeout, job_id))
                out.append(
                    Delivery(job_id, queue, body, abs(delivery) + 1, deaths, delivery > 0, job_id in revoked)
                )
            db.executemany(
                "UPDATE jobs SET lease_owner = ?, lease_expires = ?, delivery = ABS(delivery) + 1,"
                " running = 0 WHERE id = ?",
                leased,
            )
        return out

    def _quarantine(
        self, db: sqlite3.Connection, raw_id: bytes, queue: str, body: bytes, deaths: int, now: float
    ) -> None:
        """Dead-letter a job whose id is not UTF-8 text, under a readable id (see _lease)."""
        task_id = "malformed-id:" + raw_id.decode(errors="backslashreplace")
        reason = f"malformed task id {raw_id!r}: not UTF-8 text (not written by a Conveyor producer)"
        db.execute("DELETE FROM jobs WHERE CAST(id AS BLOB) = ?", (raw_id,))
        db.execute(
            "INSERT OR REPLACE INTO dead_letters (id, queue, priority, body, reason, failed_at, deaths)"
            " VALUES (?, ?, 5, ?, ?, ?, ?)",
            (task_id, queue, body, reason, now, max(deaths, 0)),
        )
        self._store(db, task_id, states.FAILURE, malformed_id_payload(reason), now + 86400.0, 0)

    @_mapped
    def settle(self, outcomes: Sequence[Outcome], result_ttl: float) -> None:
        if not outcomes:
            return
        expires = time.time() + result_ttl
        leased = "id = ? AND delivery = ? AND lease_owner IS NOT NULL"
        applied: list[Outcome] = []  # the current ones, whose history entries are recorded
        joins: list[GroupJoin] = []  # chord members joining their group, applied together
        with self._conn.tx() as db:
            for o in outcomes:
                if o.kind == "ack":
                    if o.state is not None:
                        db.execute(
                            "INSERT OR REPLACE INTO results (id, state, payload, retries, expires_at)"
                            f" SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM jobs WHERE {leased})",
                            (o.id, o.state, o.payload, o.retries, expires, o.id, o.delivery),
                        )
                    if db.execute(f"DELETE FROM jobs WHERE {leased}", (o.id, o.delivery)).rowcount:
                        applied.append(o)
                        if o.then is not None:
                            self._continue(db, o.then, expires, joins)
                elif o.kind == "retry":
                    cur = db.execute(  # a negative delivery: its next hand-out is not a redelivery
                        "UPDATE jobs SET body = COALESCE(?, body), retries = ?, info = COALESCE(?, info),"
                        " eta = ?, delivery = -delivery, running = 0,"
                        f" lease_owner = NULL, lease_expires = NULL WHERE {leased}",
                        (o.body, o.retries, o.payload, o.eta or time.time(), o.id, o.delivery),
                    )
                    if cur.rowcount:
                        applied.append(o)
                elif o.kind == "dead":
                    row = db.execute(
                        f"SELECT queue, priority, body, deaths FROM jobs WHERE {leased}", (o.id, o.delivery)
                    ).fetchone()
                    if row is None:
                        continue
                    db.execute("DELETE FROM jobs WHERE id = ?", (o.id,))
                    db.execute(
                        "INSERT OR REPLACE INTO dead_letters (id, queue, priority, body, reason,"
                        " failed_at, deaths) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (o.id, row[0], row[1], o.body or row[2], o.reason or "", time.time(), row[3]),
                    )
                    self._store(db, o.id, states.FAILURE, o.payload, expires, o.retries)
                    applied.append(o)
                    if o.then is not None:
                        self._continue(db, o.then, expires, joins)
                elif o.kind == "died":
                    cur = db.execute(
                        "UPDATE jobs SET lease_owner = NULL, lease_expires = NULL,"
                        f" deaths = MAX(deaths, 0) + 1, running = 0 WHERE {leased}",
                        (o.id, o.delivery),
                    )
                    if cur.rowcount and o.reason:  # its death limit reached: to the dead letters
                        db.execute(
                            "INSERT OR REPLACE INTO dead_letters (id, queue, priority, body, reason,"
                            " failed_at, deaths) SELECT id, queue, priority, body, ?, ?, deaths"
                            " FROM jobs WHERE id = ?",
                            (o.reason, time.time(), o.id),
                        )
                        db.execute("DELETE FROM jobs WHERE id = ?", (o.id,))
                        self._store(db, o.id, states.FAILURE, o.payload, expires, o.retries)
                        applied.append(o)
                        if o.then is not None:
                            self._continue(db, o.then, expires, joins)
                elif o.kind == "start":
                    db.execute(f"UPDATE jobs SET deaths = -1 WHERE {leased}", (o.id, o.delivery))
                elif o.kind == "running":
                    db.execute(f"UPDATE jobs SET running = 1 WHERE {leased}", (o.id, o.delivery))
                else:  # release
                    db.execute(
                        "UPDATE jobs SET lease_owner = NULL, lease_expires = NULL, deaths = MAX(deaths, 0),"
                        f" running = 0 WHERE {leased}",
                        (o.id, o.delivery),
                    )
            if joins:
                self._join(db, joins, expires)
            self._record(db, applied)

    @_mapped
    def heartbeat(
        self, owner: str, lease_timeout: float, info: bytes, running: Sequence[tuple[str, int]] = ()
    ) -> dict[str, bool]:
        now = time.time()
        with self._conn.tx() as db:
            db.execute(
                "UPDATE jobs SET lease_expires = ? WHERE lease_owner = ?", (now + lease_timeout, owner)
            )
            if running:
                db.executemany(
                    "UPDATE jobs SET running = 1 WHERE id = ? AND delivery = ? AND lease_owner = ?",
                    [(task_id, delivery, owner) for task_id, delivery in running],
                )
            db.execute(
                "INSERT OR REPLACE INTO workers (name, heartbeat, info) VALUES (?, ?, ?)", (owner, now, info)
            )
            rows = db.execute(
                "SELECT j.id, r.terminate FROM jobs j JOIN revoked r ON r.id = j.id WHERE j.lease_owner = ?",
                (owner,),
            ).fetchall()
        return {row[0]: bool(row[1]) for row in rows}

    @_mapped
    def reclaim(
        self, max_deaths: int, result_ttl: float, lost: LostContinuation | None = None
    ) -> ReclaimReport:
        report = ReclaimReport()
        now = time.time()
        expired_sql = (
            "SELECT id, deaths, retries, running FROM jobs"
            " WHERE lease_owner IS NOT NULL AND lease_expires < ?"
        )
        if self._conn.db().execute(expired_sql + " LIMIT 1", (now,)).fetchone() is None:
            return report  # the common case: a read, no write lock
        joins: list[GroupJoin] = []
        with self._conn.tx() as db:
            for job_id, previous_deaths, retries, running in db.execute(expired_sql, (now,)).fetchall():
                # Only a job its worker said was running counts a death; a prefetched one did
                # not kill anyone.
                deaths = previous_deaths + 1 if previous_deaths >= 0 and running else previous_deaths
                if deaths < 0 or deaths >= max_deaths:
                    self._dead_letter_lost(db, job_id, deaths, retries, now, result_ttl, lost, joins)
                    report.dead.append(job_id)
                else:
                    db.execute(
                        "UPDATE jobs SET lease_owner = NULL, lease_expires = NULL, deaths = ?, running = 0"
                        " WHERE id = ?",
                        (deaths, job_id),
                    )
                    report.requeued.append(job_id)
            if joins:
                self._join(db, joins, now + result_ttl)
        return report

    def _dead_letter_lost(
        self,
        db: sqlite3.Connection,
        job_id: str,
        deaths: int,
        retries: int,
        now: float,
        result_ttl: float,
        lost: LostContinuation | None,
        joins: list[GroupJoin],
    ) -> None:
        reason = worker_lost_reason(deaths)
        body = db.execute("SELECT body FROM jobs WHERE id = ?", (job_id,)).fetchone() if lost else None
        db.execute(
            "INSERT OR REPLACE INTO dead_letters (id, queue, priority, body, reason, failed_at, deaths)"
            " SELECT id, queue, priority, body, ?, ?, ? FROM jobs WHERE id = ?",
            (reason, now, deaths, job_id),
        )
        db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        payload = worker_lost_payload(reason, retries)
        self._store(db, job_id, states.FAILURE, payload, now + result_ttl, retries)
        then = lost(job_id, body[0], states.FAILURE, payload) if lost and body else None
        if then is not None:
            self._continue(db, then, now + result_ttl, joins)

    @_mapped
    def reconcile(self, owner: str, held: Collection[str]) -> list[str]:
        keep = set(held)
        given_back: list[str] = []
        with self._conn.tx() as db:
            rows = db.execute("SELECT id, deaths FROM jobs WHERE lease_owner = ?", (owner,)).fetchall()
            for job_id, deaths in rows:
                if job_id in keep:
                    continue
                if deaths < 0:
                    # An at-most-once task that started: never run it again. Parked for the
                    # next reclaim, which dead-letters it with its workflow's continuation.
                    db.execute(
                        "UPDATE jobs SET lease_owner = ?, lease_expires = 0 WHERE id = ?",
                        (owner + LOST_SUFFIX, job_id),
                    )
                else:
                    db.execute(
                        "UPDATE jobs SET lease_owner = NULL, lease_expires = NULL, running = 0 WHERE id = ?",
                        (job_id,),
                    )
                given_back.append(job_id)
        return given_back

    @_mapped
    def unregister_worker(self, owner: str) -> None:
        with self._conn.tx() as db:
            db.execute("DELETE FROM workers WHERE name = ?", (owner,))
