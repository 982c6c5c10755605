"""A task's hooks and run signals around one run of its body, where the body runs.

    task_prerun ─> before_start ─> body ─┬─ returned ─> on_success, task_success, after_return
                                         ├─ retry ────> on_retry, task_retry
                                         ├─ failure ──> on_failure, task_failure, after_return
                                         └─ reject / revoked (terminated): nothing more
                                      ─> task_postrun (always, with the state)

The order and arguments are Celery's (docs/signals.md). Called by the worker's runners in the
task's own thread (threads pool), on the loop (solo pool, ``async def`` tasks) and by eager
``apply()``, so ``self.request``, thread-locals and the task's log context are those of the run.

Guarantee: a hook or handler that raises is logged with the task's name and id and ignored; the
task's outcome is decided from the body alone (the reporter classifies the same exception the
same way), so nothing here can change it or lose the task. A task with no hooks of its own and
no handler connected skips all of this at the cost of a few attribute checks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .. import states
from ..einfo import ExceptionInfo
from ..exceptions import TaskRevokedError
from ..signals import task_failure, task_postrun, task_prerun, task_retry, task_success
from .decision import decide

if TYPE_CHECKING:
    from ..request import Request
    from ..task import Task

logger = logging.getLogger("conveyor.worker")

R = TypeVar("R")
REJECTED = "REJECTED"  # Celery's state name for a rejected run (task_postrun's ``state``)


def traced(task: Task[Any, Any]) -> bool:
    """Whether a run of ``task`` has anything to call around it (checked per run: a handler
    may be connected while the worker runs)."""
    return task.hooked or bool(
        task_prerun.receivers
        or task_postrun.receivers
        or task_success.receivers
        or task_failure.receivers
        or task_retry.receivers
    )


def run_traced(task: Task[Any, Any], request: Request, body: Callable[[], R]) -> R:
    """Run ``body`` (a sync task body) with the hooks and signals around it, in this thread."""
    if not traced(task):
        return body()
    started(task, request)
    t0 = time.perf_counter()
    try:
        value = body()
    except BaseException as exc:
        errored(task, request, exc)
        raise
    succeeded(task, request, value, time.perf_counter() - t0)
    return value


def started(task: Task[Any, Any], request: Request) -> None:
    """Before the body: ``task_prerun``, then ``before_start``."""
    if task_prerun.receivers:
        task_prerun.send(task, task_id=request.id, task=task, args=request.args, kwargs=request.kwargs)
    if task.hooked:
        _hook(task, request, "before_start", request.id, request.args, request.kwargs)


def succeeded(task: Task[Any, Any], request: Request, value: Any, runtime: float) -> None:
    """The body returned ``value``."""
    task_id, args, kwargs = request.id, request.args, request.kwargs
    if task.hooked:
        _hook(task, request, "on_success", value, task_id, args, kwargs)
    if task_success.receivers:
        task_success.send(task, result=value, runtime=runtime)
    if task.hooked:
        _hook(task, request, "after_return", states.SUCCESS, value, task_id, args, kwargs, None)
    _postrun(task, request, value, states.SUCCESS)


def errored(task: Task[Any, Any], request: Request, exc: BaseException) -> None:
    """The body raised ``exc``: classified as the reporter will (``decide``), then announced."""
    task_id, args, kwargs = request.id, request.args, request.kwargs
    if isinstance(exc, TaskRevokedError):  # terminated: the worker sends task_revoked
        _postrun(task, request, exc, states.REVOKED)
        return
    decision = decide(task, request, exc)
    cause = decision.exc or exc
    if decision.verdict == "reject":
        _postrun(task, request, exc, REJECTED)
        return
    einfo = ExceptionInfo(cause, decision.traceback)
    if decision.verdict == "retry":
        if task.hooked:
            _hook(task, request, "on_retry", cause, task_id, args, kwargs, einfo)
        if task_retry.receivers:
            task_retry.send(task, request=request, reason=exc, einfo=einfo)
        _postrun(task, request, cause, states.RETRY)
        return
    if task.hooked:
        _hook(task, request, "on_failure", cause, task_id, args, kwargs, einfo)
    if task_failure.receivers:
        task_failure.send(
            task,
            task_id=task_id,
            exception=cause,
            args=args,
            kwargs=kwargs,
            traceback=cause.__traceback__,
            einfo=einfo,
        )
    if task.hooked:
        _hook(task, request, "after_return", states.FAILURE, cause, task_id, args, kwargs, einfo)
    _postrun(task, request, cause, states.FAILURE)


def _postrun(task: Task[Any, Any], request: Request, retval: Any, state: str) -> None:
    if task_postrun.receivers:
        task_postrun.send(
            task,
            task_id=request.id,
            task=task,
            args=request.args,
            kwargs=request.kwargs,
            retval=retval,
            state=state,
        )


def _hook(task: Task[Any, Any], request: Request, name: str, *args: Any) -> None:
    try:
        getattr(task, name)(*args)
    except (Exception, SystemExit):
        logger.exception("%s hook of task %s[%s] raised; ignored", name, task.name, request.id)
