"""How many processes a worker starts where it may use fewer CPUs than the host has (an affinity
mask, a container's CPU quota), ``--processes auto``, and ``-d NAME@host`` addressing every
process of a ``--processes N`` command. Real worker processes, a real cgroup where the machine
lets the test make one."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.cli.worker import default_processes
from conveyor.worker.cpus import cgroup_cpu_quota, usable_cpus

from ..apps import basic
from ..cli.helpers import conveyor
from ..cli.test_control_commands import _replies
from ..procs import ROOT, ConveyorProcess, process_env, wait_for

CPU_V1 = Path("/sys/fs/cgroup/cpu")
UNIFIED = Path("/sys/fs/cgroup")


def heartbeats() -> list[dict[str, object]]:
    return [json.loads(w.info) for w in basic.app.broker.workers()]


@contextlib.contextmanager
def worker(
    tmp_path: Path,
    url: str,
    *args: str,
    prefix: list[str] | None = None,
    env: dict[str, str] | None = None,
    **popen: object,
) -> Iterator[None]:
    """``conveyor worker ARGS`` run as ``PREFIX... python -m conveyor ...``; stopped after."""
    log = open(tmp_path / f"worker-{uuid.uuid4().hex[:6]}.log", "wb")  # noqa: SIM115 - closed below
    cmd = [
        sys.executable,
        "-m",
        "conveyor",
        "-A",
        "tests.apps.basic",
        "-b",
        url,
        "worker",
        "-n",
        "cpu@%h",
        *args,
    ]
    proc = subprocess.Popen(  # its own process group: a kill below reaches its children too
        [*(prefix or []), *cmd],
        start_new_session=True,
        cwd=ROOT,
        env=process_env(tmp_path, env),
        stdout=log,
        stderr=subprocess.STDOUT,
        **popen,  # type: ignore[call-overload]
    )
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    broker_url = f"sqlite:///{tmp_path / 'cpus.db'}"
    basic.app.conf.broker_url = broker_url
    yield broker_url
    basic.app.close()


def first_cpu_only() -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def test_the_process_pool_starts_one_child_per_cpu_in_its_affinity_mask(tmp_path: Path, url: str) -> None:
    """``docker run --cpuset-cpus 0`` on a many-core host: ``-P processes`` starts one child,
    not one per host core."""
    with worker(tmp_path, url, "-P", "processes", prefix=None, preexec_fn=first_cpu_only):
        wait_for(lambda: len(heartbeats()) == 1 and heartbeats()[0].get("pool_processes"), 60)
        assert len(heartbeats()[0]["pool_processes"]) == 1  # type: ignore[arg-type]
        assert heartbeats()[0]["concurrency"] == 1


def test_processes_auto_starts_one_worker_process_per_usable_cpu(tmp_path: Path, url: str) -> None:
    expected = usable_cpus()  # this machine's count: its affinity mask, or a quota CI runs under
    with worker(tmp_path, url, "--processes", "auto"):
        wait_for(lambda: len(heartbeats()) == expected, 60)
        names = sorted(str(h["hostname"]).split("@")[0] for h in heartbeats())
        assert names == (["cpu"] if expected == 1 else [f"cpu.{i}" for i in range(1, expected + 1)])
    basic.app.close()
    with worker(tmp_path, url, "--processes", "auto", preexec_fn=first_cpu_only):
        assert basic.add.delay(2, 3).get(timeout=30) == 5
        # One process, so no ".N" suffix (the first run's heartbeats are in the same broker).
        wait_for(lambda: any(str(h["hostname"]).startswith("cpu@") for h in heartbeats()), 60)


def test_no_flags_starts_one_worker_process_per_usable_cpu(tmp_path: Path, url: str) -> None:
    """As Dramatiq and Celery do: one Python process cannot use a second core."""
    expected = usable_cpus()
    with worker(tmp_path, url):
        wait_for(lambda: len(heartbeats()) == expected, 60)
        names = sorted(str(h["hostname"]).split("@")[0] for h in heartbeats())
        assert names == (["cpu"] if expected == 1 else [f"cpu.{i}" for i in range(1, expected + 1)])
        assert {h["concurrency"] for h in heartbeats()} == {8}  # -c is per process
    basic.app.close()
    with worker(tmp_path, url, preexec_fn=first_cpu_only):  # one CPU: one process, as before
        assert basic.add.delay(2, 3).get(timeout=30) == 5
        wait_for(lambda: any(str(h["hostname"]).startswith("cpu@") for h in heartbeats()), 60)


@pytest.mark.parametrize(
    "args",
    [["-c", "4"], ["--autoscale", "4,2"], ["-P", "solo"], ["-P", "processes"]],
    ids=["concurrency", "autoscale", "solo", "process-pool"],
)
def test_c_or_a_one_process_pool_keeps_one_worker_process(tmp_path: Path, url: str, args: list[str]) -> None:
    """``-c 4`` means four tasks at once, as in Celery, not four per core; ``-P solo`` runs one
    task at a time; ``-P processes`` has its children already. The name without a ``.N``
    suffix shows no supervisor split the command."""
    with worker(tmp_path, url, *args):
        assert basic.add.delay(2, 3).get(timeout=30) == 5
        wait_for(lambda: len(heartbeats()) == 1, 60)
        assert str(heartbeats()[0]["hostname"]).startswith("cpu@")


def test_a_memory_broker_keeps_one_worker_process() -> None:
    """Each process would have a broker of its own: a second one would never see a task."""
    out = conveyor("worker", "--burst", "-n", "mem@h", url="memory://", app=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "mem@h ready:" in out.stderr + out.stdout and "mem.1@h" not in out.stderr + out.stdout


def test_worker_concurrency_in_the_app_keeps_one_worker_process(tmp_path: Path, url: str) -> None:
    """``worker_concurrency`` is the setting behind ``-c``: set in the app, it says the same."""
    with worker(tmp_path, url, env={"CONVEYOR_TEST_CONCURRENCY": "3"}):
        assert basic.add.delay(2, 3).get(timeout=30) == 5
        wait_for(lambda: len(heartbeats()) == 1, 60)
        beat = heartbeats()[0]
        assert str(beat["hostname"]).startswith("cpu@") and beat["concurrency"] == 3


def test_the_default_number_of_processes_follows_pool_concurrency_and_broker() -> None:
    cpus = usable_cpus()
    assert default_processes("threads", False, "redis://r:6379/0") == cpus
    assert default_processes("asyncio", False, "sqlite:///c.db") == cpus
    assert default_processes("threads", True, "redis://r:6379/0") == 1  # -c or worker_concurrency
    assert default_processes("solo", False, "redis://r:6379/0") == 1
    assert default_processes("processes", False, "redis://r:6379/0") == 1
    assert default_processes("threads", False, "memory://") == 1  # lives inside one process
    assert default_processes("threads", False, "MEMORY://") == 1


def test_a_bad_processes_value_is_a_one_line_error(url: str) -> None:
    for value, message in (("many", "neither a number of processes nor 'auto'"), ("0", "at least 1")):
        out = conveyor("worker", "--processes", value, url=url, app=True, timeout=60)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr


@contextlib.contextmanager
def cpu_quota_cgroup(cpus: float) -> Iterator[Path]:
    """A fresh cgroup with a CPU quota of ``cpus``; yields the cgroup.procs file to join it."""
    name = f"conveyor-test-{uuid.uuid4().hex[:8]}"
    if (CPU_V1 / "cpu.cfs_quota_us").exists():
        group = CPU_V1 / name
        settings = {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": str(int(cpus * 100000))}
    elif "cpu" in _read(UNIFIED / "cgroup.subtree_control").split():
        group = UNIFIED / name
        settings = {"cpu.max": f"{int(cpus * 100000)} 100000"}
    else:
        pytest.skip("no cgroup CPU controller this test may use")
    try:
        group.mkdir()
        for file, value in settings.items():
            (group / file).write_text(value)
    except OSError as exc:  # not root, or a read-only /sys/fs/cgroup (an unprivileged container)
        with contextlib.suppress(OSError):
            group.rmdir()
        pytest.skip(f"cannot make a cgroup with a CPU quota here: {exc}")
    try:
        yield group / "cgroup.procs"
    finally:
        # The processes must have left it (exited) before it can go; never hide the test's own
        # failure behind a cleanup error.
        deadline = time.monotonic() + 30
        while True:
            try:
                group.rmdir()
                break
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def test_the_process_pool_sizes_itself_to_the_containers_cpu_quota(tmp_path: Path, url: str) -> None:
    """A Kubernetes ``limits.cpu: 1`` (a cgroup quota) on a host with more cores: one child."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs to tell a quota of one from the host's count")
    with cpu_quota_cgroup(1.0) as procs:
        join = ["sh", "-c", f'echo $$ > {procs} && exec "$@"', "sh"]
        with worker(tmp_path, url, "-P", "processes", prefix=join):
            wait_for(lambda: len(heartbeats()) == 1 and heartbeats()[0].get("pool_processes"), 60)
            pid = int(heartbeats()[0]["pid"])  # type: ignore[call-overload]
            assert cgroup_cpu_quota(Path(f"/proc/{pid}")) == 1.0
            assert len(heartbeats()[0]["pool_processes"]) == 1  # type: ignore[arg-type]
            assert basic.add.delay(1, 1).get(timeout=30) == 2


