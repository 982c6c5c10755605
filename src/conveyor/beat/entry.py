"""Periodic entries: what to enqueue (the definition) and what happened so far (the state).

An :class:`Entry` is the stored form of one ``beat_schedule`` item::

    app.conf.beat_schedule = {
        "poll-aircraft": {
            "task": "skyspy.tasks.poll_aircraft",
            "schedule": 2.0,                                  # seconds, timedelta, crontab, cron string
            "args": ("EU",),
            "options": {"queue": "polling", "expires": 2},    # apply_async options
            "catch_up": "once",                               # Conveyor extension: once | skip | all
        },
    }

Everything is validated when the entry is built (:func:`build_entry`), so a bad schedule, zone,
option or argument is refused with a one-line :class:`EntryError` before anything is stored.
Entries and their :class:`EntryState` are stored as JSON in the broker (see
:mod:`conveyor.beat.store`); both are plain data, so any scheduler process can read them.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from ..exceptions import ConfigurationError
from ..options import ENQUEUE_OPTIONS
from .catchup import CatchUp, as_catch_up
from .schedules import Schedule, ScheduleError, TzLike, schedule_from_dict, to_schedule

if TYPE_CHECKING:
    from ..appproto import AppLike

__all__ = [
    "ENTRY_KEYS",
    "Entry",
    "EntryError",
    "EntryState",
    "Source",
    "build_entry",
    "check_task",
    "validate_name",
]

Source = Literal["declared", "runtime"]

#: Keys of a ``beat_schedule`` item: Celery's four plus Conveyor's ``catch_up`` and ``enabled``.
ENTRY_KEYS = frozenset({"task", "schedule", "args", "kwargs", "options", "catch_up", "enabled"})

#: apply_async options an entry may carry (conveyor.options, so new enqueue options work here
#: too); the scheduler sets task_id (deterministic per slot) and eta (the slot) itself.
ENTRY_OPTIONS = ENQUEUE_OPTIONS - {"task_id", "eta"}


class EntryError(ConfigurationError, ValueError):
    """A periodic entry is invalid: its name, task, schedule, arguments or options."""


def validate_name(name: object) -> str:
    """An entry name: a non-empty single line (it becomes part of keys and task ids).

    >>> validate_name("poll-aircraft")
    'poll-aircraft'
    """
    if not isinstance(name, str) or not name.strip():
        raise EntryError(f"periodic entry name must be a non-empty string, got {name!r}")
    if name != name.strip() or any(c in name for c in "\r\n\t\0") or len(name) > 200:
        raise EntryError(
            f"periodic entry name {name!r} must be one line of at most 200 characters "
            "without leading/trailing spaces"
        )
    return name


def _json_safe(value: Any, what: str) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise EntryError(f"{what} must be JSON-serialisable (it is stored in the broker): {exc}") from None


def _seconds(name: str, value: object, *, allow_zero: bool = False) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EntryError(f"option {name!r} must be a number of seconds or a timedelta, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise EntryError(f"option {name!r} must be {'>= 0' if allow_zero else '> 0'} seconds, got {value!r}")
    return float(value)


def _check_option(key: str, value: object) -> Any:
    """One option, checked where a wrong value would only fail later at every slot."""
    if key == "queue" and (not isinstance(value, str) or not value):
        raise EntryError(f"option 'queue' must be a non-empty string, got {value!r}")
    if key in ("priority", "max_retries") and (isinstance(value, bool) or not isinstance(value, int)):
        raise EntryError(f"option {key!r} must be an integer, got {value!r}")
    if key == "priority" and not 0 <= value <= 9:  # type: ignore[operator]
        raise EntryError(f"option 'priority' must be an integer from 0 to 9, got {value!r}")
    if key == "max_retries" and value < 0:  # type: ignore[operator]
        raise EntryError(f"option 'max_retries' must be an integer >= 0, got {value!r}")
    if key in ("expires", "time_limit", "soft_time_limit"):
        return _seconds(key, value)
    if key == "countdown":
        return _seconds(key, value, allow_zero=True)
    return value


def normalize_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check ``apply_async`` options and make them JSON-safe (timedeltas become seconds).

    ``expires`` counts from the moment the slot is enqueued, as Celery's does.

    >>> normalize_options({"queue": "polling", "expires": timedelta(seconds=2)})
    {'queue': 'polling', 'expires': 2.0}
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise EntryError(f"options must be a dict of apply_async options, got {type(options).__name__}")
    unknown = sorted(set(options) - ENTRY_OPTIONS)
    if unknown:
        raise EntryError(f"unknown option(s) {unknown}; periodic entries accept {sorted(ENTRY_OPTIONS)}")
    out = {key: _check_option(key, value) for key, value in options.items() if value is not None}
    _json_safe(out, "options")
    return out


@dataclass(frozen=True, slots=True)
class Entry:
    """One periodic entry as stored in the broker.

    ``id`` changes only when the entry is created anew (a removed and re-added entry starts
    fresh).  ``since`` is when the current schedule started counting: set on creation, on a
    schedule change and on re-enabling, so neither a new schedule nor the time an entry spent
    disabled produces catch-up runs.  ``decl_hash`` is the hash of the declaration this entry
    was last synced from (None for entries created at runtime).
    """

    name: str
    task: str
    schedule: Schedule
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    catch_up: CatchUp = CatchUp.ONCE
    enabled: bool = True
    source: Source = "runtime"
    origin: str | None = None  # the app (``app.main``) that declared it
    decl_hash: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    since: float = 0.0
    created: float = 0.0
    updated: float = 0.0

    def definition(self) -> dict[str, Any]:
        """What the entry does, without bookkeeping: the part a declaration hash covers."""
        return {
            "task": self.task,
            "schedule": self.schedule.to_dict(),
            "args": list(self.args),
            "kwargs": dict(self.kwargs),
            "options": dict(self.options),
            "catch_up": self.catch_up.value,
        }

    def definition_hash(self) -> str:
        canonical = json.dumps(self.definition(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def to_json(self) -> bytes:
        record = {
            **self.definition(),
            "v": 1,
            "name": self.name,
            "enabled": self.enabled,
            "source": self.source,
            "origin": self.origin,
            "decl_hash": self.decl_hash,
            "id": self.id,
            "since": self.since,
            "created": self.created,
            "updated": self.updated,
        }
        return json.dumps(record, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Entry:
        """Read a stored entry; raises :class:`EntryError` if the record is unusable."""
        try:
            d = json.loads(raw)
            source = d["source"]
            if source not in ("declared", "runtime"):
                raise ValueError(f"unknown source {source!r}")
            return cls(
                name=str(d["name"]),
                task=str(d["task"]),
                schedule=schedule_from_dict(d["schedule"]),
                args=tuple(d["args"]),
                kwargs=dict(d["kwargs"]),
                options=dict(d["options"]),
                catch_up=as_catch_up(d["catch_up"]),
                enabled=bool(d["enabled"]),
                source=source,
                origin=d.get("origin"),
                decl_hash=d.get("decl_hash"),
                id=str(d["id"]),
                since=float(d["since"]),
                created=float(d["created"]),
                updated=float(d["updated"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise EntryError(f"unreadable stored periodic entry: {exc}") from None

    def redefined(self, new: Entry, now: float) -> Entry:
        """This entry with ``new``'s definition, keeping identity and runtime state (enabled)."""
        changed_schedule = new.schedule != self.schedule
        return replace(
            self,
            task=new.task,
            schedule=new.schedule,
            args=new.args,
            kwargs=new.kwargs,
            options=new.options,
            catch_up=new.catch_up,
            since=now if changed_schedule else self.since,
            updated=now,
        )


