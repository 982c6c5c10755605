"""``ExceptionInfo``: an exception with its traceback, as Celery hands it to ``on_failure``.

The ``einfo`` argument of the ``on_failure``/``on_retry``/``after_return`` hooks and of the
``task_failure``/``task_retry`` signals. ``str(einfo)`` is the formatted traceback, which is
what Celery code usually does with it (mail it, log it).

``task_traceback`` formats every traceback of a task's failure (the result's, the task
history's, the worker's log line, ``einfo``): from the first frame outside Conveyor, so that it
starts at the task's own code instead of the half-dozen worker frames that led into it.
"""

from __future__ import annotations

import os
import traceback as tb
from types import TracebackType

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
    start = first = exc.__traceback__
    while first is not None and first.tb_frame.f_code.co_filename.startswith(_PACKAGE):
        first = first.tb_next
    return "".join(tb.format_exception(type(exc), exc, first if first is not None else start))


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