def test_a_fractional_quota_counts_as_the_next_whole_cpu(tmp_path: Path) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs")
    with cpu_quota_cgroup(0.5) as procs:
        child = subprocess.Popen(["sh", "-c", f"echo $$ > {procs} && exec sleep 60"])
        try:
            wait_for(lambda: cgroup_cpu_quota(Path(f"/proc/{child.pid}")) is not None, 10)
            assert cgroup_cpu_quota(Path(f"/proc/{child.pid}")) == 0.5
            assert usable_cpus(Path(f"/proc/{child.pid}")) == 1
        finally:
            child.kill()
            child.wait(timeout=10)
    if cgroup_cpu_quota() is None:  # this process: no quota of its own, so its affinity decides
        assert usable_cpus() == len(os.sched_getaffinity(0))


def test_a_destination_names_every_process_of_a_processes_command(tmp_path: Path, url: str) -> None:
    """``-n grp@h --processes 2`` runs ``grp.1@h`` and ``grp.2@h``; ``-d grp@h``, the name the
    operator gave, reaches both (``-d grp.2@h`` only that one, and never a worker of another name,
    not even one started alone as ``-n grp.3@h``), and ``health --worker grp@h`` checks both."""
    group = ConveyorProcess(
        url, tmp_path, ["worker", "-l", "info", "--processes", "2", "-n", "grp@h"], "tests.apps.basic", "grp"
    )
    others = [
        ConveyorProcess(
            url, tmp_path, ["worker", "-l", "info", "--processes", "1", "-n", name], "tests.apps.basic", log
        )
        for name, log in (("other@h", "other"), ("grp.3@h", "alone"))
    ]
    try:
        wait_for(lambda: len(heartbeats()) == 4, 60)
        assert sorted(_replies(url, "inspect", "ping")) == ["grp.1@h", "grp.2@h", "grp.3@h", "other@h"]
        assert sorted(_replies(url, "inspect", "ping", "-d", "grp@h")) == ["grp.1@h", "grp.2@h"]
        stats = _replies(url, "inspect", "stats", "-d", "grp.2@h")
        reply = stats.get("grp.2@h")
        assert list(stats) == ["grp.2@h"] and isinstance(reply, dict) and reply["group"] == "grp@h", stats
        probe = conveyor("health", "--worker", "grp@h", url=url)
        assert probe.returncode == 0 and "ok: grp.1@h, grp.2@h are alive and fetching" in probe.stdout, probe
        assert _replies(url, "control", "shutdown", "-d", "grp@h") == {
            "grp.1@h": "shutting down",
            "grp.2@h": "shutting down",
        }
        assert group.proc.wait(timeout=60) == 0  # both processes drained: the command ended
        assert sorted(_replies(url, "inspect", "ping")) == ["grp.3@h", "other@h"]
    finally:
        group.stop()
        assert [other.stop() for other in others] == [0, 0]


def test_a_pid_in_the_name_of_a_processes_command_is_the_commands_own(tmp_path: Path, url: str) -> None:
    """``-n g%i@h --processes 2``: each process names itself with its own pid, but the command's
    name, which ``-d`` addresses, is expanded once, with the command's pid, for both."""
    group = ConveyorProcess(
        url, tmp_path, ["worker", "-l", "info", "--processes", "2", "-n", "g%i@h"], "tests.apps.basic", "g"
    )
    try:
        wait_for(lambda: len(heartbeats()) == 2, 60)
        assert {beat.get("group") for beat in heartbeats()} == {f"g{group.pid}@h"}
        names = sorted(_replies(url, "inspect", "ping", "-d", f"g{group.pid}@h"))
        assert len(names) == 2 and all(n.startswith("g") and n.endswith("@h") for n in names), names
        assert f"g{group.pid}.1@h" not in names  # each process's own name carries its own pid
    finally:
        assert group.stop() == 0
