"""Celery's pools Conveyor does not have, and what to use instead (``-P`` and ``worker_pool``);
and what every worker needs to know of ``-P processes`` (procpool.py) without importing it: the
start methods and the two errors its runner raises. procpool.py (multiprocessing, ctypes, psutil)
is imported only by a worker that runs that pool.

A runbook that says ``-P gevent -c 100`` expects 100-way I/O concurrency: refusing it with the
way to get that here beats quietly running 8 threads.
"""

from __future__ import annotations

START_METHODS = ("fork", "spawn")  # -P processes: how children start (procpool.py)


class ProcessDied(Exception):
    """The child running a task died on its own; ``how``: "killed by SIGSEGV", "exit code 3"."""

    def __init__(self, how: str, max_deaths: int) -> None:
        super().__init__(f"the pool process running it died ({how})")
        self.how = how
        self.max_deaths = max_deaths


class PoolBroken(Exception):
    """No child can start: a task waiting for one goes back to its queue, unstarted."""


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
