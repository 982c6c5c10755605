"""App settings: typed fields with Celery's names, meanings and (mostly) defaults.

>>> conf = Settings({"task_time_limit": 30})
>>> conf.task_time_limit, conf["task_default_queue"], conf.get("worker_lease_timeout")
(30.0, 'default', 3.0)

Read them as attributes (typed: a type checker knows ``conf.task_time_limit`` is
``float | None``) or as items, as Celery allows; set them the same ways, or with ``update`` or
``config_from_object``. A value is checked against the field's type when it is set (an ``int``
for a ``float`` field becomes a ``float``; a number written as a string is read as one), so code
reading a setting can rely on its type.

Where Celery's default is known to lose work, Conveyor's default is the safe one:
``task_acks_late`` is True (a task is acknowledged after it finishes, so a crash re-runs it).

A name Conveyor does not know is kept (apps keep their own settings here too) but warned about
with a :class:`~conveyor.exceptions.ConfigurationWarning` naming the closest known setting,
because a misspelt setting that is silently ignored is a classic source of production
surprises. Names in capitals (``MY_API_KEY``) are taken to be the app's own and not warned about.
Celery settings Conveyor accepts without doing what Celery does (``INSTEAD``) warn in one line
naming what to do instead: no setting is silently ignored.
"""

from __future__ import annotations

import contextvars
import importlib
import inspect
import os
import re
import sys
import types
import typing
import warnings
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from .celerynames import CELERY_ONLY, setting_name
from .codecs import check_accept, check_compression, check_serializer
from .exceptions import ConfigurationError, ConfigurationWarning, did_you_mean

DEFAULT_BROKER_URL = "sqlite:///conveyor.db"

#: ``task_routes``: a dict (exact names or glob patterns), a router function, or a list of
#: those (see :mod:`conveyor.routing`).
TaskRoutes = Mapping[str, Any] | Sequence[Mapping[str, Any] | Callable[..., Any]] | Callable[..., Any]


