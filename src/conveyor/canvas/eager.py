"""Workflows run here and now (``.apply()``, or ``task_always_eager``), with the worker's
semantics: a chain step gets the previous result and a failure stops the chain (its later
steps' results are that failure); ``link`` / ``link_error`` run; a chord's body runs once with
the header's results in order, or, if a header task failed, does not run: its errbacks run once
and its result is a ``ChordError`` naming the member. ``task_eager_propagates`` raises the
first failure after the workflow settled, as a single task's ``apply()`` does.

Signatures are read as mappings (their JSON form), so this module does not import their classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import states
from ..message import ResultPayload, new_task_id
from ..results import EagerResult, GroupResult
from .jobs import call_arguments, plain, task_for, task_id_of

if TYPE_CHECKING:
    from ..app import Conveyor

Sig = Mapping[str, Any]


def apply_eager(app: Conveyor, sig: Sig) -> EagerResult[Any] | GroupResult:
    result = _run(app, sig)
    if app.conf.task_eager_propagates:
        for r in result.results if isinstance(result, GroupResult) else [result]:
            r.get(propagate=True)  # raises the failure
    return result


def _parts(sig: Sig, key: str) -> list[Sig]:
    return list((sig.get("kwargs") or {}).get(key) or ())


def _run(app: Conveyor, sig: Sig) -> EagerResult[Any] | GroupResult:
    kind = sig.get("subtask_type")
    if kind == "chain":
        steps = _parts(sig, "tasks")
        if steps and steps[0].get("subtask_type") == "group" and len(steps) > 1:
            return _chord(app, _parts(steps[0], "tasks"), steps[1:], sig.get("options") or {})
        result = _chain(app, steps, list(sig.get("args") or ()))
        _chain_callbacks(app, sig.get("options") or {}, result)
        return result
    if kind == "group":
        group_id = task_id_of(sig) or new_task_id()
        results: list[Any] = [_member(app, m, list(sig.get("args") or ())) for m in _parts(sig, "tasks")]
        return GroupResult(group_id, results, app)
    if kind == "chord":
        body = (sig.get("kwargs") or {}).get("body")
        if body is None:
            raise TypeError("a chord needs a body: chord(header)(body) or chord(header, body)()")
        steps = _parts(body, "tasks") if body.get("subtask_type") == "chain" else [body]
        options = dict(sig.get("options") or {})
        options["link_error"] = [
            *options.get("link_error", ()),
            *(body.get("options") or {}).get("link_error", ()),
        ]
        result = _chord(app, _parts(sig, "header"), steps, options)
        if body.get("subtask_type") == "chain" and result.state == states.SUCCESS:
            _chain_callbacks(app, {"link": (body.get("options") or {}).get("link", ())}, result)
        return result
    return _one(app, sig)


def _member(app: Conveyor, sig: Sig, args: list[Any] | None = None) -> EagerResult[Any]:
    """A group's member: a task, or a chain (its last step's result is the member's)."""
    if sig.get("subtask_type") == "chain":
        return _chain(app, _parts(sig, "tasks"), args or [])
    return _one(app, sig, args)


def _chain_callbacks(app: Conveyor, options: Mapping[str, Any], result: EagerResult[Any]) -> None:
    """A chain's own ``link`` (given its result) or ``link_error`` (given the failed step's id)."""
    if result.state == states.SUCCESS:
        for callback in options.get("link", ()):
            _one(app, callback, [result.result])
        return
    failed: Any = result
    while isinstance(failed.parent, EagerResult) and failed.parent.state != states.SUCCESS:
        failed = failed.parent  # back to the step that failed (later ones only copy it)
    for errback in options.get("link_error", ()):
        _one(app, errback, [failed.id])


def _one(app: Conveyor, sig: Sig, args: list[Any] | None = None) -> EagerResult[Any]:
    plain(sig, "run as one task (see docs/workflows.md)")
    call_args, call_kwargs = call_arguments(sig, args or [])
    task = task_for(app, sig["task"])
    result = task.apply(call_args, call_kwargs, task_id=task_id_of(sig), throw=False)
    options = sig.get("options") or {}
    if result.state == states.SUCCESS:
        for callback in options.get("link", ()):
            _one(app, callback, [result.result])
    else:
        for errback in options.get("link_error", ()):
            _one(app, errback, [result.id])
    return result


def _chain(app: Conveyor, steps: list[Sig], first_args: list[Any], parent: Any = None) -> EagerResult[Any]:
    result: EagerResult[Any] | None = None
    args = first_args
    for step in steps:
        if result is not None and result.state != states.SUCCESS:
            # Stopped: the later steps' results are the failure, as a worker stores them.
            stopped: EagerResult[Any] = EagerResult(
                task_id_of(step) or new_task_id(), app, result.state, result._payload
            )
            stopped.parent = result
            result = stopped
            continue
        current = _one(app, step, args)
        current.parent = result if result is not None else parent
        result = current
        args = [current.result]
    assert result is not None
    return result


def _chord(
    app: Conveyor, header: list[Sig], steps: list[Sig], options: Mapping[str, Any]
) -> EagerResult[Any]:
    results: list[Any] = [_member(app, m) for m in header]
    group = GroupResult(new_task_id(), results, app)
    failed = next((r for r in results if r.state != states.SUCCESS), None)
    if failed is None:  # (an immutable body ignores the results, as _one's arguments do)
        return _chain(app, steps, [[r.result for r in results]], group)
    index = results.index(failed)
    message = f"header task {failed.id} (member {index}) ended in {failed.state}: {failed.result!r}"
    errbacks: list[Any] = []
    for errback in [
        *(e for s in steps for e in (s.get("options") or {}).get("link_error", ())),
        *options.get("link_error", ()),
    ]:
        if errback not in errbacks:
            errbacks.append(errback)
    for errback in errbacks:
        _one(app, errback, [failed.id])
    error = ResultPayload(exc_type="conveyor.exceptions.ChordError", exc_message=message)
    result: EagerResult[Any] = EagerResult(task_id_of(steps[-1]) or new_task_id(), app, states.FAILURE, error)
    result.parent = group
    return result
