"""The SQLite broker's connections to its file: one per thread, WAL, the schema, error mapping.

- One connection per thread and process: sqlite3 connections are not shared across threads,
  and SQLite forbids using one inherited through ``fork``.
- WAL journal, so readers never block the writer; ``busy_timeout`` makes contenders for the
  write lock wait rather than fail.
- ``tx()`` is one ``BEGIN IMMEDIATE`` transaction: it takes the write lock up front, so two
  workers can never read the same ready job and both lease it.
- ``changed()`` reads ``PRAGMA data_version``, which moves only when *another* connection
  commits. It reads shared memory, not the tables, so an idle caller can check it every couple
  of milliseconds for almost nothing.
- Every SQLite failure a caller can meet becomes ``BrokerError`` (see ``_mapped``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Concatenate, ParamSpec, TypeVar

from ...exceptions import BrokerError, ConfigurationError

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound="SQLiteParts")

_SCHEMA = resources.files(__package__).joinpath("schema.sql").read_text()


def _use_wal(db: sqlite3.Connection) -> None:
    """Switch the file to WAL (a persistent, once-per-file change).

    Several processes opening a new file at once race for it, and SQLite answers the losers
    "database is locked" without waiting on the busy handler, so retry for a while.
    """
    deadline = time.monotonic() + 30.0
    while True:
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


# Text search of the history (admin.tasks(search=...), --search): a trigram index of each
# row's arguments, so a substring of three characters or more is found through the index instead
# of a scan of every record. External content (the text stays in history only); history.py adds
# a settle's rows and removes trimmed or replaced ones in the same transaction that writes or
# deletes them. detail='none': substring search needs only which rows hold a trigram, not where.
_SEARCH_INDEX = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS history_search USING fts5("
    "args, content='history', content_rowid='rowid', tokenize='trigram', detail='none')"
)
logger = logging.getLogger("conveyor.brokers.sqlite")


@functools.cache
def trigram_search() -> bool:
    """Whether this process's SQLite has FTS5 and its trigram tokenizer (SQLite 3.34 or newer,
    built with FTS5, as Python's own builds are). Without them the history's text search scans
    the records, as it did before the index: slower on a large history, the same answers."""
    db = sqlite3.connect(":memory:")
    try:
        db.execute("CREATE VIRTUAL TABLE probe USING fts5(a, tokenize='trigram')")
    except sqlite3.Error as exc:
        logger.warning(
            "SQLite %s has no FTS5 trigram tokenizer (%s): task-history search scans",
            sqlite3.sqlite_version,
            exc,
        )
        return False
    finally:
        db.close()
    return True


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is not None


def _add_search_index(db: sqlite3.Connection) -> None:
    if _has_table(db, "history_search"):
        return
    db.execute(_SEARCH_INDEX)
    # Just created: fill it from the history already there (a file from an earlier version;
    # a no-op on a new file). Two processes doing it at once is harmless: rebuild starts afresh.
    db.execute("INSERT INTO history_search (history_search) VALUES ('rebuild')")


def _upgrade(db: sqlite3.Connection) -> None:
    """Bring a file made by an earlier version up to the current schema (columns and the
    history's search index only added)."""
    if trigram_search():
        _add_search_index(db)
    columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    if "running" not in columns:
        with contextlib.suppress(sqlite3.OperationalError):  # another process just added it
            db.execute("ALTER TABLE jobs ADD COLUMN running INTEGER NOT NULL DEFAULT 0")


class Connections:
    """One broker's connections to one file, one per thread; thread-safe."""

    def __init__(self, path: str, synchronous: str) -> None:
        self.path = path
        self.search_index = trigram_search()  # the history's text-search index is kept
        self._synchronous = synchronous
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise ConfigurationError(f"directory of the sqlite database does not exist: {directory}")

    def db(self) -> sqlite3.Connection:
        """This thread's connection, opened (and the schema applied) on first use."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None or self._local.pid != os.getpid():
            # (A connection inherited through fork must never be used: SQLite forbids it.)
            db = self._connect()
            self._local.db = db
            self._local.pid = os.getpid()
            self._local.version = -1
        return db

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA busy_timeout=30000")
            _use_wal(db)
            db.execute(f"PRAGMA synchronous={self._synchronous}")
            db.executescript(_SCHEMA)
            _upgrade(db)
        except sqlite3.Error as exc:
            raise BrokerError(f"cannot open sqlite broker {self.path!r}: {exc}") from exc
        with self._all_lock:
            self._all.append(db)
        return db

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction on this thread's connection: commit, or roll back
        on any exception."""
        db = self.db()
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise BrokerError(f"sqlite broker unavailable: {exc}") from exc
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            # (SQLite may have rolled back already, e.g. on a full disk: then this fails too.)
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise

    def changed(self) -> bool:
        """True if another connection committed since the last call on this thread."""
        db = self.db()
        version = db.execute("PRAGMA data_version").fetchone()[0]
        changed: bool = version != self._local.version
        self._local.version = version
        return changed

    def close(self) -> None:
        with self._all_lock:
            for db in self._all:
                with contextlib.suppress(sqlite3.Error):
                    db.close()
            self._all.clear()
        self._local = threading.local()


class SQLiteParts:
    """What the broker's mixins share: the connections."""

    _conn: Connections


def _mapped(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Every SQLite failure a caller can meet ("database or disk is full", "disk I/O error",
    a file deleted under us) becomes ``BrokerError``, the one error producers and workers
    handle (publish retry, fetch backoff), never a raw ``sqlite3`` exception. Every public
    broker method wears it."""

    def wrapper(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise BrokerError(f"sqlite broker {self._conn.path!r} failed: {exc}") from exc

    return functools.update_wrapper(wrapper, method)  # type: ignore[return-value]
