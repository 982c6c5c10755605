"""Conveyor: a distributed background-task system for Python.

>>> from conveyor import Conveyor
>>> app = Conveyor("proj", broker="sqlite:///conveyor.db")
"""

from . import states
from .app import Conveyor, shared_task
from .beat.schedules import cron, every
from .beat.schedules.crontab import crontab
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

__version__ = "0.1.0"

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
