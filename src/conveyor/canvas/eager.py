"""Workflows run here and now (``.apply()``, or ``task_always_eager``), with the worker's
semantics: a chain step gets the previous result and a failure stops the chain (its later
steps' results are that failure); ``link`` / ``link_error`` run; a chord's body runs once with
the header's results in order, or, if a header task failed, does not run: its errbacks run once
and its result is a ``ChordError`` naming the member. ``task_eager_propagates`` raises the
first failure after the workflow settled, as a single task's ``apply()`` does."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import states
from ..message import ResultPayload, new_task_id
from ..results import EagerResult, GroupResult
from .jobs import plain, task_for
from .signature import Signature, maybe_signature
from .workflows import Chain, Chord, Group

if TYPE_CHECKING:
    from ..app import Conveyor


def apply_eager(app: Conveyor, sig: Signature) -> EagerResult[Any] | GroupResult:
    result = _run(app, sig)
    if app.conf.task_eager_propagates:
        for r in result.results if isinstance(result, GroupResult) else [result]:
            r.get(propagate=True)  # raises the failure
    return result


def _run(app: Conveyor, sig: Signature) -> EagerResult[Any] | GroupResult:
    if isinstance(sig, Chain):
        return _chain(app, sig.tasks, [])
    if isinstance(sig, Group):
        group_id = sig.options.get("task_id") or new_task_id()
        results: list[Any] = [_one(app, m, list(sig.args)) for m in sig.tasks]
        return GroupResult(group_id, results, app)
    if isinstance(sig, Chord):
        return _chord(app, sig)
    return _one(app, sig)


def _one(app: Conveyor, sig: Signature, args: list[Any] | None = None) -> EagerResult[Any]:
    plain(sig, "run as one task")
    call = sig.clone(args or [])
    task = task_for(app, call.task)
    result = task.apply(call.args, call.kwargs, task_id=call.id, throw=False)
    if result.state == states.SUCCESS:
        for callback in call.options.get("link", ()):
            _one(app, maybe_signature(callback, app), [result.result])
    else:
        for errback in call.options.get("link_error", ()):
            _one(app, maybe_signature(errback, app), [result.id])
    return result


def _failed_like(app: Conveyor, sig: Signature, failed: EagerResult[Any]) -> EagerResult[Any]:
    return EagerResult(sig.id or new_task_id(), app, failed._state, failed._payload)


def _chain(
    app: Conveyor, steps: list[Signature], first_args: list[Any], parent: Any = None
) -> EagerResult[Any]:
    result: EagerResult[Any] | None = None
    args = first_args
    for step in steps:
        if result is not None and result.state != states.SUCCESS:
            stopped = _failed_like(app, step, result)
            stopped.parent = result
            result = stopped
            continue
        if isinstance(step, Group | Chord):
            raise TypeError("a group or chord inside a chain runs only as its first step (docs/workflows.md)")
        current = _one(app, step, args)
        current.parent = result if result is not None else parent
        result = current
        args = [current.result]
    assert result is not None
    return result


def _chord(app: Conveyor, c: Chord) -> EagerResult[Any]:
    body = c.body
    if body is None:
        raise TypeError("a chord needs a body: chord(header)(body) or chord(header, body)()")
    header = GroupResult(new_task_id(), [_one(app, m) for m in c.tasks], app)
    steps = body.tasks if isinstance(body, Chain) else [body]
    failed = next((r for r in header.results if r.state != states.SUCCESS), None)
    if failed is None:
        return _chain(app, steps, [[r.result for r in header.results]], header)
    index = header.results.index(failed)
    message = f"header task {failed.id} (member {index}) ended in {failed.state}: {failed.result!r}"
    error = ResultPayload(exc_type="conveyor.exceptions.ChordError", exc_message=message)
    for errback in [e for s in steps for e in s.options.get("link_error", ())] + list(
        c.options.get("link_error", ())
    ):
        _one(app, maybe_signature(errback, app), [failed.id])
    result: EagerResult[Any] = EagerResult(steps[-1].id or new_task_id(), app, states.FAILURE, error)
    result.parent = header
    return result
