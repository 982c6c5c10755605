"""The signals the worker sends itself (docs/signals.md): about deliveries it does not run, a
run it terminated, and its own lifecycle. Task run signals and hooks are sent where the body
runs (``execution/trace.py``, called by the runners).

Each is one check of an empty list when nothing is connected; a handler that raises is logged
by ``Signal.send`` and changes nothing here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..exceptions import DecodeError
from ..message import decode_envelope
from ..request import Request
from ..signals import task_rejected, task_revoked, task_unknown

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..brokers import Delivery, PendingJob
    from ..task import Task
    from .intake import Refused


def refused(d: Delivery, refusal: Refused, hostname: str) -> None:
    """A delivery intake would not run: revoked or expired (``task_revoked``), an unknown task
    (``task_unknown``), or a message it cannot read (``task_rejected``). The sender of the
    last two is the worker's name (Celery's is its consumer object)."""
    if refusal.kind == "revoked":
        if task_revoked.receivers and refusal.task is not None:
            task_revoked.send(
                refusal.task, request=refusal.request, terminated=False, signum=None, expired=refusal.expired
            )
    elif refusal.unknown is not None:
        if task_unknown.receivers:
            task_unknown.send(hostname, name=refusal.unknown, id=d.id, message=d, exc=refusal.error)
    elif task_rejected.receivers:
        task_rejected.send(hostname, message=d, exc=refusal.error)


def terminated(task: Task[Any, Any], request: Request) -> None:
    """A running task was stopped by ``revoke(terminate=True)``."""
    if task_revoked.receivers:
        task_revoked.send(task, request=request, terminated=True, signum=None, expired=False)


def dropped(tasks: Mapping[str, Task[Any, Any]], job: PendingJob) -> None:
    """A task revoked while still in the broker, dropped by the revoke itself: ``task_revoked``
    in the process that revoked it, if the task is registered there."""
    if not task_revoked.receivers:
        return
    try:
        env = decode_envelope(job.body)
    except DecodeError:
        return
    task = tasks.get(env.task)
    if task is not None:
        request = Request(id=job.id, task=env.task, retries=env.retries, queue=job.queue, headers=env.headers)
        task_revoked.send(task, request=request, terminated=False, signum=None, expired=False)
