"""``AsyncResult``: a handle on a task's state and result, read from the broker."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import states
from .exceptions import DecodeError, RemoteError, TimeoutError
from .message import ResultPayload, decode_json, decode_result, encode_json
from .progress import read_progress
from .registry import _current_app

if TYPE_CHECKING:
    from .appproto import AppLike

R = TypeVar("R")

# States in which a task's own report (progress.py) says more than the broker: it has not
# finished. (UNKNOWN: an eager run, which the broker never sees.)
_RUNNING = frozenset({states.PENDING, states.STARTED, states.UNKNOWN})


def rebuild_exception(payload: ResultPayload) -> Exception:
    """Turn a stored failure back into an exception, without importing anything.

    Only ``Exception`` classes whose module is already imported in this process are rebuilt
    (builtins, Conveyor's own, the app's); anything else becomes ``RemoteError``, because
    importing a module named by broker data would let the broker run code here. Never a
    ``BaseException`` such as ``SystemExit`` or ``KeyboardInterrupt``: raised by ``get()`` it
    would stop the caller's process (a task that called ``sys.exit()`` failed, nothing more).
    """
    qualname = payload.exc_type or "builtins.Exception"
    module_name, _, name = qualname.rpartition(".")
    module = sys.modules.get(module_name or "builtins")
    cls = getattr(module, name, None) if module is not None else None
    message = payload.exc_message or ""
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            exc = cls(message)
        except Exception:
            exc = None
        if exc is not None:
            return exc
    return RemoteError(qualname, message, payload.traceback)


class AsyncResult(Generic[R]):
    """The state and result of a task, by id. Every property reads the broker afresh.

    >>> r = add.delay(2, 2)              # doctest: +SKIP
    >>> r.get(timeout=5)                 # doctest: +SKIP
    4
    >>> AsyncResult(task_id).state       # doctest: +SKIP
    'SUCCESS'

    ``app`` defaults to the current app (the one created last), as in Celery.
    """

    def __init__(
        self,
        task_id: str,
        app: AppLike | None = None,
        parent: AsyncResult[Any] | GroupResult | None = None,
    ) -> None:
        self.id = task_id
        # Without an app: the current one (the app last created), as Celery's ``AsyncResult(id)``
        # in a Django view uses ``current_app``.
        self.app: AppLike = app if app is not None else _current_app()
        #: The result this one's task follows in a workflow (a chain's previous step, a chord's
        #: header group), when this handle was made by the code that started the workflow.
        self.parent = parent
        #: The results that follow from this one, where known (a group's members).
        self.children: list[AsyncResult[Any]] = []

    def __repr__(self) -> str:
        return f"<AsyncResult: {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AsyncResult) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def task_id(self) -> str:
        return self.id

    def _decode(self, raw: bytes | None) -> ResultPayload | None:
        """A stored result, its value decoded as this app's ``accept_content`` allows."""
        return decode_result(raw, frozenset(self.app.conf.accept_content)) if raw else None

    def _record(self) -> tuple[str, ResultPayload | None]:
        record = self.app.broker.status(self.id)
        if record is None:
            return states.UNKNOWN, None
        return record.state, self._decode(record.payload)

    def _now(self) -> tuple[str, Any]:
        """(state, info): while the task waits or runs, the state and meta it last reported
        (``update_state``/``progress``) if any; else the broker's state and result."""
        state, payload = self._record()
        if state in _RUNNING:
            reported = read_progress(self.app.broker, self.id)
            # A report from an earlier attempt says nothing about this one (after a retry).
            if reported is not None and (state != states.STARTED or reported.retries >= self.retries):
                return reported.state, reported.meta
        return state, _value(state, payload)

    @property
    def state(self) -> str:
        """PENDING, STARTED, RETRY, SUCCESS, FAILURE, REVOKED, or UNKNOWN for an id nobody
        enqueued; while it runs, the state the task reported with ``update_state`` (such as
        ``PROGRESS``), if it did."""
        return self._now()[0]

    status = state

    @property
    def result(self) -> Any:
        """The return value on SUCCESS; the exception on FAILURE/REVOKED/RETRY; None otherwise."""
        state, payload = self._record()
        return _value(state, payload)

    @property
    def info(self) -> Any:
        """``result``, except while the task runs: then the meta it last reported
        (``update_state(meta=...)``, ``progress()``), as in Celery."""
        return self._now()[1]

    @property
    def traceback(self) -> str | None:
        payload = self._record()[1]
        return payload.traceback if payload else None

    @property
    def retries(self) -> int:
        record = self.app.broker.status(self.id)
        return record.retries if record else 0

    def ready(self) -> bool:
        return self.state in states.READY_STATES

    def successful(self) -> bool:
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        return self.state == states.FAILURE

    def get(self, timeout: float | None = None, propagate: bool = True, interval: float = 0.0) -> R:
        """Wait for the task to finish and return its result.

        Raises ``conveyor.exceptions.TimeoutError`` after ``timeout`` seconds, and (with
        ``propagate``, the default) re-raises the task's exception if it failed or was revoked.
        ``interval`` is accepted for Celery compatibility; the wait does not poll the tables.
        """
        record = self.app.broker.wait(self.id, timeout)
        if record is None or record.state not in states.READY_STATES:
            state = record.state if record else states.UNKNOWN
            raise TimeoutError(f"task {self.id} not ready after {timeout}s (state {state})")
        payload = self._decode(record.payload)
        return self._outcome(record.state, payload, propagate)

    async def aget(self, timeout: float | None = None, propagate: bool = True) -> R:
        """``get`` for async code: ``await r.aget(timeout=10)``. Waits on the broker's asyncio
        client (Redis: the same blocking wait as ``get``; SQLite: reads on the broker's reader
        thread, soon after the result is stored), never blocking the event loop. Raises as
        ``get`` does."""
        from .aio import producer

        record = await producer(self.app).wait(self.id, timeout)
        if record is None or record.state not in states.READY_STATES:
            state = record.state if record else states.UNKNOWN
            raise TimeoutError(f"task {self.id} not ready after {timeout}s (state {state})")
        payload = self._decode(record.payload)
        return self._outcome(record.state, payload, propagate)

    async def _anow(self) -> tuple[str, Any]:
        """``_now`` for async code: the same reads, on the broker's asyncio client."""
        from .aio import producer
        from .progress import aread_progress

        client = producer(self.app)
        record = await client.status(self.id)
        state = record.state if record is not None else states.UNKNOWN
        payload = self._decode(record.payload) if record is not None else None
        if state in _RUNNING:
            reported = await aread_progress(client, self.id)
            retries = record.retries if record is not None else 0
            if reported is not None and (state != states.STARTED or reported.retries >= retries):
                return reported.state, reported.meta
        return state, _value(state, payload)

    async def astate(self) -> str:
        """``state`` for async code (``PROGRESS`` or another reported state while it runs)."""
        return (await self._anow())[0]

    async def ainfo(self) -> Any:
        """``info`` for async code: the reported meta while it runs, else the result."""
        return (await self._anow())[1]

    async def astate_and_info(self) -> tuple[str, Any]:
        """``(state, info)`` from one read, for a status endpoint: two separate awaits could
        see the task finish in between (a ``PROGRESS`` state with the result as its info).

        >>> state, info = await app.AsyncResult(task_id).astate_and_info()  # doctest: +SKIP
        """
        return await self._anow()

    def _outcome(self, state: str, payload: ResultPayload | None, propagate: bool) -> R:
        value = _value(state, payload)
        if propagate and isinstance(value, BaseException):
            raise value
        return value  # type: ignore[no-any-return]

    def revoke(self, terminate: bool = False, signal: str | None = None) -> None:
        """Revoke the task. Durable: stored in the broker, honoured by workers that start later.

        ``terminate=True`` also stops it if it is already running; with a ``signal`` it is that
        very signal on ``-P processes``, as in Celery (``app.revoke``; docs/workers.md).
        """
        self.app.revoke(self.id, terminate=terminate, signal=signal)

    def forget(self) -> None:
        self.app.broker.forget(self.id)


