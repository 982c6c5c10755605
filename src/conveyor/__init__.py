"""Conveyor: a distributed background-task system for Python.

>>> from conveyor import Conveyor
>>> app = Conveyor("proj", broker="sqlite:///conveyor.db")
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from . import states
from .app import Conveyor, shared_task
from .canvas import Signature, chain, chord, group, signature
from .exceptions import (
    ChordError,
    ConfigurationWarning,
    ConveyorError,
    EncodeError,
    LockError,
    LockNotOwnedError,
    LockTimeout,
    MaxRetriesExceededError,
    NotRegistered,
    Reject,
    Retry,
    SoftTimeLimitExceeded,
    TaskRevokedError,
    TimeLimitExceeded,
    WorkerLostError,
)
from .registry import current_app
from .request import Request
from .results import AsyncResult, EagerResult, GroupResult
from .task import Task

if TYPE_CHECKING:
    from .beat.schedules import cron, every
    from .beat.schedules.crontab import crontab

__version__ = "0.1.0"

# The periodic-schedule constructors are imported on first use (PEP 562): a worker or producer
# that declares no schedule does not pay for the cron parsers at start-up.
_LAZY = {"cron": ".beat.schedules", "every": ".beat.schedules", "crontab": ".beat.schedules.crontab"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # once: later lookups find it like any other name
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AsyncResult",
    "ChordError",
    "ConfigurationWarning",
    "Conveyor",
    "ConveyorError",
    "EagerResult",
    "EncodeError",
    "GroupResult",
    "LockError",
    "LockNotOwnedError",
    "LockTimeout",
    "MaxRetriesExceededError",
    "NotRegistered",
    "Reject",
    "Request",
    "Retry",
    "Signature",
    "SoftTimeLimitExceeded",
    "Task",
    "TaskRevokedError",
    "TimeLimitExceeded",
    "WorkerLostError",
    "__version__",
    "chain",
    "chord",
    "cron",
    "crontab",
    "current_app",
    "every",
    "group",
    "shared_task",
    "signature",
    "states",
]
