"""Unique enqueue: the same job is not queued twice while one is pending.

``refresh.apply_async((1,), unique_for=300)`` or ``@app.task(unique_for=300)`` (key: the task
name and its arguments) or ``@app.task(unique_key="refresh:{city_id}")``. The first enqueue
claims ``unique:<task>:<key>`` with ``kv_put(only_if_absent)``, storing its task id, for
``unique_for`` seconds; an enqueue that finds the claim held by a job that has not finished
enqueues nothing and returns an ``AsyncResult`` for that job instead.

The claim lasts until the job has *executed* (Sidekiq's "until executed"): a duplicate is
refused while the job waits, runs, or waits for a retry, and accepted once it succeeded,
failed, was revoked or dead-lettered. Rather than having the worker delete the claim (which
it could not do right for a run that ends in a retry), an enqueue that finds a claim asks the
broker for that job's state and takes the claim over when the job is done.

Limits: ``unique_for`` is a safety bound — a job still queued after it can be duplicated, so
choose it longer than queue wait plus run time. A job that leaves no result (``ignore_result``)
counts as pending for ``CLAIM_GRACE`` seconds after it was enqueued, since "no result" also
describes a job whose producer has claimed but not yet enqueued it. ``delay_many`` (bulk
enqueue) and eager mode do not check uniqueness.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from .. import states
from .callkeys import call_arguments, task_signature
from .keys import unique_key
from .options import DEFAULT_UNIQUE_FOR, TaskCoordination, seconds

if TYPE_CHECKING:
    from ..brokers import Broker
    from ..task import Task

CLAIM_GRACE = 5.0
CLAIM_ATTEMPTS = 10


class UniqueClaim(msgspec.Struct):
    id: str
    at: float


_encode = msgspec.json.Encoder(order="sorted").encode
_decode = msgspec.json.Decoder(UniqueClaim).decode


def arguments_digest(arguments: Mapping[str, Any]) -> str:
    """A stable digest of a call's arguments (the default unique key)."""
    try:
        raw = _encode(dict(arguments))
    except (TypeError, ValueError):
        raw = repr(sorted(arguments.items())).encode()
    return hashlib.sha1(raw, usedforsecurity=False).hexdigest()


def claim(broker: Broker, key: str, task_id: str, ttl: float) -> str | None:
    """Claim ``key`` for ``task_id``; return the id of the pending job holding it, or None if
    the claim is ours now."""
    mine = _encode(UniqueClaim(task_id, time.time()))
    for _ in range(CLAIM_ATTEMPTS):
        if broker.kv_put(key, mine, ttl, only_if_absent=True):
            return None
        entry = broker.kv_get(key)
        if entry is None:
            continue  # expired or released between the two calls: try again
        try:
            holder: UniqueClaim | None = _decode(entry.value)
        except (msgspec.DecodeError, ValueError):
            holder = None
        if holder is not None and (holder.id == task_id or _pending(broker, holder)):
            return holder.id
        if broker.kv_compare_and_set(key, entry.value, mine, ttl):
            return None
    return None  # the key changes hands this fast: enqueue rather than refuse


def _pending(broker: Broker, holder: UniqueClaim) -> bool:
    record = broker.status(holder.id)
    if record is None:
        return time.time() - holder.at < CLAIM_GRACE
    return record.state not in states.READY_STATES


def before_enqueue(
    task: Task[Any, Any],
    task_id: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    unique_key_: str | None,
    unique_for: float | None,
) -> str | None:
    """Producer-side checks of a task's coordination options, for one call.

    Renders the lock and concurrency keys so that a key the call's arguments cannot fill
    fails here, in the caller, and not later in a worker. Then claims the unique key, if any,
    and returns the id of the pending duplicate when there is one (then nothing is enqueued).
    """
    coordination = task.coordination or TaskCoordination()
    keys = (coordination.lock, coordination.concurrency_key, coordination.unique_key)
    cache: list[dict[str, Any]] = []

    def arguments() -> dict[str, Any]:
        if not cache:
            known = next((k.signature for k in keys if k is not None), None)
            signature = known or task_signature(task.run, task.bind)
            cache.append(call_arguments(signature, task.name, args, kwargs))
        return cache[0]

    if task.typing:  # typing=False opts out of checking calls here; the worker still checks
        for call_key in keys[:2]:
            if call_key is not None:
                call_key.render(arguments())
    if unique_key_ is None and unique_for is None and coordination.unique_for is None:
        return None
    ttl = seconds("unique_for", unique_for) if unique_for is not None else coordination.unique_for
    if unique_key_ is not None:
        if not isinstance(unique_key_, str) or not unique_key_:
            raise ValueError(f"unique_key must be a non-empty string, got {unique_key_!r}")
        key = unique_key_
    elif coordination.unique_key is not None:
        key = coordination.unique_key.render(arguments())
    else:
        key = arguments_digest(arguments())
    return claim(task.app.broker, unique_key(task.name, key), task_id, ttl or DEFAULT_UNIQUE_FOR)
