"""The coordination half of the Redis broker: small atomic key/value operations (locks,
schedules, slot claims, counters) under ``P:kv:<key>``, expiring by Redis TTL.

A zset of key names (``P:kvindex``) serves ``kv_scan`` by lex range instead of a SCAN over the
whole database, which holds every result key too.
"""

from __future__ import annotations

import time

from ..base import KeyValueStore
from ..records import KVEntry
from .connection import RedisParts


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class RedisCoordination(RedisParts, KeyValueStore):
    def kv_get(self, key: str) -> KVEntry | None:
        name = self._keys.kv(key)
        with self._conn.errors():
            pipe = self._conn.client.pipeline(transaction=True)
            pipe.get(name)
            pipe.pttl(name)
            value, ttl_ms = pipe.execute()
        if value is None:
            return None
        return KVEntry(value, None if ttl_ms < 0 else time.time() + ttl_ms / 1000)

    def kv_put(self, key: str, value: bytes, ttl: float | None = None, only_if_absent: bool = False) -> bool:
        name = self._keys.kv(key)
        with self._conn.errors():
            if ttl is not None and ttl <= 0:
                # Expired on arrival: nothing to store. It "was set" unless the key was present.
                if only_if_absent:
                    return not self._conn.client.exists(name)
                self._conn.client.delete(name)
                return True
            pipe = self._conn.client.pipeline(transaction=True)
            pipe.set(name, value, px=None if ttl is None else _ms(ttl), nx=only_if_absent)
            pipe.zadd(self._keys.kv_index, {key: 0})
            stored, _ = pipe.execute()
        return bool(stored)

    def kv_compare_and_set(
        self, key: str, expected: bytes | None, value: bytes | None, ttl: float | None = None
    ) -> bool:
        k = self._keys
        delete = value is None or (ttl is not None and ttl <= 0)
        args = [
            key,
            "0" if expected is None else "1",
            expected or b"",
            "delete" if delete else "set",
            value or b"",
            "" if ttl is None or delete else _ms(ttl),
        ]
        matched = self._conn.run(self._conn.scripts.kv_cas, [k.kv(key), k.kv_index], args)
        return bool(matched)

    def kv_scan(self, prefix: str) -> dict[str, KVEntry]:
        k = self._keys
        if prefix:
            raw = prefix.encode()
            # Names are UTF-8, which never contains byte 0xff: it bounds every name with the prefix.
            bounds = [b"[" + raw, b"(" + raw + b"\xff"]
        else:
            bounds = [b"-", b"+"]
        reply = self._conn.run(self._conn.scripts.kv_scan, [k.kv_index], [k.kv_prefix, *bounds])
        now = time.time()
        return {
            reply[i].decode(): KVEntry(reply[i + 1], None if reply[i + 2] < 0 else now + reply[i + 2] / 1000)
            for i in range(0, len(reply), 3)
        }

    def kv_incr(self, key: str, amount: int = 1) -> int:
        with self._conn.errors():
            pipe = self._conn.client.pipeline(transaction=True)
            pipe.incrby(self._keys.kv(key), amount)
            pipe.zadd(self._keys.kv_index, {key: 0})
            value, _ = pipe.execute()
        return int(value)
