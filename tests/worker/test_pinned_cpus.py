"""``--pin-cpus`` / ``worker_pin_cpus = True``: worker process ``i`` held to the ``i``-th CPU of
its affinity mask with all its threads (worker/cpus.py); off by default. Real worker processes;
their threads' affinity read from /proc."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from conveyor import Conveyor
from conveyor.worker.cpus import cpu_for

from ..apps import basic
from ..procs import wait_for
from .test_usable_cpus import heartbeats, url, worker

__all__ = ["url"]  # the fixture, used by name

MASK = sorted(os.sched_getaffinity(0))
two_cpus = pytest.mark.skipif(len(MASK) < 2, reason="one CPU: pinned and unpinned look the same")


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


def log_of(tmp_path: Path) -> str:
    return "".join(p.read_text() for p in tmp_path.glob("worker-*.log"))


@two_cpus
@pytest.mark.parametrize(
    ("args", "env"), [(["--pin-cpus"], None), ([], {"CONVEYOR_TEST_PIN_CPUS": "1"})], ids=["flag", "setting"]
)
def test_each_worker_process_is_held_with_all_its_threads_to_its_own_cpu_and_a_replacement_keeps_it(
    tmp_path: Path, url: str, args: list[str], env: dict[str, str] | None
) -> None:
    with worker(tmp_path, url, "--processes", "2", *args, "-l", "info", env=env):
        assert basic.add.delay(2, 3).get(timeout=30) == 5  # slot threads started after the pinning
        pids = worker_processes(2)
        for index, pid in pids.items():
            assert cpus_of_threads(pid) == {frozenset({MASK[(index - 1) % len(MASK)]})}, index
        os.kill(pids[2], signal.SIGKILL)  # the supervisor replaces it: on the same CPU
        wait_for(lambda: replacement_of(2, pids[2]) is not None, 60)
        replacement = replacement_of(2, pids[2])
        assert replacement is not None
        assert cpus_of_threads(replacement) == {frozenset({MASK[1]})}
    assert f"started worker process 1 (pid {pids[1]}) on CPU {MASK[0]}" in log_of(tmp_path)


@two_cpus
@pytest.mark.parametrize(
    ("args", "env"),
    [([], None), (["--no-pin-cpus"], {"CONVEYOR_TEST_PIN_CPUS": "1"})],
    ids=["default", "flag-over-setting"],
)
def test_by_default_and_with_no_pin_cpus_every_worker_process_keeps_its_whole_mask(
    tmp_path: Path, url: str, args: list[str], env: dict[str, str] | None
) -> None:
    """Off unless asked: a task's subprocesses and native thread pools would share one CPU."""
    with worker(tmp_path, url, "--processes", "2", *args, env=env):
        for pid in worker_processes(2).values():
            assert cpus_of_threads(pid) == {frozenset(MASK)}


@two_cpus
def test_pin_cpus_holds_a_single_worker_process_and_every_thread_it_had_already(
    tmp_path: Path, url: str
) -> None:
    """One process (``-c 2``) pins itself in place: the app started a thread at import, before
    the pinning, and that thread is held too."""
    env = {"CONVEYOR_TEST_IMPORT_THREAD": "1"}
    with worker(tmp_path, url, "-c", "2", "--pin-cpus", "-l", "info", env=env):
        assert basic.add.delay(2, 3).get(timeout=30) == 5
        wait_for(lambda: len(heartbeats()) == 1, 60)
        pid = int(str(heartbeats()[0]["pid"]))
        # The thread the app started at import, before the pinning, is held too.
        started_at_import = int((tmp_path / f"import-thread-{pid}").read_text())
        assert os.sched_getaffinity(started_at_import) == {MASK[0]}
        assert cpus_of_threads(pid) == {frozenset({MASK[0]})}
    assert f"worker process {pid} on CPU {MASK[0]}" in log_of(tmp_path)


def test_pin_cpus_with_the_process_pool_says_its_children_are_not_pinned(tmp_path: Path, url: str) -> None:
    """Its children would inherit the worker's one CPU and share it: refused in a line, not done."""
    with worker(tmp_path, url, "-P", "processes", "-c", "2", "--pin-cpus"):
        wait_for(lambda: len(heartbeats()) == 1 and heartbeats()[0].get("pool_processes"), 60)
        assert basic.add.delay(2, 3).get(timeout=30) == 5
        beat = heartbeats()[0]
        children = beat["pool_processes"]
        assert isinstance(children, list)
        for pid in [int(str(beat["pid"])), *(int(str(p)) for p in children)]:
            assert cpus_of_threads(pid) == {frozenset(MASK)}
    assert "--pin-cpus: -P processes children would all share one CPU; not pinned" in log_of(tmp_path)


def test_worker_pin_cpus_in_an_embedded_worker_says_it_is_not_pinned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``app.Worker(...).run()`` in your own process: it would hold the embedding process."""
    app = Conveyor("pin-embedded", broker="memory://pin-embedded")
    app.conf.worker_pin_cpus = True
    try:
        with caplog.at_level("WARNING", logger="conveyor.worker"):
            app.Worker(burst=True, install_signal_handlers=False).run()
        assert "worker_pin_cpus applies to `conveyor worker`" in caplog.text
        assert os.sched_getaffinity(0) == set(MASK)
    finally:
        app.close()


def test_process_n_takes_the_nth_cpu_of_the_mask_round_the_mask() -> None:
    assert [cpu_for(i, [0, 1, 2, 3]) for i in (1, 2, 3, 4)] == [0, 1, 2, 3]
    assert [cpu_for(i, [4, 7]) for i in (1, 2, 3)] == [4, 7, 4]  # a cpuset: its own CPUs
    assert cpu_for(1, []) is None
    assert cpu_for(1) == MASK[0]  # this process's mask
