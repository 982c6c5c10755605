"""How a stored result is packed into one Redis string: ``state|retries|=payload``.

One string (not a hash) so that storing a result with its expiry is one ``SET ... PX`` per
task, packed here in Python so the Lua scripts only copy bytes. The payload (an encoded
``ResultPayload``) follows ``=``; nothing follows when there is no payload.
"""

from __future__ import annotations

from ..base import StatusRecord


def pack_result(state: str, payload: bytes | None, retries: int = 0) -> bytes:
    """A result record as the Redis broker stores it: state, retries, then the payload.

    >>> pack_result("SUCCESS", b'{"result":3}')
    b'SUCCESS|0|={"result":3}'
    """
    head = b"%s|%d|" % (state.encode(), retries)
    return head if payload is None else head + b"=" + payload


def unpack_result(raw: bytes) -> StatusRecord:
    """The inverse of ``pack_result``."""
    state, retries, payload = raw.split(b"|", 2)
    return StatusRecord(state.decode(), payload[1:] if payload else None, int(retries))
