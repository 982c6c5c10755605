"""The Redis broker's task history: a sorted set of ids by time (and one per state), a hash of
records and one of failed attempts, and a hash of counters per minute (keys.py has the table).

Writing is in settle.lua (``history_args`` adds an outcome's entry to its record there).
Listing walks the state's (for successes, the whole) sorted set newest first within the time range and
filters name, queue and search text in Python: one ZRANGE and one HMGET per slice.
"""

from __future__ import annotations

from ... import states
from ..base import TaskHistory
from ..history import HISTORY_STATES, matches, minute
from ..records import HistoryQuery, HistoryRow, MinuteCounts, Outcome
from .connection import Arg, RedisParts

SCAN_SLICE = 500  # ids read per round while listing
TRIM_SLICE = 1000  # records one trimming call drops
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
    def history(self, query: HistoryQuery, limit: int = 50, offset: int = 0) -> list[HistoryRow]:
        k = self._keys
        # Successes have no index of their own (settle.lua): they are found in the whole one.
        state = query.state
        index = k.history if state is None or state == states.SUCCESS else k.history_state_prefix + state
        high = "+inf" if query.until is None else f"({query.until!r}"
        low = "-inf" if query.since is None else repr(query.since)
        found: list[HistoryRow] = []
        skipped, start = 0, 0
        client = self._conn.client
        with self._conn.errors():
            while len(found) < limit:
                page: list[tuple[bytes, float]] = client.zrevrangebyscore(  # type: ignore[assignment]
                    index, high, low, start, SCAN_SLICE, withscores=True
                )
                if not page:
                    break
                start += len(page)
                values: list[bytes | None] = client.hmget(  # type: ignore[assignment]
                    k.history_records, [raw for raw, _ in page]
                )
                for (raw, at), value in zip(page, values, strict=True):
                    if value is None:
                        continue  # trimmed between the two reads
                    task_id = raw.decode(errors="replace")
                    record = value.partition(b"\n")[0]
                    if not matches(query, task_id, record, at):
                        continue
                    if skipped < offset:
                        skipped += 1
                        continue
                    found.append(_row(task_id, value, None))
                    if len(found) == limit:
                        break
            if found:
                attempts: list[bytes | None] = client.hmget(  # type: ignore[assignment]
                    k.history_attempts, [r.id for r in found]
                )
                found = [_row(r.id, _join(r), a) for r, a in zip(found, attempts, strict=True)]
        return found

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


def _join(row: HistoryRow) -> bytes:
    return row.record + b"\n" + (row.payload or b"")