class Settings(MutableMapping[str, Any]):
    """Every setting Conveyor reads, with its type and default; also a mapping of them.

    Names follow Celery's where Celery has one.
    """

    broker_url: str | None = None  # None: $CONVEYOR_BROKER_URL, else sqlite:///conveyor.db
    # Redis only: master_name, sentinel_kwargs (Sentinel), wait_replicas, wait_timeout_ms (docs/redis.md)
    broker_transport_options: dict[str, Any] = {}  # copied per instance (__init__)
    result_backend: str | None = None  # accepted for Celery compatibility; results live in the broker
    result_expires: float = 86400.0  # seconds a finished task's result is kept
    timezone: str | ZoneInfo | None = "UTC"
    enable_utc: bool = True
    task_default_queue: str = "default"
    task_default_priority: int = 5  # 0..9, higher runs first
    task_routes: TaskRoutes | None = None
    task_always_eager: bool = False
    task_eager_propagates: bool = False
    task_acks_late: bool = True  # Celery defaults to False, which loses tasks when a worker dies
    task_ignore_result: bool = False
    task_time_limit: float | None = None
    task_soft_time_limit: float | None = None
    task_default_retry_delay: float = 180.0
    task_max_retries: int | None = 3
    task_publish_retry: bool = True  # retry enqueueing when the broker connection fails
    task_publish_retry_policy: dict[str, Any] | None = None  # None: 3 retries, 0 / +0.2 / max 0.2 s
    # How arguments and results travel (conveyor.codecs; docs/user-guide.md, "Serialisation"):
    # json, msgpack, or pickle (only where accept_content names it); gzip/zlib compress bodies
    # of 1 KiB or more.
    task_serializer: str = "json"
    result_serializer: str = "json"
    task_compression: str | None = None
    result_compression: str | None = None
    # What a worker (and a client reading results) decodes; pickle is never on by default.
    accept_content: list[str] = ["json", "msgpack"]  # copied per instance (__init__)
    task_dead_letter_on_failure: bool = True  # a task that fails for good is kept as a dead letter
    task_max_worker_deaths: int = 5  # a task whose worker died on it this often is dead-lettered
    task_revoke_expires: float = 7 * 86400.0  # how long a revoke is remembered
    dead_letter_expires: float = 30 * 86400.0  # how long a dead letter is kept
    # The task history (docs/operations.md): on unless turned off (or $CONVEYOR_TASK_HISTORY=0).
    task_history: bool = True
    task_history_expires: float | None = None  # seconds a record is kept; None: result_expires
    task_history_max: int = 100_000  # most records kept per app (the oldest go first)
    worker_concurrency: int | None = None  # None: 8 for threads, 100 for asyncio, 1 for solo
    worker_pool: str = "threads"
    worker_pool_start_method: str = "fork"  # -P processes: "fork" (after the app import) or "spawn"
    # The floor of what a worker holds, per slot: 1 (not Celery's 4), raised for short tasks
    # (worker/fetcher.py), so a busy worker never sits on long tasks an idle one could run.
    worker_prefetch_multiplier: int = 1
    worker_max_tasks_per_child: int | None = None  # retire a worker process after this many tasks
    worker_max_memory_per_child: int | None = None  # ... or once its resident memory passes this (KiB)
    # Hold worker process i (and its threads) to the i-th CPU of its mask (worker/cpus.py)
    worker_pin_cpus: bool = False
    worker_lease_timeout: float = 3.0  # a lease not renewed for this long is reclaimed
    worker_heartbeat_interval: float = 1.0
    worker_shutdown_timeout: float = 30.0  # grace period on SIGTERM before unfinished tasks go back
    # name -> {"task", "schedule", "args", "kwargs", "options"}; docs/beat.md
    beat_schedule: dict[str, Any] = {}  # copied per instance (__init__)
    beat_lease_timeout: float = 3.0  # a scheduler (beat) leader not renewing for this long is replaced
    beat_slot_claim_ttl: float = 3600.0  # how long a sent slot is remembered across schedulers
    beat_catch_up_grace: float = 60.0  # catch_up="skip": a slot this late still counts as on time
    beat_catch_up_limit: int = 100  # catch_up="all": at most this many missed slots per entry
    # Modules the worker and beat import at start (Celery's imports/include; Conveyor(include=[...]))
    imports: Sequence[str] = ()
    include: Sequence[str] = ()

    _extra: dict[str, Any]  # settings Conveyor does not read, kept for the app
    _listeners: list[Callable[[str], None]]

    def __init__(self, initial: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_extra", {})
        object.__setattr__(self, "_listeners", [])
        for name, field in FIELDS.items():
            # Copy mutable defaults: app.conf.beat_schedule["x"] = ... must not change other apps'.
            object.__setattr__(self, name, field.default_copy())
        history = os.environ.get("CONVEYOR_TASK_HISTORY")
        if history is not None:  # the environment's default; a setting given in code wins
            object.__setattr__(self, "task_history", _env_flag("CONVEYOR_TASK_HISTORY", history))
        if initial:
            self.update(initial)

    if not TYPE_CHECKING:  # hidden from type checkers, so that a misspelt setting is a type error

        def __getattr__(self, name: str) -> Any:
            # Only reached for names that are not fields: the app's own settings.
            try:
                return self.__dict__["_extra"][name]
            except KeyError:
                hint = did_you_mean(name, FIELDS)
                raise AttributeError(f"no setting named {name!r}{hint}") from None

        def __setattr__(self, name: str, value: Any) -> None:
            self[name] = value

    def __getitem__(self, key: str) -> Any:
        if key in FIELDS:
            return self.__dict__[key]
        return self._extra[key]

    def __setitem__(self, key: str, value: Any) -> None:
        field = FIELDS.get(key)
        instead = INSTEAD.get(key)
        if field is not None:
            value = field.check(value)
            if key in VALUE_CHECKS:
                value = VALUE_CHECKS[key](value, key)
            object.__setattr__(self, key, value)
            if instead is not None and instead[0](value):
                _warn(f"setting {key}={value!r}: {instead[1]}")
        else:
            if key not in self._extra and not key.isupper():
                if instead is not None:
                    _warn(f"setting {key!r}: {instead[1]}")
                elif key in CELERY_ONLY:
                    _warn(
                        f"Celery setting {key!r} has no effect in Conveyor; it is kept, but not read "
                        "(docs/migrating-from-celery.md)"
                    )
                else:
                    hint = did_you_mean(key, FIELDS)
                    _warn(f"unknown setting {key!r}{hint}; it is kept, but Conveyor does not read it")
            self._extra[key] = value
        for listener in self._listeners:
            listener(key)

    def __delitem__(self, key: str) -> None:
        """Deleting a setting Conveyor reads puts its default back."""
        field = FIELDS.get(key)
        if field is not None:
            object.__setattr__(self, key, field.default_copy())
        else:
            del self._extra[key]
        for listener in self._listeners:
            listener(key)

    def __contains__(self, key: object) -> bool:
        return key in FIELDS or key in self._extra

    def __iter__(self) -> Iterator[str]:
        yield from FIELDS
        yield from list(self._extra)

    def __len__(self) -> int:
        return len(FIELDS) + len(self._extra)

    def clear(self) -> None:
        """Every setting back to its default; the app's own settings are dropped."""
        for key in [*FIELDS, *self._extra]:
            del self[key]

    def popitem(self) -> tuple[str, Any]:
        """Pops one of the app's own settings (a setting Conveyor reads cannot be removed)."""
        if not self._extra:
            raise KeyError("popitem(): no settings of the app's own left")
        key = next(iter(self._extra))
        value = self._extra[key]
        del self[key]
        return key, value

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.items() if k not in FIELDS or v != FIELDS[k].default}
        return f"<Settings {changed!r} (others default)>"

    def on_change(self, listener: Callable[[str], None]) -> None:
        self._listeners.append(listener)

    def broker(self) -> str:
        return self.broker_url or os.environ.get("CONVEYOR_BROKER_URL") or DEFAULT_BROKER_URL

    def from_object(self, obj: object | str, namespace: str | None = None) -> None:
        """Load settings from an object or an importable dotted path (``"module:attribute"``).

        Reads attributes named like settings; with ``namespace="CELERY"`` (or ``"CONVEYOR"``)
        it reads ``CELERY_BROKER_URL``, ``CELERY_TASK_ROUTES``, ... (Django style), like
        Celery's ``namespace``. Celery's pre-4.0 names (``CELERY_ALWAYS_EAGER``,
        ``BROKER_URL``) are read too (``celerynames.py``). Under a namespace every name is a
        setting, so a misspelt one warns; without one, only names that are settings are read.

        >>> conf = Settings()
        >>> conf.from_object("django.conf:settings", namespace="CELERY")   # doctest: +SKIP
        """
        if isinstance(obj, str):
            module_name, _, attr = obj.partition(":")
            try:
                target: object = importlib.import_module(module_name)
            except ImportError as exc:
                raise ConfigurationError(f"cannot import settings module {module_name!r}: {exc}") from exc
            if attr:
                target = getattr(target, attr)
            obj = target
        source = _source_file(obj)
        for name in dir(obj):
            if name.startswith("_"):
                continue
            key = setting_name(name, namespace)
            # Without a namespace a module also holds imports and helpers: only settings count
            # (Conveyor's, and Celery's, which then warn that they do nothing here).
            if key is None or (
                not namespace and key not in FIELDS and key not in INSTEAD and key not in CELERY_ONLY
            ):
                continue
            token = _ORIGIN.set(_Origin(name, source))
            try:
                self[key] = getattr(obj, name)
            finally:
                _ORIGIN.reset(token)


