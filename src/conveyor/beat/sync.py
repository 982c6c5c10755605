"""Declared entries (``beat_schedule``, ``add_periodic_task``) and how they reach the broker.

The sync rule (also in docs/beat.md), applied by every scheduler when it starts:

* A declared entry that is not stored yet is created (``source="declared"``).
* A stored entry whose declaration is unchanged (same hash of task, schedule, args, kwargs,
  options and catch-up policy) is left alone -- including any runtime edit made to it since,
  and whether it is enabled.
* A stored entry whose declaration changed is redefined from the declaration; its runtime
  state is kept: enabled/disabled, last slot, run count.  A changed schedule starts counting
  from the sync (no catch-up runs for slots of the new schedule before it existed).
* A stored entry that this app (same ``app.main``) declared earlier but no longer declares is
  removed.  Entries created at runtime, and entries declared by other apps, are never removed
  by a sync.

Every declared entry is validated before anything is written, so one bad entry leaves the
broker untouched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from .entry import Entry, EntryError, check_task, entry_from_declaration
from .store import ENTRY_PREFIX, ScheduleStore

if TYPE_CHECKING:
    from ..appproto import AppLike

logger = logging.getLogger("conveyor.beat")


@dataclass(slots=True)
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def declared_entries(app: AppLike, now: float, *, check_tasks: bool = True) -> dict[str, Entry]:
    """Validate ``app.conf.beat_schedule``; raises :class:`EntryError` (one line) on the first
    bad item.  With ``check_tasks`` every task must be registered in ``app``."""
    schedule = app.conf.beat_schedule or {}
    if not isinstance(schedule, dict):
        raise EntryError(f"beat_schedule must be a dict of name -> entry, got {type(schedule).__name__}")
    tz = app.conf.timezone or "UTC"
    out: dict[str, Entry] = {}
    for name, item in schedule.items():
        entry = entry_from_declaration(name, item, tz, app.main, now)
        if check_tasks:
            check_task(app, entry)
        out[name] = entry
    return out


def sync_declared(store: ScheduleStore, app: AppLike, declared: dict[str, Entry], now: float) -> SyncReport:
    """Write ``declared`` into the store following the module's rule.  Safe to run from many
    schedulers at once: every write is a compare-and-set, retried on a lost race."""
    report = SyncReport()
    for name, entry in declared.items():
        for _ in range(10):
            raw = store.broker.kv_get(ENTRY_PREFIX + name)
            if raw is None:
                if store.put_entry(entry, None):
                    report.created.append(name)
                    break
                continue
            try:
                stored: Entry | None = Entry.from_json(raw.value)
            except EntryError:
                stored = None  # unreadable: the declaration replaces it
            if stored is not None and stored.source == "declared" and stored.decl_hash == entry.decl_hash:
                report.unchanged.append(name)
                break
            if stored is None:
                new = entry
            else:
                new = replace(stored.redefined(entry, now), source="declared", origin=entry.origin)
                new = replace(new, decl_hash=entry.decl_hash)
            if store.put_entry(new, raw.value):
                report.updated.append(name)
                break
    for name, stored_entry in store.load().items():
        if name in declared or stored_entry.entry.source != "declared":
            continue
        if stored_entry.entry.origin != app.main:
            continue
        if store.delete_entry(name, stored_entry.entry_raw):
            report.removed.append(name)
    for verb, names in (
        ("created", report.created),
        ("updated", report.updated),
        ("removed", report.removed),
    ):
        if names:
            logger.info("beat: declared entries %s: %s", verb, ", ".join(sorted(names)))
    return report


def restore_missing(store: ScheduleStore, declared: dict[str, Entry]) -> list[str]:
    """Create the declared entries the broker no longer has (create-only: an entry that exists
    is left as it is, whoever wrote it). A scheduler calls it when it becomes the leader: after a
    broker that lost its data (a Redis restarted without persistence) it would otherwise lead
    an empty schedule and send nothing. Returns the names it created."""
    restored = [
        name
        for name, entry in declared.items()
        if store.broker.kv_get(ENTRY_PREFIX + name) is None and store.put_entry(entry, None)
    ]
    if restored:
        logger.warning(
            "beat: declared entries missing from the broker were written again (did it lose its data?): %s",
            ", ".join(sorted(restored)),
        )
    return restored
