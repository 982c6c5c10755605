"""The coordination half of the memory broker: small key/value entries with expiry, in a dict.

An expired entry is dropped when a call meets it (``_live``), not by a timer.
"""

from __future__ import annotations

import time

from ..base import KeyValueStore
from ..records import KVEntry
from .state import MemoryParts


class MemoryCoordination(MemoryParts, KeyValueStore):
    def _live(self, key: str) -> KVEntry | None:
        entry = self._kv.get(key)
        if entry is not None and entry.expires_at is not None and entry.expires_at <= time.time():
            del self._kv[key]
            return None
        return entry

    def kv_get(self, key: str) -> KVEntry | None:
        with self._cond:
            return self._live(key)

    def kv_put(self, key: str, value: bytes, ttl: float | None = None, only_if_absent: bool = False) -> bool:
        with self._cond:
            if only_if_absent and self._live(key) is not None:
                return False
            self._kv[key] = KVEntry(value, None if ttl is None else time.time() + ttl)
            return True

    def kv_compare_and_set(
        self, key: str, expected: bytes | None, value: bytes | None, ttl: float | None = None
    ) -> bool:
        with self._cond:
            current = self._live(key)
            if (current.value if current else None) != expected:
                return False
            if value is None:
                self._kv.pop(key, None)
            else:
                self._kv[key] = KVEntry(value, None if ttl is None else time.time() + ttl)
            return True

    def kv_scan(self, prefix: str) -> dict[str, KVEntry]:
        with self._cond:
            keys = [k for k in self._kv if k.startswith(prefix)]
            return {k: e for k in keys if (e := self._live(k)) is not None}

    def kv_incr(self, key: str, amount: int = 1) -> int:
        with self._cond:
            current = self._live(key)
            value = int(current.value) + amount if current else amount
            self._kv[key] = KVEntry(str(value).encode(), current.expires_at if current else None)
            return value
