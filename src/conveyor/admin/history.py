"""The task history for operators: ``app.admin.tasks(...)``, ``task(id)`` and ``counters(...)``.

Finished, failed, retrying and revoked tasks come from the broker's persistent history (written
by the workers' batched settles, so it survives every restart). Running tasks come from the
workers' heartbeats, and a task id with no history record falls back to what the broker knows
of it now (waiting, delayed for a retry, started), so ``task ID`` answers for any known id.

State names are the operator's, as the CLI prints them:

=========  ===========================================================================
waiting    ready to run, no worker has it yet (from the queues; newest first)
scheduled  delayed: a countdown, an eta or a retry's backoff (soonest due first)
running    a live worker runs it now (from heartbeats)
succeeded  finished (SUCCESS)
failed     failed for good (FAILURE), dead-lettered or not
retrying   failed, another attempt is due (RETRY)
revoked    revoked before it finished
dead       failed and kept in the dead letters (a subset of failed)
=========  ===========================================================================
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .. import states
from ..brokers import Broker, HeldJob, HistoryQuery, HistoryRow, MinuteCounts, PendingJob, SearchReach
from ..exceptions import DecodeError
from ..message import decode_envelope, decode_result, describe_message_args
from ..progress import read_progress
from ..taskrecord import ARGS_LIMIT, LOST, decode_attempt, decode_record
from .errors import UnknownState, UnknownTask
from .records import AttemptInfo, MinuteInfo, Page, ProgressInfo, RunningTask, TaskCounts, TaskInfo

#: Operator state name -> the history's state (None: not from the history).
STATES: dict[str, str | None] = {
    "waiting": None,
    "scheduled": None,
    "running": None,
    "succeeded": states.SUCCESS,
    "failed": states.FAILURE,
    "retrying": states.RETRY,
    "revoked": states.REVOKED,
    "dead": states.FAILURE,
}
_NAMES = {
    states.SUCCESS: "succeeded",
    states.FAILURE: "failed",
    states.RETRY: "retrying",
    states.REVOKED: "revoked",
    states.PENDING: "waiting",
    states.STARTED: "running",
    LOST: "lost",  # an attempt only: its worker died while running it
}
LEASED = "leased"  # held by a worker that does not say it runs it (prefetched, or the worker is gone)
LISTED = ("waiting", "scheduled", "running", "succeeded", "failed", "retrying", "revoked", "dead")
SCAN = 200  # broker rows read per round when a filter the broker cannot apply is given


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """What ``admin.tasks`` lists; see ``Admin.tasks``."""

    state: str | None = None
    name: str | None = None
    queue: str | None = None
    since: float | None = None
    until: float | None = None
    search: str | None = None


def check_state(state: str | None) -> None:
    if state is not None and state not in LISTED:
        raise UnknownState(f"unknown state {state!r} (one of: {', '.join(LISTED)})")


def page(
    broker: Broker, running: Callable[[], list[RunningTask]], f: TaskFilter, offset: int, limit: int
) -> Page[TaskInfo]:
    check_state(f.state)
    if f.state == "running":
        found = [_from_running(t) for t in running() if _running_matches(t, f)]
        found.sort(key=lambda t: t.started or 0.0, reverse=True)
        items = found[offset : offset + limit]
        more = offset + limit < len(found)
        return Page(tuple(items), offset, limit, offset + limit if more else None, len(found))
    if f.state in ("waiting", "scheduled"):
        return _pending(broker, f, offset, limit)
    query = HistoryQuery(STATES[f.state] if f.state else None, f.name, f.queue, f.since, f.until, f.search)
    if f.state != "dead":
        rows, reach = _history(broker, query, limit + 1, offset)
        items = [task_info(r) for r in rows[:limit]]
        return _bounded(
            Page(tuple(items), offset, limit, offset + limit if len(rows) > limit else None), reach
        )
    # dead: the failed records that went to the dead letters; the broker does not index that.
    matched: list[TaskInfo] = []
    at = 0
    while len(matched) <= offset + limit:
        rows, reach = _history(broker, query, SCAN, at)
        at += len(rows)
        matched += [t for t in map(task_info, rows) if t.dead]
        if len(rows) < SCAN:
            break
    items = matched[offset : offset + limit]
    next_at = offset + limit if len(matched) > offset + limit else None
    return _bounded(Page(tuple(items), offset, limit, next_at), reach)


def search_bound_note(found: Page[TaskInfo]) -> str | None:
    """What to tell an operator about a bounded search (None: it searched everything).

    >>> print(search_bound_note(Page((), 0, 50, searched_records=100000, searched_until=0.0)))
    searched the last 100,000 records (back to 1970-01-01 00:00:00 UTC): narrow with a state, task ...
    """
    if found.searched_records is None:
        return None
    back = ""
    if found.searched_until is not None:
        back = f" (back to {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(found.searched_until))} UTC)"
    return (
        f"searched the last {found.searched_records:,} records{back}:"
        " narrow with a state, task name or time range"
    )


def _history(
    broker: Broker, query: HistoryQuery, limit: int, offset: int
) -> tuple[list[HistoryRow], SearchReach | None]:
    """A page of history rows; a text search goes through the broker's bounded search."""
    if query.search:
        return broker.search_history(query, limit, offset)
    return broker.history(query, limit, offset), None


