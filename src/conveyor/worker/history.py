"""The task history's side of a run's ending: the ``HistoryEntry`` that rides on its outcome.

Recording history must cost almost nothing, so the worker writes no separate message: the entry
is attached to the outcome it settles anyway, and the broker stores it in the same batched
settle (one Lua script on Redis, one transaction on SQLite), only if that outcome is current.
Only endings that leave a state worth listing get one: success, failure, retry, dead letter,
revoke. Releases and start marks do not (waiting and running come from the queues and leases).

``ignore_result`` tasks are recorded too (their state, not their result): the outcome carries
no payload for them, and the record is the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import states
from ..brokers import HistoryEntry, Outcome
from ..execution import describe
from ..message import describe_args
from ..taskrecord import ARGS_LIMIT, Attempt, TaskRecord, encode_attempt, encode_record

if TYPE_CHECKING:
    from ..brokers import Broker, Delivery
    from ..config import Settings
    from ..request import Request


class HistoryWriter:
    """Attaches history entries to outcomes for one worker (``hostname``: its ``-n`` name)."""

    def __init__(self, hostname: str) -> None:
        self.hostname = hostname

    def attach(
        self,
        outcome: Outcome,
        d: Delivery,
        request: Request,
        runtime: float,
        enqueued: float | None = None,
        error: BaseException | None = None,
    ) -> Outcome:
        """``outcome`` (just built, not yet shared) given the history entry of this run's ending
        (unchanged for a release).

        >>> writer.attach(Outcome("ack", "t1", 1), d, request, 0.01).history.state  # doctest: +SKIP
        'SUCCESS'
        """
        state = _state(outcome)
        if state is None:
            return outcome
        now = time.time()
        attempt = None
        if state != states.SUCCESS:
            text = None if error is None else f"{type(error).__name__}: {describe(error)}"
            if text is None and outcome.reason:
                text = outcome.reason
            attempt = encode_attempt(
                Attempt(request.retries + 1, state, now, self.hostname, runtime or None, text)
            )
        args = (
            describe_args(request.args, request.kwargs, ARGS_LIMIT) if request.args or request.kwargs else ""
        )
        record = TaskRecord(
            name=request.task,
            queue=d.queue,
            state=state,
            args=args,
            priority=request.priority if request.priority is not None else 5,
            enqueued=enqueued or None,
            finished=now,
            runtime=runtime if runtime else None,
            retries=request.retries,
            worker=self.hostname,
            dead=outcome.kind == "dead",
            eta=outcome.eta if state == states.RETRY else None,
        )
        wf = request.workflow
        if wf is not None:
            record.group = wf.group or wf.results_of
            record.parent, record.root = wf.parent, wf.root
            record.chord = wf.results_of or (wf.group if wf.chord is not None else None)
        entry = HistoryEntry(
            request.task, d.queue, state, now, runtime, args, encode_record(record), attempt, request.retries
        )
        # The outcome was just built by the reporter and nobody else holds it yet, so it gets its
        # entry in place: rebuilding a frozen dataclass per task costs more than the entry does.
        object.__setattr__(outcome, "history", entry)
        return outcome


def _state(outcome: Outcome) -> str | None:
    """The history state an outcome leaves the task in, or None for one that leaves none."""
    kind = outcome.kind
    if kind == "ack":
        return outcome.state or states.SUCCESS  # None: an ignore_result success
    if kind == "retry":
        return states.RETRY
    if kind == "dead":
        return states.FAILURE
    return None


def history_keeping(conf: Settings) -> tuple[int, float]:
    """(most records kept, seconds each is kept) from the settings: ``task_history_max`` and
    ``task_history_expires``, which defaults to ``result_expires``."""
    expires = conf.task_history_expires
    return conf.task_history_max, conf.result_expires if expires is None else expires


def trimmer(broker: Broker, conf: Settings) -> Callable[[], object]:
    """What the keeper runs with its periodic cleanup: drop records past their keeping time or
    beyond the cap (and old counters). Runs even with history off, so records written before it
    was turned off still expire."""

    def trim() -> object:
        most, expires = history_keeping(conf)
        return broker.trim_history(most, time.time() - expires)

    return trim
