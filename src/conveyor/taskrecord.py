"""The task history's record of one task: what the worker writes when a run ends, and what the
admin API reads back (``app.admin.task(id)``, ``conveyor task ID``).

The worker encodes it once per run ending and hands it to the broker inside the outcome
(``brokers.records.HistoryEntry``), so history is written in the same batched settle as the
ack. The broker stores it beside the run's result payload and never needs more of it than the
few fields it indexes (state, name, queue, time, arguments text), which the entry carries
separately: the common path decodes nothing.

>>> raw = encode_record(TaskRecord(name="proj.add", queue="default", state="SUCCESS"))
>>> decode_record(raw).name
'proj.add'
"""

from __future__ import annotations

import msgspec

from .exceptions import DecodeError

ARGS_LIMIT = 1000  # characters of the arguments' repr kept for display and --search


LOST = "LOST"  # an attempt's state: its worker died while running it


class Attempt(msgspec.Struct, omit_defaults=True, gc=False):
    """One run that did not succeed: which attempt, how it ended, and its error."""

    attempt: int  # 1 on the first run
    state: str  # RETRY, FAILURE, REVOKED, or LOST (its worker died; see worker/history.py)
    at: float  # when it ended
    worker: str | None = None
    runtime: float | None = None
    error: str | None = None  # "ValueError: boom"


class TaskRecord(msgspec.Struct, omit_defaults=True, gc=False):
    """A task's latest state in the history. The result or error itself is the run's
    ``ResultPayload``, stored next to it (left out for ``ignore_result`` tasks).

    Kept small, since one is written per run: the id is the record's key, not in it, and the
    start is ``finished - runtime``."""

    name: str
    queue: str
    state: str  # SUCCESS, FAILURE, RETRY or REVOKED (a conveyor.states value)
    args: str = ""  # repr of the arguments, shortened to ARGS_LIMIT
    priority: int = 5
    enqueued: float | None = None  # when it was first sent
    finished: float | None = None  # when this run ended
    runtime: float | None = None  # seconds this run took
    retries: int = 0  # attempts made before this one
    worker: str | None = None
    dead: bool = False  # it went to the dead letters
    eta: float | None = None  # RETRY: when the next attempt is due
    # Its place in a workflow (conveyor.canvas), for the operator: the group it is a member
    # (or the chord body) of, the task that enqueued it, the workflow's first task, and, for a
    # chord's header task or body, the chord (its group's id).
    group: str | None = None
    parent: str | None = None
    root: str | None = None
    chord: str | None = None


_encoder = msgspec.json.Encoder()
_record_decoder = msgspec.json.Decoder(TaskRecord)
_attempt_decoder = msgspec.json.Decoder(Attempt)


def encode_record(record: TaskRecord) -> bytes:
    return _encoder.encode(record)


def encode_attempt(attempt: Attempt) -> bytes:
    return _encoder.encode(attempt)


def decode_record(raw: bytes) -> TaskRecord:
    """Decode a stored record; ``DecodeError`` for anything malformed."""
    try:
        return _record_decoder.decode(raw)
    except (msgspec.DecodeError, TypeError, ValueError) as exc:
        raise DecodeError(f"malformed task record: {exc}") from exc


def decode_attempt(raw: bytes) -> Attempt | None:
    """Decode one stored attempt; None for a malformed one (a listing never breaks on it)."""
    try:
        return _attempt_decoder.decode(raw)
    except (msgspec.DecodeError, TypeError, ValueError):
        return None
