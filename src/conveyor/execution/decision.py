"""Running a task body once and deciding what happens next: success, retry, reject or failure.

Shared by the worker and by eager ``apply()``, so a task behaves the same in tests as in
production (same retry decisions, same backoff, same max_retries rule).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..einfo import task_traceback
from ..exceptions import MaxRetriesExceededError, Reject, Retry
from ..message import ResultPayload
from ..request import Request
from ..retry import backoff_delay

if TYPE_CHECKING:
    from ..task import Task

Verdict = Literal["success", "retry", "failure", "reject"]


@dataclass(slots=True)
class Decision:
    verdict: Verdict
    value: Any = None
    exc: BaseException | None = None
    traceback: str | None = None
    countdown: float = 0.0  # retry: seconds from now
    args: list[Any] | None = None  # retry: replacement args/kwargs (self.retry(args=...))
    kwargs: dict[str, Any] | None = None
    requeue: bool = False  # reject: back to the queue instead of dead letters


class RemoteError(Exception):
    """An exception raised by a body that ran in another process (a ``-P processes`` child),
    as its worker sees it: that process already decided what happens next (``decide`` needs
    the live exception), and ``decide`` here returns its decision unchanged."""

    decision: Decision


def exc_qualname(exc: BaseException) -> str:
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}"


def describe(exc: BaseException) -> str:
    """``str(exc)``, even for an exception whose ``__str__`` itself raises.

    Task code can raise anything; the worker must still be able to report it, or the error
    escapes the worker's own handling of the message (and the message is tried again for ever).

    >>> class Odd(Exception):
    ...     def __str__(self) -> str: raise RuntimeError
    >>> describe(Odd())
    '<Odd: str() failed>'
    """
    try:
        return str(exc)
    except BaseException:
        return f"<{type(exc).__name__}: str() failed>"


def failure_payload(
    exc: BaseException, traceback: str | None, worker: str | None, retries: int
) -> ResultPayload:
    return ResultPayload(
        exc_type=exc_qualname(exc),
        exc_message=describe(exc),
        traceback=traceback,
        worker=worker,
        retries=retries,
        date_done=time.time(),
    )


def decide(task: Task[Any, Any], request: Request, exc: BaseException) -> Decision:
    """Classify an exception raised by a task body."""
    if isinstance(exc, RemoteError):
        return exc.decision
    trace = task_traceback(exc)
    if isinstance(exc, Retry):
        countdown = exc.when if exc.when is not None else task.default_retry_delay
        cause = exc.exc or exc
        return Decision(
            "retry",
            exc=cause,
            traceback=trace,
            countdown=max(0.0, countdown),
            args=exc.args_override,
            kwargs=exc.kwargs_override,
        )
    if isinstance(exc, Reject):
        return Decision("reject", exc=exc, traceback=trace, requeue=exc.requeue)
    if (
        task.autoretry_for
        and isinstance(exc, task.autoretry_for)
        and not (task.dont_autoretry_for and isinstance(exc, task.dont_autoretry_for))
    ):
        limit = request.max_retries if request.max_retries is not None else task.max_retries
        if limit is None or request.retries < limit:
            if task.retry_backoff:
                factor = 1.0 if task.retry_backoff is True else float(task.retry_backoff)
                countdown = backoff_delay(request.retries, factor, task.retry_backoff_max, task.retry_jitter)
            else:
                countdown = task.default_retry_delay
            return Decision("retry", exc=exc, traceback=trace, countdown=countdown)
    return Decision("failure", exc=exc, traceback=trace)


def check_retry_allowed(
    task: Task[Any, Any], request: Request, exc: BaseException | None, max_retries: int | None
) -> None:
    """Celery's rule for ``self.retry()``: past max_retries, raise the original exception if
    one was given, else ``MaxRetriesExceededError``."""
    limit = (
        max_retries
        if max_retries is not None
        else (request.max_retries if request.max_retries is not None else task.max_retries)
    )
    if limit is not None and request.retries >= limit:
        if exc is not None:
            raise exc
        raise MaxRetriesExceededError(
            f"can't retry {task.name}[{request.id}]: max retries ({limit}) exceeded"
        )
