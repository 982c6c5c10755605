"""The broker's Lua scripts, loaded from ``scripts/*.lua`` and registered with redis-py.

``register_script`` runs each with EVALSHA and loads it again after NOSCRIPT (a restarted or
flushed Redis), so a script is sent in full only once per server start. Scripts that touch
the job store get ``lib.lua`` (shared helpers) prepended;
those that end jobs also ``workflow.lua``.
"""

from __future__ import annotations

from importlib import resources

import redis
from redis.commands.core import Script

_WITH_LIB = (
    "enqueue",
    "fetch",
    "settle",
    "reclaim",
    "revoke",
    "queue_stats",
    "purge",
    "bring_forward",
    "requeue_dead",
    "heartbeat",
    "reconcile",
)
#: Scripts that end jobs, and so apply their workflow continuations: ``workflow.lua`` follows ``lib.lua``.
_WITH_WORKFLOW = ("settle", "revoke", "reclaim")
_PLAIN = (
    "status",
    "unwait",
    "workers",
    "dead_letters",
    "purge_dead",
    "delete_dead",
    "cleanup",
    "kv_cas",
    "kv_scan",
    "history_trim",
    "history_add",
    "history_requeued",
    "group_start",
)


def _source(name: str) -> str:
    return resources.files(__package__).joinpath("scripts").joinpath(f"{name}.lua").read_text()


class Scripts:
    """One registered ``Script`` per Lua file, as attributes named after the file."""

    enqueue: Script
    fetch: Script
    settle: Script
    reclaim: Script
    revoke: Script
    queue_stats: Script
    purge: Script
    bring_forward: Script
    requeue_dead: Script
    heartbeat: Script
    reconcile: Script
    status: Script
    unwait: Script
    workers: Script
    dead_letters: Script
    purge_dead: Script
    delete_dead: Script
    cleanup: Script
    kv_cas: Script
    kv_scan: Script
    history_trim: Script
    history_add: Script
    history_requeued: Script
    group_start: Script

    def __init__(self, client: redis.Redis) -> None:
        lib = _source("lib")
        for name in _WITH_LIB:
            head = lib + _source("workflow") if name in _WITH_WORKFLOW else lib
            setattr(self, name, client.register_script(head + _source(name)))
        for name in _PLAIN:
            setattr(self, name, client.register_script(_source(name)))
