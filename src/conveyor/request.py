"""``self.request`` inside a bound task: what this particular run is."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# At run time, not only for type checking: the process pool's child protocol (worker/children.py)
# decodes a Request with msgspec, which resolves this annotation.
from .message import Workflow


def iso_time(timestamp: float | None) -> str | None:
    """An epoch time as ISO 8601 in UTC, the form Celery's messages and requests carry.

    >>> iso_time(0.0)
    '1970-01-01T00:00:00+00:00'
    """
    if timestamp is None:
        return None
    try:
        return datetime.fromtimestamp(timestamp, UTC).isoformat()
    except (OverflowError, OSError, ValueError):  # out of range (broker data): keep the number
        return repr(timestamp)


@dataclass(slots=True)
class Request:
    """Context of one task run, as ``self.request`` in a ``bind=True`` task.

    The fields a Celery task reads have Celery's names and forms: ``id``, ``task``, ``args``,
    ``kwargs``, ``retries`` (attempts already made: 0 on the first run, 1 on the first retry),
    ``hostname`` (the worker's name), ``eta`` and ``expires`` (ISO 8601 in UTC, or None),
    ``delivery_info``, ``is_eager``, ``called_directly``, ``timelimit`` and ``headers``.
    """

    id: str
    task: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    retries: int = 0
    queue: str | None = None
    priority: int | None = None
    eta: str | None = None
    expires: str | None = None
    hostname: str | None = None  # the worker's name
    delivery: int = 0  # how many times the broker handed this job out (1 = first time)
    is_eager: bool = False
    time_limit: float | None = None
    soft_time_limit: float | None = None
    max_retries: int | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    called_directly: bool = False  # ``task(...)`` called as a plain function: no run at all
    workflow: Workflow | None = None  # its place in a chain, group or chord (conveyor.canvas)

    @property
    def parent_id(self) -> str | None:
        """The id of the workflow task that enqueued this one (Celery's name)."""
        return self.workflow.parent if self.workflow is not None else None

    @property
    def root_id(self) -> str | None:
        """The id of the first task of this one's workflow (Celery's name)."""
        return self.workflow.root if self.workflow is not None else None

    @property
    def group(self) -> str | None:
        """The id of the group or chord this task is a member of (Celery's name)."""
        return self.workflow.group if self.workflow is not None else None

    @property
    def delivery_info(self) -> dict[str, Any]:
        """Where the message came from, in Celery's shape (``routing_key`` is the queue)."""
        return {
            "exchange": "",
            "routing_key": self.queue,
            "priority": self.priority,
            "redelivered": self.delivery > 1,
        }

    @property
    def timelimit(self) -> tuple[float | None, float | None]:
        """``(hard, soft)`` time limits given at enqueue, as Celery's request has them."""
        return self.time_limit, self.soft_time_limit


current_request: contextvars.ContextVar[Request | None] = contextvars.ContextVar(
    "conveyor_current_request", default=None
)
