"""``AsyncResult``: a handle on a task's state and result, read from the broker."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import states
from .exceptions import RemoteError, TimeoutError
from .message import ResultPayload, decode_result
from .progress import read_progress

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
    """

    def __init__(self, task_id: str, app: AppLike) -> None:
        self.id = task_id
        self.app = app

    def __repr__(self) -> str:
        return f"<AsyncResult: {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AsyncResult) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def task_id(self) -> str:
        return self.id

    def _record(self) -> tuple[str, ResultPayload | None]:
        record = self.app.broker.status(self.id)
        if record is None:
            return states.UNKNOWN, None
        return record.state, decode_result(record.payload) if record.payload else None

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
        payload = decode_result(record.payload) if record.payload else None
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
        payload = decode_result(record.payload) if record.payload else None
        return self._outcome(record.state, payload, propagate)

    async def _anow(self) -> tuple[str, Any]:
        """``_now`` for async code: the same reads, on the broker's asyncio client."""
        from .aio import producer
        from .progress import aread_progress

        client = producer(self.app)
        record = await client.status(self.id)
        state = record.state if record is not None else states.UNKNOWN
        payload = decode_result(record.payload) if record is not None and record.payload else None
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

        ``terminate=True`` also stops it if it is already running (``signal`` is accepted for
        Celery compatibility and ignored: see docs/guarantees.md for how a run is stopped).
        """
        self.app.revoke(self.id, terminate=terminate)

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
