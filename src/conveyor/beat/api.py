"""``app.schedules``: add, change, enable, disable, remove and run periodic entries at runtime.

Edits go straight to the broker (compare-and-set) and bump ``beat:version``, so every running
scheduler picks them up within a second -- no restart.  The ``conveyor schedule`` commands are
a thin layer over this class.

>>> app.schedules.add("weekly-vacuum", "proj.tasks.vacuum", crontab(minute=0, hour=4,
...                   day_of_week="sun"), options={"queue": "database"})   # doctest: +SKIP
>>> app.schedules.disable("weekly-vacuum")                                  # doctest: +SKIP
>>> [(e.name, e.next_run) for e in app.schedules.entries()]                 # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .catchup import CatchUp
from .entry import Entry, EntryError, EntryState, build_entry, check_task, validate_name
from .lease import current_leader
from .schedules import Schedule
from .store import ENTRY_PREFIX, ScheduleStore, Stored
from .sync import SyncReport, declared_entries, sync_declared

if TYPE_CHECKING:
    from ..appproto import AppLike
    from ..results import AsyncResult

_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class ScheduledEntry:
    """A stored entry with its state, as ``app.schedules`` returns it (read-only)."""

    entry: Entry
    state: EntryState | None
    next_run: float | None  # None: disabled or never again

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def task(self) -> str:
        return self.entry.task

    @property
    def schedule(self) -> Schedule:
        return self.entry.schedule

    @property
    def enabled(self) -> bool:
        return self.entry.enabled

    @property
    def total_runs(self) -> int:
        return self.state.total_runs if self.state else 0

    @property
    def last_run_at(self) -> float | None:
        return self.state.last_run_at if self.state else None

    @property
    def last_error(self) -> str | None:
        return self.state.last_error if self.state else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (``conveyor schedule list --json``)."""
        e = self.entry
        return {
            "name": e.name,
            "task": e.task,
            "schedule": e.schedule.describe(),
            "args": list(e.args),
            "kwargs": dict(e.kwargs),
            "options": dict(e.options),
            "catch_up": e.catch_up.value,
            "enabled": e.enabled,
            "source": e.source,
            "next_run": self.next_run,
            "last_run_at": self.last_run_at,
            "last_slot": self.state.last_slot if self.state else None,
            "total_runs": self.total_runs,
            "last_error": self.last_error,
        }


def entry_view(stored: Stored, now: float) -> ScheduledEntry:
    """An entry as read (``stored``) with when it runs next, seen at ``now``."""
    entry, state = stored.entry, stored.live_state
    next_run: float | None = None
    if entry.enabled:
        if state is not None and state.last_slot is not None:
            next_run = entry.schedule.next_after(max(state.last_slot, entry.since))
        elif entry.schedule.first_run_immediate:
            next_run = now  # a new interval entry runs as soon as a scheduler sees it
        else:
            next_run = entry.schedule.next_after(now)
        if not math.isfinite(next_run):
            next_run = None
    return ScheduledEntry(entry, state, next_run)


