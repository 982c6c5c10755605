"""The admin API: read and control queues, workers, running tasks, dead letters
and the task history.

``app.admin`` (or ``Admin(broker)``) is the one layer the CLI's operator commands stand on;
see api.py and docs/operations.md.
"""

from .api import Admin
from .control import Control, Reply
from .deadletters import DeadFilter
from .errors import UnknownName, UnknownQueue, UnknownState, UnknownTask, UnknownWorker
from .history import TaskFilter
from .records import (
    ActionInfo,
    AttemptInfo,
    DeadLetterInfo,
    MinuteInfo,
    Page,
    ProgressInfo,
    QueueInfo,
    RunningTask,
    TaskCounts,
    TaskInfo,
    WorkerInfo,
)
from .schedules import ScheduleInfo

__all__ = [
    "ActionInfo",
    "Admin",
    "AttemptInfo",
    "Control",
    "DeadFilter",
    "DeadLetterInfo",
    "MinuteInfo",
    "Page",
    "ProgressInfo",
    "QueueInfo",
    "Reply",
    "RunningTask",
    "ScheduleInfo",
    "TaskCounts",
    "TaskFilter",
    "TaskInfo",
    "UnknownName",
    "UnknownQueue",
    "UnknownState",
    "UnknownTask",
    "UnknownWorker",
    "WorkerInfo",
]