class _Field:
    """One setting's default and the check its values pass when set."""

    __slots__ = ("default", "name", "optional", "types")

    def __init__(self, name: str, hint: Any, default: Any) -> None:
        self.name = name
        self.default = default
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        args = typing.get_args(hint) if union else (hint,)
        self.optional = type(None) in args
        kinds = [a for a in args if a is not type(None)]
        # Only plain classes are checked: containers and callables (task_routes, beat_schedule)
        # are checked where they are used, with messages that can say more.
        self.types: tuple[type, ...] | None = (
            tuple(kinds) if all(isinstance(k, type) and not typing.get_args(k) for k in kinds) else None
        )

    def default_copy(self) -> Any:
        return self.default.copy() if isinstance(self.default, dict | list) else self.default

    def check(self, value: Any) -> Any:
        """``value`` as this setting's type, or ``ConfigurationError`` naming the setting."""
        kinds = self.types
        if kinds is None or (value is None and self.optional):
            return value
        if isinstance(value, bool):  # an int to Python, but never a number of seconds
            if bool in kinds:
                return value
        elif bool in kinds and isinstance(value, int) and value in (0, 1):
            return bool(value)
        elif float in kinds and isinstance(value, int | float | str):
            number = _as_float(value)
            if number is not None:
                return number
        elif int in kinds and isinstance(value, int | float | str):
            whole = _as_int(value)
            if whole is not None:
                return whole
        elif isinstance(value, kinds):
            return value
        wanted = " or ".join(k.__name__ for k in kinds) + (" or None" if self.optional else "")
        raise ConfigurationError(f"setting {self.name!r} must be {wanted}, got {value!r}")


