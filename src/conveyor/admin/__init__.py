"""The admin API: read and control queues, workers, running tasks and dead letters.

``app.admin`` (or ``Admin(broker)``) is the one layer the CLI's operator commands stand on;
see api.py and docs/operations.md.
"""

from .api import Admin
from .control import Control, Reply, UnknownTask
from .deadletters import DeadFilter
from .errors import UnknownName, UnknownQueue, UnknownWorker
from .records import DeadLetterInfo, Page, QueueInfo, RunningTask, WorkerInfo

__all__ = [
    "Admin",
    "Control",
    "DeadFilter",
    "DeadLetterInfo",
    "Page",
    "QueueInfo",
    "Reply",
    "RunningTask",
    "UnknownName",
    "UnknownQueue",
    "UnknownTask",
    "UnknownWorker",
    "WorkerInfo",
]
