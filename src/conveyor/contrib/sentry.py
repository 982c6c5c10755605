"""Report failed tasks to Sentry, with the task's name, id, arguments and attempt.

    from conveyor.contrib.sentry import init_sentry
    init_sentry(dsn="https://...@sentry.example/1", environment="production")

or, where the application calls ``sentry_sdk.init`` itself (Django settings usually do)::

    from conveyor.contrib.sentry import capture_task_failures
    capture_task_failures()

Call either in the module that creates the app, so every worker process runs it. A task
failure (no retry left) becomes one Sentry event: the exception and its traceback, tagged
``conveyor.task`` and ``conveyor.task_id``, with a ``conveyor task`` context holding the
arguments, the queue, the attempt and the worker. Retries are not reported (the failure
will be, if it comes to that).

The handler runs where the task ran (its thread), on a scope of its own: the task's tags go on
this event only. The worker's own "task ... failed" log line is kept out of
Sentry (``ignore_logger``): with the logging integration on it would be a second, contextless
event for the same failure. Needs ``sentry-sdk`` (``pip install conveyor[sentry]``).
"""

from __future__ import annotations

from typing import Any

import sentry_sdk
from sentry_sdk.integrations.logging import ignore_logger

from ..request import current_request
from ..signals import task_failure, worker_shutdown

DISPATCH_UID = "conveyor.contrib.sentry"
FLUSH_TIMEOUT = 2.0  # seconds a stopping worker waits for queued events to be sent


def init_sentry(**options: Any) -> None:
    """``sentry_sdk.init(**options)``, then :func:`capture_task_failures`."""
    sentry_sdk.init(**options)
    capture_task_failures()


def capture_task_failures() -> None:
    """Report every task failure to the Sentry client already set up (idempotent)."""
    task_failure.connect(_report_failure, dispatch_uid=DISPATCH_UID)
    worker_shutdown.connect(_flush, dispatch_uid=DISPATCH_UID)
    ignore_logger("conveyor.worker.outcome")


def _report_failure(
    sender: Any, task_id: str, exception: BaseException, args: Any, kwargs: Any, **_: Any
) -> None:
    name = getattr(sender, "name", str(sender))
    request = current_request.get()
    context = {
        "task": name,
        "id": task_id,
        "args": args,
        "kwargs": kwargs,
        "queue": request.queue if request else None,
        "attempt": request.retries + 1 if request else 1,
        "worker": request.hostname if request else None,
        "eager": request.is_eager if request else False,
    }
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("conveyor.task", name)
        scope.set_tag("conveyor.task_id", task_id)
        scope.set_context("conveyor task", context)
        scope.capture_exception(exception)


def _flush(**_: Any) -> None:
    sentry_sdk.flush(timeout=FLUSH_TIMEOUT)
