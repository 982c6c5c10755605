"""SQLite-specific behaviour: URLs, WAL, and many processes opening one new file at once."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from conveyor.brokers.sqlite import SQLiteBroker, parse_sqlite_url
from conveyor.exceptions import ConfigurationError


def test_urls() -> None:
    assert parse_sqlite_url("sqlite:///rel/path.db") == ("rel/path.db", {})
    assert parse_sqlite_url("sqlite:////abs/path.db?synchronous=FULL") == (
        "/abs/path.db",
        {"synchronous": "FULL"},
    )
    for bad in ["sqlite://host/x.db", "sqlite:///", "redis://x"]:
        with pytest.raises(ConfigurationError):
            parse_sqlite_url(bad)


def test_bad_options_and_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="synchronous"):
        SQLiteBroker(f"sqlite:///{tmp_path / 'x.db'}?synchronous=SOMETIMES")
    with pytest.raises(ConfigurationError, match="does not exist"):
        SQLiteBroker(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")


def test_the_file_is_in_wal_mode(tmp_path: Path) -> None:
    SQLiteBroker(f"sqlite:///{tmp_path / 'w.db'}").queue_stats()
    assert sqlite3.connect(tmp_path / "w.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _open_and_enqueue(path: str, index: int) -> None:
    from conveyor.brokers import JobSpec

    broker = SQLiteBroker(f"sqlite:///{path}")
    broker.enqueue([JobSpec(f"job-{index}", "q", b"{}")])


def test_many_processes_can_create_and_open_one_new_file_at_once(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    for round_ in range(5):
        path = str(tmp_path / f"race-{round_}.db")
        procs = [ctx.Process(target=_open_and_enqueue, args=(path, i)) for i in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0, 0, 0, 0]
        assert SQLiteBroker(f"sqlite:///{path}").queue_stats()["q"].ready == 4
