"""The Redis broker's task history: a list of ids (latest written first), a sorted set of ids by
time per state other than SUCCESS, a hash of records and one of failed attempts, and a hash of
counters per minute (keys.py has the table).

Writing is in settle.lua (``history_args`` adds an outcome's entry to its record there).
Listing walks the history list (for a state other than SUCCESS, that state's sorted set, within
the time range) newest first and filters the rest in Python: one range read and one HMGET per
slice.
"""

from __future__ import annotations

from collections.abc import Sequence

from ... import states
from ...exceptions import DecodeError
from ...taskrecord import decode_record
from ..base import TaskHistory
from ..history import COUNTERS_KEPT, HISTORY_STATES, matches, minute, requeued_record, tally
from ..records import (
    HeldJob,
    HistoryEntry,
    HistoryQuery,
    HistoryRow,
    MinuteCounts,
    Outcome,
    PendingJob,
    SearchReach,
)
from .connection import Arg, RedisParts

SCAN_SLICE = 500  # ids read per round while listing
TRIM_SLICE = 1000  # records one trimming call drops
SEARCH_SCAN = 100_000  # records a text search reads at most, newest first (search_history)
CLOCK_SLACK = 300.0  # seconds: a --since scan of the list stops this far past its bound
_NO_ENTRY: tuple[Arg, ...] = ("",)


def history_args(o: Outcome) -> tuple[Arg, ...]:
    """The arguments settle.lua reads after an outcome's record: its history entry, or none."""
    e = o.history
    if e is None:
        return _NO_ENTRY
    head = f"{e.state}|{e.at!r}|{e.runtime!r}|{1 if e.retries else 0}|{e.name}"
    return (head, e.record + b"\n" + (o.payload or b""), e.attempt or b"")


def _row(task_id: str, value: bytes, attempts: bytes | None) -> HistoryRow:
    record, _, payload = value.partition(b"\n")
    return HistoryRow(task_id, record, payload or None, tuple(attempts.split(b"\n")) if attempts else ())


