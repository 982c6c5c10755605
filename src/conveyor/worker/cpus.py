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

Pinning (``--pin-cpus``, ``worker_pin_cpus = True``; off by default): worker process ``i`` is
held to the ``i``-th CPU of the affinity mask, with all its threads. A worker process's threads
(the event loop, the slot threads, the fetch and settle threads) pass the GIL to one another
at every Redis round trip of a tiny task; left to the kernel, the thread woken for it is often
on the other CPU (on a VM, an interrupt between virtual CPUs). Held to one CPU, a hand-off is a
switch on the same core: on the benchmark's two-core VM 19-52 % more one-``INCR`` tasks a
second, and 5-23 % less CPU per task (docs/benchmarks.md). Not by default, because everything
a task starts is held there too: its subprocesses, and the thread pools of native libraries
(BLAS, OpenMP, PyTorch), which would then share one core.
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


def cpu_for(index: int, mask: Sequence[int] | None = None) -> int | None:
    """The CPU worker process ``index`` (from 1) is held to: the ``index``-th of the affinity
    mask (this process's now, unless given), round the mask; None where the platform has no CPU
    affinity (macOS).

    >>> cpu_for(1, [2, 5]), cpu_for(2, [2, 5]), cpu_for(3, [2, 5])
    (2, 5, 2)
    """
    if mask is None:
        try:
            mask = sorted(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            return None
    return mask[(index - 1) % len(mask)] if mask else None


def pin_process(cpu: int) -> None:
    """Hold this process to ``cpu``: every thread it has (each has its own affinity on Linux) and,
    through them, every thread they start later; the threads are listed again until no new one
    appeared meanwhile. A CPU it may not use (a cpuset changed, a CPU went offline) leaves the
    threads not yet held to the kernel, said in one line."""
    done: set[int] = set()
    while True:
        try:
            threads = {int(t) for t in os.listdir("/proc/self/task")} - done
        except OSError:  # no /proc: the calling thread, which is all a process has at a fork
            threads = {0} - done
        if not threads:
            return
        for tid in threads:
            try:
                os.sched_setaffinity(tid, {cpu})
            except ProcessLookupError:  # that thread has ended
                pass
            except OSError as exc:
                logger.warning(
                    "could not hold worker process %d to CPU %d (%s); left to the kernel",
                    os.getpid(),
                    cpu,
                    exc,
                )
                return
            done.add(tid)
