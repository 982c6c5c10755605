"""The run guard behind the task options ``lock``, ``concurrency_limit`` and ``rate_limit``.

The worker asks it, in an I/O thread, before each run of a guarded task:

1. concurrency slot (``concurrency_key`` + ``concurrency_limit``): take a free slot or defer;
2. lock (``lock=...``): take the lock, or skip / retry later / wait, per ``on_locked``;
3. rate limit: run now, or reserve the next free start time and defer until then.

The order matters. The first two are undone cheaply (the guard gives them back when a later
check defers the run); a rate-limit reservation is not, so it is taken last, only for a run
that will otherwise go ahead. Locks and slots are renewed while the run lives and given back
in ``after``, which the worker calls once the body ends whatever happened (success, failure,
retry, time limit, revoke-terminate). A worker that dies stops renewing, and they expire.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..brokers import Delivery, Outcome
from ..exceptions import LockNotOwnedError
from ..execution import outcomes
from .concurrency import Slot, acquire_slot
from .deferral import WAITS_HEADER, defer, retry_delay, wait_delay, waits
from .keys import rate_key
from .locks import Lock, LockValue, read_lock
from .rate_limit import RateLimiter
from .renewer import renewer

if TYPE_CHECKING:
    from ..appproto import AppLike
    from ..execution.guards import RunGuard
    from ..request import Request
    from ..task import Task
    from .options import TaskCoordination

logger = logging.getLogger("conveyor.coordination")

#: Header carrying a rate-limit reservation: [start time, delivery number when deferred, the
#: interval of the rate it was made under] (two items in messages of earlier versions: honoured as they are).
RATE_HEADER = "conveyor.rate"
EARLY = 0.01  # a reserved run that comes back this early (clock granularity) runs anyway


def coordination_guard(app: AppLike, task: Task[Any, Any]) -> RunGuard | None:
    """Guard factory registered on every app: a guard for tasks with coordination options."""
    spec: TaskCoordination | None = getattr(task, "coordination", None)
    if spec is None or not spec.guarded:
        return None
    return CoordinationGuard(app, task, spec)


@dataclass(slots=True)
class _Held:
    slot: Slot | None = None
    slot_renewal: int | None = None
    lock: Lock | None = None


class CoordinationGuard:
    """One per guarded task; runs of that task on this worker share it (hence the mutex)."""

    def __init__(self, app: AppLike, task: Task[Any, Any], spec: TaskCoordination) -> None:
        self.app = app
        self.spec = spec
        self.limiter = RateLimiter(rate_key(task.name), spec.rate) if spec.rate is not None else None
        self._held: dict[tuple[str, int], _Held] = {}
        self._mutex = threading.Lock()

    def __repr__(self) -> str:
        return f"<CoordinationGuard {self.spec}>"

    def before(self, task: Task[Any, Any], request: Request, d: Delivery) -> Outcome | None:
        spec = self.spec
        try:
            lock_name, slot_key = self._keys(task, request)
        except (TypeError, ValueError) as exc:
            # The producer checks these too; a message from elsewhere (send_task, an older
            # version of the task) can still miss an argument. Retrying cannot fix it.
            return outcomes.dead(d, request, exc, None, request.hostname or "", str(exc))
        broker = self.app.broker
        held = _Held()
        try:
            if slot_key is not None and spec.concurrency_limit is not None:
                held.slot = acquire_slot(
                    broker, slot_key, spec.concurrency_limit, spec.lock_timeout, request.id
                )
                if held.slot is None:
                    logger.debug("task %s[%s]: concurrency limit of %r reached", task.name, d.id, slot_key)
                    return self._wait(d, request)
                held.slot_renewal = renewer().every(spec.lock_timeout / 3, held.slot.renew)
            if lock_name is not None:
                held.lock = self._lock(broker, lock_name, task, request, d)
                if held.lock is None:
                    self._release(held)
                    return self._on_locked(lock_name, task, request, d)
            instead = self._rate(request, d) if self.limiter is not None else None
            if instead is not None:
                self._release(held)
                return instead
        except BaseException:
            self._release(held)
            raise
        with self._mutex:
            self._held[(d.id, d.delivery)] = held
        return None

    def after(self, task: Task[Any, Any], request: Request, d: Delivery) -> None:
        with self._mutex:
            held = self._held.pop((d.id, d.delivery), None)
        if held is not None:
            self._release(held)

    # -- the three checks --------------------------------------------------------------------
    def _keys(self, task: Task[Any, Any], request: Request) -> tuple[str | None, str | None]:
        spec = self.spec
        call_key = spec.lock or spec.concurrency_key
        arguments = call_key.arguments(request.args, request.kwargs) if call_key is not None else {}
        lock_name = spec.lock.render(arguments) if spec.lock is not None else None
        if spec.concurrency_key is not None:
            return lock_name, spec.concurrency_key.render(arguments)
        # concurrency_limit alone limits the task itself, cluster-wide
        return lock_name, (task.name if spec.concurrency_limit is not None else None)

    def _lock(
        self, broker: Any, name: str, task: Task[Any, Any], request: Request, d: Delivery
    ) -> Lock | None:
        lock = Lock(
            broker,
            name,
            timeout=self.spec.lock_timeout,
            blocking_timeout=0,
            auto_renew=True,
            holder=f"task {task.name}[{request.id}] on {request.hostname}",
        )
        lock.task_id, lock.delivery = request.id, d.delivery

        # A redelivery of this very job (its worker died holding the lock, and the broker
        # handed the job out again) takes the lock over instead of waiting out the TTL.
        def takeover(current: LockValue) -> bool:
            return current.task_id == request.id and current.delivery < d.delivery

        return lock if lock.try_acquire(takeover) else None

    def _on_locked(self, name: str, task: Task[Any, Any], request: Request, d: Delivery) -> Outcome:
        policy = self.spec.on_locked
        if policy == "skip":
            info = read_lock(self.app.broker, name)
            reason = f"skipped: lock {name!r} is held" + (f" by {info.holder}" if info else "")
            logger.info("task %s[%s] %s", task.name, d.id, reason)
            return outcomes.revoked(d, reason, request.retries)
        # Debug, not info: a waiting job comes back every few seconds and would flood the log.
        then = "tries again later" if policy == "retry" else "waits"
        logger.debug("task %s[%s] %s: lock %r is held", task.name, d.id, then, name)
        if policy == "retry":
            return defer(d, time.time() + retry_delay())
        return self._wait(d, request)

    def _wait(self, d: Delivery, request: Request) -> Outcome:
        count = waits(request.headers)
        return defer(d, time.time() + wait_delay(count), {WAITS_HEADER: count + 1})

    def _rate(self, request: Request, d: Delivery) -> Outcome | None:
        assert self.limiter is not None
        now = time.time()
        reserved = request.headers.get(RATE_HEADER)
        # A reservation is good for the next hand-out of the job that made it (the first since
        # the deferral, so not a redelivery): not for a rerun after a crash (redelivered), for a
        # later retry (whose body no longer carries this reservation's delivery), or once the
        # limit it was made under changed (``control rate_limit``: a new one is made).
        if (
            isinstance(reserved, list)
            and len(reserved) in (2, 3)
            and all(isinstance(x, int | float) for x in reserved)
            and (len(reserved) == 2 or math.isclose(reserved[2], self.limiter.rate.interval))
            and d.delivery > reserved[1]
            and not d.redelivered
        ):
            start = float(reserved[0])
            if start <= now + EARLY:
                # Used up: a retry of this run is re-sent without it (the envelope shares
                # these headers) and reserves a slot of its own.
                del request.headers[RATE_HEADER]
                return None
            return defer(d, start, self._reservation(start, d))  # back early (clock skew)
        try:
            start = self.limiter.reserve(self.app.broker, now)
        except RuntimeError as exc:
            logger.warning("%s; deferring task %s briefly", exc, d.id)
            return defer(d, now + wait_delay(0))
        if start <= now + EARLY:
            return None
        return defer(d, start, self._reservation(start, d))

    def _reservation(self, start: float, d: Delivery) -> dict[str, Any]:
        """The header a deferred run carries: its start time, the delivery that made it, and
        the limit it was made under (a changed limit voids it)."""
        assert self.limiter is not None
        return {RATE_HEADER: [start, d.delivery, self.limiter.rate.interval]}

    # -- giving back -------------------------------------------------------------------------
    def _release(self, held: _Held) -> None:
        # Each release is attempted even if the other fails (a broker error on one must not
        # leave the other renewed for as long as this worker lives).
        if held.lock is not None:
            lock, held.lock = held.lock, None
            try:
                lock.release()
            except LockNotOwnedError as exc:
                logger.warning("%s", exc)
            except Exception:
                logger.exception("could not release lock %r; it expires in %gs", lock.name, lock.timeout)
        if held.slot is not None:
            slot, held.slot = held.slot, None
            if held.slot_renewal is not None:
                renewer().cancel(held.slot_renewal)
            try:
                slot.release()
            except Exception:
                logger.exception(
                    "could not release concurrency slot %s; it expires in %gs", slot.key, slot.ttl
                )