@dataclass(frozen=True, slots=True)
class EntryState:
    """What the scheduler recorded for an entry (only schedulers and ``run now`` write it).

    ``last_slot`` is the catch-up cursor (:func:`conveyor.beat.catchup.plan`): every slot at or
    before it has been dealt with.  ``total_runs`` counts the slots enqueued at or before the
    cursor plus manual runs; it is advanced in the same compare-and-set as the cursor, so a
    scheduler killed half-way never counts a run twice.
    """

    entry_id: str
    last_slot: float | None = None
    total_runs: int = 0
    last_run_at: float | None = None  # when the last run was enqueued
    last_task_id: str | None = None
    last_error: str | None = None
    next_run: float | None = None  # as computed by the scheduler that wrote this
    updated: float = 0.0

    def to_json(self) -> bytes:
        record = asdict(self)
        if record["next_run"] is not None and not math.isfinite(record["next_run"]):
            record["next_run"] = None
        return json.dumps(record, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> EntryState | None:
        """Read a stored state; an unreadable one counts as none (the entry starts over)."""
        try:
            d = json.loads(raw)
            return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})
        except (ValueError, TypeError, KeyError):
            return None


def build_entry(
    name: str,
    task: str,
    schedule: object,
    *,
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    catch_up: CatchUp | str = CatchUp.ONCE,
    enabled: bool = True,
    default_tz: TzLike = None,
    source: Source = "runtime",
    origin: str | None = None,
    now: float = 0.0,
) -> Entry:
    """Validate one entry; raises :class:`EntryError` with a one-line message naming it.

    >>> build_entry("poll", "proj.tasks.poll", 2.0, options={"expires": 2}).schedule
    every(2)
    >>> build_entry("bad", "proj.tasks.poll", "61 * * * *")
    Traceback (most recent call last):
    ...
    conveyor.beat.entry.EntryError: periodic entry 'bad': invalid cron expression '61 * * * *': ...
    """
    name = validate_name(name)
    try:
        if not isinstance(task, str) or not task:
            raise EntryError(f"'task' must be a task name (a non-empty string), got {task!r}")
        try:
            sched = to_schedule(schedule, default_tz)
        except ScheduleError as exc:
            raise EntryError(str(exc)) from None
        if isinstance(args, str | bytes) or (args is not None and not isinstance(args, Sequence)):
            raise EntryError(f"'args' must be a list or tuple, got {type(args).__name__}")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise EntryError(f"'kwargs' must be a dict, got {type(kwargs).__name__}")
        arg_tuple, kwarg_dict = tuple(args or ()), dict(kwargs or {})
        _json_safe([list(arg_tuple), kwarg_dict], "args and kwargs")
        try:
            policy = as_catch_up(catch_up)
        except ScheduleError as exc:
            raise EntryError(str(exc)) from None
        if not isinstance(enabled, bool):
            raise EntryError(f"'enabled' must be True or False, got {enabled!r}")
        opts = normalize_options(options)
    except EntryError as exc:
        raise EntryError(f"periodic entry {name!r}: {exc}") from None
    return Entry(
        name=name,
        task=task,
        schedule=sched,
        args=arg_tuple,
        kwargs=kwarg_dict,
        options=opts,
        catch_up=policy,
        enabled=enabled,
        source=source,
        origin=origin,
        since=0.0,  # a new entry has no state: plan() applies its first-run rule instead
        created=now,
        updated=now,
    )


