"""Text search of the task history on every broker: a case-insensitive substring of the
arguments, found however old; the SQLite trigram index kept in step with settles, replaced
records and trimming; Redis's bounded search saying how far back it read."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator

import pytest

from conveyor import Conveyor, states
from conveyor.admin.history import TaskFilter, page
from conveyor.brokers import Broker, HistoryEntry, HistoryQuery, broker_from_url
from conveyor.brokers.redis import history as redis_history
from conveyor.brokers.sqlite import connection as sqlite_connection
from conveyor.taskrecord import TaskRecord, encode_record

from .test_history_contract import ids


@pytest.fixture
def broker(broker_url: str) -> Iterator[Broker]:
    b = broker_from_url(broker_url)
    yield b
    b.close()


def record(broker: Broker, items: list[tuple[str, str]], state: str = states.SUCCESS) -> None:
    """History records (task id, arguments) written as one batch, the last one newest."""
    now = time.time()
    entries = []
    for i, (task_id, args) in enumerate(items):
        at = now - len(items) + i
        rec = encode_record(TaskRecord("proj.charge", "q", state, args=args, finished=at))
        entries.append(
            (task_id, HistoryEntry("proj.charge", "q", state, at, 0.1, args, rec), b'{"result":1}')
        )
    broker.record_history(entries)


def test_search_finds_a_substring_of_the_arguments_in_any_case_however_old(broker: Broker) -> None:
    record(broker, [("old", "'Order-4711', customer=3")] + [(f"t{i}", f"'order-{i}'") for i in range(300)])
    assert ids(broker, search="ORDER-4711") == ["old"]
    assert ids(broker, search="der-471") == ["old"]
    assert ids(broker, search="customer=3") == ["old"]
    assert ids(broker, search="order-29", state=states.SUCCESS) == [f"t{i}" for i in range(299, 289, -1)] + [
        "t29"
    ]
    assert ids(broker, search="nowhere") == []


def test_search_takes_percent_and_underscore_literally(broker: Broker) -> None:
    record(broker, [("pct", "'50%_off'"), ("plain", "'50xxoff'"), ("under", "'a_b'"), ("ab", "'axb'")])
    assert ids(broker, search="50%_off") == ["pct"]
    assert ids(broker, search="%_o") == ["pct"]
    assert ids(broker, search="a_b") == ["under"]


def test_search_of_one_or_two_characters_finds_arguments_and_ids(broker: Broker) -> None:
    record(broker, [("zq-1", "'x'"), ("other", "'Zq'"), ("none", "'y'")])
    assert ids(broker, search="zQ") == ["other", "zq-1"]


def test_search_finds_a_failed_task_by_its_whole_id(broker: Broker) -> None:
    record(broker, [("4f1c2d3e-failed", "'a'")], state=states.FAILURE)
    record(broker, [("other", "'b'")])
    assert ids(broker, search="4f1c2d3e-failed") == ["4f1c2d3e-failed"]


def test_search_finds_a_retried_task_once_in_its_latest_state(broker: Broker) -> None:
    record(broker, [("r1", "'invoice-88'")], state=states.RETRY)
    record(broker, [("other", "'x'")])
    record(broker, [("r1", "'invoice-88'")])
    rows = broker.history(HistoryQuery(search="invoice-88"))
    assert [r.id for r in rows] == ["r1"]
    assert ids(broker, search="invoice-88", state=states.SUCCESS) == ["r1"]
    assert ids(broker, search="invoice-88", state=states.RETRY) == []


def test_search_no_longer_finds_trimmed_records(broker: Broker) -> None:
    record(broker, [(f"t{i}", f"'batch-{i:03d}'") for i in range(30)])
    broker.trim_history(10, 0)
    assert [r.id for r in broker.history(HistoryQuery(search="batch-0"))] == [
        f"t{i}" for i in range(29, 19, -1)
    ]
    assert ids(broker, search="batch-005") == []
    record(broker, [("new", "'batch-005'")])  # the index takes new rows after a trim
    assert ids(broker, search="batch-005") == ["new"]


def test_search_is_not_bounded_where_the_history_is_indexed_or_in_memory(
    broker: Broker, broker_url: str
) -> None:
    if broker_url.startswith("redis"):
        pytest.skip("Redis bounds a search (test_redis_search_reads_only_the_newest_records)")
    record(broker, [("old", "'needle'")] + [(f"t{i}", "'hay'") for i in range(500)])
    rows, reach = broker.search_history(HistoryQuery(search="needle"))
    assert [r.id for r in rows] == ["old"] and reach is None


def test_an_sqlite_file_from_before_the_search_index_gets_it_filled_on_open(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    b = broker_from_url(url)
    record(b, [("early", "'from-before-the-index'")])
    b.close()
    db = sqlite3.connect(f"{tmp_path}/old.db")
    db.execute("DROP TABLE history_search")  # as a file written by an earlier version
    db.close()
    b = broker_from_url(url)
    try:
        assert ids(b, search="before-the") == ["early"]
        b.trim_history(0, time.time() + 60)  # its index entry goes with it, cleanly
        assert ids(b, search="before-the") == [] and ids(b) == []
    finally:
        b.close()


@pytest.mark.parametrize("broker_url", ["redis"], indirect=True)
def test_redis_search_reads_only_the_newest_records_and_says_how_far_back(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_history, "SEARCH_SCAN", 100)
    record(
        broker, [("old", "'needle-1'")] + [(f"t{i}", "'hay'") for i in range(150)] + [("new", "'needle-2'")]
    )
    rows, reach = broker.search_history(HistoryQuery(search="needle"))
    assert [r.id for r in rows] == ["new"]
    assert reach is not None and reach.records == 100 and reach.back_to is not None
    assert [r.id for r in broker.history(HistoryQuery(search="needle"))] == ["new", "old"]  # unbounded
    found = page(broker, list, TaskFilter(search="needle"), 0, 50)
    assert [t.id for t in found.items] == ["new"]
    assert found.searched_records == 100 and found.searched_until == reach.back_to
    whole = page(broker, list, TaskFilter(search="hay"), 0, 20)  # a full page: nothing to say
    assert len(whole.items) == 20 and whole.searched_records is None


def test_admin_tasks_search_pages_have_no_bound_on_sqlite_and_memory(app: Conveyor, broker_url: str) -> None:
    if broker_url.startswith("redis"):
        pytest.skip("Redis bounds a search")
    record(app.broker, [("x", "'findme'")])
    found = app.admin.tasks(search="FINDME")
    assert [t.id for t in found.items] == ["x"] and found.searched_records is None


def test_rows_an_earlier_version_wrote_to_an_indexed_file_are_indexed_by_the_next_trim_and_drop_cleanly(
    tmp_path: object,
) -> None:
    # A rolling upgrade: an older worker, which knows nothing of the index, appends rows.
    url = f"sqlite:///{tmp_path}/mixed.db"
    b = broker_from_url(url)
    try:
        record(b, [("new-1", "'written-by-new'")])
        db = sqlite3.connect(f"{tmp_path}/mixed.db")
        rec = encode_record(TaskRecord("proj.charge", "q", states.SUCCESS, args="'written-by-old'"))
        with db:
            db.executemany(
                "INSERT INTO history (id, state, at, name, queue, args, record) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (f"old-{i}", states.SUCCESS, time.time(), "proj.charge", "q", "'written-by-old'", rec)
                    for i in range(3)
                ],
            )
        db.close()
        record(b, [("new-2", "'written-by-new'")])
        b.trim_history(10_000, 0)  # indexes what the old writer appended
        assert ids(b, search="by-old") == ["old-2", "old-1", "old-0"]
        # Replacing and dropping such rows works (the index forgets only rows it has).
        b.trim_history(1, 0)
        assert ids(b) == ["new-2"] and ids(b, search="written-by") == ["new-2"]
    finally:
        b.close()


def test_an_sqlite_without_the_trigram_tokenizer_searches_by_scanning_with_the_same_answers(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite older than 3.34 (or built without FTS5) has no trigram tokenizer; this one has, so
    # the check's answer is replaced. A file indexed by a newer process is shared with it too.
    url = f"sqlite:///{tmp_path}/old-sqlite.db"
    indexed = broker_from_url(url)
    record(indexed, [("a", "'Order-77'")])
    monkeypatch.setattr(sqlite_connection, "trigram_search", lambda: False)
    plain = broker_from_url(url)
    fresh = broker_from_url(f"sqlite:///{tmp_path}/never-indexed.db")
    try:
        record(plain, [("b", "'order-778'")])
        assert ids(plain, search="ORDER-77") == ["b", "a"] and ids(plain, search="a") == ["a"]
        record(fresh, [("c", "'order-9'")])
        assert ids(fresh, search="order-9") == ["c"]
        assert fresh.trim_history(0, time.time() + 60) == 1 and ids(fresh) == []
        plain.trim_history(1, 0)  # drops "a" without telling the index
        indexed.trim_history(10_000, 0)  # catches "b" up
        assert ids(indexed, search="order-77") == ["b"]  # "a"'s stale index entry finds no row
        record(indexed, [("d", "'order-77d'")])
        assert ids(indexed, search="order-77") == ["d", "b"]
    finally:
        for b in (indexed, plain, fresh):
            b.close()
    db = sqlite3.connect(f"{tmp_path}/never-indexed.db")
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'history_search'").fetchone() is None
    db.close()
