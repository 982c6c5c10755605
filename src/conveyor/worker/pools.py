"""Celery's pools Conveyor does not have, and what to use instead (``-P`` and ``worker_pool``).

A runbook that says ``-P gevent -c 100`` expects 100-way I/O concurrency: refusing it with the
way to get that here beats quietly running 8 threads.
"""

from __future__ import annotations

_IO = (
    "for 100-way I/O concurrency use -P threads -c 100, or async def tasks on -P asyncio "
    "(docs/migrating-from-celery.md, 'gevent and eventlet')"
)
REFUSED_POOLS = {"gevent": _IO, "eventlet": _IO}


def pool_error(pool: str, pools: tuple[str, ...]) -> str:
    """The one-line error for a pool name that is not one of ``pools``.

    >>> pool_error("fibers", ("threads", "solo"))
    '-P fibers: unknown pool; choose one of threads, solo'
    """
    instead = REFUSED_POOLS.get(pool)
    if instead is not None:
        return f"-P {pool} is not available: {instead}"
    return f"-P {pool}: unknown pool; choose one of {', '.join(pools)}"
