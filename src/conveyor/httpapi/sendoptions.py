"""``apply_async``'s options as JSON gives them: each checked for its JSON type (a task id must
be a string, a countdown a number...), times read from ISO 8601 or epoch seconds, before
``apply_async`` checks their values. A wrong one is a 400 naming the option; nothing is sent."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..options import ENQUEUE_OPTIONS, check_options
from . import inputs
from .endpoint import ApiError

NUMBER = (int, float)

#: The JSON type each option takes (``eta`` and ``expires`` also take an ISO 8601 string).
TYPES: dict[str, tuple[type, ...]] = {
    "countdown": NUMBER,
    "eta": (str, *NUMBER),
    "expires": (str, *NUMBER),
    "queue": (str,),
    "priority": (int,),
    "task_id": (str,),
    "time_limit": NUMBER,
    "soft_time_limit": NUMBER,
    "max_retries": (int,),
    "headers": (dict,),
    "serializer": (str,),
    "unique_key": (str,),
    "unique_for": NUMBER,
}


def parse(options: dict[str, Any]) -> dict[str, Any]:
    """The options ready for ``apply_async``; ``ApiError(400)`` for an unknown name or a wrong type."""
    try:
        check_options(options, ENQUEUE_OPTIONS, "send")
    except TypeError as exc:
        raise ApiError(400, str(exc)) from None
    parsed: dict[str, Any] = {}
    for name, value in options.items():
        if value is not None:
            parsed[name] = _value(name, value)
    return parsed


def _value(name: str, value: Any) -> Any:
    kinds = TYPES.get(name, (object,))
    if isinstance(value, bool) or not isinstance(value, kinds):
        wanted = " or ".join(dict.fromkeys(_describe(k, kinds) for k in kinds))
        raise ApiError(400, f"option {name!r} must be {wanted}, not {value!r}")
    if name in ("eta", "expires") and isinstance(value, str):
        return dt.datetime.fromtimestamp(inputs.timestamp(value, f"option {name!r}"), dt.UTC)
    if name == "eta" and isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    return value


def _describe(kind: type, kinds: tuple[type, ...]) -> str:
    if kind in NUMBER and float in kinds:
        return "a number"
    return {str: "a string", int: "an integer", dict: "an object"}.get(kind, kind.__name__)
