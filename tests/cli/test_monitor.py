"""``conveyor monitor``: one snapshot with real workers and tasks on SQLite and Redis, and the
live view under a real pseudo-terminal (keys, Ctrl-C, a broker outage, the terminal restored)."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from conveyor import Conveyor
from conveyor.admin import QueueInfo, WorkerInfo
from conveyor.cli.monitor.sample import Rates, Reading, Snapshot, rates
from conveyor.cli.monitor.view import render

from ..apps import basic
from ..procs import ROOT, WorkerProcess, wait_for
from ..redis_server import RedisServer, free_port
from .helpers import conveyor

LEAVE_ALTERNATE_SCREEN = b"\x1b[?1049l"


@pytest.fixture
def app(process_broker_url: str) -> Iterator[Conveyor]:
    basic.app.conf.broker_url = process_broker_url
    yield basic.app
    basic.app.close()


def test_monitor_has_help_with_an_example_and_refuses_bad_flags(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    out = conveyor("monitor", "--help", url=url)
    assert out.returncode == 0 and "Example" in out.stdout and "--once" in out.stdout
    bad = conveyor("monitor", "--interval", "soon", url=url)
    assert bad.returncode == 2 and "'soon' is not a valid float" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_monitor_exits_1_with_one_line_when_the_broker_is_unreachable_at_start() -> None:
    out = conveyor("monitor", url=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    assert out.returncode == 1, out
    assert "unreachable" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_once_shows_workers_queues_running_tasks_and_failures_within_80_columns(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    worker = WorkerProcess(process_broker_url, tmp_path, "-Q", "default,mail", name="mon").wait_ready()
    try:
        running = basic.sleeper.delay(30.0)
        failed = basic.boom.delay()
        basic.add.apply_async(args=(1, 2), queue="mail", countdown=600)  # delayed
        wait_for(lambda: running.id[:8] in _once(process_broker_url).stdout, 15)
        wait_for(lambda: failed.id[:8] in _once(process_broker_url).stdout, 15)
        out = _once(process_broker_url)
        assert out.returncode == 0, out
        lines = out.stdout.splitlines()
        assert all(len(line.rstrip()) <= 80 for line in lines), out.stdout
        assert any(line.startswith("mon@") and f" {worker.pid} " in line for line in lines), out.stdout
        [mail] = [line.split() for line in lines if line.startswith("mail ")]
        assert mail[1:3] == ["0", "1"]  # ready 0, delayed 1
        [task] = [line for line in lines if line.startswith(running.id[:8])]
        assert "sleeper" in task and "mon@" in task
        [failure] = [line for line in lines if failed.id[:8] in line]
        assert "boom" in failure and "ValueError" in failure
        snapshot = json.loads(conveyor("monitor", "--json", url=process_broker_url).stdout)
        assert [t["id"] for t in snapshot["running"]] == [running.id]
        assert [f["id"] for f in snapshot["failures"]] == [failed.id]
    finally:
        worker.kill()


def _worker(name: str, processed: int) -> WorkerInfo:
    return WorkerInfo(name, name, "web-1", 1, ("default",), "threads", 8, 0.0, 0.0, processed)


def _snapshot(clock: float, workers: list[WorkerInfo], queues: list[QueueInfo]) -> Snapshot:
    return Snapshot(clock, clock, tuple(workers), tuple(queues), (), ())


def test_rates_come_from_two_successive_snapshots() -> None:
    before = _snapshot(100.0, [_worker("w1", 10), _worker("w2", 5)], [QueueInfo("default", 50, 0, 8)])
    after = _snapshot(102.0, [_worker("w1", 30), _worker("w3", 99)], [QueueInfo("default", 30, 2, 8)])
    found = rates(before, after)
    assert found.workers == {"w1": 10.0}  # w3 is new: its count is not two seconds' work
    assert found.queues == {"default": -9.0}  # 58 unfinished -> 40: draining at 9/s
    assert found.processed == 10.0
    assert rates(None, after) == Rates()


def test_a_screen_too_short_for_every_row_shows_each_table_cut_with_a_count() -> None:
    workers = [_worker(f"worker-{i}@a-rather-long-host-name.example.com", i) for i in range(30)]
    queues = [QueueInfo(f"queue-{i}", i, 0, 0) for i in range(30)]
    reading = Reading(_snapshot(0.0, workers, queues), Rates())
    console = Console(width=80, height=24, record=True, force_terminal=False)
    console.print(render(reading, "sqlite:///x.db", 80, 24))
    lines = console.export_text().splitlines()
    assert len(lines) <= 24 and all(len(line.rstrip()) <= 80 for line in lines)
    assert sum("more" in line for line in lines) == 2 and "worker-0@" in lines[4]


class PtyMonitor:
    """``conveyor monitor`` on the slave side of a real pseudo-terminal (80x24) that is its
    controlling terminal, so Ctrl-C typed into the master is a real SIGINT. The slave stays
    open here so its settings can be compared after the monitor exits."""

    def __init__(self, url: str) -> None:
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.settings_before = termios.tcgetattr(self.slave)
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "-b", url, "monitor", "--interval", "0.5"],
            cwd=ROOT,
            env={**env, "TERM": "xterm-256color"},
            stdin=self.slave,
            stdout=self.slave,
            stderr=self.slave,
            preexec_fn=_controlling_terminal,  # noqa: PLW1509 - the child runs no threads yet
        )
        self.output = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: every slave fd is closed
                return
            if not data:
                return
            self.output += data

    def seen(self, text: str) -> bool:
        return text.encode() in self.output

    def last_frame(self, since: int = 0) -> str:
        """The last screen drawn completely after byte ``since`` of the output: each refresh
        starts by moving the cursor home."""
        frames = bytes(self.output[since:]).split(b"\x1b[H")
        return frames[-2].decode(errors="replace") if len(frames) > 2 else ""

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def wait(self) -> int:
        try:
            return self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        os.close(self.slave)
        self._reader.join(timeout=5)
        os.close(self.master)


def _controlling_terminal() -> None:
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    # Ctrl-C as in a fresh terminal: a disposition (SIG_IGN) or a blocked mask left in this
    # test process by another test would be inherited across exec, and the monitor would then
    # never see the SIGINT this test types (Python installs KeyboardInterrupt only over SIG_DFL).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def test_live_view_renders_in_a_terminal_survives_a_broker_outage_and_quits_on_q(tmp_path: Path) -> None:
    server = RedisServer().start()
    worker = WorkerProcess(server.url, tmp_path, name="live").wait_ready()
    monitor = PtyMonitor(server.url)
    try:
        wait_for(lambda: monitor.seen("live@"), 20)
        assert monitor.seen("Workers") and monitor.seen("q: quit")
        wait_for(lambda: termios.tcgetattr(monitor.slave)[3] & termios.ICANON == 0, 10)  # cbreak
        server.stop()
        wait_for(lambda: monitor.seen("broker error since"), 20)
        assert monitor.proc.poll() is None  # still running, still drawing
        server.start()  # same port: the next read succeeds and the error line goes
        back = len(monitor.output)
        wait_for(lambda: "Workers" in (frame := monitor.last_frame(back)) and "broker error" not in frame, 20)
        monitor.type(b"q")
        assert monitor.wait() == 0
        assert LEAVE_ALTERNATE_SCREEN in monitor.output and b"Traceback" not in monitor.output
        assert termios.tcgetattr(monitor.slave) == monitor.settings_before  # echo, line mode back
    finally:
        monitor.close()
        worker.kill()
        server.cleanup()


def test_ctrl_c_quits_the_live_view_with_exit_0_and_restores_the_terminal(tmp_path: Path) -> None:
    monitor = PtyMonitor(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        wait_for(lambda: monitor.seen("no workers online"), 20)
        wait_for(lambda: termios.tcgetattr(monitor.slave)[3] & termios.ICANON == 0, 10)
        monitor.type(b"\x03")  # the terminal turns it into SIGINT for the monitor
        assert monitor.wait() == 0
        assert LEAVE_ALTERNATE_SCREEN in monitor.output and b"Traceback" not in monitor.output
        assert termios.tcgetattr(monitor.slave) == monitor.settings_before
    finally:
        monitor.close()


def _once(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", "-b", url, "monitor", "--once"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "COLUMNS": "80", "PYTHONUNBUFFERED": "1"},
        check=False,
    )
