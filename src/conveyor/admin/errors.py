"""Errors of the admin API: a name or id it does not know. The CLI turns them into a one-line
usage error (exit 2)."""

from __future__ import annotations

from ..exceptions import ConveyorError


class UnknownName(ConveyorError, LookupError):
    """Base of the admin API's "no such thing" errors."""


class UnknownQueue(UnknownName):
    """No job, worker or pause mentions this queue."""


class UnknownWorker(UnknownName):
    """No worker with this name heartbeated recently."""


class UnknownTask(UnknownName):
    """No task with this id is queued, running, or has a result or history record."""


class UnknownState(UnknownName):
    """Not one of the task states the history lists."""