class RedisHistory(RedisParts, TaskHistory):
    def record_history(self, entries: Sequence[tuple[str, HistoryEntry, bytes | None]]) -> None:
        if not entries:
            return
        k = self._keys
        args: list[Arg] = [k.history_state_prefix, k.counts_prefix, int(COUNTERS_KEPT * 1000), len(entries)]
        for task_id, e, payload in entries:
            args += [task_id, e.state, repr(e.at), e.record + b"\n" + (payload or b""), e.attempt or b""]
        for (m, name), (processed, failed, retried, runtime) in tally(e for _, e, _ in entries).items():
            args += [m, name, int(processed), int(failed), int(retried), repr(runtime)]
        keys = [k.history, k.history_records, k.history_attempts]
        self._conn.run(self._conn.scripts.history_add, keys, args)

    def history(self, query: HistoryQuery, limit: int = 50, offset: int = 0) -> list[HistoryRow]:
        return self._scan(query, limit, offset, None)[0]

    def search_history(
        self, query: HistoryQuery, limit: int = 50, offset: int = 0
    ) -> tuple[list[HistoryRow], SearchReach | None]:
        # Redis has no text index (no search module assumed): a search reads records newest
        # first and matches them here, about 1 s per 300,000 records. Bounded, so a search that
        # matches little answers in a fraction of a second and says how far back it looked.
        return self._scan(query, limit, offset, SEARCH_SCAN if query.search else None)

    def _scan(
        self, query: HistoryQuery, limit: int, offset: int, bound: int | None
    ) -> tuple[list[HistoryRow], SearchReach | None]:
        """Read ids newest first (the list, or a state's index by time), match their records
        here, until the page is full, the history ends, or ``bound`` ids were read."""
        k = self._keys
        state = query.state
        by_state = state is not None and state != states.SUCCESS
        found: list[HistoryRow] = []
        seen: set[bytes] = set()  # a requeued dead letter can be in the list twice
        skipped, start = 0, 0
        last = b""  # the last record read: how far back a bounded search got
        client = self._conn.client
        with self._conn.errors():
            while len(found) < limit:
                if bound is not None and start >= bound:
                    return self._with_attempts(found), SearchReach(start, _finished(last))
                size = SCAN_SLICE if bound is None else min(SCAN_SLICE, bound - start)
                if by_state:
                    ids = self._state_slice(k.history_state_prefix + str(state), query, start, size)
                else:
                    ids = client.lrange(k.history, start, start + size - 1)  # type: ignore[assignment]
                if not ids:
                    break
                start += len(ids)
                values: list[bytes | None] = client.hmget(k.history_records, ids)  # type: ignore[assignment]
                for raw, value in zip(ids, values, strict=True):
                    if value is None or raw in seen:
                        continue  # trimmed meanwhile, or an older entry of a task listed already
                    seen.add(raw)
                    task_id = raw.decode(errors="replace")
                    record = last = value.partition(b"\n")[0]
                    if not matches(query, task_id, record):
                        if not by_state and query.since is not None and _before(record, query.since):
                            return self._with_attempts(found), None  # the list is in time order: done
                        continue
                    if skipped < offset:
                        skipped += 1
                        continue
                    found.append(_row(task_id, value, None))
                    if len(found) == limit:
                        break
        return self._with_attempts(found), None

    def _with_attempts(self, found: list[HistoryRow]) -> list[HistoryRow]:
        if not found:
            return found
        with self._conn.errors():
            attempts: list[bytes | None] = self._conn.client.hmget(  # type: ignore[assignment]
                self._keys.history_attempts, [r.id for r in found]
            )
        return [_row(r.id, _join(r), a) for r, a in zip(found, attempts, strict=True)]

    def _state_slice(self, index: str, query: HistoryQuery, start: int, size: int) -> list[bytes]:
        high = "+inf" if query.until is None else f"({query.until!r}"
        low = "-inf" if query.since is None else repr(query.since)
        ids: list[bytes] = self._conn.client.zrevrangebyscore(index, high, low, start, size)  # type: ignore[assignment]
        return ids

    def pending(self, delayed: bool, limit: int = 50, offset: int = 0) -> list[PendingJob]:
        # Each queue's list (per priority) or delayed set holds its newest (or soonest) jobs at
        # one end: reading offset + limit from each and merging is exact, and bounded.
        k = self._keys
        want = offset + limit
        client = self._conn.client
        with self._conn.errors():
            queues = sorted(q.decode() for q in client.smembers(k.queues))  # type: ignore[union-attr]
            pipe = client.pipeline(transaction=False)
            for queue in queues:
                if delayed:
                    pipe.zrange(k.delayed(queue), 0, want - 1, withscores=True)
                else:
                    for priority in range(10):
                        pipe.lrange(k.ready(queue, priority), -want, -1)
            replies = pipe.execute()
            if delayed:
                due = sorted((eta, raw) for reply in replies for raw, eta in reply)[offset:want]
                ids = [raw for _, raw in due]
                etas: list[float | None] = [eta for eta, _ in due]
            else:
                ids = [raw for reply in replies for raw in reply]
            if not ids:
                return []
            pipe = client.pipeline(transaction=False)
            pipe.hmget(k.job_meta, ids)
            pipe.hmget(k.job_body, ids)
            pipe.hmget(k.job_retry, ids)
            pipe.hmget(k.job_state, ids)
            metas, bodies, retries, states_ = pipe.execute()
        jobs = []
        rows = zip(ids, metas, bodies, retries, states_, strict=True)
        for i, (raw, meta, body, retry, state) in enumerate(rows):
            if meta is None or body is None:
                continue  # settled or removed between the reads
            priority, seq, queue = meta.decode().split("|", 2)
            eta = etas[i] if delayed else None
            done = 0 if retry is None else int(retry.split(b"|", 1)[0])
            job_id = raw.decode(errors="replace")
            job = PendingJob(job_id, queue, body, int(priority), eta, done, _deaths(state))
            jobs.append((int(seq), job))
        if delayed:
            return [job for _, job in jobs]
        jobs.sort(key=lambda item: item[0], reverse=True)
        return [job for _, job in jobs[offset:want]]

    def _job_fields(self, task_id: str) -> list[bytes | None]:
        """A job's meta, body, state and retry fields (lib.lua), each None where absent."""
        k = self._keys
        with self._conn.errors():
            pipe = self._conn.client.pipeline(transaction=False)
            for key in (k.job_meta, k.job_body, k.job_state, k.job_retry):
                pipe.hget(key, task_id)
            return pipe.execute()

    def pending_job(self, task_id: str) -> PendingJob | None:
        meta, body, state, retry = self._job_fields(task_id)
        if meta is None or body is None or (state is not None and state.split(b"|", 2)[2]):
            return None  # unknown, finished, or leased ("delivery|deaths|owner")
        priority, _, queue = meta.decode().split("|", 2)
        with self._conn.errors():
            eta = self._conn.client.zscore(self._keys.delayed(queue), task_id)
        done = 0 if retry is None else int(retry.split(b"|", 1)[0])
        return PendingJob(task_id, queue, body, int(priority), eta, done, _deaths(state))

    def held_job(self, task_id: str) -> HeldJob | None:
        meta, body, state, retry = self._job_fields(task_id)
        if meta is None or body is None or state is None:
            return None
        _, deaths, owner = state.split(b"|", 2)  # "delivery|deaths[r]|owner" (lib.lua)
        if not owner:
            return None
        priority, _, queue = meta.decode().split("|", 2)
        done = 0 if retry is None else int(retry.split(b"|", 1)[0])
        return HeldJob(
            task_id,
            queue,
            body,
            owner.decode(errors="replace"),
            int(deaths.rstrip(b"r")),
            int(priority),
            done,
        )

    def history_row(self, task_id: str) -> HistoryRow | None:
        k = self._keys
        with self._conn.errors():
            pipe = self._conn.client.pipeline(transaction=False)
            pipe.hget(k.history_records, task_id)
            pipe.hget(k.history_attempts, task_id)
            value, attempts = pipe.execute()
        return None if value is None else _row(task_id, value, attempts)

    def counters(self, since: float, until: float, name: str | None = None) -> list[MinuteCounts]:
        prefix = self._keys.counts_prefix
        minutes = list(range(minute(since) + (60 if since % 60 else 0), int(until), 60))
        out: list[MinuteCounts] = []
        with self._conn.errors():
            pipe = self._conn.client.pipeline(transaction=False)
            for m in minutes:
                pipe.hgetall(f"{prefix}{m}")
            replies = pipe.execute()
        for m, fields in zip(minutes, replies, strict=True):
            per: dict[str, list[float]] = {}
            for field, value in fields.items():
                kind, _, task = field.decode(errors="replace").partition(":")
                if name is not None and task != name:
                    continue
                row = per.setdefault(task, [0, 0, 0, 0.0])
                row["pfrt".index(kind)] = float(value)
            for task, v in sorted(per.items()):
                out.append(MinuteCounts(m, task, int(v[0]), int(v[1]), int(v[2]), v[3]))
        return out

    def trim_history(self, max_records: int, older_than: float) -> int:
        k = self._keys
        keys = [k.history, k.history_records, k.history_attempts]
        args: list[Arg] = [repr(older_than), max_records, TRIM_SLICE, k.history_state_prefix, *HISTORY_STATES]
        dropped = 0
        while True:
            # (Counters expire by themselves: settle.lua gives them a TTL of COUNTERS_KEPT.)
            n: int = self._conn.run(self._conn.scripts.history_trim, keys, args)
            dropped += n
            if n < TRIM_SLICE:
                return dropped