class Schedules:
    """The runtime API over the entries stored in ``app``'s broker (``app.schedules``)."""

    def __init__(self, app: AppLike) -> None:
        self.app = app

    @property
    def store(self) -> ScheduleStore:
        return ScheduleStore(self.app.broker)

    # -- reading -----------------------------------------------------------------------------
    def get(self, name: str) -> ScheduledEntry | None:
        stored = self.store.get(name)
        return entry_view(stored, time.time()) if stored is not None else None

    def entries(self) -> list[ScheduledEntry]:
        """Every stored entry, by name."""
        now = time.time()
        return [entry_view(s, now) for _, s in sorted(self.store.load().items())]

    def __iter__(self) -> Iterator[ScheduledEntry]:
        return iter(self.entries())

    def leader(self) -> dict[str, Any] | None:
        """The scheduler leading now (``owner``, ``host``, ``pid``, ``since``), or None."""
        return current_leader(self.app.broker)

    # -- editing -----------------------------------------------------------------------------
    def add(
        self,
        name: str,
        task: str,
        schedule: object,
        *,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        catch_up: CatchUp | str = CatchUp.ONCE,
        enabled: bool = True,
        replace: bool = False,
        check_task: bool = True,
    ) -> ScheduledEntry:
        """Store a new entry (or, with ``replace=True``, redefine an existing one, keeping its
        state and enabled flag).  ``check_task``: refuse task names this app does not know.

        >>> app.schedules.add("scrape", "proj.tasks.scrape", "0 */6 * * *")   # doctest: +SKIP
        """
        now = time.time()
        entry = build_entry(
            name,
            task,
            schedule,
            args=args,
            kwargs=kwargs,
            options=options,
            catch_up=catch_up,
            enabled=enabled,
            default_tz=self.app.conf.timezone or "UTC",
            now=now,
        )
        if check_task:
            _check_task(self.app, entry)
        store = self.store
        for _ in range(10):
            current = store.get(name)
            if current is None:
                if store.put_entry(entry, None):
                    return self._require(name)
                continue
            if not replace:
                raise EntryError(f"periodic entry {name!r} already exists (replace it with replace=True)")
            if store.put_entry(current.entry.redefined(entry, now), current.entry_raw):
                return self._require(name)
        raise EntryError(f"periodic entry {name!r} is being edited concurrently; try again")

    def update(
        self,
        name: str,
        *,
        task: str = _UNSET,
        schedule: object = _UNSET,
        args: Sequence[Any] = _UNSET,
        kwargs: Mapping[str, Any] = _UNSET,
        options: Mapping[str, Any] = _UNSET,
        catch_up: CatchUp | str = _UNSET,
        check_task: bool = True,
    ) -> ScheduledEntry:
        """Change some fields of an entry; the rest, its state and enabled flag are kept.

        >>> app.schedules.update("poll", schedule=5.0, options={"expires": 5})   # doctest: +SKIP
        """
        validate_name(name)
        tz = self.app.conf.timezone or "UTC"
        for _ in range(10):
            current = self._stored(name)
            old = current.entry
            now = time.time()
            new = build_entry(
                name,
                old.task if task is _UNSET else task,
                old.schedule if schedule is _UNSET else schedule,
                args=old.args if args is _UNSET else args,
                kwargs=old.kwargs if kwargs is _UNSET else kwargs,
                options=old.options if options is _UNSET else options,
                catch_up=old.catch_up if catch_up is _UNSET else catch_up,
                default_tz=tz,
                now=now,
            )
            if check_task and (task is not _UNSET or args is not _UNSET or kwargs is not _UNSET):
                _check_task(self.app, new)
            if self.store.put_entry(old.redefined(new, now), current.entry_raw):
                return self._require(name)
        raise EntryError(f"periodic entry {name!r} is being edited concurrently; try again")

    def enable(self, name: str) -> ScheduledEntry:
        """Enable an entry.  Slots that passed while it was disabled are not caught up."""
        return self._set_enabled(name, True)

    def disable(self, name: str) -> ScheduledEntry:
        """Disable an entry: schedulers stop sending it (within a second); state is kept."""
        return self._set_enabled(name, False)

    def _set_enabled(self, name: str, enabled: bool) -> ScheduledEntry:
        for _ in range(10):
            current = self._stored(name)
            if current.entry.enabled == enabled:
                return entry_view(current, time.time())
            now = time.time()
            new = replace(current.entry, enabled=enabled, updated=now)
            if enabled:
                new = replace(new, since=now)  # the disabled stretch is not "missed"
            if self.store.put_entry(new, current.entry_raw):
                return self._require(name)
        raise EntryError(f"periodic entry {name!r} is being edited concurrently; try again")

    def remove(self, name: str) -> bool:
        """Delete an entry and its state; returns whether it existed.  A declared entry comes
        back at the next scheduler start unless it is removed from the declaration too."""
        store = self.store
        for _ in range(10):
            raw = store.broker.kv_get(ENTRY_PREFIX + name)
            if raw is None:
                return False
            if store.delete_entry(name, raw.value):
                return True
        raise EntryError(f"periodic entry {name!r} is being edited concurrently; try again")

    def run_now(self, name: str) -> AsyncResult[Any]:
        """Enqueue the entry's task now, once, outside its schedule (its slots are unaffected).

        >>> app.schedules.run_now("weekly-vacuum").id        # doctest: +SKIP
        'beat:weekly-vacuum:run:5f0c2a9d41e7'
        """
        current = self._stored(name)
        entry = current.entry
        options: dict[str, Any] = dict(entry.options)
        options["headers"] = {**options.get("headers", {}), "beat_entry": name, "beat_manual": True}
        task_id = f"beat:{name}:run:{uuid.uuid4().hex[:12]}"
        result = self.app.send_task(entry.task, entry.args, entry.kwargs, task_id=task_id, **options)
        store = self.store
        for _ in range(10):  # count the run; the cursor (which slots were dealt with) is untouched
            stored = self._stored(name)
            state = stored.live_state or EntryState(stored.entry.id)
            new = replace(
                state, total_runs=state.total_runs + 1, last_run_at=time.time(), last_task_id=task_id
            )
            if store.put_state(name, new, stored.state_raw):
                break
        return result

    def sync(self, *, check_tasks: bool = True) -> SyncReport:
        """Write the app's declared entries into the broker now (schedulers do it on start)."""
        now = time.time()
        declared = declared_entries(self.app, now, check_tasks=check_tasks)
        return sync_declared(self.store, self.app, declared, now)

    # -- helpers -----------------------------------------------------------------------------
    def _stored(self, name: str) -> Stored:
        stored = self.store.get(name)
        if stored is None:
            raise EntryError(f"no periodic entry named {name!r}")
        return stored

    def _require(self, name: str) -> ScheduledEntry:
        return entry_view(self._stored(name), time.time())