def _env_flag(name: str, value: str) -> bool:
    """An on/off environment variable: 1/true/yes/on or 0/false/no/off (any case)."""
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigurationError(f"${name} must be 1/true/yes/on or 0/false/no/off, got {value!r}")


# Numbers written as strings are read as numbers, as the float()/int() at every use once did.
def _as_float(value: float | str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _as_int(value: float | str) -> int | None:
    if isinstance(value, int):
        return value
    number = _as_float(value)
    return int(number) if number is not None and number.is_integer() else None


FIELDS: dict[str, _Field] = {
    name: _Field(name, hint, getattr(Settings, name))
    for name, hint in typing.get_type_hints(Settings).items()
    if not name.startswith("_")
}


def check_priority(value: Any, setting: str) -> int:
    """A priority setting: an integer from 0 to 9 (9 runs first), else one line naming it.

    >>> check_priority(12, "task_default_priority")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    conveyor.exceptions.ConfigurationError: task_default_priority: 12 is not a priority: give ...
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 9:
        raise ConfigurationError(
            f"{setting}: {value!r} is not a priority: give an integer from 0 to 9 (9 runs first)"
        )
    return value


#: Settings whose values are names from a fixed set: refused in one line when set to another.
VALUE_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "task_serializer": check_serializer,
    "result_serializer": check_serializer,
    "task_compression": check_compression,
    "result_compression": check_compression,
    "accept_content": lambda value, _key: check_accept(value),
    "task_default_priority": check_priority,
}


#: Every setting Conveyor reads, with its default.
DEFAULTS: dict[str, Any] = {name: field.default for name, field in FIELDS.items()}

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _always(_value: Any) -> bool:
    return True


#: Celery settings Conveyor accepts but does not honour as Celery does: name -> (whether a
#: value needs the warning, what Conveyor does instead). Setting one warns with that line
#: (a ``ConfigurationWarning``); docs/migrating-from-celery.md has the same table.
TRANSPORT_OPTIONS_READ = frozenset({"master_name", "sentinel_kwargs", "wait_replicas", "wait_timeout_ms"})
INSTEAD: dict[str, tuple[Callable[[Any], bool], str]] = {
    "result_backend": (
        lambda value: value is not None,
        "not used: results live in the broker (broker_url); remove it",
    ),
    "enable_utc": (
        lambda value: value is False,
        "not supported: naive datetimes are always read as UTC; pass aware datetimes "
        "(timezone= sets the zone of crontab schedules)",
    ),
    "task_reject_on_worker_lost": (
        _always,
        "not needed: a task whose worker dies always runs again (leases), and goes to the dead "
        "letters after task_max_worker_deaths deaths",
    ),
    "task_track_started": (_always, "not needed: a task a worker holds is always STARTED"),
    "worker_send_task_events": (
        _always,
        "not needed: task states and results are always recorded in the broker",
    ),
    "task_send_sent_event": (_always, "not needed: task states are always recorded in the broker"),
    "beat_scheduler": (
        _always,
        "not used: schedules live in the broker (docs/beat.md); django_celery_beat's rows are "
        "imported with `python manage.py conveyor_import_beat` (docs/django.md)",
    ),
    "broker_transport_options": (
        lambda value: bool(set(value) - TRANSPORT_OPTIONS_READ),
        "only master_name, sentinel_kwargs, wait_replicas and wait_timeout_ms are read (Redis); "
        "there is no visibility timeout: leases are renewed by heartbeats (set worker_lease_timeout)",
    ),
}


class _Origin(typing.NamedTuple):
    """A setting being read by ``from_object``: its name there and the file it is written in."""

    name: str
    file: str | None


# Set while from_object reads one setting. A dotted path is read lazily, at the first use of
# app.conf, so the stack then points at whatever line touched app.conf first (in a Django
# project, an unrelated line of celery.py); a warning must point at the settings file instead.
_ORIGIN: contextvars.ContextVar[_Origin | None] = contextvars.ContextVar(
    "conveyor_setting_origin", default=None
)


def _source_file(obj: object) -> str | None:
    """The file a settings object is written in: a module's or a class's, or for Django's
    ``django.conf:settings`` (a lazy wrapper) the file of its ``SETTINGS_MODULE``."""
    module_name = getattr(obj, "SETTINGS_MODULE", None)
    if isinstance(module_name, str) and module_name in sys.modules:
        obj = sys.modules[module_name]
    try:
        return inspect.getsourcefile(obj)  # type: ignore[arg-type]
    except TypeError:  # an instance, or a built-in: nothing to point at
        return None


def _assignment_line(file: str, name: str) -> int | None:
    """The line that assigns ``name`` (``NAME = ...`` or ``NAME: T = ...``), the last if several."""
    try:
        with open(file, encoding="utf-8") as source:
            lines = source.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    pattern = re.compile(rf"^\s*{re.escape(name)}\s*(?::[^=]*)?\+?=")
    found = [number for number, line in enumerate(lines, 1) if pattern.match(line)]
    return found[-1] if found else None


def _warn(message: str) -> None:
    """Warn about a setting, pointing at the line that set it (outside Conveyor): for a setting
    read by ``from_object``, the line of the settings file that assigns it."""
    origin = _ORIGIN.get()
    if origin is not None:
        line = _assignment_line(origin.file, origin.name) if origin.file else None
        message = f"{message} (set as {origin.name})"
        if origin.file is not None and line is not None:
            warnings.warn_explicit(message, ConfigurationWarning, origin.file, line)
            return
    stacklevel = 2  # _warn's caller is __setitem__: start from its caller
    frame = sys._getframe(2)
    while frame.f_back is not None and _internal(frame.f_code.co_filename):
        frame = frame.f_back
        stacklevel += 1
    warnings.warn(message, ConfigurationWarning, stacklevel=stacklevel + 1)


def _internal(filename: str) -> bool:
    """Frames to skip: Conveyor's own, and the standard library's Mapping machinery."""
    return (
        filename.startswith(_PACKAGE_DIR)
        or filename.startswith("<frozen ")
        or filename.endswith("_collections_abc.py")
    )
