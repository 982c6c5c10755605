"""The coordination options of ``@app.task(...)``, validated when the task is declared.

>>> @app.task(lock="scrape:{source}", on_locked="skip")                     # doctest: +SKIP
... def scrape(source: str) -> None: ...
>>> @app.task(rate_limit="10/m", concurrency_key="{user_id}", concurrency_limit=2)  # doctest: +SKIP
... def sync_user(user_id: int) -> None: ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

from .callkeys import CallKey, task_signature
from .rate_limit import Rate, parse_rate

OnLocked = Literal["skip", "retry", "wait"]
ON_LOCKED: tuple[str, ...] = get_args(OnLocked)
OPTIONS = (
    "lock",
    "lock_timeout",
    "on_locked",
    "unique_for",
    "unique_key",
    "rate_limit",
    "concurrency_key",
    "concurrency_limit",
)

#: How long a task's lock or concurrency slot outlives a worker that died holding it. It is
#: renewed every third of this while the task runs, so it bounds recovery time, not run time.
DEFAULT_LOCK_TIMEOUT = 30.0
#: How long a unique claim lasts at most when only ``unique_key`` is given.
DEFAULT_UNIQUE_FOR = 3600.0


@dataclass(frozen=True, slots=True)
class TaskCoordination:
    """A task's coordination options, parsed; ``task.coordination`` (None when it has none)."""

    lock: CallKey | None = None
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    on_locked: OnLocked = "wait"
    unique_key: CallKey | None = None
    unique_for: float | None = None
    rate: Rate | None = None
    concurrency_key: CallKey | None = None
    concurrency_limit: int | None = None

    @property
    def guarded(self) -> bool:
        """Whether a worker must check something before running the task."""
        return self.lock is not None or self.rate is not None or self.concurrency_limit is not None


def seconds(option: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{option} must be a positive number of seconds, got {value!r}")
    return float(value)


def pop_coordination(
    fn: Callable[..., Any], bind: bool, task_name: str, options: dict[str, Any]
) -> TaskCoordination | None:
    """Take the coordination options out of ``options``; clear errors name the bad option."""
    given = {name: options.pop(name) for name in OPTIONS if name in options}
    if not given:
        return None
    sig = task_signature(fn, bind)

    def key(option: str) -> CallKey | None:
        spec = given.get(option)
        return None if spec is None else CallKey(option, spec, task_name, sig)

    lock = key("lock")
    if lock is None and "on_locked" in given:
        raise ValueError(f"on_locked of task {task_name} has no effect without lock=...")
    if lock is None and "lock_timeout" in given and given.get("concurrency_limit") is None:
        raise ValueError(
            f"lock_timeout of task {task_name} has no effect without lock= or concurrency_limit="
        )
    on_locked = given.get("on_locked", "wait")
    if on_locked not in ON_LOCKED:
        raise ValueError(
            f"on_locked of task {task_name} must be one of {', '.join(ON_LOCKED)}, got {on_locked!r}"
        )
    lock_timeout = seconds("lock_timeout", given.get("lock_timeout", DEFAULT_LOCK_TIMEOUT))

    unique_key = key("unique_key")
    unique_for = given.get("unique_for")
    if unique_for is not None:
        unique_for = seconds("unique_for", unique_for)
    elif unique_key is not None:
        unique_for = DEFAULT_UNIQUE_FOR

    rate_text = given.get("rate_limit")
    rate = None if rate_text is None else parse_rate(rate_text)

    concurrency_key = key("concurrency_key")
    limit = given.get("concurrency_limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"concurrency_limit of task {task_name} must be an integer >= 1, got {limit!r}")
    if concurrency_key is not None and limit is None:
        raise ValueError(
            f"concurrency_key of task {task_name} needs concurrency_limit=N (runs at once per key)"
        )

    return TaskCoordination(
        lock=lock,
        lock_timeout=lock_timeout,
        on_locked=on_locked,
        unique_key=unique_key,
        unique_for=unique_for,
        rate=rate,
        concurrency_key=concurrency_key,
        concurrency_limit=limit,
    )
