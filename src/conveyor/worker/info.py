"""What a worker's heartbeat records about it (JSON): the admin API's whole view of a worker —
``status``, ``inspect`` and the ``health`` probe read nothing else (see admin/parse.py).

The heartbeat runs every second, so this stays cheap: the parts that never change (names,
queues, registered task names) are encoded once, the running tasks are capped at
``MAX_ACTIVE`` and their arguments shortened, and memory is one small read of /proc.

Fields: hostname (``-n`` name), host, pid, queues, pool, concurrency, started, registered;
processed, succeeded, failed, retried, dead_lettered, revoked, abandoned_threads; memory_rss
(bytes); fetch_state and fetched_at (see fetcher.py: a probe tells "alive and fetching" from
"alive but its fetches fail"); paused (this worker's paused queues); active: per running task
id, task, queue, args (shortened repr), started, attempt (retries + 1), delivery;
pool_processes (``-P processes`` only): the pids of its pool children; group (one process of
``--processes N`` only): the command's ``-n`` name, which ``-d`` addresses all its processes by.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..message import describe_args
from .fetcher import Fetcher
from .reporter import Stats
from .runners import Active

MAX_ACTIVE = 100  # running tasks listed per heartbeat
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class InfoBuilder:
    """``InfoBuilder(...)()`` -> the heartbeat's info bytes (called on the keeper thread)."""

    def __init__(
        self,
        static: dict[str, Any],
        registered: Sequence[str],
        stats: Stats,
        active: Callable[[], Mapping[str, Active]],
        fetcher: Callable[[], Fetcher | None],
        pool_processes: Callable[[], list[int]] | None = None,
    ) -> None:
        fixed = {
            **static,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "registered": sorted(registered),
        }
        self._fixed = json.dumps(fixed)[1:-1]  # spliced into every heartbeat as it is
        self._stats = stats
        self._active = active
        self._fetcher = fetcher
        self._pool_processes = pool_processes

    def __call__(self) -> bytes:
        stats, fetcher = self._stats, self._fetcher()
        dynamic: dict[str, Any] = {
            "processed": stats.processed,
            "succeeded": stats.succeeded,
            "failed": stats.failed,
            "retried": stats.retried,
            "dead_lettered": stats.dead_lettered,
            "revoked": stats.revoked,
            "abandoned_threads": stats.abandoned_threads,
            "memory_rss": memory_rss(),
            "fetch_state": fetcher.state if fetcher is not None else "starting",
            "fetched_at": fetcher.fetched_at if fetcher is not None else None,
            "paused": sorted(fetcher.paused) if fetcher is not None else [],
            "active": [_describe(a) for a in list(self._active().values())[:MAX_ACTIVE]],
        }
        if self._pool_processes is not None:
            dynamic["pool_processes"] = self._pool_processes()
        return ("{" + self._fixed + "," + json.dumps(dynamic)[1:]).encode()


def _describe(active: Active) -> dict[str, Any]:
    request = active.request
    try:
        # On the keeper thread while the task may be changing its own arguments: a repr that
        # fails must not cost the heartbeat.
        args = describe_args(request.args, request.kwargs) if request is not None else ""
    except Exception:
        args = "<unprintable>"
    return {
        "id": active.id,
        "task": active.task,
        "queue": request.queue if request is not None else None,
        "args": args,
        "started": active.started,
        "enqueued": active.enqueued,
        "pid": active.pid or os.getpid(),  # Celery's worker_pid: the process the body runs in
        "attempt": (request.retries if request is not None else 0) + 1,
        "delivery": active.delivery,
    }


def memory_rss() -> int | None:
    """This process's resident memory in bytes: current from /proc on Linux, else the peak."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        pass
    try:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (OSError, ValueError):
        return None
    return peak if sys.platform == "darwin" else peak * 1024  # macOS: bytes; Linux: KiB
