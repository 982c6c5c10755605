"""``ExceptionInfo``: an exception with its traceback, as Celery hands it to ``on_failure``.

The ``einfo`` argument of the ``on_failure``/``on_retry``/``after_return`` hooks and of the
``task_failure``/``task_retry`` signals. ``str(einfo)`` is the formatted traceback, which is
what Celery code usually does with it (mail it, log it).
"""

from __future__ import annotations

import traceback as tb
from types import TracebackType


class ExceptionInfo:
    """>>> try:
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
            self._text = "".join(tb.format_exception(self.exception))
        return self._text

    @property
    def exc_info(self) -> tuple[type[BaseException], BaseException, TracebackType | None]:
        return self.type, self.exception, self.tb

    def __str__(self) -> str:
        return self.traceback

    def __repr__(self) -> str:
        return f"<ExceptionInfo: {self.exception!r}>"
