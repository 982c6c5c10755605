"""Each of ``--processes N`` held to one CPU with all its threads (worker/cpus.py): by default only
when the command runs one process per CPU of its affinity mask, with ``--pin-cpus`` always, with
``--no-pin-cpus`` never. Real worker processes; their threads' affinity read from /proc."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from conveyor.worker.cpus import pinned_cpus, usable_cpus

from ..apps import basic
from ..procs import wait_for
from .test_usable_cpus import cpu_quota_cgroup, heartbeats, url, worker

__all__ = ["url"]  # the fixture, used by name

MASK = sorted(os.sched_getaffinity(0))


def cpus_of_threads(pid: int) -> set[frozenset[int]]:
    """The affinity of every thread of ``pid``, one set per distinct mask."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.add(frozenset(os.sched_getaffinity(int(task.name))))
        except OSError:  # the thread ended meanwhile
            continue
    return found


def worker_processes(count: int) -> dict[int, int]:
    """Process index (the ``.N`` of its name) -> pid, once ``count`` of them beat."""
    wait_for(lambda: len({h["pid"] for h in heartbeats()}) >= count, 60)
    return {int(str(h["hostname"]).split("@")[0].rsplit(".", 1)[1]): int(str(h["pid"])) for h in heartbeats()}


def replacement_of(index: int, old: int) -> int | None:
    """The pid of a process named ``.index`` other than ``old`` (the dead one may still be listed)."""
    for h in heartbeats():
        name, pid = str(h["hostname"]).split("@")[0], int(str(h["pid"]))
        if name.endswith(f".{index}") and pid != old:
            return pid
    return None


def test_each_worker_process_is_held_with_all_its_threads_to_its_own_cpu_and_a_replacement_keeps_it(
    tmp_path: Path, url: str
) -> None:
    with worker(tmp_path, url, "--processes", "2", "--pin-cpus", "-l", "info"):
        assert basic.add.delay(2, 3).get(timeout=30) == 5  # slot threads started after the pinning
        pids = worker_processes(2)
        for index, pid in pids.items():
            assert cpus_of_threads(pid) == {frozenset({MASK[(index - 1) % len(MASK)]})}, index
        os.kill(pids[2], signal.SIGKILL)  # the supervisor replaces it: on the same CPU
        wait_for(lambda: replacement_of(2, pids[2]) is not None, 60)
        replacement = replacement_of(2, pids[2])
        assert replacement is not None
        assert cpus_of_threads(replacement) == {frozenset({MASK[1 % len(MASK)]})}
    log = "".join(p.read_text() for p in tmp_path.glob("worker-*.log"))
    assert f"started worker process 1 (pid {pids[1]}) on CPU {MASK[0]}" in log, log


@pytest.mark.parametrize(
    ("args", "env"),
    [(["--no-pin-cpus"], None), ([], {"CONVEYOR_TEST_PIN_CPUS": "0"})],
    ids=["flag", "worker_pin_cpus"],
)
def test_no_pin_cpus_leaves_every_worker_process_its_whole_mask(
    tmp_path: Path, url: str, args: list[str], env: dict[str, str] | None
) -> None:
    """(Two processes on two CPUs would be pinned by default.)"""
    with worker(tmp_path, url, "--processes", "2", *args, env=env):
        for pid in worker_processes(2).values():
            assert cpus_of_threads(pid) == {frozenset(MASK)}


def test_no_flags_pins_one_process_per_cpu(tmp_path: Path, url: str) -> None:
    """What no flags starts on a machine (or cpuset) of its own: one process per CPU, each held."""
    if len(MASK) < 2 or usable_cpus() != len(MASK):
        pytest.skip("needs two CPUs or more, and no CPU quota below them")
    with worker(tmp_path, url):
        pids = worker_processes(len(MASK))
        assert {index: cpus_of_threads(pid) for index, pid in pids.items()} == {
            i + 1: {frozenset({cpu})} for i, cpu in enumerate(MASK)
        }


def test_pin_cpus_holds_a_single_worker_process_to_the_first_cpu(tmp_path: Path, url: str) -> None:
    with worker(tmp_path, url, "-c", "2", "--pin-cpus"):
        assert basic.add.delay(2, 3).get(timeout=30) == 5
        wait_for(lambda: len(heartbeats()) == 1, 60)
        assert cpus_of_threads(int(str(heartbeats()[0]["pid"]))) == {frozenset({MASK[0]})}


def test_pin_cpus_with_the_process_pool_says_its_children_are_not_pinned(tmp_path: Path, url: str) -> None:
    """Its children would inherit the worker's one CPU and share it: refused in a line, not done."""
    with worker(tmp_path, url, "-P", "processes", "-c", "2", "--pin-cpus"):
        wait_for(lambda: len(heartbeats()) == 1 and heartbeats()[0].get("pool_processes"), 60)
        assert basic.add.delay(2, 3).get(timeout=30) == 5
        beat = heartbeats()[0]
        for pid in [int(str(beat["pid"])), *(int(str(p)) for p in beat["pool_processes"])]:  # type: ignore[attr-defined]
            assert cpus_of_threads(pid) == {frozenset(MASK)}
    log = "".join(p.read_text() for p in tmp_path.glob("worker-*.log"))
    assert "--pin-cpus: -P processes children would all share one CPU; not pinned" in log, log


def test_a_cpu_quota_below_the_mask_leaves_the_processes_unpinned(tmp_path: Path, url: str) -> None:
    """A Kubernetes pod limited to one CPU's time on a node it sees whole: two commands so on one
    node would both crowd onto its first CPUs, so nothing is pinned unless asked."""
    if len(MASK) < 2:
        pytest.skip("needs two CPUs to set a quota below the mask")
    with cpu_quota_cgroup(1.0) as procs:
        join = ["sh", "-c", f'echo $$ > {procs} && exec "$@"', "sh"]
        with worker(tmp_path, url, "--processes", "2", prefix=join):
            for pid in worker_processes(2).values():
                assert cpus_of_threads(pid) == {frozenset(MASK)}


def test_by_default_only_one_process_per_cpu_of_the_mask_is_pinned() -> None:
    assert pinned_cpus(4, None, mask=[0, 1, 2, 3], usable=4) == [0, 1, 2, 3]
    assert pinned_cpus(2, None, mask=[4, 7], usable=2) == [4, 7]  # a cpuset: its own CPUs
    assert pinned_cpus(2, None, mask=[0, 1, 2, 3], usable=4) is None  # fewer: all would crowd CPU 0
    assert pinned_cpus(8, None, mask=[0, 1, 2, 3], usable=4) is None  # more than the CPUs
    assert pinned_cpus(2, None, mask=[0, 1], usable=1) is None  # a quota below the mask
    assert pinned_cpus(1, None, mask=[3], usable=1) is None  # one CPU: nothing to choose
    assert pinned_cpus(3, True, mask=[0, 1], usable=1) == [0, 1, 0]  # asked: round the mask
    assert pinned_cpus(2, False, mask=[0, 1], usable=2) is None
