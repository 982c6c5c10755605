"""Key presses for ``conveyor monitor``, read without Enter and without blocking.

The terminal is put in cbreak mode: keys arrive one at a time and are not echoed, while
Ctrl-C still sends SIGINT. Its settings are saved first and restored on every way out — ``q``,
Ctrl-C, SIGTERM, an error — so a shell over SSH is never left without echo.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import time
import tty
from typing import IO, Any, Self


class Keys:
    """``with Keys() as keys: keys.read(0.1)`` returns the keys pressed within 0.1 s ("" if none).

    Without a terminal on stdin there are no keys to read: ``read`` only waits (Ctrl-C or a
    signal still ends the monitor).
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdin
        self._fd: int | None = None
        self._saved: list[Any] | None = None
        self.closed = False  # the terminal hung up (EOF): nothing will ever be read again

    def __enter__(self) -> Self:
        try:
            fd = self._stream.fileno()
        except (AttributeError, ValueError, OSError):
            return self
        if os.isatty(fd):
            self._fd = fd
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd, termios.TCSANOW)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None and self._saved is not None:
            # TCSADRAIN: let what the view wrote reach the terminal before the mode changes.
            # A terminal that hung up (SSH gone) has nothing left to restore.
            with contextlib.suppress(termios.error, OSError):
                termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def read(self, timeout: float) -> str:
        if self._fd is None or self.closed:
            time.sleep(timeout)
            return ""
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            return ""
        data = os.read(self._fd, 64)
        if not data:
            self.closed = True
        return data.decode(errors="ignore")
