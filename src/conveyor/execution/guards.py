"""Run guards: checks around a task run that need the broker (locks, rate limits, per-key limits).

A guard decides, just before a task body runs, whether it may run now. It returns ``None`` to
let it run, or an ``Outcome`` to settle instead (e.g. a ``retry`` at the next allowed time,
which puts the job back in the broker so it occupies no worker slot while it waits, or an
``ack`` with a "skipped" result). ``after`` runs when the body finished, whatever the result.

Guards run in the worker's I/O thread (they talk to the broker), never on the event loop.
They are looked up per task through ``app.run_guards(task)``; an app with none costs one
empty-list check per task.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..appproto import AppLike
    from ..brokers import Delivery, Outcome
    from ..request import Request
    from ..task import Task


class RunGuard(Protocol):
    def before(self, task: Task[Any, Any], request: Request, delivery: Delivery) -> Outcome | None:
        """Return None to run the task now, or the outcome to settle instead of running it."""

    def after(self, task: Task[Any, Any], request: Request, delivery: Delivery) -> None:
        """Called once the body has finished (success, failure, retry or time limit)."""


#: Builds the guard for one task, or None when the task needs none (``app.guard_factories``).
GuardFactory = Callable[["AppLike", "Task[Any, Any]"], "RunGuard | None"]
