"""Intake: from a delivery to "run this request" or "settle it so instead", before any run.

A pure function (no broker, no event loop), so every way a message can be refused is unit-
testable on its own: a malformed body, an unknown task name, a revoke, an expiry, arguments of
a content type this worker does not accept.
"""

from __future__ import annotations

import time
from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..brokers import Delivery
from ..exceptions import DecodeError, NotRegistered
from ..message import Envelope, decode_envelope, unpack_args
from ..request import Request, iso_time

if TYPE_CHECKING:
    from ..task import Task


@dataclass(frozen=True, slots=True)
class Accepted:
    """Run ``task`` with ``request``."""

    env: Envelope
    task: Task[Any, Any]
    request: Request


@dataclass(frozen=True, slots=True)
class Refused:
    """Do not run it: ``dead`` -> the dead-letter set with ``reason`` and ``error``;
    ``revoked`` -> a REVOKED result with ``reason``. ``task``, ``request``, ``expired`` and
    ``unknown`` (the unregistered name) are for the signals (signalling.py)."""

    kind: Literal["dead", "revoked"]
    reason: str
    error: BaseException | None = None
    retries: int = 0
    task: Task[Any, Any] | None = None
    request: Request | None = None
    expired: bool = False
    unknown: str | None = None


def intake(
    d: Delivery,
    tasks: Mapping[str, Task[Any, Any]],
    revoked: Container[str],
    accept: frozenset[str],
    hostname: str,
) -> Accepted | Refused:
    """Decode and check a delivery.

    >>> intake(Delivery("x", "q", b"not json", 1, 0), {}, set(), frozenset({"json"}), "w1").kind
    'dead'
    """
    try:
        env = decode_envelope(d.body)
    except DecodeError as exc:
        if d.revoked or d.id in revoked:  # never to run: REVOKED, however it reads
            return Refused("revoked", "revoked")
        return Refused("dead", f"malformed message: {exc}", exc)
    task = tasks.get(env.task)
    if d.revoked or d.id in revoked:
        # Before the unknown-task check: a revoked job is REVOKED on any worker, even one that
        # does not know its task (it was never to run).
        return Refused("revoked", "revoked", retries=env.retries, task=task, request=_bare(env, d, hostname))
    if task is None:
        missing = NotRegistered(f"task {env.task!r} is not registered on worker {hostname}")
        reason = (
            f"unknown task {env.task!r}: not registered on this worker "
            "(is its module imported by the app given with -A?)"
        )
        return Refused("dead", reason, missing, unknown=env.task)
    if env.expires is not None and env.expires < time.time():
        reason = f"expired at {_utc(env.expires)}"
        return Refused(
            "revoked", reason, retries=env.retries, task=task, request=_bare(env, d, hostname), expired=True
        )
    try:
        args, kwargs = unpack_args(env, accept)
    except DecodeError as exc:
        return Refused("dead", str(exc), exc)
    request = Request(
        id=env.id,
        task=env.task,
        args=args,
        kwargs=kwargs,
        retries=env.retries,
        queue=d.queue,
        priority=env.priority,
        eta=iso_time(env.eta),
        expires=iso_time(env.expires),
        hostname=hostname,
        delivery=d.delivery,
        time_limit=env.time_limit,
        soft_time_limit=env.soft_time_limit,
        max_retries=env.max_retries,
        headers=env.headers,
        workflow=env.workflow,
    )
    return Accepted(env, task, request)


def _bare(env: Envelope, d: Delivery, hostname: str) -> Request:
    """The request of a run that will not happen (its arguments are not decoded)."""
    return Request(
        id=env.id,
        task=env.task,
        retries=env.retries,
        queue=d.queue,
        hostname=hostname,
        headers=env.headers,
        workflow=env.workflow,
    )


def _utc(timestamp: float) -> str:
    """An epoch time as UTC text, or as the number when it is out of range (broker data)."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))
    except (OverflowError, OSError, ValueError):
        return repr(timestamp)
