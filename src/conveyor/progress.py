"""A running task's progress: ``self.update_state(state="PROGRESS", meta={...})`` and
``self.progress(done, total)`` write it, ``AsyncResult.state``/``.info`` and
``app.admin.task(id).progress`` read it.

It is one key of the broker's key/value store per task (``progress:<task id>``), holding the
latest state and meta as JSON and expiring with the task's result (``result_expires``): one
write per call, on every broker, with nothing to clean up.

A task that reports in a tight loop would turn every iteration into a broker round trip, so
writes are throttled per task: at most one every ``MIN_INTERVAL`` seconds. A call inside that
window is kept and written when the window ends (by a timer thread), so the last value a task
reported is always the one stored, at most ``MIN_INTERVAL`` late.

Eager runs (``apply()``, ``task_always_eager``) never touch the broker: their progress is kept
in this process while the run lasts, where ``AsyncResult(id)`` finds it.

>>> decode_progress(encode_progress(Progress("PROGRESS", {"done": 1}, 0.0))).meta
{'done': 1}
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import msgspec

from .codecs import NOT_FINITE, non_finite
from .exceptions import DecodeError, EncodeError

if TYPE_CHECKING:
    from .brokers import KeyValueStore
    from .brokers.base import AsyncProducer
    from .brokers.records import KVEntry

logger = logging.getLogger("conveyor.worker")

PROGRESS_PREFIX = "progress:"
MIN_INTERVAL = 0.1  # seconds between two progress writes of one task
PROGRESS_STATE = "PROGRESS"  # the state ``progress()`` reports (Celery apps' usual custom state)


class Progress(msgspec.Struct, frozen=True):
    """What a running task last reported: its state (``PROGRESS`` or a custom one), its meta
    (any JSON value) and when (epoch seconds)."""

    state: str
    meta: Any = None
    at: float = 0.0
    retries: int = 0  # the attempt that reported it (0: the first run), so a retry hides it


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Progress)


def progress_key(task_id: str) -> str:
    return PROGRESS_PREFIX + task_id


def encode_progress(progress: Progress) -> bytes:
    try:
        data = _encoder.encode(progress)
    except (TypeError, ValueError, OverflowError) as exc:
        raise EncodeError(f"progress meta is not JSON-serialisable: {exc}") from exc
    if non_finite(data, progress.meta):  # as for arguments and results: None would be read back
        raise EncodeError(f"progress meta is not JSON-serialisable: it holds {NOT_FINITE}")
    return data


def decode_progress(raw: bytes) -> Progress:
    try:
        return _decoder.decode(raw)
    except (msgspec.DecodeError, TypeError, ValueError) as exc:
        raise DecodeError(f"malformed progress record: {exc}") from exc


def read_progress(store: KeyValueStore, task_id: str) -> Progress | None:
    """The task's last reported progress from the broker (or from this process for an eager
    run), or None. A malformed value reads as none."""
    eager = _eager.get(task_id)
    if eager is not None:
        return eager
    return _stored(store.kv_get(progress_key(task_id)))


async def aread_progress(store: AsyncProducer, task_id: str) -> Progress | None:
    """``read_progress`` for async code, through the broker's asyncio client (aio.py)."""
    eager = _eager.get(task_id)
    if eager is not None:
        return eager
    return _stored(await store.kv_get(progress_key(task_id)))


def _stored(entry: KVEntry | None) -> Progress | None:
    if entry is None:
        return None
    try:
        return decode_progress(entry.value)
    except DecodeError:
        return None


def check_state(state: Any) -> str:
    if not isinstance(state, str) or not state.strip():
        raise ValueError(f"update_state() needs a state name (a non-empty string), got {state!r}")
    return state


def progress_meta(done: Any, total: Any, message: str | None) -> dict[str, Any]:
    """The meta ``progress(done, total, message)`` reports: done, total, percent (None when the
    total is 0) and message."""
    for name, value in (("done", done), ("total", total)):
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"progress() takes a non-negative number for {name}, got {value!r}")
    if message is not None and not isinstance(message, str):
        raise TypeError(f"progress() takes a str message, got {type(message).__name__}")
    percent = round(100.0 * done / total, 1) if total else None
    return {"done": done, "total": total, "percent": percent, "message": message}


class _Slot:
    """One task's throttle: when it last wrote, and the value waiting for the window's end."""

    __slots__ = ("last", "pending", "timer")

    def __init__(self) -> None:
        self.last = 0.0
        self.pending: tuple[KeyValueStore, bytes, float] | None = None
        self.timer: threading.Timer | None = None


class ProgressWriter:
    """Writes progress values, throttled per task id (thread-safe: tasks run in many threads)."""

    def __init__(self, min_interval: float = MIN_INTERVAL) -> None:
        self.min_interval = min_interval
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.Lock()

    def write(self, store: KeyValueStore, task_id: str, progress: Progress, ttl: float) -> None:
        raw = encode_progress(progress)  # raises here, in the task, for meta that is not JSON
        now = time.monotonic()
        with self._lock:
            slot = self._slots.get(task_id)
            if slot is None:
                if len(self._slots) > 1000:
                    self._prune(now)
                slot = self._slots[task_id] = _Slot()
            wait = slot.last + self.min_interval - now
            if wait > 0:
                slot.pending = (store, raw, ttl)
                if slot.timer is None:
                    slot.timer = threading.Timer(wait, self._flush, (task_id,))
                    slot.timer.daemon = True
                    slot.timer.start()
                return
            slot.last, slot.pending = now, None
        store.kv_put(progress_key(task_id), raw, ttl)

    def _flush(self, task_id: str) -> None:
        """(Timer thread) Write the value kept during the window."""
        with self._lock:
            slot = self._slots.get(task_id)
            if slot is None:
                return
            pending, slot.pending, slot.timer = slot.pending, None, None
            slot.last = time.monotonic()
        if pending is not None:
            store, raw, ttl = pending
            try:
                store.kv_put(progress_key(task_id), raw, ttl)
            except Exception as exc:  # a broker blip loses one progress report, never the task
                logger.warning("task %s: could not write its progress: %s", task_id, exc)

    def _prune(self, now: float) -> None:
        """Forget tasks whose window has passed (lock held)."""
        for task_id in [
            t for t, s in self._slots.items() if s.timer is None and now - s.last > self.min_interval
        ]:
            del self._slots[task_id]


def forget_progress(store: KeyValueStore, task_ids: Iterable[str]) -> None:
    """Drop what these tasks last reported: they are to run afresh (dead letters retried), and
    a waiting task must not read as the old run's ``PROGRESS``. One read per task, and a
    delete only where there is a report (a report written meanwhile by a run is kept)."""
    for task_id in task_ids:
        key = progress_key(task_id)
        entry = store.kv_get(key)
        if entry is not None:
            store.kv_compare_and_set(key, entry.value, None)


writer = ProgressWriter()
_eager: dict[str, Progress] = {}


def set_eager(task_id: str, progress: Progress) -> None:
    _eager[task_id] = progress


def end_eager(task_id: str) -> None:
    """An eager run ended: its progress is no longer "while it runs"."""
    _eager.pop(task_id, None)
