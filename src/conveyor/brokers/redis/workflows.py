"""The Redis broker's workflow groups: ``P:group:<id>`` (a hash: size, joined, failed and the
body to enqueue) and ``P:group:<id>:slots`` (slot index -> packed result), both expiring with
the group. Members join in settle.lua, in the script that settles their outcome
(``continuation_args`` packs an outcome's continuation for it)."""

from __future__ import annotations

from ... import states
from ..base import WorkflowStore
from ..records import Continuation, GroupState, JobSpec, Outcome, StoredResult
from .codec import pack_result, unpack_result
from .connection import Arg, RedisParts

_NONE: tuple[Arg, ...] = ("",)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _priority(priority: int) -> int:
    return 9 if priority > 9 else 0 if priority < 0 else int(priority)


def _jobs(specs: tuple[JobSpec, ...]) -> list[Arg]:
    out: list[Arg] = [len(specs)]
    for s in specs:
        out += (s.id, s.queue, _priority(s.priority), "" if s.eta is None else repr(s.eta), s.body)
    return out


def _results(results: tuple[StoredResult, ...]) -> list[Arg]:
    out: list[Arg] = [len(results)]
    for task_id, state, payload in results:
        out += (task_id, pack_result(state, payload))
    return out


def continuation_args(o: Outcome) -> tuple[Arg, ...] | list[Arg]:
    """The arguments settle.lua reads after an outcome's history entry (see its header)."""
    then = o.then
    if then is None or o.kind not in ("ack", "dead", "died"):
        return _NONE
    return then_args(then)


def then_args(then: Continuation) -> list[Arg]:
    """A continuation packed for workflow.lua's ``continue_at`` (settle.lua's header)."""
    args: list[Arg] = ["1", *_jobs(then.enqueue), *_results(then.results)]
    join = then.join
    if join is None:
        args.append("")
        return args
    failed = "0" if join.state == states.SUCCESS else "1"
    args += (join.group, join.slot, pack_result(join.state, join.payload), failed)
    args += (*_jobs(join.on_failure), *_results(join.failure_results))
    return args


class RedisWorkflows(RedisParts, WorkflowStore):
    def start_group(self, group_id: str, size: int, body: JobSpec | None, ttl: float) -> bool:
        if size <= 0:
            raise ValueError(f"a group needs at least one member, got size {size}")
        key = self._keys.group(group_id)
        args: list[Arg] = [size, _ms(ttl)]
        if body is None:
            args += ("", "", "", "", "")
        else:
            eta = "" if body.eta is None else repr(body.eta)
            args += (body.id, body.queue, _priority(body.priority), eta, body.body)
        return bool(self._conn.run_confirmed(self._conn.scripts.group_start, [key], args))

    def group_state(self, group_id: str) -> GroupState | None:
        key = self._keys.group(group_id)
        with self._conn.errors():
            pipe = self._conn.client.pipeline(transaction=True)
            pipe.hmget(key, ["size", "joined", "failed", "body_id"])
            pipe.hgetall(key + ":slots")
            meta, raw_slots = pipe.execute()
        if meta[0] is None:
            return None
        size = int(meta[0])
        slots: list[tuple[str, bytes | None] | None] = [None] * size
        for index, packed in raw_slots.items():
            i = int(index)
            if 0 <= i < size:
                record = unpack_result(packed)
                slots[i] = (record.state, record.payload)
        body_id = meta[3].decode() if meta[3] is not None else None
        return GroupState(size, int(meta[1] or 0), meta[2] == b"1", body_id, tuple(slots))