def _value(state: str, payload: ResultPayload | None) -> Any:
    if payload is None:
        return None
    if state == states.SUCCESS:
        return payload.result
    if state in states.EXCEPTION_STATES and payload.exc_type:
        return rebuild_exception(payload)
    return payload.result


class EagerResult(AsyncResult[R]):
    """The result of a task run in this process (``apply()`` or ``task_always_eager``)."""

    def __init__(self, task_id: str, app: AppLike, state: str, payload: ResultPayload) -> None:
        super().__init__(task_id, app)
        self._state = state
        self._payload = payload

    def _record(self) -> tuple[str, ResultPayload | None]:
        return self._state, self._payload

    @property
    def retries(self) -> int:
        return self._payload.retries

    def get(self, timeout: float | None = None, propagate: bool = True, interval: float = 0.0) -> R:
        return self._outcome(self._state, self._payload, propagate)

    async def aget(self, timeout: float | None = None, propagate: bool = True) -> R:
        return self._outcome(self._state, self._payload, propagate)

    async def _anow(self) -> tuple[str, Any]:
        return self._now()  # known here: no broker read

    def revoke(self, terminate: bool = False, signal: str | None = None) -> None:
        pass  # already ran


GROUP_KEY = "group:"  # the key/value store's prefix for saved groups (GroupResult.save)


