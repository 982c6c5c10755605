"""Serializers and compressions of a task's arguments and result, by name.

The envelope itself is always JSON (the broker, the admin API and every reader find the id,
task name and queue without decoding anything else). What a setting chooses is how the
*arguments* (``task_serializer``, ``task_compression``) and the *result value*
(``result_serializer``, ``result_compression``) travel inside it:

- serializers: ``json`` (default), ``msgpack`` (msgspec; smaller and faster for large data),
  ``pickle`` (runs code when read: only where ``accept_content`` names it, on both sides);
- compressions: ``gzip``, ``zlib`` (standard library), applied only to a body of at least
  ``COMPRESS_THRESHOLD`` bytes and kept only when it is smaller.

The name of each is written next to the bytes (``content_type``, ``content_encoding``), so a
reader decodes a message whatever its own settings: a worker set to ``json`` runs a producer's
``msgpack`` + ``gzip`` message, as long as its ``accept_content`` accepts ``msgpack``.

>>> data, kind, enc = pack([1, "x" * 2000], "msgpack", "gzip")
>>> (kind, enc, len(data) < 100), unpack(data, kind, enc, frozenset({"msgpack"}))[0]
(('msgpack', 'gzip', True), 1)
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from .exceptions import ConfigurationError, DecodeError, EncodeError

SERIALIZERS = ("json", "msgpack", "pickle")
COMPRESSIONS = ("gzip", "zlib")
#: Serializers that never run code when read; ``accept_content``'s default.
SAFE_CONTENT = ("json", "msgpack")
#: Bodies smaller than this are sent as they are: compressing a few hundred bytes saves little
#: and costs every producer and worker time (Celery compresses everything; Kombu's own
#: advice is to compress only large payloads).
COMPRESS_THRESHOLD = 1024

_json_encoder = msgspec.json.Encoder()
_msgpack_encoder = msgspec.msgpack.Encoder()
_msgpack_decoder = msgspec.msgpack.Decoder()

# gzip and pickle are imported where they are used: most apps use neither, and every worker
# and producer would pay for them at start-up.


def _gzip_compress(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, compresslevel=6, mtime=0)


def _gzip_decompress(data: bytes) -> bytes:
    import gzip

    return gzip.decompress(data)


_COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": _gzip_compress,
    "zlib": lambda data: zlib.compress(data, 6),
}
_DECOMPRESS: dict[str, Callable[[bytes], bytes]] = {"gzip": _gzip_decompress, "zlib": zlib.decompress}


def check_serializer(name: object, setting: str = "serializer") -> str:
    """``name`` if it is a serializer, else ``ConfigurationError`` in one line.

    >>> check_serializer("yaml", "task_serializer")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    conveyor.exceptions.ConfigurationError: task_serializer: unknown serializer 'yaml' (use json, ...
    """
    if name not in SERIALIZERS:
        raise ConfigurationError(f"{setting}: unknown serializer {name!r} (use json, msgpack or pickle)")
    return str(name)


def check_compression(name: object, setting: str = "compression") -> str | None:
    """``name`` if it is a compression or None (no compression), else ``ConfigurationError``."""
    if name is None:
        return None
    if name not in COMPRESSIONS:
        raise ConfigurationError(f"{setting}: unknown compression {name!r} (use gzip, zlib or None)")
    return str(name)


def check_accept(names: Iterable[object]) -> list[str]:
    """``accept_content`` checked: serializer names only (Celery's MIME names are read too)."""
    if isinstance(names, str):
        names = [names]
    return [check_serializer(_MIME.get(str(n), n), "accept_content") for n in names]


# Celery also spells accept_content with MIME types.
_MIME = {
    "application/json": "json",
    "application/x-msgpack": "msgpack",
    "application/x-python-serialize": "pickle",
}


def check_sendable(serializer: str, accept: Iterable[str]) -> None:
    """Refuse to send with a serializer this app's own workers would refuse (pickle above all:
    it runs code when read, so it is never on unless ``accept_content`` names it)."""
    if serializer not in accept:
        raise ConfigurationError(
            f"serializer {serializer!r} is not in accept_content {sorted(accept)}: "
            f"add {serializer!r} to accept_content to send (and accept) it"
        )


NOT_FINITE = (
    "a float NaN or infinity, which JSON cannot carry (it would arrive as None): send None or a "
    "string instead, or use the msgpack serializer, which carries it"
)


def non_finite(data: bytes, value: Any) -> bool:
    """Whether ``value``, JSON-encoded as ``data``, held a NaN or an infinity: msgspec writes
    those as ``null``, and the reader would get None where the writer sent a number (Celery's
    JSON writes a non-standard ``NaN``).

    Cheap on the ``.delay()`` path: ``data`` without a ``null`` is done with one scan of its
    bytes. Otherwise the value is packed as msgpack (C, what JSON took it takes, dataclasses
    and structs included) and searched for a float64 whose exponent bits are all ones — the
    bit pattern of every NaN and infinity; only a match (or bytes that happen to look like
    one) is confirmed on the unpacked value, which holds plain lists, dicts and floats."""
    if b"null" not in data:
        return False
    try:
        packed = _msgpack_encoder.encode(value)
    except (OverflowError, TypeError, ValueError, RecursionError):  # an int beyond 64 bits, say
        try:
            return _has_non_finite(msgspec.to_builtins(value))
        except (TypeError, ValueError, RecursionError):
            return False  # JSON took it and this cannot look into it: nothing more to say
    if _NON_FINITE_FLOAT64.search(packed) is None:
        return False
    try:
        return _has_non_finite(_msgpack_decoder.decode(packed))
    except (msgspec.DecodeError, RecursionError):
        return False


# msgpack float64: 0xcb, then the 8 bytes big-endian; sign bit either way, exponent all ones.
_NON_FINITE_FLOAT64 = re.compile(rb"\xcb[\x7f\xff][\xf0-\xff]")


def _has_non_finite(value: Any) -> bool:
    """A walk with its own stack (no recursion limit) over plain data: dicts, lists, floats."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def pack(value: Any, serializer: str, compression: str | None) -> tuple[bytes, str, str | None]:
    """``value`` serialized (and compressed when large enough to gain): (bytes, serializer,
    compression used or None). Raises ``EncodeError`` for a value the serializer cannot take."""
    try:
        if serializer == "json":
            data = _json_encoder.encode(value)
            if non_finite(data, value):
                raise EncodeError(f"cannot be serialised with json: it holds {NOT_FINITE}")
        elif serializer == "msgpack":
            data = _msgpack_encoder.encode(value)
        elif serializer == "pickle":
            import pickle

            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        else:
            raise EncodeError(f"unknown serializer {serializer!r} (use json, msgpack or pickle)")
    except EncodeError:
        raise
    except Exception as exc:
        raise EncodeError(f"cannot be serialised with {serializer}: {exc}") from exc
    if compression is not None and len(data) >= COMPRESS_THRESHOLD:
        compress = _COMPRESS.get(compression)
        if compress is None:
            raise EncodeError(f"unknown compression {compression!r} (use gzip, zlib or None)")
        packed = compress(data)
        if len(packed) < len(data):
            return packed, serializer, compression
    return data, serializer, None


def unpack(data: bytes, serializer: str, compression: str | None, accept: frozenset[str]) -> Any:
    """The value ``pack`` wrote. Refuses (``DecodeError``) a serializer not in ``accept``
    before reading a byte of it: a worker that does not accept pickle never unpickles."""
    if serializer not in accept:
        raise DecodeError(
            f"content type {serializer!r} is not accepted here (accept_content={sorted(accept)})"
        )
    try:
        if compression is not None:
            decompress = _DECOMPRESS.get(compression)
            if decompress is None:
                raise DecodeError(f"unknown content encoding {compression!r}")
            data = decompress(data)
        if serializer == "json":
            return msgspec.json.decode(data)
        if serializer == "msgpack":
            return _msgpack_decoder.decode(data)
        if serializer == "pickle":
            import pickle

            return pickle.loads(data)
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(
            f"cannot decode a {serializer} body ({compression or 'uncompressed'}): {exc}"
        ) from exc
    raise DecodeError(f"unknown content type {serializer!r}")