def _finished(record: bytes) -> float | None:
    try:
        return decode_record(record).finished
    except DecodeError:
        return None


def _before(record: bytes, since: float) -> bool:
    """The record's latest state is older than ``since`` by more than the clock skew between
    workers the list's order may hold."""
    try:
        finished = decode_record(record).finished
    except DecodeError:
        return False
    return finished is not None and finished < since - CLOCK_SLACK


def _join(row: HistoryRow) -> bytes:
    return row.record + b"\n" + (row.payload or b"")


def history_requeued(parts: RedisParts, before: dict[str, bytes]) -> None:
    """Dead letters just requeued (``before``: each one's stored value read before the
    requeue): their records say they are waiting again (history_requeued.lua)."""
    args: list[Arg] = [parts._keys.history_state_prefix]
    for task_id, value in before.items():
        record, _, payload = value.partition(b"\n")
        args += [task_id, value, requeued_record(record) + b"\n" + payload]
    if len(args) > 1:
        parts._conn.run(parts._conn.scripts.history_requeued, [parts._keys.history_records], args)


def history_values(parts: RedisParts, task_ids: Sequence[str]) -> dict[str, bytes]:
    """The stored history values (record and payload) of these tasks, where they have one."""
    with parts._conn.errors():
        values: list[bytes | None] = parts._conn.client.hmget(parts._keys.history_records, task_ids)  # type: ignore[assignment]
    return {i: v for i, v in zip(task_ids, values, strict=True) if v is not None}


def _deaths(state: bytes | None) -> int:
    """The deaths in a job's state, "delivery|deaths[r]|owner" (lib.lua); never leased: none."""
    return 0 if state is None else int(state.split(b"|", 2)[1].rstrip(b"r") or 0)
