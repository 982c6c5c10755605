"""``conveyor worker --processes N``: children start, a killed one is replaced, SIGTERM stops all."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..apps import basic
from ..procs import ROOT, WorkerProcess, lines, process_env, wait_for


def live_pids() -> set[int]:
    return {json.loads(w.info)["pid"] for w in basic.app.broker.workers()}


def test_processes_runs_n_workers_and_replaces_a_killed_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sup.db'}"
    basic.app.conf.broker_url = url
    supervisor = WorkerProcess(url, tmp_path, "--processes", "2", name="sup")
    try:
        wait_for(lambda: len(live_pids()) == 2, 30)
        names = sorted(json.loads(w.info)["hostname"] for w in basic.app.broker.workers())
        assert [n.split("@")[0] for n in names] == ["sup.1", "sup.2"]
        victim = min(live_pids())
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(live_pids() - {victim}) == 2, 60)  # a replacement is heartbeating
        assert basic.add.delay(1, 2).get(timeout=10) == 3
    finally:
        assert supervisor.stop() == 0
        basic.app.close()
    assert "died with exit code -9; restarting" in supervisor.log()


def test_sigterm_to_the_whole_process_group_drains_running_tasks(tmp_path: Path) -> None:
    """Ctrl-C, supervisord's stopasgroup and systemd signal every process: each child then gets
    SIGTERM twice (from the group and from its supervisor), which must still mean "drain"."""
    url = f"sqlite:///{tmp_path / 'group.db'}"
    basic.app.conf.broker_url = url
    log = open(tmp_path / "group.log", "wb")  # noqa: SIM115 - closed below
    cmd = [sys.executable, "-m", "conveyor", "-A", "tests.apps.basic", "-b", url, "worker"]
    proc = subprocess.Popen(
        # One job held per child: each child runs one of the two tasks (with the default
        # prefetch, one child may lease both and run them one after the other).
        [*cmd, "-n", "grp@%h", "--processes", "2", "-c", "1", "--prefetch-multiplier", "1"],
        cwd=ROOT,
        env=process_env(tmp_path),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as under a terminal or supervisord
    )
    try:
        wait_for(lambda: len(live_pids()) == 2, 30)
        results = [basic.record.delay("group", f"t{i}", 2.0) for i in range(2)]
        wait_for(lambda: len([x for x in lines(tmp_path / "group") if x.startswith("start")]) == 2, 30)
        children = live_pids()
        os.killpg(proc.pid, signal.SIGTERM)
        # The supervisor forwards it too; its copy may come a little later than the group's (the
        # two coalesce when they arrive together), so deliver a late duplicate deterministically.
        time.sleep(0.3)
        for pid in children:
            os.kill(pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert sorted(r.get(timeout=5) for r in results) == ["t0", "t1"]  # both drained, not abandoned
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
        basic.app.close()
    assert "second signal" not in (tmp_path / "group.log").read_text()


def test_a_supervisor_stopped_while_its_children_start_exits_cleanly(tmp_path: Path) -> None:
    """SIGTERM as the children are forked: it reaches a child before its worker has installed
    its own handler. That child must end cleanly, not die of the signal (the supervisor then
    exited -15, so ``systemctl stop`` reported a failure), and must not run the supervisor's
    inherited handler (it then started a worker no one stopped). Several rounds at different
    moments: the window is a few milliseconds wide."""
    for round_ in range(8):
        url = f"sqlite:///{tmp_path / f'start{round_}.db'}"
        supervisor = WorkerProcess(url, tmp_path, "--processes", "2", name=f"start{round_}")
        wait_for(lambda s=supervisor: "started worker process 2" in s.log(), 30, interval=0.001)
        time.sleep(0.003 * round_)
        code = supervisor.stop(timeout=30)
        assert code == 0, f"round {round_}: exit {code}\n{supervisor.log()}"


def test_a_burst_worker_whose_output_reader_has_gone_still_exits(tmp_path: Path) -> None:
    """``conveyor worker --burst ... | head -3``: once ``head`` has gone, the child's last flush
    of its buffered output raises. It raised out of the child's ``finally:`` (the child then ran
    on as a second supervisor) and made the exit a failure, so the supervisor replaced the
    child, which failed the same way, for ever. The child exits with its own code now."""
    url = f"sqlite:///{tmp_path / 'pipe.db'}"
    env = {k: v for k, v in process_env(tmp_path).items() if k != "PYTHONUNBUFFERED"}
    cmd = [sys.executable, "-m", "conveyor", "-A", "tests.apps.basic", "-b", url, "worker"]
    # --max-tasks-per-child: a recycling worker runs under the supervisor even as one process.
    flags = ["-Q", "nothing", "-c", "1", "--burst", "--max-tasks-per-child", "1000"]
    proc = subprocess.Popen(
        [*cmd, *flags], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # "started worker process 1", then the reader goes, as head's does
        proc.stdout.close()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def alive(pid: int) -> bool:
    """Running, not a zombie nobody reaped yet (a container's init may never reap orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def test_killing_the_supervisor_stops_its_worker_processes(tmp_path: Path) -> None:
    """``kill -9`` of the command (the OOM killer, a deploy script that gave up waiting): its
    worker processes shut down as if asked, finishing the task they run, instead of taking tasks
    as orphans beside the command that replaces it."""
    url = f"sqlite:///{tmp_path / 'orphans.db'}"
    basic.app.conf.broker_url = url
    one_each = ["-c", "1", "--prefetch-multiplier", "1"]
    supervisor = WorkerProcess(url, tmp_path, "--processes", "2", *one_each, name="orph")
    children: set[int] = set()
    try:
        wait_for(lambda: len(live_pids()) == 2, 30)
        children = live_pids()
        result = basic.record.delay("orphan", "t0", 5.0)
        wait_for(lambda: any(x.startswith("start t0") for x in lines(tmp_path / "orphan")), 30)
        supervisor.kill()
        # Still running when its supervisor died (5 s long), so finishing it proves a drain.
        assert not any(x.startswith("done t0") for x in lines(tmp_path / "orphan"))
        wait_for(lambda: not any(alive(pid) for pid in children), 30)
        assert result.get(timeout=10) == "t0"  # drained: the running task finished, not abandoned
        assert lines(tmp_path / "orphan")[-1].startswith("done t0")
        # Each says why it stops: not a bare "SIGTERM received", which an operator never sent.
        said = supervisor.log()
        assert said.count(f"its supervisor (pid {supervisor.pid}) is gone (killed?)") == 2, said
        assert "SIGTERM received" not in said, said
    finally:
        supervisor.kill()
        for pid in children:  # if the kernel did not stop them, this test must not leave them
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        basic.app.close()
