"""Reading a request's query parameters and JSON body, each bad value a 400 that names it."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from starlette.requests import Request

from .endpoint import ApiError

MAX_LIMIT = 500  # one page; larger listings page on with next_offset
MAX_BODY = 1024 * 1024  # bytes of a JSON request body


def text(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    return value if value else None


def integer(request: Request, name: str, default: int, low: int = 0, high: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"query parameter {name!r} must be an integer, not {raw!r}") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ApiError(400, f"query parameter {name!r} must be {bound}, not {value}")
    return value


def paging(request: Request, default_limit: int = 50) -> tuple[int, int]:
    """``limit`` (1..500) and ``offset`` (>= 0)."""
    return integer(request, "limit", default_limit, 1, MAX_LIMIT), integer(request, "offset", 0)


def when(request: Request, name: str) -> float | None:
    """A point in time: epoch seconds, or an ISO 8601 date/time (UTC unless it says otherwise)."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    return timestamp(raw, f"query parameter {name!r}")


def timestamp(raw: str, what: str) -> float:
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, f"{what} must be epoch seconds or an ISO 8601 date/time, not {raw!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


async def body(request: Request) -> dict[str, Any]:
    """The JSON object sent; an empty body is ``{}``. A body over ``MAX_BODY`` bytes is refused
    (413) before it is all read: task arguments belong in the broker, not megabytes of them."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise ApiError(413, f"request body over {MAX_BODY // 1024} KiB")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"malformed JSON body: {exc}") from None
    if not isinstance(value, dict):
        raise ApiError(400, f"the JSON body must be an object, not {type(value).__name__}")
    return value


def field(data: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    """``data[name]`` if it has the right JSON type (``default`` when absent or null)."""
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        names = {list: "an array", dict: "an object", str: "a string", bool: "true or false"}
        wanted = names.get(kind, "a number") if isinstance(kind, type) else "a number"
        raise ApiError(400, f"{name!r} must be {wanted}")
    return value


def string_list(data: dict[str, Any], name: str) -> list[str]:
    values = field(data, name, list, [])
    if not all(isinstance(v, str) for v in values):
        raise ApiError(400, f"{name!r} must be an array of strings")
    return list(values)


def unknown_fields(data: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise ApiError(400, f"unknown field(s) {', '.join(map(repr, extra))}; expected {sorted(allowed)}")
