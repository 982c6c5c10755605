"""How many CPUs this process may really use: the default size of the process pool and what
``--processes auto`` starts; and which CPU each of ``--processes N`` is held to.

``os.cpu_count()`` counts the host's cores. In a container it is wrong twice over: the CPU
affinity mask (``docker run --cpuset-cpus``) may allow fewer, and a CPU quota (``--cpus 1.5``,
a Kubernetes ``limits.cpu``) lets the whole container use only so many cores' worth of time
however many it sees. A pool sized on the host's 64 cores in a pod limited to one CPU forks 64
children that spend their time throttled. So: the CPUs in the affinity mask, capped by the
tightest CPU quota of this process's cgroup and its ancestors (cgroup v2 ``cpu.max``, v1
``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), a fractional quota rounded up (1.5 CPUs: two
processes, as the JVM and .NET count it), never less than one.

Pinning (``pinned_cpus``): when a command runs one worker process per CPU of its affinity mask
(what no flags starts on a machine, VM or cpuset of its own), each process is held to one CPU,
with all its threads. A worker process's threads (the event loop, the slot threads, the fetch
and settle threads) pass the GIL to one another thousands of times a second; left to the
kernel, the thread woken for it is often on the other CPU, and every hand-off becomes a
cross-CPU wake-up (on a VM, an interrupt between virtual CPUs) with the interpreter's state
moving between caches. Held to one CPU, a hand-off is a switch on the same core. Measured on
the benchmark's two-core VM (docs/benchmarks.md): 20-60 % more tiny tasks a second, and less
CPU per task, for the threads pool and ``-P solo`` alike. Only then by default: with fewer
processes than CPUs in the mask (a CPU quota below it, ``--processes 2`` on 64 cores), every
command on the host would crowd onto the same first CPUs; with one process per CPU, two
commands on one host spread over all of them alike.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

PROC_SELF = Path("/proc/self")

logger = logging.getLogger("conveyor.supervisor")


def usable_cpus(proc: Path = PROC_SELF) -> int:
    """CPUs this process may use (see the module doc); ``proc`` is /proc/self (a test may
    point it at another process's /proc/PID)."""
    try:
        pid = 0 if proc == PROC_SELF else int(proc.name)
        cpus = len(os.sched_getaffinity(pid))
    except (AttributeError, ValueError, OSError):  # no affinity on this platform
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota(proc)
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def cgroup_cpu_quota(proc: Path = PROC_SELF) -> float | None:
    """The tightest CPU quota (in CPUs) on this process's cgroup or its ancestors, or None
    (none set, or nothing readable: an unexpected layout never stops a worker from starting)."""
    try:
        return _cgroup_cpu_quota(proc)
    except (OSError, ValueError, ZeroDivisionError):
        return None


def _cgroup_cpu_quota(proc: Path) -> float | None:
    memberships = (proc / "cgroup").read_text().splitlines()
    mounts = (proc / "mountinfo").read_text().splitlines()
    quotas: list[float] = []
    for line in memberships:
        if line.count(":") < 2:
            continue
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2: one hierarchy
            mount = _mount_point(mounts, "cgroup2", None)
            if mount is not None:
                quotas += _quotas(mount, path, _v2_quota)
        elif "cpu" in controllers.split(","):
            mount = _mount_point(mounts, "cgroup", "cpu")
            if mount is not None:
                quotas += _quotas(mount, path, _v1_quota)
    return min(quotas) if quotas else None


def _mount_point(mounts: list[str], fstype: str, controller: str | None) -> tuple[Path, str] | None:
    """(mount point, the cgroup path mounted there) of the hierarchy, from /proc/self/mountinfo."""
    for line in mounts:
        fields = line.split()
        try:
            sep = fields.index("-")
        except ValueError:
            continue
        if fields[sep + 1] != fstype:
            continue
        if controller is not None and controller not in fields[sep + 3].split(","):
            continue
        return Path(_unescape(fields[4])), _unescape(fields[3])
    return None


def _unescape(field: str) -> str:
    """mountinfo writes a space, tab, newline and backslash in a path as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _quotas(mount: tuple[Path, str], path: str, read: Callable[[Path], float | None]) -> list[float]:
    """The quotas from the process's cgroup up to the mount's root (a container sees its own
    cgroup as the root of the mount, the host sees the full path under it)."""
    point, root = mount
    inside = root != "/" and (path == root or path.startswith(root + "/"))
    relative = path[len(root) :] if inside else path
    directory = point / relative.lstrip("/")
    found: list[float] = []
    while True:
        quota = read(directory)
        if quota is not None:
            found.append(quota)
        if directory == point or point not in directory.parents:
            return found
        directory = directory.parent


def _v2_quota(directory: Path) -> float | None:
    try:
        quota, period = (directory / "cpu.max").read_text().split()
        return None if quota == "max" or int(period) <= 0 else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _v1_quota(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


def pinned_cpus(
    processes: int, pin: bool | None, mask: Sequence[int] | None = None, usable: int | None = None
) -> list[int] | None:
    """The CPU each of ``processes`` worker processes is held to (process ``i``, from 1, the
    ``i``-th of the affinity mask, round the list), or None to leave them to the kernel. ``pin``:
    ``worker_pin_cpus`` (None: only when there is one process per CPU of the mask, more than
    one, and no CPU quota below it; see the module doc). ``mask`` and ``usable``: this
    process's affinity mask and ``usable_cpus()`` unless given.

    >>> pinned_cpus(2, None, mask=[0, 1], usable=2), pinned_cpus(2, None, mask=[0, 1], usable=1)
    ([0, 1], None)
    """
    if pin is False:
        return None
    if mask is None:
        try:
            mask = sorted(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # no affinity on this platform (macOS)
            return None
    if not mask:
        return None
    if pin is None:
        usable = usable_cpus() if usable is None else usable
        if not 1 < len(mask) == processes == usable:
            return None
    return [mask[i % len(mask)] for i in range(processes)]


def pin_process(cpu: int) -> None:
    """Hold this process to ``cpu``: every thread it has (each has its own affinity on Linux) and,
    through the calling thread, every thread it starts later. A CPU it may not use (a cpuset
    changed, a CPU went offline) leaves it to the kernel, said in one line."""
    try:
        threads = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:  # no /proc: the calling thread, which is all a process has at a fork
        threads = [0]
    try:
        for tid in threads:
            try:
                os.sched_setaffinity(tid, {cpu})
            except ProcessLookupError:  # that thread has ended
                continue
    except OSError as exc:
        logger.warning("could not hold worker process %d to CPU %d (%s); not pinned", os.getpid(), cpu, exc)
