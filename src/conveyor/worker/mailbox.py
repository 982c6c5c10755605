"""The control channel's wire format: the keys, a command and a reply (shared by the worker and
the admin API, see worker/control.py and admin/control.py).

Everything travels through the broker's key/value store, so the channel works the same on
memory, SQLite and Redis, needs no new broker method, and crosses hosts like the broker does:

| key                                   | value        | expiry                 | written by |
|---------------------------------------|--------------|------------------------|------------|
| ``control:to:<owner>:<command id>``   | a ``Command``| the sender's timeout   | admin      |
| ``control:reply:<command id>:<owner>``| a ``Reply``  | ``REPLY_TTL``          | worker     |
| ``control:rate_limit:<task name>``    | ``RateOverride`` | never (until reset) | admin      |

``<owner>`` is the worker's unique lease-owner id (``w1@host/pid-xxxxxx``), so one mailbox
belongs to one process, and a restarted worker never reads its predecessor's commands.

A command expires with the sender's timeout: a command that no worker took in time is gone,
so "did not reply" also means "will not act on it later" (except for the rare command taken
in the instant before its expiry). A worker takes a command by deleting it with a
compare-and-set, so it acts on it once even if two of its polls overlapped.
"""

from __future__ import annotations

from typing import Any

import msgspec

MAILBOX_PREFIX = "control:to:"
REPLY_PREFIX = "control:reply:"
RATE_PREFIX = "control:rate_limit:"
REPLY_TTL = 60.0  # a reply nobody read is gone after this

#: The commands a worker answers (admin/control.py documents each one).
COMMANDS = frozenset(
    {
        "ping",
        "shutdown",
        "add_consumer",
        "cancel_consumer",
        "rate_limit",
        "revoke",
        "reserved",
        "scheduled",
        "revoked",
        "query_task",
    }
)


class Command(msgspec.Struct, frozen=True):
    """One command to one worker: ``name`` is one of ``COMMANDS``, ``args`` its arguments."""

    id: str
    name: str
    args: dict[str, Any] = {}
    sent: float = 0.0


class Reply(msgspec.Struct, frozen=True):
    """A worker's answer: ``data`` when ``ok``, else ``error`` (one line)."""

    owner: str
    hostname: str
    ok: bool = True
    data: Any = None
    error: str | None = None


class RateOverride(msgspec.Struct, frozen=True):
    """A cluster-wide rate limit set at run time (``rate`` None: no limit)."""

    rate: str | None
    at: float = 0.0


def mailbox(owner: str) -> str:
    """The key prefix of ``owner``'s mailbox."""
    return f"{MAILBOX_PREFIX}{owner}:"


def replies(command_id: str) -> str:
    """The key prefix of the replies to one command."""
    return f"{REPLY_PREFIX}{command_id}:"


encode = msgspec.json.encode


def decode_command(raw: bytes) -> Command:
    return msgspec.json.decode(raw, type=Command)


def decode_reply(raw: bytes) -> Reply:
    return msgspec.json.decode(raw, type=Reply)


def decode_rate(raw: bytes) -> RateOverride:
    return msgspec.json.decode(raw, type=RateOverride)
