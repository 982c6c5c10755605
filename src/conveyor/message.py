"""The task message (envelope) and the stored result payload, and how both are encoded.

The envelope is JSON (msgspec): a broker never runs code from a message. Arguments are inline
JSON by default; with another serializer (``msgpack``, or ``pickle`` where ``accept_content``
names it) or a compression (``gzip``, ``zlib``) they travel as bytes in ``payload``, base64'd
inside the JSON envelope, with ``content_type`` and ``content_encoding`` naming how
(:mod:`conveyor.codecs`). A result value is stored the same way in ``ResultPayload``. Every
reader decodes arguments through ``unpack_args`` (workers) or ``readable_args`` (displays),
so a setting on one side never makes a message unreadable on the other; a worker that does not
accept pickle dead-letters the message instead of unpickling it.
"""

from __future__ import annotations

import os
from typing import Any

import msgspec

from .codecs import NOT_FINITE, SAFE_CONTENT, SERIALIZERS, non_finite, pack, unpack
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
    content_type: str = "json"  # the serializer of the arguments (conveyor.codecs)
    content_encoding: str | None = None  # their compression, if any
    payload: bytes | None = None  # [args, kwargs] packed, unless inline JSON (args, kwargs)
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
    content_type: str = "json"  # how ``result`` is stored: inline JSON unless ``payload`` is set
    content_encoding: str | None = None
    payload: bytes | None = None  # the result value packed (msgpack, pickle, or compressed)


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
        data = _encoder.encode(env)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise EncodeError(
            f"arguments of task {env.task!r} are not JSON-serialisable: {exc}"
            " (pass plain data such as ids, or enable pickle explicitly)"
        ) from exc
    # The inline JSON arguments, and what else the message carries: headers, a chain's later
    # steps and callbacks (their arguments ride in the workflow).
    if non_finite(data, (env.args, env.kwargs, env.headers, env.workflow)):
        raise EncodeError(f"arguments of task {env.task!r} hold {NOT_FINITE}")
    return data


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


def pack_args(
    env: Envelope, args: list[Any], kwargs: dict[str, Any], serializer: str, compression: str | None
) -> None:
    """Put the call's arguments into ``env``: inline when they are plain JSON that was not
    compressed (readable as they are, and the fastest), else packed into ``payload``."""
    env.args, env.kwargs = args, kwargs
    env.content_type, env.content_encoding, env.payload = "json", None, None
    if serializer == "json" and compression is None:
        return
    try:
        data, kind, encoding = pack([args, kwargs], serializer, compression)
    except EncodeError as exc:
        raise EncodeError(f"arguments of task {env.task!r} {exc}") from exc
    if kind != "json" or encoding is not None:  # (else too small to compress: stays inline)
        env.args, env.kwargs = [], {}
        env.content_type, env.content_encoding, env.payload = kind, encoding, data


def unpack_args(env: Envelope, accept: frozenset[str]) -> tuple[list[Any], dict[str, Any]]:
    """Return the call's args and kwargs, refusing content types ``accept`` does not name.

    >>> env = Envelope(id="1", task="t")
    >>> pack_args(env, ["x" * 2000], {}, "msgpack", "zlib")
    >>> env.content_type, env.content_encoding, unpack_args(env, frozenset({"msgpack"}))[0][0][:3]
    ('msgpack', 'zlib', 'xxx')
    """
    if env.payload is None:
        if env.content_type != "json" or env.content_encoding is not None:
            raise DecodeError(f"malformed task message: {env.content_type} arguments without a payload")
        if "json" not in accept:
            raise DecodeError(f"content type 'json' is not accepted here (accept_content={sorted(accept)})")
        return env.args, env.kwargs
    value = unpack(env.payload, env.content_type, env.content_encoding, accept)
    if not (isinstance(value, list | tuple) and len(value) == 2):
        raise DecodeError("malformed task message: payload is not [args, kwargs]")
    args, kwargs = value
    if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
        raise DecodeError("malformed task message: payload is not [args, kwargs]")
    return list(args), dict(kwargs)


def readable_args(env: Envelope) -> tuple[list[Any], dict[str, Any]] | None:
    """The arguments as a display shows them (admin API, history, dead letters, ``inspect``):
    decoded whatever the serializer or compression, except pickle, which is never read for
    display (None)."""
    if env.content_type == "pickle":
        return None
    try:
        return unpack_args(env, frozenset(SAFE_CONTENT))
    except DecodeError:
        return None


def describe_message_args(env: Envelope, limit: int = 100) -> str:
    """``describe_args`` of a message's arguments (see ``readable_args``)."""
    found = readable_args(env)
    if found is None:
        return f"<{env.content_type} arguments>"
    return describe_args(found[0], found[1], limit)


def all_args(env: Envelope) -> tuple[list[Any], dict[str, Any]]:
    """The arguments of a message this process built itself (eager runs): every content type."""
    return unpack_args(env, frozenset(SERIALIZERS))


def encode_result(payload: ResultPayload, serializer: str = "json", compression: str | None = None) -> bytes:
    """Encode a result payload, its value with ``serializer`` and ``compression`` (the worker's
    ``result_serializer``/``result_compression``); raises ``EncodeError`` when the task's
    return value does not serialise."""
    if (serializer != "json" or compression is not None) and payload.result is not None:
        try:
            data, kind, encoding = pack(payload.result, serializer, compression)
        except EncodeError as exc:
            raise EncodeError(f"task result {exc}") from exc
        if kind != "json" or encoding is not None:
            payload = msgspec.structs.replace(
                payload, result=None, content_type=kind, content_encoding=encoding, payload=data
            )
    try:
        data = _encoder.encode(payload)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise EncodeError(f"task result is not JSON-serialisable: {exc}") from exc
    if payload.result is not None and non_finite(data, payload.result):
        raise EncodeError(f"task result is not JSON-serialisable: it holds {NOT_FINITE}")
    return data


def decode_result(raw: bytes, accept: frozenset[str] = frozenset(SAFE_CONTENT)) -> ResultPayload:
    """Decode a stored result, unpacking its value (a pickled one only if ``accept`` says so)."""
    try:
        payload = _result_decoder.decode(raw)
    except (msgspec.DecodeError, TypeError, ValueError, RecursionError) as exc:
        raise DecodeError(f"malformed result payload: {exc}") from exc
    if payload.payload is not None:
        value = unpack(payload.payload, payload.content_type, payload.content_encoding, accept)
        payload = msgspec.structs.replace(payload, result=value, payload=None)
    return payload


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
