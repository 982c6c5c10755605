"""App settings, with Celery's setting names and meanings.

Where Celery's default is known to lose work, Conveyor's default is the safe one:
``task_acks_late`` is True (a task is acknowledged after it finishes, so a crash re-runs it).
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

from .exceptions import ConfigurationError

logger = logging.getLogger("conveyor.config")

DEFAULT_BROKER_URL = "sqlite:///conveyor.db"

#: Every setting Conveyor reads, with its default. Names follow Celery's where Celery has one.
DEFAULTS: dict[str, Any] = {
    "broker_url": None,  # None: $CONVEYOR_BROKER_URL, else sqlite:///conveyor.db
    "result_backend": None,  # accepted for Celery compatibility; results live in the broker
    "result_expires": 86400.0,  # seconds a finished task's result is kept
    "timezone": "UTC",
    "enable_utc": True,
    "task_default_queue": "default",
    "task_default_priority": 5,  # 0..9, higher runs first
    "task_routes": None,
    "task_always_eager": False,
    "task_eager_propagates": False,
    "task_acks_late": True,  # Celery defaults to False, which loses tasks when a worker dies
    "task_ignore_result": False,
    "task_time_limit": None,
    "task_soft_time_limit": None,
    "task_default_retry_delay": 180.0,
    "task_max_retries": 3,
    "task_publish_retry": True,  # retry enqueueing when the broker connection fails
    "task_publish_retry_policy": None,  # None: max_retries 3, interval_start 0, step 0.2, max 0.2
    "task_serializer": "json",
    "accept_content": ["json"],
    "task_dead_letter_on_failure": True,  # a task that fails for good is kept as a dead letter
    "task_max_worker_deaths": 5,  # a task whose worker died on it this often is dead-lettered
    "task_revoke_expires": 7 * 86400.0,  # how long a revoke is remembered
    "dead_letter_expires": 30 * 86400.0,  # how long a dead letter is kept
    "worker_concurrency": None,  # None: 8 for threads, 100 for asyncio, 1 for solo
    "worker_pool": "threads",
    "worker_prefetch_multiplier": 4,
    "worker_max_tasks_per_child": None,
    "worker_lease_timeout": 3.0,  # a lease not renewed for this long is reclaimed
    "worker_heartbeat_interval": 1.0,
    "worker_shutdown_timeout": 30.0,  # grace period on SIGTERM before unfinished tasks go back
    "beat_schedule": {},  # name -> {"task", "schedule", "args", "kwargs", "options"}; docs/beat.md
    "beat_lease_timeout": 3.0,  # a scheduler (beat) leader not renewing for this long is replaced
    "beat_slot_claim_ttl": 3600.0,  # how long a sent slot is remembered across schedulers
    "beat_catch_up_grace": 60.0,  # catch_up="skip": a slot this late still counts as on time
    "beat_catch_up_limit": 100,  # catch_up="all": at most this many missed slots per entry
}


class Settings(MutableMapping[str, Any]):
    """Mapping of settings with attribute access: ``app.conf.task_acks_late``.

    Unknown keys are kept (apps store their own settings here too) but logged once, because
    a misspelled setting that is silently ignored is a classic source of production surprises.
    """

    def __init__(self, initial: Mapping[str, Any] | None = None) -> None:
        # Copy mutable defaults: app.conf.beat_schedule["x"] = ... must not change other apps'.
        data = {k: v.copy() if isinstance(v, dict | list) else v for k, v in DEFAULTS.items()}
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_listeners", [])
        if initial:
            self.update(initial)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(f"no setting named {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in DEFAULTS and key not in self._data and not key.isupper():
            logger.warning("unknown setting %r (kept, but Conveyor does not read it)", key)
        self._data[key] = value
        for listener in self._listeners:
            listener(key)

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def on_change(self, listener: Callable[[str], None]) -> None:
        self._listeners.append(listener)

    def broker(self) -> str:
        url = self._data.get("broker_url")
        return str(url or os.environ.get("CONVEYOR_BROKER_URL") or DEFAULT_BROKER_URL)

    def from_object(self, obj: object | str, namespace: str | None = None) -> None:
        """Load settings from an object or an importable dotted path.

        Reads attributes named like settings; with ``namespace="CONVEYOR"`` it reads
        ``CONVEYOR_BROKER_URL`` etc. (Django style), like Celery's ``namespace``.
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
        prefix = f"{namespace}_" if namespace else ""
        for name in dir(obj):
            if name.startswith("_"):
                continue
            if prefix:
                if not name.startswith(prefix):
                    continue
                key = name[len(prefix) :].lower()
            else:
                key = name.lower() if name.isupper() else name
                if key not in DEFAULTS:
                    continue
            self[key] = getattr(obj, name)
