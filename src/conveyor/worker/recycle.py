"""Recycling: a worker that has run its share of tasks, or grown past its memory limit, retires.

Celery's ``worker_max_tasks_per_child`` / ``worker_max_memory_per_child`` (KiB): the worker
drains gracefully after the task that reached the limit (stops fetching, gives its prefetched
jobs back at once, lets running tasks finish) and exits; ``conveyor worker`` runs it under the
supervisor, which starts a fresh process in its place. This bounds leaks in task code and in
the C libraries it calls, which no amount of care inside one long-lived process can.

When it is checked: the task count after every task, before its consumer takes the next one
(a counter comparison, free), so exactly the tasks running at that moment still finish. The
memory after every settled batch, on the loop: it reads ``/proc/self/statm`` (three small
syscalls, a few microseconds), which would be a cost per tiny task, but batches grow with
load: a burst of tiny tasks pays one read per hundreds of tasks, while a lone task that
allocated a lot is checked as soon as its ack is out. Under load a consumer may start one more
prefetched task between a task's end and its batch's settle; that task also finishes first.
"""

from __future__ import annotations

import os
import resource
import sys

_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024 if hasattr(os, "sysconf") else 4


def resident_kib() -> int:
    """This process's resident memory now, in KiB (the peak, where ``/proc`` is missing).

    >>> resident_kib() > 0
    True
    """
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE_KIB
    except OSError:
        # No /proc (macOS): the peak resident size, as Celery measures it everywhere.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB elsewhere


class Recycler:
    """Says why the worker should retire now, if it should.

    >>> Recycler(max_tasks=10, max_memory_kib=None).reason(processed=10)
    'ran 10 task(s) (max tasks per child 10)'
    """

    def __init__(self, max_tasks: int | None, max_memory_kib: int | None) -> None:
        for name, value in (("max tasks per child", max_tasks), ("max memory per child", max_memory_kib)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive whole number, got {value!r}")
        self.max_tasks = max_tasks
        self.max_memory_kib = max_memory_kib

    @property
    def enabled(self) -> bool:
        return self.max_tasks is not None or self.max_memory_kib is not None

    def start_warning(self) -> str | None:
        """A limit the worker is past before running anything would replace it after every task."""
        if self.max_memory_kib is not None:
            used = resident_kib()
            if used > self.max_memory_kib:
                return (
                    f"max memory per child {self.max_memory_kib} KiB is below this worker's resident "
                    f"memory at start ({used} KiB): it will be replaced after every task; raise it"
                )
        return None

    def reason(self, processed: int, memory: bool = True) -> str | None:
        """Why to retire after ``processed`` tasks, if at all; ``memory`` also reads the memory."""
        if self.max_tasks is not None and processed >= self.max_tasks:
            return f"ran {processed} task(s) (max tasks per child {self.max_tasks})"
        if memory and self.max_memory_kib is not None:
            used = resident_kib()
            if used > self.max_memory_kib:
                return f"resident memory {used} KiB is over max memory per child {self.max_memory_kib} KiB"
        return None