def _bounded(page: Page[TaskInfo], reach: SearchReach | None) -> Page[TaskInfo]:
    if reach is None:
        return page
    return dataclasses.replace(page, searched_records=reach.records, searched_until=reach.back_to)


def one(broker: Broker, running: Callable[[], list[RunningTask]], task_id: str) -> TaskInfo:
    """A task's full record: running now, else its history record, else what the broker
    knows; with the progress it last reported, if any."""
    info = _one(broker, running, task_id)
    if info.state == "succeeded":  # "4/5" next to a success would only mislead
        return info
    reported = read_progress(broker, task_id)
    if reported is None:
        return info
    return dataclasses.replace(info, progress=ProgressInfo(reported.state, reported.meta, reported.at))


def _one(broker: Broker, running: Callable[[], list[RunningTask]], task_id: str) -> TaskInfo:
    for task in running():
        if task.id == task_id:
            row = broker.history_row(task_id)
            if row is None:
                return _from_running(task)
            recorded = task_info(row)
            if recorded.finished is not None and recorded.finished >= task.started:
                return recorded  # it ended since the heartbeat that still lists it (<= 1 s old)
            live = _from_running(task)
            made = _runs(live.attempts_made, recorded.attempts, running_now=True)
            return dataclasses.replace(live, attempts=recorded.attempts, attempts_made=made)
    pending = broker.pending_job(task_id)
    row = broker.history_row(task_id)
    if pending is not None:  # waiting, or scheduled (a retry: with its attempts so far)
        return _with_attempts_so_far(_from_pending(pending), row)
    held = broker.held_job(task_id)
    if held is not None:
        # Leased, yet no live worker's heartbeat says it runs: a worker holds it prefetched, or
        # its worker stopped heartbeating (a live worker's keeper requeues it once the lease
        # expires). "running" would say more than is known.
        info = _from_held(held)
        reported = read_progress(broker, task_id)
        if reported is not None and reported.retries == held.retries:
            # It reported progress on this attempt: it runs (its worker's heartbeat, up to a
            # second old, has not listed it yet), rather than waiting prefetched.
            info = dataclasses.replace(info, state="running")
        return _with_attempts_so_far(info, row)
    if row is not None:
        return task_info(row)
    status = broker.status(task_id)
    if status is None:
        raise UnknownTask(f"unknown task id {task_id!r} (never enqueued, or its record expired)")
    return _from_status(task_id, status.state, status.payload, status.retries)


