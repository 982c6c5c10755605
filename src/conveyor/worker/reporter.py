"""The reporter: what became of a delivery -> the outcome to settle, the stats, the log line.

Every way a run can end passes through here exactly once: success, a retry, a failure (kept as
a dead letter by default, ``task_dead_letter_on_failure``), a rejection, a revoke or expiry, a
message refused at intake, and the worker's own failure to handle a message. Error texts go
through ``describe`` so that an exception whose ``__str__`` raises is still reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import states
from ..brokers import Outcome
from ..brokers.payloads import worker_lost_payload
from ..exceptions import WorkerLostError
from ..execution import decide, describe, outcomes
from ..log import OUTCOME_LOGGER
from ..request import current_request

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..brokers import Continuation, Delivery
    from ..message import Envelope
    from ..request import Request
    from ..task import Task
    from .history import HistoryWriter
    from .intake import Refused
    from .settler import Settler

# Its own logger (Celery's ``celery.app.trace``): per-task lines can be quietened alone, and
# conveyor.contrib.sentry keeps them out of Sentry (it reports the failure with its context).
logger = logging.getLogger(OUTCOME_LOGGER)


def _log(level: int, request: Request | None, msg: str, *args: object) -> None:
    """An outcome line, logged as from inside its task (``task_id``, ``task_name`` and the
    worker on the record): a ``TaskFormatter`` or the JSON format names the task, as Celery's
    trace lines do. The loop and the settle thread log these, outside any task's context."""
    if not logger.isEnabledFor(level):
        return
    if request is None:
        logger.log(level, msg, *args)
        return
    token = current_request.set(request)
    try:
        logger.log(level, msg, *args)
    finally:
        current_request.reset(token)


EWMA_WEIGHT = 0.05  # how fast the runtime average follows recent tasks


@dataclass(slots=True)
class Stats:
    processed: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    revoked: int = 0
    abandoned_threads: int = 0
    runtime_ewma: float | None = None  # seconds per successful task, recent average


