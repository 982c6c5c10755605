"""From a signature to the job the broker stores: the one place a workflow step's message is
built, by the producer that starts a workflow and by the worker that continues it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from ..brokers import JobSpec
from ..message import Workflow, encode_envelope
from ..publish import before_publish
from ..signals import before_task_publish
from .signature import CALLBACK_OPTIONS, Signature

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..appproto import AppLike
    from ..task import Task


def task_for(app: AppLike, name: str) -> Task[Any, Any]:
    """The registered task, or a stand-in that enqueues by name (as ``send_task`` does)."""
    task = app.tasks.get(name)
    if task is None:
        from ..task import Task

        task = Task(lambda *a, **k: None, cast("Conveyor", app), options={"name": name, "typing": False})
    return task


def plain(sig: Signature, where: str) -> Signature:
    """``sig`` if it is a single task; a clear error for a nested workflow where none is taken."""
    if sig.subtask_type is not None:
        raise TypeError(
            f"a {sig.subtask_type} cannot be {where} (not supported; see docs/workflows.md"
            " 'Nesting'): got {sig!r}"
        )
    return sig


def job_for(
    app: AppLike,
    sig: Signature,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    workflow: Workflow | None = None,
    results_first: bool = False,
) -> JobSpec:
    """The job for one run of ``sig`` with these partial arguments (before its own, unless it
    is immutable), its ``link``/``link_error`` put into ``workflow``. ``results_first``: a
    chord body, whose first argument (the header's results) is added when it starts, so its
    arguments are checked with a stand-in for it."""
    plain(sig, "run as one task")
    task = task_for(app, sig.task)
    if sig.immutable:
        call_args, call_kwargs = list(sig.args), dict(sig.kwargs)
    else:
        call_args, call_kwargs = [*args, *sig.args], {**sig.kwargs, **(kwargs or {})}
    task._check_args([None, *call_args] if results_first else call_args, call_kwargs)
    options = {k: v for k, v in sig.options.items() if k not in CALLBACK_OPTIONS}
    env = task._envelope(call_args, call_kwargs, options)  # type: ignore[arg-type]
    wf = workflow or Workflow()
    wf.link = [*wf.link, *sig.options.get("link", ())]
    wf.link_error = [*wf.link_error, *sig.options.get("link_error", ())]
    if wf != Workflow():
        env.workflow = wf
    if before_task_publish.receivers:
        before_publish(env, app.conf.task_publish_retry_policy)
    return JobSpec(env.id, env.queue, encode_envelope(env), env.priority, env.eta, 0)
