"""The memory broker's workflow groups: a dict of groups behind the broker's one lock, joined
by ``settle`` (``MemoryBroker.settle`` calls ``_continue`` for a current outcome's
continuation while it holds the lock, so a join and the outcome are one step)."""

from __future__ import annotations

import time

from ... import states
from ..base import WorkflowStore
from ..records import Continuation, GroupState, JobSpec, StatusRecord
from .state import Group, MemoryParts


class MemoryWorkflows(MemoryParts, WorkflowStore):
    def start_group(self, group_id: str, size: int, body: JobSpec | None, ttl: float) -> bool:
        if size <= 0:
            raise ValueError(f"a group needs at least one member, got size {size}")
        now = time.time()
        with self._cond:
            known = self._groups.get(group_id)
            if known is not None and known.expires_at > now:
                return False
            self._groups[group_id] = Group(size, body, now + ttl, [None] * size)
            return True

    def group_state(self, group_id: str) -> GroupState | None:
        with self._cond:
            g = self._groups.get(group_id)
            if g is None or g.expires_at <= time.time():
                return None
            return GroupState(g.size, g.joined, g.failed, g.body.id if g.body else None, tuple(g.slots))

    def _continue(self, then: Continuation, result_ttl: float) -> None:
        """Apply a current outcome's continuation (call with the lock held, inside settle)."""
        now = time.time()
        for spec in then.enqueue:
            self._add_job(spec, now)
        for task_id, state, payload in then.results:
            self._results[task_id] = (StatusRecord(state, payload), now + result_ttl)
        join = then.join
        if join is None:
            return
        g = self._groups.get(join.group)
        if g is None or g.expires_at <= now or not 0 <= join.slot < g.size:
            return  # expired or unknown: nothing left to complete
        if g.slots[join.slot] is not None:
            return  # counted before: this member already did everything below
        g.slots[join.slot] = (join.state, join.payload)
        g.joined += 1
        if join.state != states.SUCCESS and not g.failed:
            g.failed = True
            for spec in join.on_failure:
                self._add_job(spec, now)
            body_id = g.body.id if g.body is not None else ""
            for task_id, state, payload in join.failure_results:
                if task_id or body_id:  # "": the body
                    self._results[task_id or body_id] = (StatusRecord(state, payload), now + result_ttl)
        if g.joined == g.size and not g.failed and g.body is not None:
            self._add_job(g.body, now)
