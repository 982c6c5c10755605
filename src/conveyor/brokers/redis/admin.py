"""The operator half of the Redis broker: queue stats, purge, workers, dead letters, cleanup."""

from __future__ import annotations

import time
from collections.abc import Sequence

from ..base import BrokerAdmin
from ..records import DeadLetter, QueueStats, WorkerRecord
from .connection import Arg, RedisParts
from .history import history_requeued, history_values

WORKER_EXPIRY = 30.0  # a worker with no heartbeat for this long is not listed
WORKER_FORGET = WORKER_EXPIRY * 10  # ... and is deleted by cleanup after this long
KV_INDEX_SLICE = 1000  # coordination key names cleanup checks per call


class RedisAdmin(RedisParts, BrokerAdmin):
    def queue_stats(self) -> dict[str, QueueStats]:
        k = self._keys
        reply = self._conn.run(
            self._conn.scripts.queue_stats,
            [*k.job_store, k.queues, k.leases],
            [k.ready_prefix, k.delayed_prefix, k.owned_prefix],
        )
        stats = {}
        for i in range(0, len(reply), 14):
            per = {p: n for p, n in enumerate(reply[i + 3 : i + 13]) if n}
            stats[reply[i].decode()] = QueueStats(
                sum(per.values()), reply[i + 1], reply[i + 2], per, reply[i + 13]
            )
        return dict(sorted(stats.items()))

    def purge(self, queues: Sequence[str]) -> int:
        if not queues:
            return 0
        k = self._keys
        args = [k.ready_prefix, k.delayed_prefix, k.notify_prefix, *dict.fromkeys(queues)]
        count: int = self._conn.run(self._conn.scripts.purge, k.job_store, args)
        return count

    def bring_forward(self, task_ids: Sequence[str]) -> int:
        if not task_ids:
            return 0
        k = self._keys
        args = [k.ready_prefix, k.delayed_prefix, k.notify_prefix, *dict.fromkeys(task_ids)]
        moved: int = self._conn.run(self._conn.scripts.bring_forward, k.job_store, args)
        return moved

    def workers(self) -> list[WorkerRecord]:
        k = self._keys
        cutoff = time.time() - WORKER_EXPIRY
        reply = self._conn.run(self._conn.scripts.workers, [k.workers, k.beats], [cutoff])
        records = [
            WorkerRecord(reply[i].decode(), float(reply[i + 1]), reply[i + 2])
            for i in range(0, len(reply), 3)
        ]
        return sorted(records, key=lambda w: w.name)

    def dead_letters(self, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        if limit <= 0:
            return []
        k = self._keys
        reply = self._conn.run(
            self._conn.scripts.dead_letters, [k.dead_letters], [k.dead_letter_prefix, max(0, offset), limit]
        )
        return [
            DeadLetter(
                reply[i].decode(),
                reply[i + 1].decode(),
                reply[i + 2],
                reply[i + 3].decode(),
                float(reply[i + 4]),
                int(reply[i + 5]),
            )
            for i in range(0, len(reply), 6)
        ]

    def dead_letter_count(self) -> int:
        with self._conn.errors():
            count: int = self._conn.client.zcard(self._keys.dead_letters)
        return count

    def delete_dead(self, task_ids: Sequence[str]) -> int:
        if not task_ids:
            return 0
        k = self._keys
        args = [k.dead_letter_prefix, *task_ids]
        deleted: int = self._conn.run(self._conn.scripts.delete_dead, [k.dead_letters], args)
        return deleted

    def requeue_dead(self, task_ids: Sequence[str]) -> int:
        if not task_ids:
            return 0
        k = self._keys
        before = history_values(self, task_ids)  # read first: a worker may record a new ending soon
        keys = [*k.job_store, k.dead_letters, k.seq, k.queues, k.revoked]
        args = [k.dead_letter_prefix, k.ready_prefix, k.notify_prefix, k.result_prefix, *task_ids]
        moved: list[bytes] = self._conn.run(self._conn.scripts.requeue_dead, keys, args)
        if before and moved:
            ids = {raw.decode() for raw in moved}
            history_requeued(self, {i: v for i, v in before.items() if i in ids})
        return len(moved)

    def purge_dead(self) -> int:
        k = self._keys
        count: int = self._conn.run(self._conn.scripts.purge_dead, [k.dead_letters], [k.dead_letter_prefix])
        return count

    def cleanup(self, dead_letter_ttl: float) -> None:
        # Results, waiter tokens and coordination keys expire by themselves (Redis TTL).
        k = self._keys
        now = time.time()
        keys = [k.revoked, k.dead_letters, k.workers, k.beats, k.kv_index, k.kv_index_cursor]
        args: list[Arg] = [now, now - dead_letter_ttl, now - WORKER_FORGET]
        args += (k.dead_letter_prefix, k.kv_prefix, KV_INDEX_SLICE)
        self._conn.run(self._conn.scripts.cleanup, keys, args)
