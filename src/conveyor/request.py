"""``self.request`` inside a bound task: what this particular run is."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Request:
    """Context of one task run, as ``self.request`` in a ``bind=True`` task.

    ``retries`` counts attempts already made: 0 on the first run, 1 on the first retry.
    """

    id: str
    task: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    retries: int = 0
    queue: str | None = None
    priority: int | None = None
    eta: float | None = None
    expires: float | None = None
    hostname: str | None = None  # the worker's name
    delivery: int = 0  # how many times the broker handed this job out (1 = first time)
    is_eager: bool = False
    time_limit: float | None = None
    soft_time_limit: float | None = None
    max_retries: int | None = None
    headers: dict[str, Any] = field(default_factory=dict)


current_request: contextvars.ContextVar[Request | None] = contextvars.ContextVar(
    "conveyor_current_request", default=None
)
