"""The coordination half of the SQLite broker: small atomic key/value operations (locks,
schedules, slot claims, counters) in the ``kv`` table.

An expired row stays until ``cleanup`` deletes it, so every read filters on ``_LIVE`` and a
write over an expired key treats it as absent.
"""

from __future__ import annotations

import time

from ..base import KeyValueStore
from ..records import KVEntry
from .connection import SQLiteParts, _mapped

_LIVE = "(expires_at IS NULL OR expires_at > ?)"


class SQLiteCoordination(SQLiteParts, KeyValueStore):
    @_mapped
    def kv_get(self, key: str) -> KVEntry | None:
        row = (
            self._conn.db()
            .execute(f"SELECT value, expires_at FROM kv WHERE key = ? AND {_LIVE}", (key, time.time()))
            .fetchone()
        )
        return KVEntry(row[0], row[1]) if row else None

    @_mapped
    def kv_put(self, key: str, value: bytes, ttl: float | None = None, only_if_absent: bool = False) -> bool:
        now = time.time()
        expires = None if ttl is None else now + ttl
        with self._conn.tx() as db:
            if only_if_absent:
                cur = db.execute(
                    "INSERT INTO kv (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE"
                    " SET value = excluded.value, expires_at = excluded.expires_at"
                    " WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= ?",
                    (key, value, expires, now),
                )
                return cur.rowcount == 1
            db.execute(
                "INSERT OR REPLACE INTO kv (key, value, expires_at) VALUES (?, ?, ?)", (key, value, expires)
            )
            return True

    @_mapped
    def kv_compare_and_set(
        self, key: str, expected: bytes | None, value: bytes | None, ttl: float | None = None
    ) -> bool:
        now = time.time()
        with self._conn.tx() as db:
            row = db.execute(f"SELECT value FROM kv WHERE key = ? AND {_LIVE}", (key, now)).fetchone()
            if (row[0] if row else None) != expected:
                return False
            if value is None:
                db.execute("DELETE FROM kv WHERE key = ?", (key,))
            else:
                db.execute(
                    "INSERT OR REPLACE INTO kv (key, value, expires_at) VALUES (?, ?, ?)",
                    (key, value, None if ttl is None else now + ttl),
                )
            return True

    @_mapped
    def kv_scan(self, prefix: str) -> dict[str, KVEntry]:
        # LIKE with the prefix's own wildcards escaped: a key named "rate_limit:" must not match
        # "rateXlimit:".
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = (
            self._conn.db()
            .execute(
                "SELECT key, value, expires_at FROM kv"
                f" WHERE key LIKE ? ESCAPE '\\' AND {_LIVE} ORDER BY key",
                (escaped + "%", time.time()),
            )
            .fetchall()
        )
        return {r[0]: KVEntry(r[1], r[2]) for r in rows}

    @_mapped
    def kv_incr(self, key: str, amount: int = 1) -> int:
        with self._conn.tx() as db:
            # An expired counter starts again from 0 (and then never expires), as in Redis.
            db.execute(f"DELETE FROM kv WHERE key = ? AND NOT {_LIVE}", (key, time.time()))
            row = db.execute(
                "INSERT INTO kv (key, value, expires_at) VALUES (?, ?, NULL) ON CONFLICT (key) DO UPDATE"
                " SET value = CAST(CAST(CAST(kv.value AS INTEGER) + ? AS TEXT) AS BLOB) RETURNING value",
                (key, str(amount).encode(), amount),
            ).fetchone()
        return int(row[0])
