"""The task message (envelope) and the stored result payload, and how both are encoded.

The envelope is JSON (msgspec): a broker never runs code from a message. Arguments are JSON
too unless the app explicitly accepts pickle (``accept_content=["json", "pickle"]`` and
``task_serializer="pickle"``); then they travel pickled and base64'd inside the JSON envelope,
and a worker that does not accept pickle dead-letters the message instead of unpickling it.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

import msgspec

from .exceptions import DecodeError, EncodeError

PROTOCOL = 1


class Workflow(msgspec.Struct, omit_defaults=True, gc=False):
    """Where a task stands in a workflow (``conveyor.canvas``), carried in its message so the
    worker that settles it also settles what comes next, in the same broker step
    (docs/workflows.md). Signatures are plain dicts (``Signature``'s JSON form).

    - ``chain``: the steps after this one, next first (each with its ``task_id`` set).
    - ``link`` / ``link_error``: callbacks on success (given the result) / failure (given the
      failed task's id).
    - ``group`` and ``index``: the group or chord this task is member ``index`` of.
    - ``chord``: for a chord header task (it joins the group when it ends): ``{}``, or what
      its failure must also reach: ``{"stop": [ids of a chain body's later steps],
      "errbacks": [sigs]}`` (the body's id is the broker's, registered with the group). Kept
      this small because every header task carries it: on SQLite, message size is drain speed.
    - ``results_of``: for a chord body: its first argument is the results of this group.
    - ``parent`` / ``root``: the task that enqueued this one, and the workflow's first task.

    ``gc=False``: it holds only plain data (no cycles), and a chord's every header task decodes
    one, which would otherwise make the cyclic collector run more often on the worker.
    """

    chain: list[dict[str, Any]] = []
    link: list[dict[str, Any]] = []
    link_error: list[dict[str, Any]] = []
    group: str | None = None
    index: int = 0
    chord: dict[str, Any] | None = None
    results_of: str | None = None
    parent: str | None = None
    root: str | None = None


class Envelope(msgspec.Struct, omit_defaults=True):
    """One task message. ``retries`` counts the attempts already made (0 on the first run)."""

    id: str
    task: str
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    queue: str = "default"
    priority: int = 5
    retries: int = 0
    eta: float | None = None  # epoch seconds; None = now
    expires: float | None = None  # epoch seconds; None = never
    time_limit: float | None = None  # per-call overrides of the task's limits
    soft_time_limit: float | None = None
    max_retries: int | None = None  # per-call override
    created: float = 0.0
    content_type: str = "json"  # "pickle": args and kwargs are in ``payload``
    payload: bytes | None = None
    headers: dict[str, Any] = {}
    workflow: Workflow | None = None  # a step of a chain, group or chord (conveyor.canvas)
    v: int = PROTOCOL


class ResultPayload(msgspec.Struct, omit_defaults=True):
    """What is stored for a finished (or retrying) task: a value or an exception."""

    result: Any = None
    exc_type: str | None = None  # qualified name, e.g. "builtins.ValueError"
    exc_message: str | None = None
    traceback: str | None = None
    worker: str | None = None
    retries: int = 0
    date_done: float | None = None


_encoder = msgspec.json.Encoder()
_envelope_decoder = msgspec.json.Decoder(Envelope)
_result_decoder = msgspec.json.Decoder(ResultPayload)


def new_task_id() -> str:
    """A random version-4 UUID string (Celery's id format), about 3x cheaper than uuid.uuid4().

    >>> len(new_task_id()), new_task_id()[14]
    (36, '4')
    """
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


# RFC 4122 variant: the top two bits of byte 8 are 10, i.e. its first hex digit is 8, 9, a or b.
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def encode_envelope(env: Envelope) -> bytes:
    """Encode a message; raises ``EncodeError`` naming the task if an argument does not serialise."""
    try:
        return _encoder.encode(env)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise EncodeError(
            f"arguments of task {env.task!r} are not JSON-serialisable: {exc}"
            " (pass plain data such as ids, or enable pickle explicitly)"
        ) from exc


def decode_envelope(raw: bytes) -> Envelope:
    """Decode a message from the broker; raises ``DecodeError`` for anything malformed."""
    try:
        env = _envelope_decoder.decode(raw)
    except (msgspec.DecodeError, TypeError, ValueError, RecursionError) as exc:
        # (RecursionError: a body nested deeper than the decoder goes, e.g. 100,000 "[".)
        raise DecodeError(f"malformed task message: {exc}") from exc
    if not env.id or not env.task:
        raise DecodeError("malformed task message: empty id or task name")
    return env


def pack_pickled_args(env: Envelope, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Store args/kwargs pickled in ``env.payload`` (only used when pickle is enabled)."""
    try:
        env.payload = pickle.dumps((list(args), dict(kwargs)), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise EncodeError(f"arguments of task {env.task!r} cannot be pickled: {exc}") from exc
    env.content_type = "pickle"
    env.args, env.kwargs = [], {}


def unpack_args(env: Envelope, accept: frozenset[str]) -> tuple[list[Any], dict[str, Any]]:
    """Return the call's args and kwargs, refusing content types this worker does not accept."""
    if env.content_type == "json":
        return env.args, env.kwargs
    if env.content_type not in accept:
        raise DecodeError(f"content type {env.content_type!r} is not accepted by this worker")
    if env.content_type == "pickle" and env.payload is not None:
        args, kwargs = pickle.loads(env.payload)
        return list(args), dict(kwargs)
    raise DecodeError(f"unsupported content type {env.content_type!r}")


def encode_result(payload: ResultPayload) -> bytes:
    """Encode a result payload; raises ``EncodeError`` when the task's return value does not serialise."""
    try:
        return _encoder.encode(payload)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise EncodeError(f"task result is not JSON-serialisable: {exc}") from exc


def decode_result(raw: bytes) -> ResultPayload:
    try:
        return _result_decoder.decode(raw)
    except (msgspec.DecodeError, TypeError, ValueError, RecursionError) as exc:
        raise DecodeError(f"malformed result payload: {exc}") from exc


def encode_json(value: Any) -> bytes:
    return _encoder.encode(value)


def decode_json(raw: bytes) -> Any:
    """Plain JSON from the broker; ``DecodeError`` for anything malformed."""
    try:
        return msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise DecodeError(f"malformed JSON: {exc}") from exc


def describe_args(args: Any, kwargs: Any, limit: int = 100) -> str:
    """The call's arguments as an operator reads them, cut to ``limit`` characters (heartbeats
    and dead-letter listings must stay small whatever a task was given).

    >>> describe_args([1, "x"], {"force": True})
    "1, 'x', force=True"
    >>> len(describe_args(["y" * 500], {}))
    100
    """
    parts = [repr(a) for a in args] if isinstance(args, list | tuple) else [repr(args)]
    if isinstance(kwargs, dict):
        parts += [f"{k}={v!r}" for k, v in kwargs.items()]
    text = ", ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"
