"""Distributed locks with expiry, holder tokens, fencing numbers and optional auto-renewal.

A lock is one key, ``lock:<name>``, holding a ``LockValue`` with a random token that only its
holder knows, stored with a TTL (the lock's ``timeout``):

- acquire: ``kv_put(only_if_absent)``, so exactly one contender wins;
- release and extend: ``kv_compare_and_set`` against the holder's own value, so a holder whose
  lock expired can never release or extend the lock someone else holds now;
- expiry: a holder that dies stops renewing and the key expires, so nobody waits forever;
- fencing: each acquisition takes a number from a counter that only grows. Expiry means two
  holders can *believe* they hold the lock (the first one paused past its timeout); a resource
  that remembers the highest fence it has seen and rejects lower ones cannot be corrupted by
  the late one. The lock cannot do that check for you — the resource must.

>>> with app.lock("scrape", timeout=3600, blocking_timeout=10) as lock:   # doctest: +SKIP
...     db.save(data, fence=lock.fence)
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import msgspec

from ..exceptions import LockError, LockNotOwnedError, LockTimeout
from ..request import current_request
from .keys import FENCE_KEY, LOCK_PREFIX, lock_key
from .renewer import renewer

if TYPE_CHECKING:
    from ..brokers import Broker

logger = logging.getLogger("conveyor.coordination")

MAX_SLEEP = 0.5  # longest pause between two attempts of a blocking acquire
_DEFAULT: Any = object()


class LockValue(msgspec.Struct, omit_defaults=True):
    """What a lock key holds. The exact bytes are the holder's proof of ownership."""

    token: str
    fence: int = 0
    acquired: float = 0.0
    timeout: float = 0.0
    holder: str = ""
    task_id: str | None = None  # set for task locks (``@app.task(lock=...)``)
    delivery: int = 0


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(LockValue).decode


