"""The scheduler ("beat"): wakes at the next due slot and enqueues it, exactly once.

    run() ── leader? ──no──> try the lease every 0.5 s
               │yes
               ▼
    tick(now): entry set changed (beat:version)? reload ─> fire every due entry ─> next wake

Firing one entry (:meth:`Scheduler.fire`), every step on the broker's atomic primitives:

1. read the entry and its state (the catch-up cursor);
2. :func:`~conveyor.beat.catchup.plan` the slots due now from the cursor and the policy;
3. per slot: take the slot claim, send the task with its deterministic id, mark the claim done;
4. compare-and-set the state: new cursor, run count.  If another scheduler moved it first,
   start again from 1 -- the claims make the repeated slots no-ops.

Slot times are anchored (they come from the schedule, never from "last run + interval"), so
lateness never accumulates; the loop sleeps until the earliest due slot and is woken at least
every second to notice edits, renew the lease and survive wall-clock jumps.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..signals import beat_init
from .catchup import plan
from .claims import ClaimKind, finish_claim, slot_task_id, take_claim
from .entry import Entry, EntryState
from .lease import FOLLOWER_POLL, LeaderLease
from .store import ScheduleStore, Stored
from .sync import SyncReport, declared_entries, restore_missing, sync_declared

if TYPE_CHECKING:
    from ..appproto import AppLike

logger = logging.getLogger("conveyor.beat")

CHECK_INTERVAL = 1.0  # longest sleep: edits, lease renewal and clock jumps are noticed this fast
RELOAD_INTERVAL = 30.0  # full reload even without a version bump (a safety net)
BUSY_RETRY = 0.25  # another scheduler is mid-enqueue on this slot: look again this soon
ERROR_RETRY = 1.0  # the broker failed: try the entry again after this


class _Retry(Exception):
    """Stop firing this entry now and try again at ``at``, without touching its state."""

    def __init__(self, at: float) -> None:
        self.at = at


class Scheduler:
    """Enqueues periodic entries stored in ``app``'s broker.

    >>> scheduler = Scheduler(app)        # doctest: +SKIP
    >>> scheduler.prepare()               # validate and sync app.conf.beat_schedule  # doctest: +SKIP
    >>> scheduler.run()                   # until stop(); or tick(now) step by step in tests  # doctest: +SKIP

    ``clock`` is the source of "now" for slot decisions (tests inject one); lease renewal,
    claim ages and enqueue times always use the real clocks.
    """

    def __init__(
        self,
        app: AppLike,
        *,
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
        lease_timeout: float | None = None,
    ) -> None:
        conf = app.conf
        self.app = app
        self.store = ScheduleStore(app.broker)
        self.owner = owner or f"beat@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.clock = clock
        self.claim_ttl = conf.beat_slot_claim_ttl
        self.grace = conf.beat_catch_up_grace
        self.limit = conf.beat_catch_up_limit
        self.lease = LeaderLease(app.broker, self.owner, lease_timeout or conf.beat_lease_timeout)
        self.sent = 0  # slots this scheduler enqueued (for logs and tests)
        self._due: dict[str, float] = {}  # entry name -> when to fire it next
        self._version = -1
        self._reload_at = -math.inf
        self._stop = threading.Event()
        self._declared: dict[str, Entry] = {}  # what prepare() synced: restored if it goes missing

    # -- start -------------------------------------------------------------------------------
    def prepare(self, *, check_tasks: bool = True) -> SyncReport:
        """Validate the app's declared entries (tasks included) and sync them into the broker.

        Raises :class:`~conveyor.beat.entry.EntryError` with a one-line message, before
        anything is written, if any declared entry is invalid.
        """
        now = self.clock()
        declared = declared_entries(self.app, now, check_tasks=check_tasks)
        report = sync_declared(self.store, self.app, declared, now)
        self._declared = declared
        for name, stored in sorted(self.store.load().items()):
            if check_tasks and stored.entry.task not in self.app.tasks:
                # Entries added at runtime may name tasks this app does not import; like
                # Celery's beat, the scheduler can still send them by name.
                logger.warning(
                    "beat: entry %r sends %r, not registered here (sent by name)", name, stored.entry.task
                )
        for name, why in self.store.broken().items():
            logger.error("beat: stored entry %r is unreadable and skipped: %s", name, why)
        return report

    # -- one step ----------------------------------------------------------------------------
    def reload(self, now: float) -> None:
        """Re-read every entry and recompute when each is due."""
        self._version = self.store.version()
        self._reload_at = time.monotonic() + RELOAD_INTERVAL
        due: dict[str, float] = {}
        for name, stored in self.store.load().items():
            if stored.entry.enabled:
                due[name] = self._due_at(stored, now)
        self._due = due

    def tick(self, now: float | None = None) -> float:
        """Fire every entry due at ``now``; return when the next one is due (``inf``: none)."""
        now = self.clock() if now is None else now
        if time.monotonic() >= self._reload_at or self.store.version() != self._version:
            self.reload(now)
        for name, due in sorted(self._due.items(), key=lambda item: item[1]):
            if due <= now:
                self._due[name] = self.fire(name, now)
        self._due = {name: due for name, due in self._due.items() if due != math.inf}
        return min(self._due.values(), default=math.inf)

    def fire(self, name: str, now: float) -> float:
        """Enqueue what entry ``name`` has due at ``now``; return when it is due next."""
        for _ in range(10):
            stored = self.store.get(name)
            if stored is None or not stored.entry.enabled:
                return math.inf
            try:
                done = self._fire_once(stored, now)
            except _Retry as retry:
                return retry.at
            if done is not None:
                return done
            # Lost the compare-and-set: another scheduler advanced the state; re-plan from it.
        return now + BUSY_RETRY

    def _fire_once(self, stored: Stored, now: float) -> float | None:
        entry, state = stored.entry, stored.live_state
        cursor = _cursor(stored)
        p = plan(entry.schedule, cursor, now, entry.catch_up, self.limit, grace=self.grace)
        runs, last = 0, state
        new = EntryState(
            entry.id,
            last_slot=p.cursor,
            total_runs=state.total_runs if state else 0,
            last_run_at=state.last_run_at if state else None,
            last_task_id=state.last_task_id if state else None,
            last_error=state.last_error if state else None,
            next_run=p.next_due,
            updated=now,
        )
        for slot in p.slots:
            outcome = self._send_slot(entry, slot, now, first=cursor is None)
            if outcome in ("sent", "done"):
                runs += 1
            if outcome == "sent":
                task_id = slot_task_id(entry.name, slot)
                new = replace(new, last_run_at=now, last_task_id=task_id, last_error=None)
            elif outcome.startswith("error: "):
                new = replace(new, last_error=outcome[len("error: ") :])
        new = replace(new, total_runs=new.total_runs + runs)
        if last is not None and not p.slots and last.last_slot == p.cursor:
            return p.next_due  # nothing happened: no write
        if self.store.put_state(entry.name, new, stored.state_raw):
            return p.next_due
        return None

    def _send_slot(self, entry: Entry, slot: float, now: float, first: bool = False) -> str:
        """Claim and enqueue one slot: returns sent | done | failed | error: <why>. ``first``:
        the entry has never run (its first slot is its most recent one, so it is "late")."""
        broker = self.app.broker
        task_id = slot_task_id(entry.name, slot)
        claim = take_claim(broker, entry.name, slot, self.owner, self.claim_ttl, time.time())
        if claim.kind is ClaimKind.BUSY:
            raise _Retry(now + BUSY_RETRY)
        if claim.kind is ClaimKind.DONE:
            return "done"
        if claim.kind is ClaimKind.FAILED:
            return "failed"
        if claim.kind is ClaimKind.TAKEN_OVER and broker.status(task_id) is not None:
            # Its scheduler died after enqueueing, before marking the claim done.
            finish_claim(broker, claim, self.owner, self.claim_ttl)
            return "done"
        options: dict[str, Any] = dict(entry.options)
        options["headers"] = {**options.get("headers", {}), "beat_entry": entry.name, "beat_slot": slot}
        try:
            self.app.send_task(entry.task, entry.args, entry.kwargs, task_id=task_id, **options)
        except (TypeError, ValueError, LookupError) as exc:
            # Bad input (arguments that do not fit or serialise, a bad option): retrying would
            # fail the same way, so the slot is dealt with -- recorded, not enqueued.
            why = f"{type(exc).__name__}: {exc}"
            logger.error("beat: could not send %r for slot %s: %s", entry.name, task_id, why)
            finish_claim(broker, claim, self.owner, self.claim_ttl, error=why)
            return f"error: {why}"
        except Exception as exc:
            # The broker failed: our claim stays pending (ours), so the retry may resend it.
            logger.warning("beat: sending %r failed, will retry: %s", entry.name, exc)
            raise _Retry(now + ERROR_RETRY) from exc
        finish_claim(broker, claim, self.owner, self.claim_ttl)
        self.sent += 1
        # A new interval entry runs at once in its most recent grid slot (docs/beat.md, "First
        # runs"): that slot may be an hour old, which is not lateness worth an operator's alarm.
        when = "first run of a new entry" if first else f"{lateness(now - slot)} late"
        logger.info("beat: sent %s for slot %s as %s (%s)", entry.name, slot, task_id, when)
        return "sent"

    def _due_at(self, stored: Stored, now: float) -> float:
        cursor = _cursor(stored)
        if cursor is None:
            return now  # never ran: plan() decides about the first run right away
        return stored.entry.schedule.next_after(cursor)

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        """Lead or follow until :meth:`stop`; safe to run in any number of processes."""
        self._stop.clear()
        failing = False
        leading = False
        beat_init.send(self)
        logger.info("beat %s ready: %d entries stored", self.owner, len(self.store.load()))
        try:
            while not self._stop.is_set():
                now = self.clock()
                try:
                    if self.lease.keep(time.time()):
                        if not leading:  # a broker that lost its data lost the lease too
                            restore_missing(self.store, self._declared)
                            leading = True
                        wake = min(self.tick(now), now + CHECK_INTERVAL, now + self.lease.renew_in)
                    else:
                        leading = False
                        self._reload_at = -math.inf  # reload on becoming the leader
                        wake = now + FOLLOWER_POLL
                    if failing:
                        logger.warning("beat %s: broker reachable again", self.owner)
                        failing = False
                except Exception as exc:
                    if not failing:
                        logger.error("beat %s: broker error, retrying: %s", self.owner, exc)
                        failing = True
                    wake = now + ERROR_RETRY
                self._stop.wait(max(0.0, wake - self.clock()))
        finally:
            try:
                self.lease.release()
            except Exception as exc:  # shutting down anyway; the lease will expire
                logger.warning("beat %s: could not release the lease: %s", self.owner, exc)
            logger.info("beat %s stopped: %d slot(s) sent", self.owner, self.sent)

    def stop(self) -> None:
        """Ask :meth:`run` to return (thread-safe)."""
        self._stop.set()


def _cursor(stored: Stored) -> float | None:
    """The catch-up cursor: the state's last slot, but never before the entry's ``since`` (a
    changed schedule or a re-enabled entry does not catch up on slots before that)."""
    state = stored.live_state
    if state is None or state.last_slot is None:
        return None
    return max(state.last_slot, stored.entry.since)


def lateness(seconds: float) -> str:
    """How late a slot was sent, in the unit that reads best in a log line.

    >>> lateness(0.0123), lateness(4.5), lateness(3281.7), lateness(90000)
    ('12.3 ms', '4.5 s', '54.7 min', '25.0 h')
    """
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