def _with_attempts_so_far(info: TaskInfo, row: HistoryRow | None) -> TaskInfo:
    """A task not ended yet (waiting, scheduled, leased) with the failed attempts its history
    record holds so far (a retry's), counted in its runs."""
    if row is None:
        return info
    attempts = task_info(row).attempts
    made = _runs(info.attempts_made, attempts, running_now=False)
    return dataclasses.replace(info, attempts=attempts, attempts_made=made)


def counters(broker: Broker, since: float, until: float, name: str | None) -> list[MinuteCounts]:
    return broker.counters(since, until, name)


def totals(rows: list[MinuteCounts]) -> list[TaskCounts]:
    """Per-minute counter rows summed per task name (by name), each with its series."""
    by_name: dict[str, list[MinuteCounts]] = {}
    for row in rows:
        by_name.setdefault(row.name, []).append(row)
    found = []
    for name, mine in sorted(by_name.items()):
        processed = sum(r.processed for r in mine)
        runtime = sum(r.runtime for r in mine)
        found.append(
            TaskCounts(
                name=name,
                processed=processed,
                failed=sum(r.failed for r in mine),
                retried=sum(r.retried for r in mine),
                runtime=runtime,
                mean_runtime=runtime / processed if processed else None,
                minutes=tuple(
                    MinuteInfo(r.minute, r.processed, r.failed, r.retried, r.runtime)
                    for r in sorted(mine, key=lambda r: r.minute)
                ),
            )
        )
    return found


def _numbered(attempts: Iterable[AttemptInfo]) -> tuple[AttemptInfo, ...]:
    """Failed attempts numbered as runs. A worker numbers a run ``retries + 1``, and a dead
    letter retried runs again with the retries it had (one more attempt, as Sidekiq's and
    Oban's retry of a dead job gives): its failure would repeat the last number."""
    numbered: list[AttemptInfo] = []
    for a in attempts:
        floor = numbered[-1].attempt + 1 if numbered else 1
        numbered.append(a if a.attempt >= floor else dataclasses.replace(a, attempt=floor))
    return tuple(numbered)


def _runs(counted: int, attempts: tuple[AttemptInfo, ...], running_now: bool) -> int:
    """Runs made: ``counted`` (retries + 1), or more when the numbered failed attempts say so
    (a retried dead letter runs again with the retries it had), plus the run going on or
    succeeded after the last failed one when ``running_now``."""
    return max(counted, attempts[-1].attempt + running_now) if attempts else counted


def task_info(row: HistoryRow) -> TaskInfo:
    try:
        rec = decode_record(row.record)
    except DecodeError:
        return TaskInfo(row.id, "<malformed>", "", "unknown")
    attempts = _numbered(
        AttemptInfo(a.attempt, _NAMES.get(a.state, a.state.lower()), a.at, a.worker, a.runtime, a.error)
        for a in map(decode_attempt, row.attempts)
        if a is not None
    )
    result, error, trace = _payload(row.payload)
    # A success came after the last failed attempt: that run counts too.
    made = _runs(rec.retries + 1, attempts, running_now=rec.state == states.SUCCESS)
    return TaskInfo(
        id=row.id,
        name=rec.name,
        queue=rec.queue,
        state=_NAMES.get(rec.state, rec.state.lower()),
        args=rec.args,
        priority=rec.priority,
        enqueued=rec.enqueued,
        started=None if rec.finished is None or rec.runtime is None else rec.finished - rec.runtime,
        finished=rec.finished,
        runtime=rec.runtime,
        attempts_made=made,
        worker=rec.worker,
        result=result,
        error=error,
        traceback=trace,
        dead=rec.dead,
        next_attempt=rec.eta,
        attempts=attempts,
        group=rec.group,
        parent=rec.parent,
        root=rec.root,
        chord=rec.chord,
    )