def _check_task(app: AppLike, entry: Entry) -> None:
    check_task(app, entry)


def declare_periodic(
    app: AppLike,
    schedule: object,
    task: object,
    *,
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    name: str | None = None,
    options: Mapping[str, Any] | None = None,
    catch_up: CatchUp | str = CatchUp.ONCE,
) -> str:
    """Add an item to ``app.conf.beat_schedule`` after validating it (``add_periodic_task``).

    ``task`` is a task object or a task name.  The name defaults to the task's name; declaring
    a different entry under a name already declared is an error, the same one again is not.
    Returns the entry's name.
    """
    task_name = task if isinstance(task, str) else getattr(task, "name", None)
    if not isinstance(task_name, str) or not task_name:
        raise EntryError(f"add_periodic_task needs a task or a task name, got {task!r}")
    entry_name = validate_name(name if name is not None else task_name)
    item: dict[str, Any] = {"task": task_name, "schedule": schedule}
    if args is not None:
        item["args"] = tuple(args) if isinstance(args, list) else args
    if kwargs is not None:
        item["kwargs"] = kwargs
    if options:
        item["options"] = dict(options)
    if catch_up != CatchUp.ONCE:
        item["catch_up"] = catch_up
    from .entry import entry_from_declaration

    entry = entry_from_declaration(entry_name, item, app.conf.timezone or "UTC", app.main, 0.0)
    declared = app.conf.beat_schedule
    if declared is None:
        declared = app.conf.beat_schedule = {}
    existing = declared.get(entry_name)
    if existing is not None:
        try:
            same = entry_from_declaration(entry_name, existing, app.conf.timezone or "UTC", app.main, 0.0)
        except EntryError:
            same = None
        if same is None or same.decl_hash != entry.decl_hash:
            raise EntryError(
                f"periodic entry {entry_name!r} is already declared differently; pass another name="
            )
        return entry_name
    declared[entry_name] = item
    return entry_name
