"""Putting a job back in the broker until later, without counting it as a retry.

A guarded task that may not run yet (lock held, concurrency limit reached, rate limit) is
settled as a ``retry`` outcome with a later ``eta``: the job leaves the worker — no worker slot,
no prefetch slot — and waits in the broker's delayed set like any scheduled job. Its
``retries`` stay as they were, so waiting for a lock never uses up ``max_retries``.
"""

from __future__ import annotations

import random
from typing import Any

import msgspec

from ..brokers import Delivery, Outcome
from ..message import decode_envelope, encode_envelope

#: Header counting how often a job was deferred while waiting (drives the backoff).
WAITS_HEADER = "conveyor.waits"
WAIT_FIRST = 0.1  # first pause of a waiting job; grows 1.5x per deferral ...
WAIT_MAX = 2.0  # ... up to this, so a long wait costs one fetch per ~2 s per job
RETRY_DELAY = 5.0  # on_locked="retry": try again in about this long (±50%)


def defer(d: Delivery, eta: float, headers: dict[str, Any] | None = None) -> Outcome:
    """The outcome that puts ``d`` back in the broker until ``eta`` (not counted as a retry)."""
    env = decode_envelope(d.body)
    merged = {**env.headers, **headers} if headers else env.headers
    body = encode_envelope(msgspec.structs.replace(env, eta=eta, headers=merged))
    return Outcome("retry", d.id, d.delivery, body=body, eta=eta, retries=env.retries)


def waits(headers: dict[str, Any]) -> int:
    count = headers.get(WAITS_HEADER, 0)
    return count if isinstance(count, int) and count >= 0 else 0


def wait_delay(count: int) -> float:
    """The pause before a waiting job looks again: short at first, jittered so that jobs that
    were turned away together do not all come back in the same instant."""
    base = min(WAIT_MAX, WAIT_FIRST * 1.5 ** min(count, 20))
    return base * random.uniform(0.75, 1.25)


def retry_delay() -> float:
    return RETRY_DELAY * random.uniform(0.5, 1.5)
