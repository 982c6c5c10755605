"""``-P processes`` edge cases: a waiting task cancelled, a child whose pipe outlives it.

Real pools and real worker processes; deadlines generous and polled.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor
from conveyor.request import Request
from conveyor.worker.children import Job, file_identities
from conveyor.worker.procpool import ProcessDied, ProcessPool

from ..apps import proc_tasks
from ..procs import WorkerProcess, lines

APP = "tests.apps.proc_tasks"


@pytest.fixture
def app(process_broker_url: str) -> Iterator[Conveyor]:
    proc_tasks.app.conf.broker_url = process_broker_url
    yield proc_tasks.app
    proc_tasks.app.close()


def test_a_cancelled_wait_for_a_child_takes_no_child_with_it() -> None:
    """Two tasks wait for the one child; the first is cancelled. The child, once free, goes to
    the second (not to the cancelled wait's leftover ``get``), and afterwards every child of
    the pool is still handed out."""

    async def scenario() -> None:
        pool = ProcessPool(proc_tasks.app, 2, "edges@test", "fork", None, None, file_identities())
        pool.start()
        try:
            first = await asyncio.wait_for(pool.acquire(), 30)
            second = await asyncio.wait_for(pool.acquire(), 30)
            cancelled = asyncio.ensure_future(pool.acquire())
            waiting = asyncio.ensure_future(pool.acquire())
            await asyncio.sleep(0.1)  # both are waiting on the empty idle queue
            cancelled.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await cancelled
            pool.idle.put_nowait(first)
            assert await asyncio.wait_for(waiting, 10) is first
            pool.idle.put_nowait(first)
            pool.idle.put_nowait(second)
            got = {await asyncio.wait_for(pool.acquire(), 10) for _ in range(2)}
            assert got == {first, second}
        finally:
            await pool.close(10)

    asyncio.run(scenario())


@pytest.mark.parametrize("how", ["os", "libc"])
def test_a_child_that_dies_while_a_forked_grandchild_holds_its_pipe_is_a_worker_death(
    app: Conveyor, process_broker_url: str, tmp_path: Path, how: str
) -> None:
    """The task forks a grandchild that sleeps (inheriting the child's pipe to the worker, when
    forked from C), then its child exits: the worker sees the death by the child's pid, not only
    by EOF, and redelivers the task, which then runs in a fresh child."""
    w = WorkerProcess(process_broker_url, tmp_path, "-P", "processes", "-c", "1", app=APP, name="w")
    w.wait_ready()
    try:
        result = proc_tasks.forks_then_exits.delay("forks", how)
        ran = result.get(timeout=60)
        starts = [int(x.split()[1]) for x in lines(tmp_path / "forks") if x.startswith("start")]
        assert len(starts) == 2 and ran == starts[1] != starts[0]
        assert "redelivered (death 1 of 3)" in w.log()
    finally:
        for line in lines(tmp_path / "forks"):
            if line.startswith("grandchild"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(line.split()[1]), signal.SIGKILL)
        assert w.stop() == 0


def test_without_a_pidfd_a_poll_sees_the_death_of_a_child_whose_pipe_a_grandchild_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where there is no pidfd (not Linux, an old kernel) the pool asks every second whether its
    children live: the reply still fails with ProcessDied, and a fresh child takes the slot."""
    monkeypatch.delattr(os, "pidfd_open")
    monkeypatch.setenv("CONVEYOR_TEST_DIR", str(tmp_path))

    async def scenario() -> None:
        pool = ProcessPool(proc_tasks.app, 1, "edges@test", "fork", None, None, file_identities())
        pool.start()
        try:
            child = await asyncio.wait_for(pool.acquire(), 30)
            request = Request(id="t-1", task=proc_tasks.forks_then_exits.name, args=["polled", "libc"])
            reply = pool.send(child, Job(request))
            assert reply is not None
            with pytest.raises(ProcessDied, match="exit code 3"):
                await asyncio.wait_for(reply, 30)
            fresh = await asyncio.wait_for(pool.acquire(), 30)
            assert fresh.pid != child.pid
        finally:
            await pool.close(10)

    try:
        asyncio.run(scenario())
    finally:
        for line in lines(tmp_path / "polled"):
            if line.startswith("grandchild"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(line.split()[1]), signal.SIGKILL)
