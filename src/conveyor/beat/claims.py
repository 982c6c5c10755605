"""Slot claims: the key that makes "one enqueue per (entry, slot)" hold across schedulers.

Two independent layers keep a slot from being enqueued twice:

1. The task id is a function of (entry, slot) -- :func:`slot_task_id` -- and the broker's
   ``enqueue`` is idempotent by id, so two schedulers sending the same slot produce one job
   while that job is queued, running, or has a stored result.
2. A claim key per slot, taken with ``kv_put(only_if_absent)`` *before* the enqueue and marked
   done after it.  It covers what layer 1 cannot see: a job that already ran and left no trace
   (``ignore_result`` tasks, expired results).

A scheduler can die between taking the claim and marking it done.  The claim is then
``pending`` and ages; once it is older than ``PENDING_STALE`` another scheduler takes it over,
asks the broker whether the job exists (``status``), and enqueues it only if not.  The one
case no key/value design can decide -- the job was enqueued, already finished, and left no
result, all within those seconds -- is documented in docs/beat.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from ..brokers import Broker
from .store import slot_key

__all__ = ["PENDING_STALE", "Claim", "ClaimKind", "finish_claim", "slot_task_id", "take_claim"]

#: A pending claim older than this (its holder died mid-enqueue, or stalled) may be taken over.
#: An enqueue takes milliseconds, and a takeover must fit in the 5 s failover budget.
PENDING_STALE = 2.0


def slot_task_id(name: str, slot: float) -> str:
    """The deterministic task id of an entry's slot: the same on every scheduler.

    >>> slot_task_id("poll", 1_700_000_002.0)
    'beat:poll:2023-11-14T22:13:22.000Z'
    """
    when = datetime.fromtimestamp(round(slot * 1000) / 1000, UTC)
    return f"beat:{name}:{when.strftime('%Y-%m-%dT%H:%M:%S')}.{when.microsecond // 1000:03d}Z"


class ClaimKind(Enum):
    MINE = "mine"  # go ahead and enqueue (fresh claim, or our own pending one from a failed try)
    TAKEN_OVER = "taken_over"  # a dead scheduler's pending claim: check the broker first
    DONE = "done"  # enqueued by someone: count it, do not enqueue
    FAILED = "failed"  # could not be enqueued (bad arguments...): dealt with, not counted
    BUSY = "busy"  # another live scheduler is enqueueing it right now: come back shortly


@dataclass(frozen=True, slots=True)
class Claim:
    kind: ClaimKind
    key: str


def _encode(owner: str, state: str, error: str | None = None) -> bytes:
    record = {"owner": owner, "state": state}
    if error:
        record["error"] = error
    return json.dumps(record, sort_keys=True).encode()


def take_claim(broker: Broker, name: str, slot: float, owner: str, ttl: float, now: float) -> Claim:
    """Claim ``slot`` of entry ``name`` for ``owner``.

    ``ttl`` is how long a claim is remembered; it must outlast any scheduler that could still
    plan this slot (one that read the entry's state before the slot's run was recorded).
    ``now`` is the broker-comparable current time (a pending claim's age comes from its
    remaining TTL, so the holder's and our clocks need not agree).
    """
    key = slot_key(name, slot)
    mine = _encode(owner, "pending")
    for _ in range(5):
        if broker.kv_put(key, mine, ttl=ttl, only_if_absent=True):
            return Claim(ClaimKind.MINE, key)
        current = broker.kv_get(key)
        if current is None:  # expired between the two calls: try again
            continue
        try:
            record = json.loads(current.value)
            state, holder = str(record["state"]), str(record["owner"])
        except (ValueError, KeyError, TypeError):
            state, holder = "pending", ""
        if state == "done":
            return Claim(ClaimKind.DONE, key)
        if state == "failed":
            return Claim(ClaimKind.FAILED, key)
        if holder == owner:
            return Claim(ClaimKind.MINE, key)
        age = ttl - (current.expires_at - now) if current.expires_at is not None else ttl
        if age < PENDING_STALE:
            return Claim(ClaimKind.BUSY, key)
        if broker.kv_compare_and_set(key, current.value, mine, ttl=ttl):
            return Claim(ClaimKind.TAKEN_OVER, key)
    return Claim(ClaimKind.BUSY, key)


def finish_claim(broker: Broker, claim: Claim, owner: str, ttl: float, error: str | None = None) -> None:
    """Mark a claim done (enqueued) or failed (``error``); remembered for ``ttl`` seconds."""
    broker.kv_put(claim.key, _encode(owner, "failed" if error else "done", error), ttl=ttl)