def entry_from_declaration(name: str, item: object, default_tz: TzLike, origin: str, now: float) -> Entry:
    """Build a declared entry from one ``beat_schedule`` item (a dict, as Celery users write it)."""
    if not isinstance(item, Mapping):
        raise EntryError(f"periodic entry {name!r}: must be a dict with 'task' and 'schedule'")
    unknown = sorted(set(item) - ENTRY_KEYS)
    if unknown:
        raise EntryError(f"periodic entry {name!r}: unknown key(s) {unknown}; allowed: {sorted(ENTRY_KEYS)}")
    for required in ("task", "schedule"):
        if required not in item:
            raise EntryError(f"periodic entry {name!r}: missing {required!r}")
    entry = build_entry(
        name,
        item["task"],
        item["schedule"],
        args=item.get("args"),
        kwargs=item.get("kwargs"),
        options=item.get("options"),
        catch_up=item.get("catch_up", CatchUp.ONCE),
        enabled=item.get("enabled", True),
        default_tz=default_tz,
        source="declared",
        origin=origin,
        now=now,
    )
    return replace(entry, decl_hash=entry.definition_hash())


def check_task(app: AppLike, entry: Entry) -> None:
    """Refuse an entry whose task the app does not know, or whose arguments do not fit it.

    Only called where the app's tasks are loaded (scheduler start, ``schedule add``): the
    scheduler itself can send a task by name without importing it, as Celery's beat does.
    """
    task = app.tasks.get(entry.task)
    if task is None:
        known = sorted(n for n in app.tasks if not n.startswith("conveyor."))
        hint = f"; registered tasks: {', '.join(known)}" if known else ""
        raise EntryError(f"periodic entry {entry.name!r}: unknown task {entry.task!r}{hint}")
    try:
        task._check_args(list(entry.args), dict(entry.kwargs))
    except TypeError as exc:
        raise EntryError(f"periodic entry {entry.name!r}: {exc}") from None