class GroupResult:
    """The results of a group's tasks, in the group's order.

    >>> res = group(refresh.s(i) for i in range(10))()   # doctest: +SKIP
    >>> res.get(timeout=30)                              # doctest: +SKIP
    [...]
    >>> res.save(); GroupResult.restore(res.id, app)     # doctest: +SKIP
    """

    def __init__(
        self,
        group_id: str,
        results: list[AsyncResult[Any]],
        app: AppLike | None = None,
        parent: AsyncResult[Any] | None = None,
    ) -> None:
        self.id = group_id
        self.results = list(results)
        self.app: AppLike = app if app is not None else _current_app()
        self.parent = parent

    def __repr__(self) -> str:
        return f"<GroupResult: {self.id} [{', '.join(r.id for r in self.results)}]>"

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[AsyncResult[Any]]:
        return iter(self.results)

    def __getitem__(self, index: int) -> AsyncResult[Any]:
        return self.results[index]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GroupResult) and other.id == self.id and other.results == self.results

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def children(self) -> list[AsyncResult[Any]]:
        return self.results

    def ready(self) -> bool:
        """Whether every task has finished (succeeded, failed or was revoked)."""
        return all(r.ready() for r in self.results)

    def waiting(self) -> bool:
        return not self.ready()

    def completed_count(self) -> int:
        """How many tasks succeeded."""
        return sum(1 for r in self.results if r.successful())

    def successful(self) -> bool:
        """Whether every task succeeded."""
        return all(r.successful() for r in self.results)

    def failed(self) -> bool:
        """Whether any task failed."""
        return any(r.failed() for r in self.results)

    def get(self, timeout: float | None = None, propagate: bool = True, interval: float = 0.0) -> list[Any]:
        """Wait for every task and return their results in the group's order. ``timeout`` is
        for the whole group; with ``propagate`` the first failure (in order) is raised."""
        deadline = None if timeout is None else time.monotonic() + timeout
        values: list[Any] = []
        for r in self.results:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            values.append(r.get(timeout=remaining, propagate=propagate))
        return values

    join = get

    def revoke(self, terminate: bool = False, signal: str | None = None) -> None:
        self.app.revoke([r.id for r in self.results], terminate=terminate, signal=signal)

    def forget(self) -> None:
        for r in self.results:
            r.forget()
        entry = self.app.broker.kv_get(GROUP_KEY + self.id)
        if entry is not None:  # the saved ids go too (the key/value store deletes by compare-and-set)
            self.app.broker.kv_compare_and_set(GROUP_KEY + self.id, entry.value, None)

    def save(self) -> None:
        """Store the group's member ids in the broker (kept ``result_expires``), so another
        process can ``GroupResult.restore(id)`` it: a web request polling a group it started."""
        ids = encode_json([r.id for r in self.results])
        self.app.broker.kv_put(GROUP_KEY + self.id, ids, ttl=self.app.conf.result_expires)

    @classmethod
    def restore(cls, group_id: str, app: AppLike | None = None) -> GroupResult | None:
        """The group saved with ``save()``, or None if it was never saved or has expired."""
        if app is None:
            from .registry import current_app

            app = current_app()
        entry = app.broker.kv_get(GROUP_KEY + group_id)
        if entry is None:
            return None
        ids = decode_json(entry.value)
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise DecodeError(f"saved group {group_id!r} is malformed")
        return cls(group_id, [AsyncResult(i, app) for i in ids], app)
