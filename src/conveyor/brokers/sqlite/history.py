"""The SQLite broker's task history: the ``history`` and ``counters`` tables (schema.sql).

``settle`` calls ``_record`` inside its transaction for the outcomes it applied, so a record is
never written for a stale outcome and never lost with a committed one.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from ... import states
from ..base import TaskHistory
from ..history import COUNTERS_KEPT, requeued_record, tally
from ..records import HeldJob, HistoryEntry, HistoryQuery, HistoryRow, MinuteCounts, Outcome, PendingJob
from .connection import SQLiteParts, _mapped

# Only rows the index has: telling it to forget a row it never took corrupts it ("database disk
# image is malformed"), and a row written by an earlier version of Conveyor on the same file
# (a rolling upgrade) was never indexed. history_search_docsize has one row per indexed rowid.
_UNINDEX = (
    "INSERT INTO history_search (history_search, rowid, args) SELECT 'delete', rowid, args FROM history"
    " WHERE rowid IN (SELECT id FROM history_search_docsize) AND"
)
# The rows appended since the newest indexed one: a settle's own rows, and any an earlier
# version appended meanwhile. Run by every settle that writes history, after its inserts, and by
# the trim (once a minute). Two seeks when nothing is missing.
_INDEX = (
    "INSERT INTO history_search (rowid, args) SELECT rowid, args FROM history"
    " WHERE rowid > (SELECT coalesce(max(id), 0) FROM history_search_docsize)"
)
TRIM_SLICE = 5000  # rows one trimming statement deletes (keeps the write lock short)

_INSERT = (
    "INSERT INTO history (id, state, at, name, queue, args, record, payload, attempts)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# A task that ran before (a retry) or waits again (a requeued dead letter) has a row in a state
# other than SUCCESS, found through history_open: its new state replaces that row, keeping the
# failed attempts recorded so far. One query per settle finds which tasks of the batch have one.
_EARLIER = "SELECT rowid, attempts FROM history WHERE id = ? AND state <> 'SUCCESS' ORDER BY rowid DESC"
_OPEN = "SELECT DISTINCT id FROM history WHERE state <> 'SUCCESS' AND id IN ({})"
_OPEN_SLICE = 500  # ids per IN list (well under SQLite's bound parameters)
_COUNT = (
    "INSERT INTO counters (minute, name, processed, failed, retried, runtime) VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (minute, name) DO UPDATE SET processed = processed + excluded.processed,"
    " failed = failed + excluded.failed, retried = retried + excluded.retried,"
    " runtime = runtime + excluded.runtime"
)


def _row(row: Sequence[Any]) -> HistoryRow:
    """(id, record, payload, attempts) -> HistoryRow; text where a blob belongs (a row written
    by hand) is read as UTF-8 rather than failing the listing."""
    record, payload, attempts = (v.encode() if isinstance(v, str) else v for v in row[1:4])
    split = tuple(bytes(attempts).split(b"\n")) if attempts else ()
    return HistoryRow(row[0], bytes(record), None if payload is None else bytes(payload), split)


class SQLiteHistory(SQLiteParts, TaskHistory):
    def _record(self, db: sqlite3.Connection, applied: list[Outcome]) -> None:
        """Store and count the entries of the outcomes this settle applied (in its transaction)."""
        entries: list[HistoryEntry] = []
        rows: list[tuple[object, ...]] = []
        recorded = [o for o in applied if o.history is not None]
        if not recorded:
            return
        has_row = _open_ids(db, [o.id for o in recorded])
        for o in recorded:
            e = o.history
            assert e is not None
            entries.append(e)
            attempts = e.attempt
            earlier = db.execute(_EARLIER, (o.id,)).fetchall() if o.id in has_row else []
            if earlier:
                for r in earlier:
                    _drop(db, "rowid = ?", (r[0],), self._conn.search_index)
                kept = earlier[0][1]  # the newest row's attempts
                if kept:
                    attempts = bytes(kept) + b"\n" + attempts if attempts else bytes(kept)
            rows.append((o.id, e.state, e.at, e.name, e.queue, e.args, e.record, o.payload, attempts))
        if not rows:
            return
        db.executemany(_INSERT, rows)
        if self._conn.search_index:
            # One statement for the batch: a trigger per row costs three times as much (measured).
            db.execute(_INDEX)
        db.executemany(_COUNT, [(m, n, *v) for (m, n), v in tally(entries).items()])

    @_mapped
    def record_history(self, entries: Sequence[tuple[str, HistoryEntry, bytes | None]]) -> None:
        if not entries:
            return
        with self._conn.tx() as db:
            self._record(db, [Outcome("ack", i, 0, payload=p, history=e) for i, e, p in entries])

    @_mapped
    def history(self, query: HistoryQuery, limit: int = 50, offset: int = 0) -> list[HistoryRow]:
        where: list[str] = ["1"]
        params: list[object] = []
        if query.state is not None and query.state != states.SUCCESS:
            where.append("state <> 'SUCCESS'")  # lets SQLite use the partial index history_state
        for column, value in (("state", query.state), ("name", query.name), ("queue", query.queue)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if query.since is not None:
            where.append("at >= ?")
            params.append(query.since)
        if query.until is not None:
            where.append("at < ?")
            params.append(query.until)
        if query.search:
            _search(query.search, where, params, self._conn.search_index)
        sql = (
            "SELECT id, record, payload, attempts FROM history WHERE "
            + " AND ".join(where)
            + " ORDER BY rowid DESC LIMIT ? OFFSET ?"
        )
        return [_row(r) for r in self._conn.db().execute(sql, (*params, limit, offset))]

    @_mapped
    def pending(self, delayed: bool, limit: int = 50, offset: int = 0) -> list[PendingJob]:
        where = "eta IS NOT NULL" if delayed else "eta IS NULL"
        order = "eta, seq" if delayed else "seq DESC"
        rows = self._conn.db().execute(
            "SELECT id, queue, body, priority, eta, retries, deaths FROM jobs"
            f" WHERE lease_owner IS NULL AND {where}"
            f" ORDER BY {order} LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [PendingJob(r[0], r[1], bytes(r[2]), r[3], r[4], r[5], r[6]) for r in rows]

    @_mapped
    def pending_job(self, task_id: str) -> PendingJob | None:
        r = (
            self._conn.db()
            .execute(
                "SELECT id, queue, body, priority, eta, retries, deaths FROM jobs"
                " WHERE id = ? AND lease_owner IS NULL",
                (task_id,),
            )
            .fetchone()
        )
        return None if r is None else PendingJob(r[0], r[1], bytes(r[2]), r[3], r[4], r[5], r[6])

    @_mapped
    def held_job(self, task_id: str) -> HeldJob | None:
        r = (
            self._conn.db()
            .execute(
                "SELECT id, queue, body, lease_owner, deaths, priority, retries FROM jobs"
                " WHERE id = ? AND lease_owner IS NOT NULL",
                (task_id,),
            )
            .fetchone()
        )
        return None if r is None else HeldJob(r[0], r[1], bytes(r[2]), r[3], r[4], r[5], r[6])

    @_mapped
    def history_row(self, task_id: str) -> HistoryRow | None:
        db = self._conn.db()
        columns = "SELECT id, record, payload, attempts, rowid FROM history"
        row = db.execute(
            f"{columns} WHERE id = ? AND state <> 'SUCCESS' ORDER BY rowid DESC LIMIT 1", (task_id,)
        ).fetchone()
        # A success is not indexed by id (schema.sql): found by a scan, newest first; after a
        # failure, only the rows written since (a dead letter requeued, then succeeded).
        since = 0 if row is None else row[4]
        later = db.execute(
            f"{columns} WHERE rowid > ? AND id = ? ORDER BY rowid DESC LIMIT 1", (since, task_id)
        ).fetchone()
        row = later or row
        return None if row is None else _row(row[:4])

    @_mapped
    def counters(self, since: float, until: float, name: str | None = None) -> list[MinuteCounts]:
        sql = (
            "SELECT minute, name, processed, failed, retried, runtime FROM counters"
            " WHERE minute >= ? AND minute < ?"
        )
        params: list[object] = [since, until]
        if name is not None:
            sql += " AND name = ?"
            params.append(name)
        rows = self._conn.db().execute(sql + " ORDER BY minute, name", params)
        return [MinuteCounts(*row) for row in rows]

    @_mapped
    def trim_history(self, max_records: int, older_than: float) -> int:
        dropped = 0
        indexed = self._conn.search_index
        if indexed:
            with self._conn.tx() as db:
                db.execute(_INDEX)
        while True:  # in slices from the oldest end, so settles get the write lock in between
            with self._conn.tx() as db:
                cur = _drop(
                    db,
                    "rowid IN (SELECT rowid FROM history ORDER BY rowid LIMIT ?) AND at < ?",
                    (TRIM_SLICE, older_than),
                    indexed,
                )
            dropped += cur.rowcount
            if cur.rowcount < TRIM_SLICE:
                break
        while True:
            # The cap by rowid, not COUNT(*): rowids grow by one per row written, so everything
            # at or below max(rowid) - max_records goes (a lookup, where a count would read the
            # whole table under the write lock). Rows replaced by a retried task's new state
            # leave gaps, so the table may keep a little fewer than max_records.
            with self._conn.tx() as db:
                top = db.execute("SELECT MAX(rowid) FROM history").fetchone()[0] or 0
                cur = _drop(
                    db,
                    "rowid IN (SELECT rowid FROM history WHERE rowid <= ? ORDER BY rowid LIMIT ?)",
                    (top - max_records, TRIM_SLICE),
                    indexed,
                )
            dropped += cur.rowcount
            if cur.rowcount < TRIM_SLICE:
                break
        with self._conn.tx() as db:
            db.execute("DELETE FROM counters WHERE minute < ?", (time.time() - COUNTERS_KEPT,))
        return dropped


def _drop(db: sqlite3.Connection, where: str, params: tuple[object, ...], indexed: bool) -> sqlite3.Cursor:
    """Delete the history rows ``where`` selects, and their entries in the search index (an
    external-content index must be told the old text of each row it forgets)."""
    if indexed:
        db.execute(f"{_UNINDEX} {where}", params)
    return db.execute(f"DELETE FROM history WHERE {where}", params)


def _search(text: str, where: list[str], params: list[object], indexed: bool) -> None:
    """The conditions of a case-insensitive search of the arguments (a substring) or the id.

    Three characters or more go through the trigram index (history_search): a MATCH of every
    trigram of the text finds the rows holding them all, reading the index alone, and instr()
    then checks the text itself, literally (% and _ included). Reading the index alone matters:
    a row deleted without the index being told (by an earlier version during a rolling upgrade)
    is simply not found in the table, where a LIKE on the index would fail reading its text.
    Ids are not in that index (their random trigrams tripled its cost per settle: measured in
    docs/dashboard.md): a whole task id finds its record when it is not a success (the index
    history_open); ``conveyor task ID`` finds any. Shorter texts have no trigram: they scan the
    history newest first, ids included, as before; so does every search where this SQLite has no
    trigram tokenizer (connection.trigram_search)."""
    needle = text.lower()
    if len(needle) < 3 or not indexed:
        where.append("(instr(lower(args), ?) > 0 OR instr(lower(id), ?) > 0)")
        params += [needle, needle]
        return
    trigrams = sorted({needle[i : i + 3] for i in range(len(needle) - 2)})
    match = " ".join('"' + t.replace('"', '""') + '"' for t in trigrams)
    where.append(
        "(rowid IN (SELECT rowid FROM history_search WHERE history_search MATCH ?)"
        " AND instr(lower(args), ?) > 0"
        " OR rowid IN (SELECT rowid FROM history WHERE id = ? AND state <> 'SUCCESS'))"
    )
    params += [match, needle, text]


def _open_ids(db: sqlite3.Connection, ids: list[str]) -> set[str]:
    """Which of ``ids`` have a history row in a state other than SUCCESS."""
    found: set[str] = set()
    for at in range(0, len(ids), _OPEN_SLICE):
        part = ids[at : at + _OPEN_SLICE]
        sql = _OPEN.format(",".join("?" * len(part)))
        found.update(r[0] for r in db.execute(sql, part))
    return found


def history_requeued(db: sqlite3.Connection, task_ids: Sequence[str]) -> None:
    """(In requeue_dead's transaction) Dead letters back in their queue: each one's record
    says it is waiting again, and no longer lists as failed."""
    for task_id in task_ids:
        row = db.execute(
            "SELECT rowid, record FROM history WHERE id = ? AND state <> 'SUCCESS'"
            " ORDER BY rowid DESC LIMIT 1",
            (task_id,),
        ).fetchone()
        if row is not None:
            db.execute(
                "UPDATE history SET state = ?, record = ? WHERE rowid = ?",
                (states.PENDING, requeued_record(bytes(row[1])), row[0]),
            )
