"""``ExceptionInfo``: an exception with its traceback, as Celery hands it to ``on_failure``.

The ``einfo`` argument of the ``on_failure``/``on_retry``/``after_return`` hooks and of the
``task_failure``/``task_retry`` signals. ``str(einfo)`` is the formatted traceback, which is
what Celery code usually does with it (mail it, log it).

``task_traceback`` formats every traceback of a task's failure (the result's, the task
history's, the worker's log line, ``einfo``): from the first frame outside Conveyor, so that it
starts at the task's own code instead of the half-dozen worker frames that led into it, and
without Conveyor frames between two of the task's own.
"""

from __future__ import annotations

import os
import traceback as tb
from collections.abc import Callable
from traceback import StackSummary
from types import TracebackType
from typing import Any

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def task_traceback(exc: BaseException) -> str:
    """``exc``'s formatted traceback without its leading Conveyor frames (the worker's way into
    the task body). All of them are kept when no frame is outside Conveyor: a fault of
    Conveyor itself keeps every frame that shows where it happened. Chained exceptions
    (``raise ... from``) are formatted whole.

    >>> def body():
    ...     raise ValueError("bad input")
    >>> try:
    ...     body()
    ... except ValueError as exc:
    ...     text = task_traceback(exc)
    >>> text.splitlines()[-1], "in body" in text
    ('ValueError: bad input', True)
    """
    stopped_at = getattr(exc, "stopped_at", None)  # set by the worker (TimeLimitExceeded, ...)
    if isinstance(stopped_at, StackSummary) and stopped_at:
        return stopped_traceback(stopped_at, exc)
    start = first = exc.__traceback__
    while first is not None and first.tb_frame.f_code.co_filename.startswith(_PACKAGE):
        first = first.tb_next
    shown = tb.TracebackException(type(exc), exc, first if first is not None else start)
    # Conveyor frames between two of the task's own are left out too: ``self.retry(exc=e)`` past
    # max_retries re-raises ``e`` from inside Conveyor, which would put its frames between the
    # task's call and the line that raised ``e``. Trailing ones stay (a Conveyor call that
    # failed, or MaxRetriesExceededError: where it was raised).
    frames = list(shown.stack)
    last_own = max((i for i, f in enumerate(frames) if not f.filename.startswith(_PACKAGE)), default=-1)
    kept = [f for i, f in enumerate(frames) if i > last_own or not f.filename.startswith(_PACKAGE)]
    if len(kept) != len(frames):
        shown.stack = StackSummary.from_list(kept)
    return "".join(shown.format())


def stopped_traceback(stack: StackSummary, exc: BaseException) -> str:
    """The traceback of a run stopped from outside (a hard time limit, a terminating revoke):
    where its code was at that moment (``body_stack``), then ``exc``, as if raised there.

    >>> stack = StackSummary.from_list([("/app/tasks.py", 9, "fetch", None)])
    >>> print(stopped_traceback(stack, TimeoutError("stopped")))
    Traceback (most recent call last):
      File "/app/tasks.py", line 9, in fetch
    TimeoutError: stopped
    <BLANKLINE>
    """
    return (
        "Traceback (most recent call last):\n"
        + "".join(stack.format())
        + "".join(tb.format_exception_only(type(exc), exc))
    )


def body_stack(
    stack: StackSummary | None, body: Callable[..., Any], *, strict: bool = False
) -> StackSummary | None:
    """``stack`` (outermost frame first) from the frame that runs ``body`` on: the thread's or
    process's start-up and the worker's frames that led into the task are left out. All of it
    is kept when no frame runs ``body`` (the run was stopped before its body began); with
    ``strict``, None then.

    >>> def fetch(): ...
    >>> stack = StackSummary.from_list([("/lib/threading.py", 1, "run", None),
    ...     (fetch.__code__.co_filename, 9, "fetch", None), ("/lib/socket.py", 5, "recv", None)])
    >>> [f.name for f in body_stack(stack, fetch)]
    ['fetch', 'recv']
    """
    if not stack:
        return None
    code = getattr(getattr(body, "__func__", body), "__code__", None)
    if code is not None:
        for i, frame in enumerate(stack):
            if frame.name == code.co_name and frame.filename == code.co_filename:
                return StackSummary.from_list(stack[i:])
    return None if strict else stack


def stopped_where(stack: StackSummary) -> str:
    """The innermost frame of a stopped run, for a log line or a revoke's reason.

    >>> stopped_where(StackSummary.from_list([("/app/tasks.py", 9, "fetch", None)]))
    'tasks.py:9 in fetch'
    """
    frame = stack[-1]
    return f"{os.path.basename(frame.filename)}:{frame.lineno} in {frame.name}"


class ExceptionInfo:
    """A failure as handlers see it (Celery's ``einfo``): the exception, its type and traceback.

    >>> try:
    ...     1 / 0
    ... except ZeroDivisionError as exc:
    ...     einfo = ExceptionInfo(exc)
    >>> einfo.type.__name__, "ZeroDivisionError" in str(einfo)
    ('ZeroDivisionError', True)
    """

    __slots__ = ("_text", "exception", "tb", "type")

    def __init__(self, exception: BaseException, text: str | None = None) -> None:
        self.exception = exception
        self.type: type[BaseException] = type(exception)
        self.tb: TracebackType | None = exception.__traceback__
        self._text = text

    @property
    def traceback(self) -> str:
        """The formatted traceback (made on first use: most handlers never read it)."""
        if self._text is None:
            self._text = task_traceback(self.exception)
        return self._text

    @property
    def exc_info(self) -> tuple[type[BaseException], BaseException, TracebackType | None]:
        return self.type, self.exception, self.tb

    def __str__(self) -> str:
        return self.traceback

    def __repr__(self) -> str:
        return f"<ExceptionInfo: {self.exception!r}>"
