"""Turning what happened to a delivery into the ``Outcome`` the broker settles."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from .. import states
from ..brokers import Delivery, Outcome
from ..brokers.payloads import revoked_payload
from ..exceptions import EncodeError
from ..message import Envelope, ResultPayload, encode_envelope, encode_result, pack_args
from ..request import Request
from .decision import Decision, describe, exc_qualname, failure_payload


def success(
    d: Delivery,
    request: Request,
    value: Any,
    store: bool,
    worker: str,
    codec: tuple[str, str | None] = ("json", None),
) -> Outcome:
    """Ack with the result, stored with ``codec`` (result_serializer, result_compression); a
    result that does not serialise turns the run into a failure."""
    if not store:
        return Outcome("ack", d.id, d.delivery, retries=request.retries)
    try:
        payload = encode_result(
            ResultPayload(result=value, worker=worker, retries=request.retries, date_done=time.time()), *codec
        )
    except EncodeError as exc:
        return dead(d, request, exc, None, worker, f"result not serialisable: {exc}")
    return Outcome("ack", d.id, d.delivery, states.SUCCESS, payload, retries=request.retries)


def failure(
    d: Delivery, request: Request, exc: BaseException, trace: str | None, worker: str, dead_letter: bool
) -> Outcome:
    if dead_letter:
        suffix = f" (after {request.retries} retries)" if request.retries else ""
        return dead(d, request, exc, trace, worker, f"failed: {exc_qualname(exc)}: {describe(exc)}{suffix}")
    payload = encode_result(failure_payload(exc, trace, worker, request.retries))
    return Outcome("ack", d.id, d.delivery, states.FAILURE, payload, retries=request.retries)


def dead(
    d: Delivery, request: Request | None, exc: BaseException, trace: str | None, worker: str, reason: str
) -> Outcome:
    retries = request.retries if request else 0
    payload = encode_result(failure_payload(exc, trace, worker, retries))
    return Outcome("dead", d.id, d.delivery, states.FAILURE, payload, reason=reason, retries=retries)


def retry(d: Delivery, env: Envelope, request: Request, decision: Decision, worker: str) -> Outcome:
    args = decision.args if decision.args is not None else request.args
    kwargs = decision.kwargs if decision.kwargs is not None else request.kwargs
    next_env = msgspec.structs.replace(env, retries=env.retries + 1, eta=time.time() + decision.countdown)
    # The next attempt travels as this one did (its serializer, and its compression if any).
    pack_args(next_env, list(args), dict(kwargs), env.content_type, env.content_encoding)
    exc = decision.exc or RuntimeError("retry")
    payload = encode_result(failure_payload(exc, decision.traceback, worker, env.retries + 1))
    return Outcome(
        "retry",
        d.id,
        d.delivery,
        states.RETRY,
        payload,
        body=encode_envelope(next_env),
        eta=next_env.eta,
        retries=env.retries + 1,
    )


def revoked(d: Delivery, reason: str, retries: int = 0) -> Outcome:
    return Outcome("ack", d.id, d.delivery, states.REVOKED, revoked_payload(reason), retries=retries)


def internal_error(d: Delivery, exc: BaseException, worker: str) -> Outcome:
    """Dead-letter a delivery the worker itself failed to handle (not the task body: decoding,
    checking, reporting). Built from plain strings so that it cannot fail in turn: a message
    that breaks the worker's handling must end here, never be given back to break it again."""
    reason = f"internal error while handling it: {exc_qualname(exc)}: {describe(exc)}"
    try:
        payload = encode_result(failure_payload(exc, None, worker, 0))
    except Exception:
        payload = None
    return Outcome("dead", d.id, d.delivery, states.FAILURE, payload, reason=reason)
