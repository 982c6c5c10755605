"""Exceptions a user of Conveyor sees, named as Celery names them where Celery has one.

Raised *inside* tasks: ``SoftTimeLimitExceeded``, ``Retry``, ``Reject``, ``MaxRetriesExceededError``.
Raised to producers: ``EncodeError`` (arguments that do not serialise), ``NotRegistered``,
``TimeoutError`` (``AsyncResult.get``), ``BrokerError``, ``ConfigurationError``.
Stored as a task's failure: ``TimeLimitExceeded``, ``WorkerLostError``, ``TaskRevokedError``.
"""

from __future__ import annotations

import builtins
import difflib
from collections.abc import Iterable
from traceback import StackSummary
from typing import Any


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """A hint naming the known name closest to a misspelt one, or ``""`` if none is close.

    >>> did_you_mean("task_acks_lat", ["task_acks_late", "task_time_limit"])
    " (did you mean 'task_acks_late'?)"
    """
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class ConveyorError(Exception):
    """Base class of every error Conveyor raises itself."""


class ConfigurationError(ConveyorError):
    """A setting, a broker URL or a task option is invalid."""


class ConfigurationWarning(UserWarning):
    """A setting looks wrong but is kept: e.g. a name Conveyor does not know (likely misspelt)."""


class BrokerError(ConveyorError):
    """The broker could not be reached or answered with an error."""


class EncodeError(ConveyorError, TypeError):
    """Arguments or a result could not be serialised (nothing was enqueued)."""


class DecodeError(ConveyorError, ValueError):
    """A message from the broker could not be decoded (it goes to the dead-letter set)."""


class NotRegistered(ConveyorError, KeyError):
    """No task of that name is registered with the app."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "task not registered"


class TimeoutError(ConveyorError, builtins.TimeoutError):
    """``AsyncResult.get(timeout=...)`` gave up waiting."""


class SoftTimeLimitExceeded(ConveyorError):
    """Raised inside a task when its soft time limit passes; catch it to clean up."""


class TimeLimitExceeded(ConveyorError):
    """The task passed its hard time limit and was stopped.

    ``stopped_at``: where the task's code was at that moment (its stack, outermost first), when
    the worker could read it; the task's traceback then shows it (``einfo.task_traceback``).
    """

    stopped_at: StackSummary | None = None


class WorkerLostError(ConveyorError):
    """The worker running the task died on it too many times."""


class TaskRevokedError(ConveyorError):
    """The task was revoked (or expired) before or while it ran.

    ``stopped_at``: for a run stopped by a terminating revoke, where its code was then.
    """

    stopped_at: StackSummary | None = None


class MaxRetriesExceededError(ConveyorError):
    """``self.retry()`` was called but the task has no retries left."""


class Retry(ConveyorError):
    """Raised by ``self.retry()``: tells the worker to run the task again later.

    Do not catch it in task code; let it propagate.
    """

    def __init__(
        self,
        message: str | None = None,
        exc: BaseException | None = None,
        when: float | None = None,
        *,
        args_override: list[Any] | None = None,
        kwargs_override: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message or "retry requested")
        self.exc = exc
        self.when = when  # countdown in seconds from now
        # self.retry(args=..., kwargs=...): the next run's arguments (None: the same as this run's)
        self.args_override = args_override
        self.kwargs_override = kwargs_override


class ChordError(ConveyorError):
    """A chord's header task failed, so its body did not run: the chord's result raises this,
    naming the member (Celery's name)."""


class Reject(ConveyorError):
    """Raise inside a task to reject its message.

    ``requeue=False`` (default) sends it to the dead-letter set; ``requeue=True`` puts it back
    on its queue.
    """

    def __init__(self, reason: str | None = None, requeue: bool = False) -> None:
        super().__init__(reason or "rejected")
        self.reason = reason or "rejected"
        self.requeue = requeue


class RemoteError(ConveyorError):
    """A task failed with an exception that cannot be rebuilt safely in this process.

    ``exc_type`` holds the remote exception's qualified name and ``traceback`` its traceback.
    """

    def __init__(self, exc_type: str, message: str, traceback: str | None = None) -> None:
        super().__init__(f"{exc_type}: {message}")
        self.exc_type = exc_type
        self.message = message
        self.traceback = traceback


class LockError(ConveyorError):
    """A lock could not be used as asked (base class of the lock errors)."""


class LockTimeout(LockError, TimeoutError):
    """``with app.lock(...)`` gave up waiting for the lock (``blocking_timeout`` passed)."""


class LockNotOwnedError(LockError):
    """Releasing or extending a lock this holder does not hold (any more): it expired, or an
    operator released it. Whatever it protected may have been changed by another holder."""