def _payload(raw: bytes | None) -> tuple[Any, str | None, str | None]:
    """(result, "ExcType: message", traceback) of a stored payload."""
    if raw is None:
        return None, None, None
    try:
        payload = decode_result(raw)
    except DecodeError:
        return None, None, None
    if payload.exc_type is None:
        return payload.result, None, None
    name = payload.exc_type.rpartition(".")[2]
    return None, f"{name}: {payload.exc_message or ''}".rstrip(), payload.traceback


def _pending(broker: Broker, f: TaskFilter, offset: int, limit: int) -> Page[TaskInfo]:
    """Waiting or scheduled tasks from the queues, filtered here (the broker never decodes a
    message): broker pages are read until the page is full."""
    delayed = f.state == "scheduled"
    matched: list[TaskInfo] = []
    at = 0
    while len(matched) <= offset + limit:
        jobs = broker.pending(delayed, SCAN, at)
        at += len(jobs)
        matched += [t for t in map(_from_pending, jobs) if _pending_matches(t, f)]
        if len(jobs) < SCAN:
            break
    items = matched[offset : offset + limit]
    return Page(tuple(items), offset, limit, offset + limit if len(matched) > offset + limit else None)


def _from_pending(job: PendingJob) -> TaskInfo:
    try:
        env = decode_envelope(job.body)
        name, args, enqueued = env.task, describe_message_args(env, ARGS_LIMIT), env.created or None
    except DecodeError:
        name, args, enqueued = "<malformed>", "", None
    return TaskInfo(
        id=job.id,
        name=name,
        queue=job.queue,
        state="waiting" if job.eta is None else "scheduled",
        args=args,
        priority=job.priority,
        enqueued=enqueued,
        # Its runs so far: retries, and the runs its workers died on (-1: an at-most-once start).
        attempts_made=job.retries + max(job.deaths, 0),
        next_attempt=job.eta,
    )


def _from_held(job: HeldJob) -> TaskInfo:
    """A leased job no heartbeat lists: ``leased``, held by its lease owner's worker; its runs
    so far count the ones its workers died on."""
    pending = PendingJob(job.id, job.queue, job.body, job.priority, None, job.retries, job.deaths)
    return dataclasses.replace(
        _from_pending(pending),
        state=LEASED,
        worker=job.owner.rsplit("/", 1)[0],  # lease owners are "NAME/pid-nonce" (worker/naming.py)
        next_attempt=None,
    )


def _pending_matches(t: TaskInfo, f: TaskFilter) -> bool:
    if (f.name is not None and t.name != f.name) or (f.queue is not None and t.queue != f.queue):
        return False
    when = t.enqueued
    if f.since is not None and (when is None or when < f.since):
        return False
    if f.until is not None and (when is None or when >= f.until):
        return False
    return not f.search or f.search.lower() in (t.args + " " + t.id).lower()


def _from_running(t: RunningTask) -> TaskInfo:
    return TaskInfo(
        id=t.id,
        name=t.name,
        queue=t.queue,
        state="running",
        args=t.args,
        enqueued=t.enqueued,
        started=t.started,
        runtime=t.runtime,
        attempts_made=t.attempt,
        worker=t.worker,
    )


def _running_matches(t: RunningTask, f: TaskFilter) -> bool:
    if (f.name is not None and t.name != f.name) or (f.queue is not None and t.queue != f.queue):
        return False
    if (f.since is not None and t.started < f.since) or (f.until is not None and t.started >= f.until):
        return False
    return not f.search or f.search.lower() in (t.args + " " + t.id).lower()


def _from_status(task_id: str, state: str, payload: bytes | None, retries: int) -> TaskInfo:
    result, error, trace = _payload(payload)
    return TaskInfo(
        id=task_id,
        name="",
        queue="",
        state=_NAMES.get(state, state.lower()),
        attempts_made=retries + (state != states.PENDING),
        result=result,
        error=error,
        traceback=trace,
    )
