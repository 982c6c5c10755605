"""The action log: who did what to the cluster, when — every action taken through the dashboard
or the HTTP API (pause a queue, retry dead letters, revoke a task...), kept in the broker so it
survives restarts and is the same for every dashboard process.

It stands on the key/value store only, so it works alike on memory, SQLite and Redis::

    admin:actions:seq            a counter: the number of the latest action (never expires)
    admin:actions:<number>       one action; value: JSON {at, actor, action, target, detail},
                                 TTL = ACTIONS_KEPT_FOR

Numbers grow by one per action, so the newest entries are read by counting down from the
counter — a page costs ``limit`` key reads, never a scan of the whole log. The log is capped
twice: an entry expires after 30 days, and recording action number ``n`` deletes number
``n - ACTIONS_CAP``, so at most 10,000 entries are kept (Sidekiq and Oban keep a bounded
history the same way). A number whose entry is missing (its writer died between taking the
number and writing it) is skipped; a run of missing ones ends the listing (expired).

>>> record(broker, "alice", "queue.pause", "emails")          # doctest: +SKIP
>>> [(a.actor, a.action, a.target) for a in page(broker, 10, 0).items]   # doctest: +SKIP
[('alice', 'queue.pause', 'emails')]
"""

from __future__ import annotations

import json
import time

from ..brokers import KeyValueStore
from .records import ActionInfo, Page

SEQ_KEY = "admin:actions:seq"
ENTRY_PREFIX = "admin:actions:"
ACTIONS_CAP = 10_000
ACTIONS_KEPT_FOR = 30 * 86400.0  # seconds
#: Entries expire oldest first, so this many missing numbers in a row mean the rest are gone
#: too; a single missing one is a writer that died between numbering and writing.
MISSING_RUN_ENDS_LOG = 20


def entry_key(number: int) -> str:
    return f"{ENTRY_PREFIX}{number:012d}"


def record(store: KeyValueStore, actor: str, action: str, target: str, detail: str = "") -> None:
    """Append one action to the log and drop the one that falls beyond the cap."""
    number = store.kv_incr(SEQ_KEY)
    value = {"at": time.time(), "actor": actor, "action": action, "target": target, "detail": detail}
    store.kv_put(entry_key(number), json.dumps(value).encode(), ttl=ACTIONS_KEPT_FOR)
    dropped = number - ACTIONS_CAP
    if dropped > 0:
        old = store.kv_get(entry_key(dropped))
        if old is not None:
            store.kv_compare_and_set(entry_key(dropped), old.value, None)


def latest_number(store: KeyValueStore) -> int:
    entry = store.kv_get(SEQ_KEY)
    try:
        return int(entry.value) if entry is not None else 0
    except ValueError:
        return 0


def page(store: KeyValueStore, limit: int, offset: int) -> Page[ActionInfo]:
    """Actions newest first. ``offset`` counts positions in the log from the newest (a position
    whose entry is missing is skipped, so a page may cover a few more positions than ``limit``);
    page on with ``next_offset``. ``total`` is the number of positions still in the log, an upper
    bound on the entries left."""
    if offset < 0 or limit < 1:
        raise ValueError("offset must be >= 0 and limit >= 1")
    top = latest_number(store)
    oldest = max(1, top - ACTIONS_CAP + 1)
    items: list[ActionInfo] = []
    number = top - offset
    missing = 0
    while number >= oldest and len(items) < limit and missing < MISSING_RUN_ENDS_LOG:
        entry = store.kv_get(entry_key(number))
        number -= 1
        info = None if entry is None else _decode(entry.value)
        if info is None:
            missing += 1
            continue
        missing = 0
        items.append(info)
    more = number >= oldest and len(items) == limit
    return Page(tuple(items), offset, limit, top - number if more else None, max(0, top - oldest + 1))


def _decode(value: bytes) -> ActionInfo | None:
    try:
        raw = json.loads(value)
        return ActionInfo(
            at=float(raw["at"]),
            actor=str(raw["actor"]),
            action=str(raw["action"]),
            target=str(raw["target"]),
            detail=str(raw.get("detail", "")),
        )
    except (ValueError, KeyError, TypeError):
        return None  # an entry written by a future version, or damaged: left out of the listing
