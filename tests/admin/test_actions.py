"""The action log on every broker: newest first, paged, capped, kept across restarts."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from conveyor.admin import Admin, actions
from conveyor.brokers import Broker, broker_from_url


@pytest.fixture
def broker(broker_url: str) -> Iterator[Broker]:
    b = broker_from_url(broker_url)
    yield b
    b.close()


def test_actions_are_listed_newest_first_with_who_what_when(broker: Broker) -> None:
    admin = Admin(broker)
    before = time.time()
    admin.record_action("alice", "queue.pause", "emails")
    admin.record_action("bob", "task.revoke", "5b1e", "terminate=True")
    page = admin.actions()
    assert [(a.actor, a.action, a.target, a.detail) for a in page.items] == [
        ("bob", "task.revoke", "5b1e", "terminate=True"),
        ("alice", "queue.pause", "emails", ""),
    ]
    assert all(before - 1 <= a.at <= time.time() + 1 for a in page.items)
    assert page.next_offset is None and page.total == 2


def test_an_empty_action_log_is_an_empty_page(broker: Broker) -> None:
    page = Admin(broker).actions()
    assert page.items == () and page.next_offset is None


def test_actions_page_on_with_next_offset(broker: Broker) -> None:
    admin = Admin(broker)
    for i in range(7):
        admin.record_action("alice", "queue.pause", f"q{i}")
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = admin.actions(limit=3, offset=offset)
        seen += [a.target for a in page.items]
        offset = page.next_offset
    assert seen == [f"q{i}" for i in reversed(range(7))]
    with pytest.raises(ValueError):
        admin.actions(limit=0)


def test_the_action_log_keeps_only_the_latest_entries_up_to_its_cap(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(actions, "ACTIONS_CAP", 5)
    admin = Admin(broker)
    for i in range(12):
        admin.record_action("alice", "dead.retry", f"id{i}")
    assert [a.target for a in admin.actions(limit=100).items] == [f"id{i}" for i in range(11, 6, -1)]
    # the dropped entries are deleted from the store, not just hidden
    assert len(broker.kv_scan(actions.ENTRY_PREFIX)) - 1 == 5  # the counter shares the prefix
    entry = broker.kv_get(actions.entry_key(12))
    assert entry is not None and entry.expires_at is not None  # and each one expires


def test_a_missing_entry_is_skipped(broker: Broker) -> None:
    admin = Admin(broker)
    for i in range(4):
        admin.record_action("alice", "queue.resume", f"q{i}")
    entry = broker.kv_get(actions.entry_key(3))
    assert entry is not None
    broker.kv_compare_and_set(actions.entry_key(3), entry.value, None)  # a writer that died
    assert [a.target for a in admin.actions().items] == ["q3", "q1", "q0"]


def test_the_action_log_survives_a_new_connection(broker_url: str) -> None:
    first = broker_from_url(broker_url)
    Admin(first).record_action("alice", "queue.purge", "emails")
    first.close()
    second = broker_from_url(broker_url)
    try:
        assert [a.action for a in Admin(second).actions().items] == ["queue.purge"]
    finally:
        second.close()
