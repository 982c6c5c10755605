"""From a signature to the job the broker stores: the one place a workflow step's message is
built, by the producer that starts a workflow and by the worker that continues it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from ..brokers import JobSpec
from ..message import Workflow, encode_envelope
from ..publish import before_publish
from ..signals import before_task_publish

#: Options that wire a workflow rather than shape the message.
CALLBACK_OPTIONS = frozenset({"link", "link_error"})

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


def plain(sig: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """``sig`` if it is a single task; a clear error for a nested workflow where none is taken."""
    kind = sig.get("subtask_type")
    if kind is not None:
        raise TypeError(
            f"a {kind} cannot be {where} (not supported; see docs/workflows.md, 'Nesting'): got {sig!r}"
        )
    return sig


def job_for(
    app: AppLike,
    sig: Mapping[str, Any],
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
    task = task_for(app, sig["task"])
    call_args, call_kwargs = call_arguments(sig, args, kwargs)
    task._check_args([None, *call_args] if results_first else call_args, call_kwargs)
    sig_options: Mapping[str, Any] = sig.get("options") or {}
    options = {k: v for k, v in sig_options.items() if k not in CALLBACK_OPTIONS}
    env = task._envelope(call_args, call_kwargs, options)  # type: ignore[arg-type]
    wf = workflow or Workflow()
    wf.link = [*wf.link, *sig_options.get("link", ())]
    wf.link_error = [*wf.link_error, *sig_options.get("link_error", ())]
    if wf != Workflow():
        env.workflow = wf
    if before_task_publish.receivers:
        before_publish(env, app.conf.task_publish_retry_policy)
    return JobSpec(env.id, env.queue, encode_envelope(env), env.priority, env.eta, 0)


def check_later_step(app: AppLike, sig: Mapping[str, Any]) -> None:
    """Check, when a workflow starts, that a later step will take the result it is given
    (a stand-in for it): a step that cannot fit fails the start, not the workflow midway."""
    plain(sig, "a step of a chain (a group may only start one; see docs/workflows.md)")
    call_args, call_kwargs = call_arguments(sig, [None])
    task_for(app, sig["task"])._check_args(call_args, call_kwargs)


def call_arguments(
    sig: Mapping[str, Any], args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
) -> tuple[list[Any], dict[str, Any]]:
    """The arguments ``sig`` runs with, given partial ones: before its own, unless immutable."""
    own_args, own_kwargs = list(sig.get("args") or ()), dict(sig.get("kwargs") or {})
    if sig.get("immutable"):
        return own_args, own_kwargs
    return [*args, *own_args], {**own_kwargs, **(kwargs or {})}


def task_id_of(sig: Mapping[str, Any]) -> str | None:
    options = sig.get("options") or {}
    task_id = options.get("task_id")
    return str(task_id) if task_id else None
