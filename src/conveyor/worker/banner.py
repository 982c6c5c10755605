"""The worker's start-up banner: the line tests and operators wait for, then what it serves.

Like Celery's banner it says which broker the worker really opened (so two processes that
disagree about a relative SQLite path, or a wrong Redis database, show at a glance), which
queues it consumes and which tasks it can run (a task missing here arrives as ``NotRegistered``).
The first line keeps `` ready: `` -- tests and scripts wait for that substring.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..brokers import redacted_url


def ready_banner(
    hostname: str,
    queues: Sequence[str],
    pool: str,
    concurrency: int,
    broker_url: str,
    tasks: Iterable[str],
) -> str:
    """The banner, with the broker's password hidden.

    >>> print(ready_banner("w@h", ["default"], "threads", 8, "redis://:pw@r:6379/0", ["p.add"]))
    w@h ready: queues=default pool=threads concurrency=8 broker=redis://:***@r:6379/0
      [queues]
        . default
      [tasks]
        . p.add
    """
    names = sorted(tasks)
    head = (
        f"{hostname} ready: queues={','.join(queues)} pool={pool} concurrency={concurrency} "
        f"broker={redacted_url(broker_url)}"
    )
    listing = [f"    . {name}" for name in names] or ["    (none registered)"]
    return "\n".join([head, "  [queues]", *(f"    . {q}" for q in queues), "  [tasks]", *listing])
