"""The task history's side of a run's ending: the ``HistoryEntry`` that rides on its outcome.

Recording history must cost almost nothing, so the worker writes no separate message: the entry
is attached to the outcome it settles anyway, and the broker stores it in the same batched
settle (one Lua script on Redis, one transaction on SQLite), only if that outcome is current.
Only endings that leave a state worth listing get one: success, failure, retry, dead letter,
revoke. Releases and start marks do not (waiting and running come from the queues and leases).

A run its worker died on has no ending of its own: nobody is left to settle it. The ending
after it brings it: a first attempt with deaths counted (``Delivery.deaths``: the broker had
been told it was running) attaches one ``LOST`` attempt per death before its own — as do its
refusal at intake and the dead letter its last death made — so ``conveyor task ID`` shows two
runs where a worker was killed under the first. Only on a first attempt (``retries == 0``):
deaths are counted for a task's whole life, so after a retry the count no longer says how many
of them an earlier ending already brought. A worker killed before its heartbeat told the
broker the task was running leaves no death, and no attempt.

``ignore_result`` tasks are recorded too (their state, not their result): the outcome carries
no payload for them, and the record is the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .. import states
from ..brokers import HistoryEntry, Outcome
from ..brokers.payloads import revoked_payload, worker_lost_payload
from ..execution import describe
from ..message import decode_envelope, describe_args, describe_message_args
from ..taskrecord import ARGS_LIMIT, LOST, Attempt, TaskRecord, encode_attempt, encode_record

if TYPE_CHECKING:
    from ..brokers import Broker, Delivery, LostContinuation, PendingJob
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
        if d.deaths > 0 and not request.retries:
            lost = _lost_attempts(d.deaths, now - runtime)
            attempt = lost if attempt is None else lost + b"\n" + attempt
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
            dead=_dead(outcome),
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

    def attach_body(self, outcome: Outcome, d: Delivery, error: BaseException | None = None) -> Outcome:
        """``attach`` for a delivery that never became a run (refused at intake: revoked,
        expired, malformed, an unknown task; or the worker's own failure to handle it): the
        record is built from the message itself, as far as it decodes."""
        state = _state(outcome)
        if state is None:
            return outcome
        text = outcome.reason or _error_text(error)  # the refusal says why, with advice
        entry = body_entry(
            d.id, d.body, d.queue, state, time.time(), self.hostname, text, _dead(outcome), d.deaths
        )
        object.__setattr__(outcome, "history", entry)
        return outcome


def _lost_attempts(deaths: int, found: float) -> bytes:
    """The ``LOST`` attempts of a first attempt's ``deaths`` runs, newline-separated, each dated
    ``found`` (when the run after them started: the time each was lost is not known)."""
    why = (
        "WorkerLostError: lost while it ran "
        "(its worker or pool process died, hung or lost the broker: death {})"
    )
    return b"\n".join(
        encode_attempt(Attempt(n, LOST, found, None, None, why.format(n))) for n in range(1, deaths + 1)
    )


def body_entry(
    task_id: str,
    body: bytes,
    queue: str,
    state: str,
    at: float,
    worker: str | None,
    error: str | None,
    dead: bool,
    lost: int = 0,
) -> HistoryEntry:
    """The history entry of a task that ended without running, from its message: name,
    arguments and attempt as far as the message decodes (``<malformed>`` otherwise). ``lost``:
    runs its workers died on before, brought as ``LOST`` attempts on a first attempt."""
    try:
        env = decode_envelope(body)
        name, retries, enqueued = env.task, env.retries, env.created or None
        priority = env.priority if env.priority is not None else 5
        args = describe_message_args(env, ARGS_LIMIT) if env.args or env.kwargs or env.payload else ""
    except Exception:  # anything at all: this records a message that is already being refused
        name, args, retries, priority, enqueued = "<malformed>", "", 0, 5, None
    attempt = encode_attempt(Attempt(retries + 1, state, at, worker, None, error))
    if lost > 0 and not retries:
        attempt = _lost_attempts(lost, at) + b"\n" + attempt
    record = TaskRecord(
        name=name,
        queue=queue,
        state=state,
        args=args,
        priority=priority,
        enqueued=enqueued,
        finished=at,
        retries=retries,
        worker=worker,
        dead=dead,
    )
    return HistoryEntry(name, queue, state, at, 0.0, args, encode_record(record), attempt, retries)


def _error_text(error: BaseException | None) -> str | None:
    return None if error is None else f"{type(error).__name__}: {describe(error)}"


def record_revoked(
    broker: Broker, task_ids: Sequence[str], terminate: bool, ttl: float, lost: LostContinuation | None = None
) -> list[PendingJob]:
    """Revoke ``task_ids`` (``broker.revoke``) and give the ones the broker dropped from its
    queues then and there — no worker held them — a ``revoked`` history record. Returns those
    jobs (for the ``task_revoked`` signal). Tasks a worker holds are recorded by that worker.

    The jobs are read before the revoke and counted as dropped if their result says REVOKED
    after it; each costs two reads, which a revoke (an operator's or a producer's action, not a
    hot path) can afford."""
    waiting = [job for job in map(broker.pending_job, task_ids) if job is not None]
    broker.revoke(list(task_ids), terminate, ttl, lost)
    dropped = [job for job in waiting if _revoked(broker, job.id)]
    if dropped:
        now = time.time()
        reason = "revoked before a worker fetched it"
        payload = revoked_payload(reason)
        broker.record_history(
            [
                (
                    job.id,
                    body_entry(job.id, job.body, job.queue, states.REVOKED, now, None, reason, False),
                    payload,
                )
                for job in dropped
            ]
        )
    return dropped


def _revoked(broker: Broker, task_id: str) -> bool:
    status = broker.status(task_id)
    return status is not None and status.state == states.REVOKED


def record_lost(broker: Broker, dead: Sequence[str]) -> None:
    """Give jobs the broker just dead-lettered because their workers died (``reclaim``'s
    ``dead``) a ``failed`` history record, built from their dead letters (the newest ones, where
    they just went). A letter already gone again (requeued, deleted) gets none."""
    if not dead:
        return
    wanted = set(dead)
    letters = [d for d in broker.dead_letters(limit=len(wanted) + 100) if d.id in wanted]
    if not letters:
        return
    now = time.time()
    broker.record_history(
        [
            (
                d.id,
                # Its last death is the failure itself; the ones before it were lost runs.
                body_entry(d.id, d.body, d.queue, states.FAILURE, now, None, d.reason, True, d.deaths - 1),
                worker_lost_payload(d.reason, 0),
            )
            for d in letters
        ]
    )


def _dead(outcome: Outcome) -> bool:
    """Whether the ending put the task in the dead letters: a failure dead-lettered, or a death
    past ``task_max_worker_deaths`` (a ``died`` outcome with its reason: a -P processes child
    that died under it, counted by its own worker)."""
    return outcome.kind == "dead" or (outcome.kind == "died" and bool(outcome.reason))


def _state(outcome: Outcome) -> str | None:
    """The history state an outcome leaves the task in, or None for one that leaves none."""
    kind = outcome.kind
    if kind == "ack":
        return outcome.state or states.SUCCESS  # None: an ignore_result success
    if kind == "retry":
        return states.RETRY
    if _dead(outcome):
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
