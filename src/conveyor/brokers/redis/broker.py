"""The Redis broker: ``redis://host:6379/0``, ``rediss://`` (TLS), ``unix:///path/redis.sock``.

Every job step is one Lua script (``scripts/*.lua``), so it is atomic and one round trip for a
whole batch: enqueue, fetch, settle, heartbeat and reclaim never cost a round trip per job.
The key layout is in keys.py; docs/redis.md explains what to configure (appendonly, noeviction),
and Sentinel/Cluster URLs (ha_url.py, ha.py).

Blocking without polling:
- ``fetch`` runs the fetch script; when it leases nothing it BLPOPs the queues' notify lists
  (``P:notify:<queue>``), which enqueue, release and reclaim nudge with a token. A token pushed
  between the script and the BLPOP stays in the list, so no wake-up is lost. At most one token
  waits per queue and a woken worker passes it on while work remains, so one new job wakes one
  idle worker, not all of them. The block ends early when the earliest delayed job of the
  queues comes due, plus a small random spread so idle workers do not all wake at that instant.
- ``wait`` registers the caller in ``P:waiting:<id>`` (atomically with reading the status) and
  BLPOPs ``P:done:<id>``; whatever finishes the task pushes one token per registered waiter.
Blocking calls block in slices shorter than the socket timeout, so a dead server is noticed.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import redis
from redis.exceptions import RedisClusterException

from ... import states
from ..base import LOST_SUFFIX, AsyncProducer, Broker, LostContinuation
from ..history import COUNTERS_KEPT
from ..payloads import malformed_id_payload, revoked_payload, worker_lost_payload, worker_lost_reason
from ..records import Delivery, JobSpec, Outcome, ReclaimReport, StatusRecord
from .admin import RedisAdmin
from .codec import pack_result, unpack_result
from .connection import Arg, connect
from .coordination import RedisCoordination
from .history import RedisHistory, history_args
from .keys import Keys
from .url import parse_redis_url
from .workflows import RedisWorkflows, continuation_args, then_args

MAX_BLOCK = 8.0  # longest single BLPOP (below the default 10 s socket timeout)
MIN_BLOCK = 0.005  # Redis reads a blocking timeout in ms, and 0 means "forever"
DUE_SPREAD = 0.01  # seconds of random spread on waking for a delayed job
WAITER_SLACK = 10.0  # a waiter registration outlives its BLPOP by this much
PROMOTE_CAP = 1000  # most delayed jobs one fetch promotes per queue (the next one goes on)
RECLAIM_BATCH = 100  # most expired owners one reclaim call handles
QUARANTINE_RESULT_TTL = 86400.0  # a job quarantined at fetch (id not UTF-8) keeps its result this long
LOST_FETCHES_KEPT = 8


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _split_retry(raw: bytes) -> tuple[int, bytes | None]:
    """``b"2|{...}"`` -> ``(2, b"{...}")``: the job:retry field (see keys.py)."""
    retries, info = raw.split(b"|", 1)
    return int(retries), info or None


def _priority(priority: int) -> int:
    return 9 if priority > 9 else 0 if priority < 0 else int(priority)


class RedisBroker(RedisAdmin, RedisCoordination, RedisHistory, RedisWorkflows, Broker):
    """The production broker. Thread-safe; connects on first use.

    >>> broker = RedisBroker("redis://localhost:6390/0?prefix=shop")   # doctest: +SKIP
    >>> broker.enqueue([JobSpec("id-1", "default", b"{...}")])          # doctest: +SKIP
    [True]
    """

    def __init__(
        self, url: str = "redis://localhost:6379/0", transport_options: Mapping[str, Any] | None = None
    ) -> None:
        self.url = url
        parsed = self._url = parse_redis_url(url, dict(transport_options or {}))
        self._keys = Keys(parsed.prefix)
        self._conn = connect(parsed)
        # A blocking command must return before the socket timeout, or it would look like a
        # dead server; longer waits block in slices.
        self._max_block = max(0.05, min(parsed.socket_timeout - 1.0, MAX_BLOCK))
        # Per owner: nonces of fetch calls that failed after they may have run (reply lost).
        self._lost: dict[str, list[str]] = {}
        self._lost_lock = threading.Lock()
        k = self._keys
        self._enqueue_keys = [*k.job_store, k.seq, k.queues]
        self._enqueue_head: list[Arg] = [k.ready_prefix, k.delayed_prefix, k.notify_prefix, k.result_prefix]
        self._settle_keys = [
            *k.job_store,
            k.dead_letters,
            k.history,
            k.history_records,
            k.history_attempts,
            k.seq,
            k.queues,
        ]
        self._fetch_keys: dict[str, list[str]] = {}
        self._fetch_head: list[Arg] = [k.ready_prefix, k.delayed_prefix, k.notify_prefix]
        self._settle_head: list[Arg] = [
            k.ready_prefix,
            k.delayed_prefix,
            k.notify_prefix,
            k.result_prefix,
            k.waiting_prefix,
            k.done_prefix,
            k.owned_prefix,
            k.dead_letter_prefix,
        ]
        self._settle_history_head: list[Arg] = [
            k.history_state_prefix,
            k.counts_prefix,
            _ms(COUNTERS_KEPT),
            k.group_prefix,
        ]

    def close(self) -> None:
        self._conn.close()

    # -- producers -------------------------------------------------------------------------
    def enqueue(self, jobs: Sequence[JobSpec]) -> list[bool]:
        if not jobs:
            return []
        args = self._enqueue_args(jobs)
        added = self._conn.run_confirmed(self._conn.scripts.enqueue, self._enqueue_keys, args)
        return [flag == 1 for flag in added]

    def _enqueue_args(self, jobs: Sequence[JobSpec]) -> list[Arg]:
        """The enqueue script's arguments for ``jobs`` (also sent by the async producer, aio.py)."""
        now = time.time()
        args = list(self._enqueue_head)
        for spec in jobs:
            eta = spec.eta
            args += (
                spec.id,
                spec.queue,
                _priority(spec.priority),
                "" if eta is None or eta <= now else repr(eta),
                spec.retries,
                spec.body,
            )
        return args

    def async_producer(self) -> AsyncProducer | None:
        if self._url.topology != "server":
            return None  # Sentinel and Cluster: the sync client in a thread (docs/user-guide.md)
        from .aio import RedisAsyncProducer

        return RedisAsyncProducer(self)

    def status(self, task_id: str) -> StatusRecord | None:
        return self._status(task_id, None)

    def _status(self, task_id: str, register_ms: int | None) -> StatusRecord | None:
        keys, args = self._status_call(task_id, register_ms)
        return self._status_record(self._conn.run_idempotent(self._conn.scripts.status, keys, args))

    def _status_call(self, task_id: str, register_ms: int | None) -> tuple[list[str], list[Arg]]:
        k = self._keys
        keys = [k.result(task_id), k.job_meta, k.job_state, k.job_retry, k.waiting(task_id)]
        return keys, [task_id, register_ms or ""]

    @staticmethod
    def _status_record(reply: Any) -> StatusRecord | None:
        """The status script's reply as a record (shared with the async producer)."""
        if reply[0] == 1:
            return unpack_result(reply[1])
        if reply[0] == 0:
            return None
        state, retry = reply[1], reply[2]
        retries, info = (0, None) if retry is None else _split_retry(retry)
        if state is not None and state.split(b"|", 2)[2]:  # "delivery|deaths|owner": leased
            return StatusRecord(states.STARTED, None, retries)
        if retries > 0:
            return StatusRecord(states.RETRY, info, retries)
        return StatusRecord(states.PENDING, None, 0)

    def wait(self, task_id: str, timeout: float | None) -> StatusRecord | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        done = self._keys.done(task_id)
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return self.status(task_id)
            block = max(MIN_BLOCK, self._max_block if remaining is None else min(remaining, self._max_block))
            record = self._status(task_id, _ms(block + WAITER_SLACK))
            if record is not None and record.state in states.READY_STATES:
                return record
            with self._conn.errors():
                woken = self._conn.client.blpop([done], timeout=block)
            if woken is None:
                self._conn.run(self._conn.scripts.unwait, [self._keys.waiting(task_id)], [])

    def revoke(
        self, task_ids: Sequence[str], terminate: bool, ttl: float, lost: LostContinuation | None = None
    ) -> None:
        if not task_ids:
            return
        k = self._keys
        now = time.time()
        expires = now + ttl
        payload = revoked_payload()
        # The continuation of each job that may be dropped is built from its body first; the
        # script applies it only if it does drop that job (not leased), in the same step.
        bodies = self._bodies(list(task_ids)) if lost is not None else [None] * len(task_ids)
        per_task: list[Arg] = []
        for task_id, body in zip(task_ids, bodies, strict=True):
            then = lost(task_id, body, states.REVOKED, payload) if lost and body else None
            per_task += (task_id, *(then_args(then) if then is not None else ("",)))
        args: list[Arg] = [
            k.ready_prefix,
            k.delayed_prefix,
            k.result_prefix,
            k.waiting_prefix,
            k.done_prefix,
            f"{int(terminate)}|{expires!r}",
            pack_result(states.REVOKED, payload),
            _ms(ttl),
            k.notify_prefix,
            k.group_prefix,
            now,
            *per_task,
        ]
        self._conn.run(self._conn.scripts.revoke, [*k.job_store, k.revoked, k.seq, k.queues], args)

    def _bodies(self, task_ids: list[str]) -> list[bytes | None]:
        """The stored bodies of these jobs (None for one that is gone)."""
        with self._conn.errors():
            raw = self._conn.client.hmget(self._keys.job_body, task_ids)
        return [body if isinstance(body, bytes) else None for body in raw]

    def forget(self, task_id: str) -> None:
        with self._conn.errors():
            self._conn.client.delete(self._keys.result(task_id))

    # -- workers ---------------------------------------------------------------------------
    def fetch(
        self, queues: Sequence[str], owner: str, limit: int, lease_timeout: float, wait: float
    ) -> list[Delivery]:
        names = list(dict.fromkeys(queues))
        if limit <= 0 or not names:
            return []
        notify = [self._keys.notify(q) for q in names]
        deadline = time.monotonic() + wait
        while True:
            deliveries, next_eta = self._lease(names, owner, limit, lease_timeout)
            if deliveries:
                return deliveries
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            block = min(remaining, self._max_block)
            if next_eta is not None:
                block = min(block, max(0.0, next_eta - time.time()) + random.uniform(0.0, DUE_SPREAD))
            with self._conn.errors():
                self._conn.client.blpop(notify, timeout=max(block, MIN_BLOCK))

    def _lease(
        self, queues: list[str], owner: str, limit: int, lease_timeout: float
    ) -> tuple[list[Delivery], float | None]:
        now = time.time()
        nonce = secrets.token_hex(8)
        with self._lost_lock:
            lost = ",".join(self._lost.get(owner, ()))
        keys = self._fetch_keys.get(owner)
        if keys is None:
            k = self._keys
            keys = self._fetch_keys[owner] = [
                *k.job_store,
                k.leases,
                k.revoked,
                k.owned(owner),
                k.fetched(owner),
            ]
        args = [*self._fetch_head, now, limit, now + lease_timeout, owner, nonce, lost]
        args += (PROMOTE_CAP, *queues)
        try:
            reply = self._conn.scripts.fetch(keys, args)
        except (redis.RedisError, RedisClusterException) as exc:
            # The script may have run and leased jobs whose reply never arrived. The next
            # fetch names this call, and the script hands those jobs out again.
            with self._lost_lock:
                self._lost[owner] = [*self._lost.get(owner, ()), nonce][-LOST_FETCHES_KEPT:]
            raise self._conn.error(exc) from exc
        if lost:
            with self._lost_lock:
                self._lost.pop(owner, None)
        out: list[Delivery] = []
        for i in range(1, len(reply), 6):
            try:
                job_id = reply[i].decode()
            except UnicodeDecodeError:
                self._quarantine(reply[i], owner, reply[i + 1], reply[i + 2], int(reply[i + 4]))
                continue
            queue, body, delivery, deaths = reply[i + 1].decode(), reply[i + 2], reply[i + 3], reply[i + 4]
            flag = reply[i + 5]  # 1: redelivered; 2: revoked (fetch.lua)
            out.append(Delivery(job_id, queue, body, delivery, deaths, flag == 1, flag == 2))
        return out, (float(reply[0]) if reply[0] else None)

    def settle(self, outcomes: Sequence[Outcome], result_ttl: float) -> None:
        if not outcomes:
            return
        args = [*self._settle_head, time.time(), _ms(result_ttl), *self._settle_history_head]
        for o in outcomes:
            kind = o.kind
            if kind == "ack":
                result = b"" if o.state is None else pack_result(o.state, o.payload, o.retries)
                args += ("ack", o.id, o.delivery, result)
            elif kind == "retry":
                eta = repr(o.eta) if o.eta else ""
                args += ("retry", o.id, o.delivery, o.payload or b"", o.body or b"", eta, o.retries)
            elif kind == "dead":
                result = pack_result(states.FAILURE, o.payload, o.retries)
                args += ("dead", o.id, o.delivery, result, o.body or b"", o.reason or "")
            elif kind == "died":
                result = pack_result(states.FAILURE, o.payload, o.retries) if o.reason else b""
                args += ("died", o.id, o.delivery, result, o.reason or "")
            elif kind in ("start", "running", "release"):
                args += (kind, o.id, o.delivery)
            else:
                raise ValueError(f"unknown outcome kind {kind!r}")
            args += history_args(o)
            args += continuation_args(o)
        self._conn.run_confirmed(self._conn.scripts.settle, self._settle_keys, args)

    def heartbeat(
        self, owner: str, lease_timeout: float, info: bytes, running: Sequence[tuple[str, int]] = ()
    ) -> dict[str, bool]:
        k = self._keys
        now = time.time()
        keys = [*k.job_store, k.owned(owner), k.leases, k.revoked, k.workers, k.beats]
        args: list[Arg] = [now, now + lease_timeout, owner, info]
        for task_id, delivery in running:
            args += (task_id, delivery)
        reply = self._conn.run(self._conn.scripts.heartbeat, keys, args)
        return {reply[i].decode(): bool(reply[i + 1]) for i in range(0, len(reply), 2)}

    def reconcile(self, owner: str, held: Collection[str]) -> list[str]:
        k = self._keys
        keys = [*k.job_store, k.owned(owner), k.leases, k.owned(owner + LOST_SUFFIX)]
        reply = self._conn.run(
            self._conn.scripts.reconcile, keys, [k.ready_prefix, k.notify_prefix, owner, *held]
        )
        return [job_id.decode(errors="backslashreplace") for job_id in reply]

    def _quarantine(self, raw_id: bytes, owner: str, queue: bytes, body: bytes, deaths: int) -> None:
        """Dead-letter a leased job whose id is not UTF-8 (written into Redis by something other
        than Conveyor), under a readable id, so that it neither stalls its batch nor stays leased."""
        k = self._keys
        task_id = "malformed-id:" + raw_id.decode(errors="backslashreplace")
        reason = f"malformed task id {raw_id!r}: not UTF-8 (not written by a Conveyor producer)"
        payload = malformed_id_payload(reason)
        with self._conn.errors():
            pipe = self._conn.client.pipeline(transaction=True)
            for key in k.job_store:
                pipe.hdel(key, raw_id)
            pipe.srem(k.owned(owner), raw_id)
            now = time.time()
            fields: dict[str, bytes | str | float] = {"queue": queue, "priority": 5, "body": body}
            fields.update(reason=reason, failed_at=now, deaths=max(deaths, 0))
            pipe.hset(k.dead_letter_prefix + task_id, mapping=fields)  # type: ignore[arg-type]
            pipe.zadd(k.dead_letters, {task_id: now})
            pipe.set(k.result(task_id), pack_result(states.FAILURE, payload), px=_ms(QUARANTINE_RESULT_TTL))
            pipe.execute()

    def reclaim(
        self, max_deaths: int, result_ttl: float, lost: LostContinuation | None = None
    ) -> ReclaimReport:
        k = self._keys
        report = ReclaimReport()
        keys = [*k.job_store, k.leases, k.dead_letters, k.seq, k.queues]
        head: list[Arg] = [
            k.ready_prefix,
            k.notify_prefix,
            k.owned_prefix,
            k.dead_letter_prefix,
            k.result_prefix,
            k.waiting_prefix,
            k.done_prefix,
        ]
        tail: list[Arg] = [k.delayed_prefix, k.group_prefix]
        prepared: list[Arg] = []
        # Usually one call that finds nothing. Jobs due for the dead letters come back to be
        # given a reason and a FAILURE result here, and are moved by the second call.
        for _ in range(2):
            args = [*head, time.time(), max_deaths, _ms(result_ttl), RECLAIM_BATCH, *tail, *prepared]
            requeued, dead, pending = self._conn.run(self._conn.scripts.reclaim, keys, args)
            report.requeued += [job_id.decode() for job_id in requeued]
            report.dead += [job_id.decode() for job_id in dead]
            if not pending:
                break
            prepared = []
            ids = [pending[i].decode() for i in range(0, len(pending), 3)]
            # Their workflow continuations, applied with the move (canvas/lost.py).
            bodies = self._bodies(ids) if lost is not None else [None] * len(ids)
            for n, i in enumerate(range(0, len(pending), 3)):
                deaths, retries = int(pending[i + 1]), int(pending[i + 2])
                reason = worker_lost_reason(deaths)
                failure = worker_lost_payload(reason, retries)
                payload = pack_result(states.FAILURE, failure, retries)
                body = bodies[n]
                then = lost(ids[n], body, states.FAILURE, failure) if lost and body else None
                prepared += (pending[i], deaths, reason, payload, *(then_args(then) if then else ("",)))
        return report

    def unregister_worker(self, owner: str) -> None:
        k = self._keys
        with self._conn.errors():
            pipe = self._conn.client.pipeline(transaction=True)
            pipe.hdel(k.workers, owner)
            pipe.zrem(k.beats, owner)
            pipe.delete(k.fetched(owner))
            pipe.execute()
