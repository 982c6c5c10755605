"""Starting a workflow from the producer: ids are fixed up front for every step (so the
results exist as handles at once and a stopped chain can mark its later steps failed), a
chord's group is registered with its body before any header task is enqueued, and each kind
returns what a Celery user expects (docs/workflows.md, "What applying returns").

The signatures come in as ``Signature`` objects (signature.py calls this module); only their
methods and ``subtask_type`` are used here, so this module does not import their classes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import reduce
from typing import TYPE_CHECKING, Any

from ..message import Workflow, new_task_id
from ..publish import publish, send_in_chunks
from ..results import AsyncResult, GroupResult
from .jobs import check_later_step, job_for, plain

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..brokers import JobSpec
    from .signature import Chain, Chord, Group, Signature

BULK_CHUNK = 1000
#: How long a chord's group is kept at least, whatever ``result_expires`` says: a short result
#: expiry (kept small to save memory) must not make a long chord impossible to complete.
MIN_GROUP_TTL = 86400.0
#: A workflow's options that apply to its first task only (a chain's delay is its start's).
FIRST_STEP_ONLY = frozenset({"countdown", "eta"})


def apply_async(
    app: Conveyor,
    sig: Signature,
    args: Sequence[Any] | None,
    kwargs: Mapping[str, Any] | None,
    options: Mapping[str, Any],
) -> AsyncResult[Any] | GroupResult:
    if app.conf.task_always_eager:
        from .eager import apply_eager

        return apply_eager(app, sig.clone(args, kwargs, **options))
    kind = sig.subtask_type
    if kind == "chain":
        return _chain(app, sig, args or (), kwargs or {}, options)  # type: ignore[arg-type]
    if kind == "group":
        return _group(app, sig, args or (), kwargs or {}, options)  # type: ignore[arg-type]
    if kind == "chord":
        return _chord(app, sig, args or (), kwargs or {}, options)  # type: ignore[arg-type]
    step = sig.clone(**options) if options else sig
    task_id = step.freeze()
    _send(app, [job_for(app, step, args or (), kwargs, Workflow(root=task_id))])
    return AsyncResult(task_id, app)


def _send(app: Conveyor, jobs: list[JobSpec]) -> None:
    conf = app.conf
    if len(jobs) == 1:
        publish(app.broker, jobs, conf.task_publish_retry, conf.task_publish_retry_policy)
    else:
        send_in_chunks(app, jobs, BULK_CHUNK)


def fixed_steps(steps: list[Signature], chain_options: Mapping[str, Any]) -> list[Signature]:
    """Copies of a chain's steps, each with its task id set; the chain's options fill in what
    a step does not set (``task_id`` and ``link`` are the last step's: the chain's result;
    ``link_error`` is every step's; ``countdown`` and ``eta`` delay the first step only, as in
    Celery)."""
    shared = {k: v for k, v in chain_options.items() if k not in ("task_id", "link", "link_error")}
    fixed = []
    for position, step in enumerate(steps):
        plain(step, "a step of a chain (a group may only start one; see docs/workflows.md)")
        fill = {k: v for k, v in shared.items() if k not in step.options}
        if position > 0:
            fill = {k: v for k, v in fill.items() if k not in FIRST_STEP_ONLY}
        fixed.append(step.clone(**fill))
    last = fixed[-1]
    if chain_options.get("task_id"):
        last.options["task_id"] = chain_options["task_id"]
    for callback in chain_options.get("link", ()):
        last.link(callback)
    for errback in chain_options.get("link_error", ()):
        for step in fixed:  # whichever step fails runs it (once: a failure stops the chain)
            step.link_error(errback)
    for step in fixed:
        step.freeze()
    return fixed


def _results(app: Conveyor, steps: list[Signature], parent: Any = None) -> AsyncResult[Any]:
    result: AsyncResult[Any] | None = None
    for step in steps:
        assert step.id is not None
        result = AsyncResult(step.id, app, parent=result if result is not None else parent)
    assert result is not None
    return result


def _chain(
    app: Conveyor, ch: Chain, args: Sequence[Any], kwargs: Mapping[str, Any], options: Mapping[str, Any]
) -> AsyncResult[Any] | GroupResult:
    tasks = ch.tasks
    first = tasks[0]
    if first.subtask_type in ("group", "chord") and len(tasks) == 1:
        return apply_async(app, first, args, kwargs, {**ch.options, **options})
    if first.subtask_type == "group":
        # group | rest: the group is a chord's header and the rest its body (as in Celery).
        body = reduce(lambda a, b: a | b, tasks[1:]) if len(tasks) > 2 else tasks[1]
        return apply_async(app, first | body, args, kwargs, {**ch.options, **options})
    steps = fixed_steps(tasks, {**ch.options, **options})
    head, rest = steps[0], steps[1:]
    for later in rest:
        check_later_step(app, later)
    assert head.id is not None
    workflow = Workflow(chain=[dict(s) for s in rest], root=head.id)
    _send(app, [job_for(app, head, args, kwargs, workflow)])
    return _results(app, steps)


def _group(
    app: Conveyor, g: Group, args: Sequence[Any], kwargs: Mapping[str, Any], options: Mapping[str, Any]
) -> GroupResult:
    group_id = options.get("task_id") or g.options.get("task_id") or new_task_id()
    shared = {k: v for k, v in {**g.options, **options}.items() if k != "task_id"}
    jobs: list[JobSpec] = []
    results: list[AsyncResult[Any]] = []
    for index, member in enumerate(g.tasks):
        job, task_id = _member_job(app, member, shared, args, kwargs, Workflow(group=group_id, index=index))
        jobs.append(job)
        results.append(AsyncResult(task_id, app))
    _send(app, jobs)
    return GroupResult(group_id, results, app)


def _member_job(
    app: Conveyor,
    member: Signature,
    shared: Mapping[str, Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    workflow: Workflow,
) -> tuple[JobSpec, str]:
    """The first job of a group's (or chord header's) member and the id of the member's result:
    a task, or a chain, whose steps carry the member's place so its last step joins (and any
    step that fails joins as failed)."""
    if member.subtask_type == "chain":
        steps = fixed_steps(member.tasks, {**shared, **member.options})  # type: ignore[attr-defined]
        for later in steps[1:]:
            check_later_step(app, later)
        workflow.chain = [dict(s) for s in steps[1:]]
        result_id = steps[-1].id
        assert result_id is not None
        return job_for(app, steps[0], args, kwargs, workflow), result_id
    plain(member, "a member of a group or chord header (a task or a chain; see docs/workflows.md)")
    step = member.clone(**{k: v for k, v in shared.items() if k not in member.options})
    task_id = step.freeze()
    return job_for(app, step, args, kwargs, workflow), task_id


def _chord(
    app: Conveyor, c: Chord, args: Sequence[Any], kwargs: Mapping[str, Any], options: Mapping[str, Any]
) -> AsyncResult[Any]:
    body = c.body
    if body is None:
        raise TypeError("a chord needs a body: chord(header)(body) or chord(header, body)()")
    body_steps: list[Signature] = body.tasks if body.subtask_type == "chain" else [body]  # type: ignore[attr-defined]
    chord_options = {**c.options, **options}
    group_id = new_task_id()
    steps = fixed_steps(
        body_steps, {k: v for k, v in chord_options.items() if k in ("task_id", "link_error")}
    )
    first, rest = steps[0], steps[1:]
    for later in rest:
        check_later_step(app, later)
    assert first.id is not None
    header = c.tasks
    header_results = GroupResult(group_id, [], app)
    if not header:  # nothing to wait for: the body runs now, with no results
        _send(app, [job_for(app, first, [[]], {}, Workflow(chain=[dict(s) for s in rest], root=first.id))])
        return _results(app, steps, header_results)
    # An immutable body (``report.si()``) runs with its own arguments only, as in Celery.
    results_of = None if first.immutable else group_id
    body_workflow = Workflow(
        chain=[dict(s) for s in rest], results_of=results_of, group=group_id, root=group_id
    )
    body_job = job_for(app, first, (), {}, body_workflow, results_first=not first.immutable)
    chord_info: dict[str, Any] = {}  # (the body's id is registered with the group)
    if rest:
        chord_info["stop"] = [s.id for s in rest]
    errbacks: list[Any] = []
    for errback in (e for s in steps for e in s.options.get("link_error", ())):
        if errback not in errbacks:  # a chain body's errback is on each of its steps
            errbacks.append(errback)
    if errbacks:
        chord_info["errbacks"] = errbacks
    jobs = []
    for index, member in enumerate(header):
        workflow = Workflow(group=group_id, index=index, chord=chord_info)
        job, task_id = _member_job(app, member, {}, args, kwargs, workflow)
        jobs.append(job)
        header_results.results.append(AsyncResult(task_id, app))
    # The group (with its body) exists before any member can finish and join it.
    app.broker.start_group(group_id, len(jobs), body_job, max(app.conf.result_expires, MIN_GROUP_TTL))
    _send(app, jobs)
    return _results(app, steps, header_results)