class Reporter:
    """``history`` (None when ``task_history`` is off) adds each ending's history entry to its
    outcome, so the task history is written in the same settle."""

    def __init__(
        self,
        settler: Settler,
        stats: Stats,
        hostname: str,
        dead_letter_failures: bool,
        history: HistoryWriter | None = None,
        continuation: Callable[[Outcome, Request, Any], Continuation | None] | None = None,
        result_codec: tuple[str, str | None] = ("json", None),
    ) -> None:
        self.settler = settler
        self.result_codec = result_codec  # (result_serializer, result_compression)
        self.stats = stats
        self.hostname = hostname
        self.dead_letter_failures = dead_letter_failures
        self.history = history
        self.continuation = continuation

    def _settle(
        self,
        outcome: Outcome,
        d: Delivery,
        request: Request | None,
        runtime: float,
        enqueued: float | None = None,
        error: BaseException | None = None,
        value: Any = None,
    ) -> None:
        if self.history is not None:
            if request is not None:
                outcome = self.history.attach(outcome, d, request, runtime, enqueued, error)
            else:  # refused at intake: recorded from the message itself
                outcome = self.history.attach_body(outcome, d, error)
        self.settler.add(self._continue(outcome, request, value))

    def success(
        self,
        d: Delivery,
        task: Task[Any, Any],
        request: Request,
        value: Any,
        store: bool,
        runtime: float,
        enqueued: float | None = None,
    ) -> None:
        stats = self.stats
        ewma = stats.runtime_ewma
        stats.runtime_ewma = runtime if ewma is None else ewma + (runtime - ewma) * EWMA_WEIGHT
        outcome = outcomes.success(d, request, value, store, self.hostname, self.result_codec)
        self._settle(outcome, d, request, runtime, enqueued, value=value)
        stats.processed += 1
        if outcome.kind == "dead":  # its return value could not be stored: a failure
            stats.failed += 1
            stats.dead_lettered += 1
            _log(logging.ERROR, request, "task %s[%s] failed: %s", task.name, d.id, outcome.reason)
            return
        stats.succeeded += 1
        if logger.isEnabledFor(logging.INFO):  # checked here too: no call per task when off
            _log(logging.INFO, request, "task %s[%s] succeeded in %.3fs", task.name, d.id, runtime)

    def error(
        self,
        d: Delivery,
        env: Envelope,
        task: Task[Any, Any],
        request: Request,
        exc: BaseException,
        runtime: float,
    ) -> None:
        """Classify an exception from the body: retry, reject, or failure."""
        self.stats.processed += 1
        decision = decide(task, request, exc)
        if decision.verdict == "retry":
            self.stats.retried += 1
            retry = outcomes.retry(d, env, request, decision, self.hostname)
            self._settle(retry, d, request, runtime, env.created, decision.exc or exc)
            _log(
                logging.WARNING,
                request,
                "task %s[%s] will retry in %.1fs (attempt %d): %s: %s",
                task.name,
                d.id,
                decision.countdown,
                request.retries + 1,
                type(decision.exc).__name__,
                describe(decision.exc) if decision.exc is not None else "",
            )
        elif decision.verdict == "reject":
            if decision.requeue:
                self.settler.add(Outcome("release", d.id, d.delivery))
            else:  # it ran and ends FAILURE in the dead letters
                self.stats.failed += 1
                self.dead(d, request, exc, f"rejected: {describe(exc)}", decision.traceback, runtime)
        else:
            failed = decision.exc or exc
            self.stats.failed += 1
            if self.dead_letter_failures:
                self.stats.dead_lettered += 1
            failure = outcomes.failure(
                d, request, failed, decision.traceback, self.hostname, self.dead_letter_failures
            )
            self._settle(failure, d, request, runtime, env.created, failed)
            _log(
                logging.ERROR,
                request,
                "task %s[%s] failed after %.3fs: %s: %s\n%s",
                task.name,
                d.id,
                runtime,
                type(failed).__name__,
                describe(failed),
                decision.traceback or "",
            )

    def failed_unrun(self, d: Delivery, request: Request, exc: BaseException, enqueued: float | None) -> None:
        """A task that cannot run at all (its message does not fit this worker): failed and
        dead-lettered at once, counted as processed and failed, with no retry policy applied."""
        self.stats.processed += 1
        self.stats.failed += 1
        self.dead(d, request, exc, f"{type(exc).__name__}: {exc}", enqueued=enqueued)

    def dead(
        self,
        d: Delivery,
        request: Request | None,
        exc: BaseException,
        reason: str,
        trace: str | None = None,
        runtime: float = 0.0,
        enqueued: float | None = None,
    ) -> None:
        self.stats.dead_lettered += 1
        # Named like every other task line when known (a refused message may name no task).
        where = d.id if request is None else f"{request.task}[{d.id}]"
        _log(logging.ERROR, request, "task %s moved to dead letters: %s", where, reason)
        dead = outcomes.dead(d, request, exc, trace, self.hostname, reason)
        self._settle(dead, d, request, runtime, enqueued, error=exc)

    def revoked(
        self,
        d: Delivery,
        reason: str,
        retries: int,
        request: Request | None = None,
        runtime: float = 0.0,
        enqueued: float | None = None,
    ) -> None:
        """``request`` is known for a task revoked while it ran; one refused at intake (revoked
        while prefetched, or expired) is recorded from its message."""
        self.stats.revoked += 1
        # A task stopped while it ran (terminate) did run: its reason says so.
        _log(
            logging.INFO, request, "task %s %s: %s", d.id, "not run" if request is None else "stopped", reason
        )
        self._settle(outcomes.revoked(d, reason, retries), d, request, runtime, enqueued)

    def instead_of_run(self, outcome: Outcome, d: Delivery, request: Request, enqueued: float | None) -> None:
        """A run guard's answer in place of the run. One that ends the task is recorded like
        any ending (its history record, its workflow's continuation): a skip
        (``on_locked="skip"``, REVOKED), or a dead letter (a lock or concurrency key its
        arguments cannot fill). A deferral (retry later, wait for the lock, a rate-limit slot)
        ends nothing."""
        if outcome.state is None:
            self.settler.add(outcome)
            return
        if outcome.kind == "dead":
            self.stats.dead_lettered += 1
        elif outcome.state == states.REVOKED:
            self.stats.revoked += 1
        self._settle(outcome, d, request, 0.0, enqueued)

    def died(
        self,
        d: Delivery,
        task: Task[Any, Any],
        request: Request,
        how: str,
        max_deaths: int,
        runtime: float,
        enqueued: float | None = None,
    ) -> None:
        """The ``-P processes`` child running it died (``how``: "killed by SIGSEGV"): handled as
        a worker death — redelivered with one death more, or dead-lettered once the deaths
        reach ``max_deaths`` (at once for an at-most-once task, which never runs twice)."""
        deaths = max(d.deaths, 0) + 1
        final = not task.acks_late or deaths >= max_deaths
        if final:  # it ran and ends FAILURE, as the task history's counters count it too
            self.stats.processed += 1
            self.stats.failed += 1
        if not task.acks_late:
            reason = f"its pool process died while running it ({how}); not run again: it is at-most-once"
            self.dead(d, request, WorkerLostError(reason), reason, runtime=runtime, enqueued=enqueued)
        elif final:
            reason = f"its pool process died {deaths} times while running it (last: {how})"
            self.stats.dead_lettered += 1
            _log(logging.ERROR, request, "task %s[%s] moved to dead letters: %s", task.name, d.id, reason)
            payload = worker_lost_payload(reason, request.retries)
            died = Outcome("died", d.id, d.delivery, payload=payload, reason=reason, retries=request.retries)
            self._settle(died, d, request, runtime, enqueued, error=WorkerLostError(reason))
        else:
            _log(
                logging.ERROR,
                request,
                "task %s[%s]: its pool process died (%s); redelivered (death %d of %d)",
                task.name,
                d.id,
                how,
                deaths,
                max_deaths,
            )
            self.settler.add(Outcome("died", d.id, d.delivery))

    def _continue(self, outcome: Outcome, request: Request | None, value: Any) -> Outcome:
        """Give a workflow step's outcome what follows it (settled in the same broker step)."""
        if request is not None and request.workflow is not None and self.continuation is not None:
            then = self.continuation(outcome, request, value)
            if then is not None:
                object.__setattr__(outcome, "then", then)  # just built, not shared yet
        return outcome

    def refused(self, d: Delivery, refusal: Refused) -> None:
        """A delivery intake would not run."""
        if refusal.kind == "revoked":
            if refusal.request is not None and refusal.request.workflow is not None:
                # A revoked or expired workflow step still ends its workflow: a chain stops, a
                # chord's header counts as failed (no history record: it never ran).
                self.stats.revoked += 1
                logger.info("task %s not run: %s", d.id, refusal.reason)
                revoked = outcomes.revoked(d, refusal.reason, refusal.retries)
                self.settler.add(self._continue(revoked, refusal.request, None))
                return
            self.revoked(d, refusal.reason, refusal.retries)
        else:
            assert refusal.error is not None
            self.dead(d, None, refusal.error, refusal.reason)

    def internal_error(self, d: Delivery, exc: BaseException) -> None:
        """The worker's own handling of this message failed: dead-letter it, never give it back
        (it would only come here again: a poison loop)."""
        self.stats.dead_lettered += 1
        logger.exception("internal error while handling task %s; moved to dead letters", d.id)
        outcome = outcomes.internal_error(d, exc, self.hostname)
        if self.history is not None:
            try:
                outcome = self.history.attach_body(outcome, d, exc)
            except Exception:  # this path must not fail: the dead letter matters, the record less
                logger.exception("could not build the history record of task %s", d.id)
        self.settler.add(outcome)