def decode_lock_value(raw: bytes) -> LockValue | None:
    try:
        return _decode(raw)
    except (msgspec.DecodeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class LockInfo:
    """A held lock, as ``app.locks()`` and ``conveyor locks`` show it."""

    name: str
    holder: str
    token: str
    fence: int
    acquired: float  # epoch seconds
    expires_at: float | None  # epoch seconds
    task_id: str | None = None

    @property
    def age(self) -> float:
        """Seconds since it was acquired."""
        return max(0.0, time.time() - self.acquired)


def default_holder() -> str:
    """``HOST pid PID``, and the task when taken inside one (``conveyor locks`` then says which
    task holds it, and whether that process still runs: cli/locks.py)."""
    request = current_request.get()
    where = f"{socket.gethostname()} pid {os.getpid()}"
    return where if request is None else f"{where} in task {request.task}[{request.id}]"


# The default holder's form (default_holder), read back by holder_running.
_HOLDER = re.compile(r"(?P<host>\S+) pid (?P<pid>\d+)(?: |$)")


def holder_running(holder: str) -> bool | None:
    """Whether the process a lock's holder names (``HOST pid PID ...``, the default holder)
    still runs; None when that cannot be told from here (another host, another form). A lock
    taken by ``with app.lock(...)`` in a process killed outright (SIGKILL, a child of
    ``-P processes`` stopped by ``revoke --terminate``) stays until its expiry: this shows it."""
    match = _HOLDER.match(holder)
    if match is None or match["host"] != socket.gethostname():
        return None
    try:
        os.kill(int(match["pid"]), 0)
    except (ProcessLookupError, OverflowError):  # OverflowError: no such pid can exist
        return False
    except PermissionError:
        return True  # someone else's process: it runs
    return True


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def _blocking_timeout(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"blocking_timeout must be None (wait forever) or seconds >= 0, got {value!r}")
    return float(value)


class Lock:
    """A lock shared by every process on the broker; see the module docstring.

    Semantics follow redis-py's ``Lock``: ``acquire()`` blocks up to ``blocking_timeout``
    seconds (None: forever) and returns False when it gives up; ``with lock:`` raises
    ``LockTimeout`` instead. ``release()`` and ``extend()`` raise ``LockNotOwnedError`` when
    the lock is no longer this holder's. The lock is not re-entrant, and one ``Lock`` object
    is one holder: share the object, not the name, between the threads of one holder.

    >>> lock = app.lock("report", timeout=60, auto_renew=True)   # doctest: +SKIP
    >>> if lock.acquire(blocking=False):                          # doctest: +SKIP
    ...     try:
    ...         build_report(fence=lock.fence)
    ...     finally:
    ...         lock.release()
    """

    def __init__(
        self,
        broker: Broker,
        name: str,
        timeout: float = 3600,
        blocking_timeout: float | None = 10,
        auto_renew: bool = False,
        holder: str | None = None,
        sleep: float = 0.05,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"lock name must be a non-empty string, got {name!r}")
        self.broker = broker
        self.name = name
        self.key = lock_key(name)
        self.timeout = _positive("timeout", timeout)
        self.blocking_timeout = _blocking_timeout(blocking_timeout)
        self.auto_renew = bool(auto_renew)
        self.holder = holder or default_holder()
        self.sleep = _positive("sleep", sleep)
        self.task_id: str | None = None  # set by the task guard: lets a redelivery take over
        self.delivery = 0
        self._value: bytes | None = None  # what we stored; None while not held
        self._fence: int | None = None
        self._renewal: int | None = None
        self.lost = False  # set when auto-renewal found the lock gone

    def __repr__(self) -> str:
        state = f"held fence={self._fence}" if self._value is not None else "not held"
        return f"<Lock {self.name!r} {state}>"

    # -- the holder's view -------------------------------------------------------------------
    @property
    def fence(self) -> int:
        """The fencing number of this holder's (latest) acquisition: pass it to the resource."""
        if self._fence is None:
            raise LockError(f"lock {self.name!r} has not been acquired, so it has no fencing number")
        return self._fence

    @property
    def token(self) -> str | None:
        """This holder's secret token, while held."""
        value = decode_lock_value(self._value) if self._value is not None else None
        return value.token if value else None

    def owned(self) -> bool:
        """Whether this holder holds the lock right now (asks the broker)."""
        entry = self.broker.kv_get(self.key) if self._value is not None else None
        return entry is not None and entry.value == self._value

    def locked(self) -> bool:
        """Whether anyone holds the lock right now."""
        return self.broker.kv_get(self.key) is not None

    # -- acquire -----------------------------------------------------------------------------
    def acquire(self, blocking: bool = True, blocking_timeout: float | None = _DEFAULT) -> bool:
        """Take the lock; wait up to ``blocking_timeout`` (default: the lock's) if it is held.

        Waiters sleep a small random, growing time between attempts so that many of them do
        not hit the broker in lockstep. Returns whether the lock was acquired.
        """
        if self._value is not None:
            raise LockError(f"lock {self.name!r} is already held by this Lock object (not re-entrant)")
        wait = self.blocking_timeout if blocking_timeout is _DEFAULT else _blocking_timeout(blocking_timeout)
        deadline = None if wait is None else time.monotonic() + wait
        pause = self.sleep
        while True:
            if self.try_acquire():
                return True
            remaining = None if deadline is None else deadline - time.monotonic()
            if not blocking or (remaining is not None and remaining <= 0):
                return False
            nap = random.uniform(pause / 2, pause * 1.5)
            time.sleep(nap if remaining is None else min(nap, remaining))
            pause = min(pause * 1.5, MAX_SLEEP)

    def try_acquire(self, takeover: Callable[[LockValue], bool] | None = None) -> bool:
        """One attempt, no waiting. ``takeover(current)`` may allow replacing the current
        holder (used by task locks: a redelivered task takes over its dead run's lock)."""
        if self._value is not None:
            raise LockError(f"lock {self.name!r} is already held by this Lock object (not re-entrant)")
        broker = self.broker
        claim = LockValue(
            token=uuid.uuid4().hex,
            acquired=time.time(),
            timeout=self.timeout,
            holder=self.holder,
            task_id=self.task_id,
            delivery=self.delivery,
        )
        first = _encode(claim)
        if not broker.kv_put(self.key, first, self.timeout, only_if_absent=True):
            entry = broker.kv_get(self.key) if takeover is not None else None
            current = decode_lock_value(entry.value) if entry is not None else None
            if entry is None or current is None or takeover is None or not takeover(current):
                return False
            if not broker.kv_compare_and_set(self.key, entry.value, first, self.timeout):
                return False
        # The fence is taken only once the key is ours: taken before, a slower contender could
        # win later with a smaller number. The second write proves we still hold the key, so
        # no later holder can have taken its number before ours.
        try:
            fence = broker.kv_incr(FENCE_KEY)
            claim.fence = fence
            final = _encode(claim)
            won = broker.kv_compare_and_set(self.key, first, final, self.timeout)
        except Exception:
            _quietly(lambda: broker.kv_compare_and_set(self.key, first, None))
            raise
        if not won:
            return False
        self._value, self._fence, self.lost = final, fence, False
        if self.auto_renew:
            self._renewal = renewer().every(self.timeout / 3, self._renew)
        return True

    # -- release / extend --------------------------------------------------------------------
    def release(self) -> None:
        """Give the lock up. Raises ``LockNotOwnedError`` if it is no longer ours (it expired or
        an operator released it: whatever it protected may have been touched by another holder)."""
        value = self._stop_holding()
        if value is None:
            raise LockNotOwnedError(f"cannot release lock {self.name!r}: this holder does not hold it")
        if not self.broker.kv_compare_and_set(self.key, value, None):
            raise LockNotOwnedError(
                f"lock {self.name!r} was no longer held by this holder when released: it expired"
                f" (timeout {self.timeout:g}s) or was force-released, and may have had another holder"
            )

    def extend(self, additional_time: float | None = None, replace_ttl: bool = False) -> None:
        """Keep the lock longer: ``extend()`` renews it to its full ``timeout`` from now,
        ``extend(30)`` adds 30 s to the time left, ``extend(30, replace_ttl=True)`` makes it
        expire 30 s from now. Raises ``LockNotOwnedError`` if it is no longer ours."""
        value = self._value
        if value is None:
            raise LockNotOwnedError(f"cannot extend lock {self.name!r}: this holder does not hold it")
        if additional_time is None:
            ttl = self.timeout
        else:
            extra = _positive("additional_time", additional_time)
            entry = self.broker.kv_get(self.key)
            if entry is None or entry.value != value:
                raise LockNotOwnedError(
                    f"cannot extend lock {self.name!r}: it is no longer held by this holder"
                )
            left = 0.0 if entry.expires_at is None else max(0.0, entry.expires_at - time.time())
            ttl = extra if replace_ttl else left + extra
        if not self.broker.kv_compare_and_set(self.key, value, value, ttl):
            raise LockNotOwnedError(f"cannot extend lock {self.name!r}: it is no longer held by this holder")

    def _renew(self) -> bool:
        value = self._value
        if value is None:
            return False
        if self.broker.kv_compare_and_set(self.key, value, value, self.timeout):
            return True
        if self._value is value:  # not released meanwhile: really lost
            self.lost = True
            logger.warning(
                "lock %r was lost while held (expired or force-released); its holder %s runs unprotected",
                self.name,
                self.holder,
            )
        return False

    def _stop_holding(self) -> bytes | None:
        value, self._value = self._value, None
        if self._renewal is not None:
            renewer().cancel(self._renewal)
            self._renewal = None
        return value

    # -- context managers --------------------------------------------------------------------
    def __enter__(self) -> Lock:
        if not self.acquire():
            raise LockTimeout(self._timeout_message())
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.release()  # raises if the lock was lost: the block ran unprotected
            return
        try:
            self.release()
        except LockNotOwnedError as lost:
            logger.warning("%s (while handling %r)", lost, exc)

    async def aacquire(self, blocking: bool = True, blocking_timeout: float | None = _DEFAULT) -> bool:
        """``acquire`` for async code: the event loop keeps running while it waits."""
        if self._value is not None:
            raise LockError(f"lock {self.name!r} is already held by this Lock object (not re-entrant)")
        wait = self.blocking_timeout if blocking_timeout is _DEFAULT else _blocking_timeout(blocking_timeout)
        loop = asyncio.get_running_loop()
        deadline = None if wait is None else loop.time() + wait
        pause = self.sleep
        while True:
            attempt = asyncio.ensure_future(asyncio.to_thread(self.try_acquire))
            try:
                won = await asyncio.shield(attempt)
            except asyncio.CancelledError:
                # The attempt goes on in its thread; if it wins, give the lock straight back so
                # a cancelled waiter never ends up holding it.
                attempt.add_done_callback(self._release_if_won)
                raise
            if won:
                return True
            remaining = None if deadline is None else deadline - loop.time()
            if not blocking or (remaining is not None and remaining <= 0):
                return False
            nap = random.uniform(pause / 2, pause * 1.5)
            await asyncio.sleep(nap if remaining is None else min(nap, remaining))
            pause = min(pause * 1.5, MAX_SLEEP)

    async def arelease(self) -> None:
        await asyncio.to_thread(self.release)

    async def aextend(self, additional_time: float | None = None, replace_ttl: bool = False) -> None:
        await asyncio.to_thread(self.extend, additional_time, replace_ttl)

    async def __aenter__(self) -> Lock:
        if not await self.aacquire():
            message = await asyncio.to_thread(self._timeout_message)
            raise LockTimeout(message)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.__exit__, exc_type, exc, tb)

    def _release_if_won(self, attempt: asyncio.Future[bool]) -> None:
        if not attempt.cancelled() and attempt.exception() is None and attempt.result():
            asyncio.get_running_loop().run_in_executor(None, _quietly, self.release)

    def _timeout_message(self) -> str:
        waited = "forever" if self.blocking_timeout is None else f"{self.blocking_timeout:g}s"
        info = read_lock(self.broker, self.name)
        held = f"held by {info.holder}" if info else "contended"
        if info is not None and info.expires_at is not None:
            held += f", expires in {max(0.0, info.expires_at - time.time()):.1f}s unless renewed"
        return f"could not acquire lock {self.name!r} within {waited} ({held})"


