"""The worker's side of a workflow: when a step ends, what comes next, as the ``Continuation``
the broker applies in the same atomic step as the step's outcome (docs/workflows.md).

- success: the next chain step (given the result), ``link`` callbacks, a chord header's join;
- failure (FAILURE, a dead letter, REVOKED): ``link_error`` callbacks (given the failed task's
  id), the chain's later steps stored as FAILURE with the same error (as Celery marks them),
  and a chord header's join as failed, which the broker turns, once per chord, into the
  body's ``ChordError`` and the chord's errbacks.

A retry continues nothing: the step is not over. Building the continuation never loses the
step's own outcome: if the next step cannot be built (its arguments do not fit), the chain
stops as if the step had failed with that error (its later steps' results are that error, a
chord it is a member of fails).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .. import states
from ..brokers import Continuation, GroupJoin, JobSpec, Outcome, StoredResult
from ..exceptions import EncodeError
from ..execution import failure_payload
from ..message import ResultPayload, Workflow, decode_result, encode_result
from .jobs import job_for

if TYPE_CHECKING:
    from ..appproto import AppLike
    from ..brokers import Broker
    from ..request import Request

logger = logging.getLogger("conveyor.worker")

FAILED_STATES = frozenset({states.FAILURE, states.REVOKED})
_NONE = encode_result(ResultPayload())  # a None result (the common no-op header task's)


def continuation(app: AppLike, outcome: Outcome, request: Request, value: Any) -> Continuation | None:
    """What follows ``outcome`` of ``request`` (``value``: its return value on success)."""
    wf = request.workflow
    if wf is None:
        return None
    if outcome.kind == "ack" and outcome.state in (None, states.SUCCESS):
        return _succeeded(app, wf, request, outcome, value)
    if outcome.kind == "dead" or (outcome.kind == "ack" and outcome.state in FAILED_STATES):
        return failed_continuation(app, wf, request, outcome)
    if outcome.kind == "died" and outcome.reason:  # its pool process died once too often
        return failed_continuation(app, wf, request, outcome)
    return None


def _follow(wf: Workflow, request: Request) -> Workflow:
    return Workflow(parent=request.id, root=wf.root or wf.group or request.id)


def _chain_ids(wf: Workflow) -> list[str]:
    return [
        str(step.get("options", {}).get("task_id"))
        for step in wf.chain
        if step.get("options", {}).get("task_id")
    ]


def _succeeded(app: AppLike, wf: Workflow, request: Request, outcome: Outcome, value: Any) -> Continuation:
    enqueue: list[JobSpec] = []
    if wf.chain:
        try:
            step = wf.chain[0]
            root = wf.root or wf.group or request.id
            # A group's member that is a chain: its steps carry its place, the last one joins.
            after = Workflow(
                chain=wf.chain[1:],
                parent=request.id,
                root=root,
                group=wf.group,
                index=wf.index,
                chord=wf.chord,
            )
            enqueue.append(job_for(app, step, [value], {}, after))
        except Exception as exc:
            logger.exception("task %s: the chain's next step could not be sent; the chain stops", request.id)
            payload = encode_result(failure_payload(exc, None, request.hostname, 0))
            stopped = Outcome("ack", outcome.id, outcome.delivery, states.FAILURE, payload)
            return failed_continuation(
                app,
                Workflow(chain=wf.chain, group=wf.group, index=wf.index, chord=wf.chord),
                request,
                stopped,
            )
    for callback in wf.link:
        try:
            enqueue.append(job_for(app, callback, [value], {}, _follow(wf, request)))
        except Exception:
            logger.exception("task %s: a link callback could not be sent: %r", request.id, callback)
    join = None
    if wf.chord is not None and wf.group is not None and not wf.chain:
        stored = outcome.payload
        if stored is None:  # ignore_result: the chord body still gets the value
            if value is None and not request.retries:
                stored = _NONE
            else:
                try:
                    stored = encode_result(ResultPayload(result=value, retries=request.retries))
                except EncodeError as exc:  # (a stored result would have failed the task itself)
                    logger.error(
                        "task %s: its value cannot join its chord; the chord fails: %s", request.id, exc
                    )
                    payload = encode_result(failure_payload(exc, None, request.hostname, 0))
                    stopped = Outcome("ack", outcome.id, outcome.delivery, states.FAILURE, payload)
                    return failed_continuation(
                        app, Workflow(group=wf.group, index=wf.index, chord=wf.chord), request, stopped
                    )
        join = GroupJoin(wf.group, wf.index, states.SUCCESS, stored)
    return Continuation(tuple(enqueue), (), join)


def _errbacks(app: AppLike, sigs: list[dict[str, Any]], wf: Workflow, request: Request) -> list[JobSpec]:
    jobs = []
    for errback in sigs:
        try:
            jobs.append(job_for(app, errback, [request.id], {}, _follow(wf, request)))
        except Exception:
            logger.exception("task %s: a link_error callback could not be sent: %r", request.id, errback)
    return jobs


def failed_continuation(app: AppLike, wf: Workflow, request: Request, outcome: Outcome) -> Continuation:
    """What follows a step that ended in failure (also one the broker ended: canvas/lost.py)."""
    payload = outcome.payload or encode_result(
        ResultPayload(exc_type="builtins.Exception", exc_message="failed")
    )
    state = outcome.state or states.FAILURE
    results: list[StoredResult] = [(task_id, state, payload) for task_id in _chain_ids(wf)]
    join = None
    if wf.chord is not None and wf.group is not None:
        error = _chord_error(request, wf.index, state, payload)
        stop = ["", *wf.chord.get("stop", ())]  # "": the group's body (the broker knows its id)
        join = GroupJoin(
            wf.group,
            wf.index,
            state,
            payload,
            tuple(_errbacks(app, list(wf.chord.get("errbacks", ())), wf, request)),
            tuple((str(task_id), states.FAILURE, error) for task_id in stop),
        )
    return Continuation(tuple(_errbacks(app, wf.link_error, wf, request)), tuple(results), join)


def _chord_error(request: Request, index: int, state: str, payload: bytes) -> bytes:
    try:
        failed = decode_result(payload)
        cause = f"{failed.exc_type or 'Exception'}: {failed.exc_message or ''}"
    except Exception:
        cause = state
    message = f"header task {request.id} ({request.task}, member {index}) ended in {state}: {cause}"
    return encode_result(
        ResultPayload(exc_type="conveyor.exceptions.ChordError", exc_message=message, worker=request.hostname)
    )


class ChordResultsGone(Exception):
    """A chord body started after its group's results expired (``result_expires``)."""


def chord_results_into(broker: Broker, request: Request) -> None:
    """Give a chord body its first argument: the header's results, in order, read from the
    group the broker completed (before the body starts, in an I/O thread)."""
    wf = request.workflow
    if wf is None or wf.results_of is None:
        return
    state = broker.group_state(wf.results_of)
    if state is None:
        raise ChordResultsGone(
            f"the results of chord group {wf.results_of} are gone (expired after result_expires);"
            " the body cannot run without them"
        )
    values = []
    for slot in state.slots:
        payload = slot[1] if slot is not None else None
        values.append(decode_result(payload).result if payload else None)
    request.args = [values, *request.args]
