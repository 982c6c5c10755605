"""Conveyor: a distributed background-task system for Python.

>>> from conveyor import Conveyor
>>> app = Conveyor("proj", broker="sqlite:///conveyor.db")
"""

from . import states
from .app import Conveyor, shared_task
from .beat.schedules import cron, every
from .beat.schedules.crontab import crontab
from .exceptions import (
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
from .results import AsyncResult, EagerResult
from .task import Task

__version__ = "0.1.0"

__all__ = [
    "AsyncResult",
    "ConfigurationWarning",
    "Conveyor",
    "ConveyorError",
    "EagerResult",
    "EncodeError",
    "LockError",
    "LockNotOwnedError",
    "LockTimeout",
    "MaxRetriesExceededError",
    "NotRegistered",
    "Reject",
    "Request",
    "Retry",
    "SoftTimeLimitExceeded",
    "Task",
    "TaskRevokedError",
    "TimeLimitExceeded",
    "WorkerLostError",
    "__version__",
    "cron",
    "crontab",
    "current_app",
    "every",
    "shared_task",
    "states",
]
