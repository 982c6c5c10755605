"""Which queue a task goes to: ``task_routes`` (exact names, glob patterns, callables).

Precedence, as in Celery: a per-call ``queue=`` wins, then ``task_routes``, then the task's
own ``queue=`` option, then ``task_default_queue``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .exceptions import ConfigurationError

Route = Mapping[str, Any]
RouterFn = Callable[..., Route | str | None]


def _match_mapping(routes: Mapping[str, Any], name: str) -> Route | None:
    exact = routes.get(name)
    if exact is not None:
        return _as_route(exact)
    for pattern, route in routes.items():
        if any(ch in pattern for ch in "*?[") and fnmatch.fnmatchcase(name, pattern):
            return _as_route(route)
    return None


def _as_route(value: Any) -> Route:
    if isinstance(value, str):
        return {"queue": value}
    if isinstance(value, Mapping):
        return value
    raise ConfigurationError(f"a task route must be a queue name or a dict, not {type(value).__name__}")


def resolve_route(
    routes: Any, name: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
) -> Route | None:
    """Return the route (a dict with ``queue`` and maybe ``priority``) for task ``name``, or None.

    >>> resolve_route({"proj.tasks.poll_*": {"queue": "polling"}}, "proj.tasks.poll_aircraft")
    {'queue': 'polling'}
    """
    if routes is None:
        return None
    candidates = routes if isinstance(routes, list | tuple) else [routes]
    for router in candidates:
        if isinstance(router, Mapping):
            found = _match_mapping(router, name)
        elif callable(router):
            result = router(name, tuple(args), dict(kwargs or {}))
            found = None if result is None else _as_route(result)
        else:
            raise ConfigurationError(f"task_routes entries must be dicts or callables, not {router!r}")
        if found is not None:
            return found
    return None
