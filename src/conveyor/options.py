"""The options of one enqueue, defined once: ``apply_async``, ``send_task``, ``delay_many`` and
periodic entries all take these, with Celery's names and meanings.

>>> add.apply_async((2, 2), countdown=10, expires=60, queue="polling", priority=9)  # doctest: +SKIP

Plain ``TypedDict`` s, so a type checker checks the keyword arguments of every one of those calls
against this single definition, and the option names are known at run time for the checks of
``send_task`` (which cannot be type-checked by its caller) and of stored periodic entries.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, TypedDict, cast

from .exceptions import did_you_mean


class MessageOptions(TypedDict, total=False):
    """What an enqueue writes into the message itself (see :class:`conveyor.message.Envelope`)."""

    countdown: float | None  # run no earlier than this many seconds from now
    eta: datetime | None  # run no earlier than this (a naive datetime is UTC)
    expires: float | timedelta | datetime | None  # not run at all after this (seconds from now)
    queue: str | None  # wins over task_routes, the task's queue and task_default_queue
    priority: int | None  # 0..9, higher runs first
    task_id: str | None  # enqueue is idempotent by id
    time_limit: float | None  # this run's hard time limit, seconds
    soft_time_limit: float | None
    max_retries: int | None
    headers: Mapping[str, Any] | None  # copied into self.request.headers
    serializer: str | None  # "json", "msgpack", or "pickle" where accept_content names it
    compression: str | None  # "gzip" or "zlib" (arguments of 1 KiB or more); None: not compressed


class EnqueueOptions(MessageOptions, total=False):
    """``apply_async``'s options: the message's, and the producer-side unique-enqueue check
    (``conveyor.coordination.unique``, which bulk enqueue does not do)."""

    unique_key: str | None
    unique_for: float | None


MESSAGE_OPTIONS: frozenset[str] = frozenset(MessageOptions.__annotations__)
ENQUEUE_OPTIONS: frozenset[str] = frozenset(EnqueueOptions.__annotations__)


def check_options(options: Mapping[str, Any], allowed: frozenset[str], caller: str) -> None:
    """Refuse option names ``caller`` does not take, naming the closest known one.

    >>> check_options({"countdwn": 5}, ENQUEUE_OPTIONS, "apply_async")
    Traceback (most recent call last):
    ...
    TypeError: apply_async() got an unexpected option 'countdwn' (did you mean 'countdown'?)
    """
    for name in options:
        if name not in allowed:
            raise TypeError(f"{caller}() got an unexpected option {name!r}{did_you_mean(name, allowed)}")


def enqueue_options(options: Mapping[str, Any], caller: str = "apply_async") -> EnqueueOptions:
    """``options`` checked to be :class:`EnqueueOptions` by name (values are checked when the
    message is built)."""
    check_options(options, ENQUEUE_OPTIONS, caller)
    return cast(EnqueueOptions, options)
