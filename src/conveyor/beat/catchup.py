"""Which slots to enqueue now: first runs and missed slots (misfires), as pure functions.

The scheduler keeps one *cursor* per entry, ``last_slot``: every slot at or before it has been
dealt with (enqueued or deliberately dropped).  Given the cursor and the current time,
:func:`plan` returns the slots to enqueue, the new cursor to store, and when to wake up next.
Slots are the idempotency keys of (entry, slot), so two schedulers computing the same plan
enqueue each slot once.

Brand-new entries (``last_slot=None``):

* an interval (``every``) runs at once, in its most recent slot, and then follows its grid.  Celery
  5.7 beat differs: it stores ``last_run_at = now`` and first sends one interval later.  Conveyor's
  grid is shared by all schedulers and not counted from a process's start, so "start + interval" is
  no slot; docs/beat.md ("First runs") gives the reasons and the crontab alternative;
* a ``crontab`` / ``cron`` entry waits for its next match: an entry declared "Sunday 04:00" must not
  run on a Wednesday deploy.  The cursor becomes ``now`` (a baseline, not a slot); the scheduler
  must store it, or the first match would look like the first start again.

Missed slots (the scheduler was down or late), per the entry's :class:`CatchUp` policy:

* ``"once"`` (default): all missed slots collapse into one run, identified by the most recent one;
* ``"skip"``: missed slots are dropped; a slot still counts as on time (and runs) while
  ``now - slot <= grace`` (default 60 s), so a scheduler a few seconds late still fires it;
* ``"all"``: every missed slot runs, oldest first, but at most ``limit`` (the most recent ones;
  older slots are dropped) so a long outage of a minutely entry cannot flood the queues.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from conveyor.beat.schedules import Schedule, ScheduleError, check_time

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_LIMIT",
    "CatchUp",
    "Plan",
    "as_catch_up",
    "due_slots",
    "next_due",
    "plan",
]

DEFAULT_GRACE = 60.0
DEFAULT_LIMIT = 100


class CatchUp(StrEnum):
    """Misfire policy of a periodic entry."""

    ONCE = "once"
    SKIP = "skip"
    ALL = "all"


def as_catch_up(value: CatchUp | str) -> CatchUp:
    """Parse a policy from configuration.

    >>> as_catch_up("skip")
    <CatchUp.SKIP: 'skip'>
    """
    try:
        return CatchUp(value.lower() if isinstance(value, str) else value)
    except ValueError:
        allowed = ", ".join(repr(p.value) for p in CatchUp)
        raise ScheduleError(f"invalid catch-up policy {value!r}: expected one of {allowed}") from None


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do for one entry now."""

    slots: tuple[float, ...]  # enqueue these, oldest first
    cursor: float  # store as the entry's new ``last_slot``
    next_due: float  # earliest time anything becomes due again (inf: never)


def _latest_slots(schedule: Schedule, after: float, upto: float, limit: int) -> list[float]:
    """The most recent ``limit`` slots in ``(after, upto]``, oldest first."""
    forward = schedule.slots_between(after, upto, limit + 1)
    if len(forward) <= limit:
        return forward
    # More were missed than we will run: walk back from the newest instead of scanning them all.
    out = [schedule.last_at_or_before(upto)]
    while len(out) < limit:
        out.append(schedule.last_at_or_before(math.nextafter(out[-1], -math.inf)))
    out.reverse()
    return out


def plan(
    schedule: Schedule,
    last_slot: float | None,
    now: float,
    policy: CatchUp | str = CatchUp.ONCE,
    limit: int = DEFAULT_LIMIT,
    *,
    grace: float = DEFAULT_GRACE,
) -> Plan:
    """Decide which slots to enqueue at ``now`` given the entry's cursor ``last_slot``.

    >>> from conveyor.beat.schedules import every
    >>> plan(every(10), last_slot=100.0, now=135.0)  # 110, 120, 130 missed: run once, as 130
    Plan(slots=(130.0,), cursor=130.0, next_due=140.0)
    >>> plan(every(10), 100.0, 135.0, "all").slots
    (110.0, 120.0, 130.0)
    """
    check_time(now, "now")
    policy = as_catch_up(policy)
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if not (math.isfinite(grace) and grace >= 0):
        raise ValueError(f"grace must be a finite number of seconds >= 0, got {grace!r}")
    if last_slot is None:
        latest = schedule.last_at_or_before(now) if schedule.first_run_immediate else -math.inf
        if math.isfinite(latest):
            return Plan((latest,), latest, schedule.next_after(now))
        return Plan((), now, schedule.next_after(now))
    check_time(last_slot, "last_slot")
    latest = schedule.last_at_or_before(now)
    if not latest > last_slot:
        # Nothing new; also the case when another scheduler's clock ran ahead of ours.
        return Plan((), last_slot, schedule.next_after(max(now, last_slot)))
    if policy is CatchUp.ONCE:
        slots = [latest]
    elif policy is CatchUp.SKIP:
        slots = [latest] if now - latest <= grace else []
    else:
        slots = _latest_slots(schedule, last_slot, latest, limit)
    return Plan(tuple(slots), latest, schedule.next_after(now))


def due_slots(
    schedule: Schedule,
    last_slot: float | None,
    now: float,
    policy: CatchUp | str = CatchUp.ONCE,
    limit: int = DEFAULT_LIMIT,
    *,
    grace: float = DEFAULT_GRACE,
) -> list[float]:
    """The slots to enqueue now (oldest first); see :func:`plan` for the cursor to store.

    >>> from conveyor.beat.schedules import every
    >>> due_slots(every(10), last_slot=100.0, now=135.0, policy="skip")  # 130 is 5 s late: on time
    [130.0]
    """
    return list(plan(schedule, last_slot, now, policy, limit, grace=grace).slots)


def next_due(schedule: Schedule, last_slot: float | None, now: float) -> float:
    """The first slot strictly after both ``now`` and ``last_slot``: when to wake up next for this
    entry, assuming what :func:`due_slots` returned at ``now`` has been enqueued.

    >>> from conveyor.beat.schedules import every
    >>> next_due(every(10), last_slot=130.0, now=131.5)
    140.0
    """
    check_time(now, "now")
    return schedule.next_after(now if last_slot is None else max(now, last_slot))
