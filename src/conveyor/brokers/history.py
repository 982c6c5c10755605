"""Rules of the task history every broker shares: the minute a run is counted in, how a batch
of entries adds up to counter increments, and how a record matches a query (for the brokers
that filter records in Python: memory, and Redis after its indexed state and time range).

The backend-specific step (a Lua script, a transaction, a dict) stays in each broker.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from .. import states
from ..exceptions import DecodeError
from ..taskrecord import decode_record, encode_record
from .records import HistoryEntry, HistoryQuery

COUNTERS_KEPT = 3 * 86400.0  # seconds the per-minute counters are kept (the dashboard's charts)
HISTORY_STATES = (states.SUCCESS, states.FAILURE, states.RETRY, states.REVOKED)


def minute(at: float) -> int:
    """The start of the minute ``at`` falls in, epoch seconds.

    >>> minute(1700000059.9)
    1700000040
    """
    return int(at // 60) * 60


def tally(entries: Iterable[HistoryEntry]) -> dict[tuple[int, str], list[float]]:
    """``{(minute, name): [processed, failed, retried, runtime]}`` for a batch of settled
    entries: a batch usually holds a few task names in one minute, so a broker writes a few
    counter rows per settle, not one per task. A revoke is not a run and counts nothing."""
    counts: dict[tuple[int, str], list[float]] = {}
    for entry in entries:
        if entry.state == states.REVOKED:
            continue
        row = counts.get((minute(entry.at), entry.name))
        if row is None:
            row = counts[(minute(entry.at), entry.name)] = [0, 0, 0, 0.0]
        row[0] += 1
        row[1] += entry.state == states.FAILURE
        row[2] += entry.state == states.RETRY
        row[3] += entry.runtime
    return counts


def matches(query: HistoryQuery, task_id: str, record: bytes, at: float | None = None) -> bool:
    """Whether a stored record matches ``query`` (a malformed record never does). ``at`` is the
    time of its latest state, when the caller has it apart from the record."""
    try:
        rec = decode_record(record)
    except DecodeError:
        return False
    when = rec.finished if at is None else at
    if query.since is not None and (when is None or when < query.since):
        return False
    if query.until is not None and (when is None or when >= query.until):
        return False
    if query.state is not None and rec.state != query.state:
        return False
    if query.name is not None and rec.name != query.name:
        return False
    if query.queue is not None and rec.queue != query.queue:
        return False
    if query.search:
        needle = query.search.lower()
        return needle in rec.args.lower() or needle in task_id.lower()
    return True


def requeued_record(record: bytes) -> bytes:
    """The record of a dead letter an operator requeued (``dead retry``): waiting again
    (PENDING, listed as ``waiting``), no longer dead, its failed attempts kept. Its next ending
    replaces it. A malformed record is left as it is."""
    try:
        rec = decode_record(record)
    except DecodeError:
        return record
    return encode_record(msgspec.structs.replace(rec, state=states.PENDING, dead=False, eta=None))