def _quietly(fn: Callable[[], object]) -> None:
    try:
        fn()
    except Exception as exc:
        logger.warning("lock cleanup failed: %s", exc)


# -- the operator's view (admin API, CLI) --------------------------------------------------------
def _info(name: str, raw: bytes, expires_at: float | None) -> LockInfo:
    value = decode_lock_value(raw)
    if value is None:
        return LockInfo(name, "<unreadable value>", "", 0, 0.0, expires_at)
    return LockInfo(name, value.holder, value.token, value.fence, value.acquired, expires_at, value.task_id)


def read_lock(broker: Broker, name: str) -> LockInfo | None:
    """The lock's current holder, or None if it is free."""
    entry = broker.kv_get(lock_key(name))
    return _info(name, entry.value, entry.expires_at) if entry is not None else None


def list_locks(broker: Broker) -> list[LockInfo]:
    """Every held lock, by name."""
    entries = broker.kv_scan(LOCK_PREFIX)
    return [_info(key[len(LOCK_PREFIX) :], e.value, e.expires_at) for key, e in sorted(entries.items())]


def force_release(broker: Broker, name: str) -> bool:
    """Delete the lock whoever holds it (an operator's tool for a stuck holder). Returns whether
    a lock was released. The holder is not told; its next renewal or release notices."""
    key = lock_key(name)
    for _ in range(10):  # only loops if the holder changes between the read and the delete
        entry = broker.kv_get(key)
        if entry is None:
            return False
        if broker.kv_compare_and_set(key, entry.value, None):
            return True
    return False
