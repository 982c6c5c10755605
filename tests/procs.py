"""Real worker processes for crash and signal tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parent.parent


def process_env(workdir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "CONVEYOR_TEST_DIR": str(workdir), "PYTHONUNBUFFERED": "1", **(extra or {})}


# Every process started, in order: conftest's ``no_process_outlives_its_test`` kills those a
# test started and left running (a test that fails before its ``stop()``), so they cannot take
# the next test's tasks from the broker it shares.
STARTED: list[ConveyorProcess] = []


class ConveyorProcess:
    """A long-running ``conveyor -A APP -b URL COMMAND ...`` subprocess, logging to a file."""

    def __init__(
        self,
        broker_url: str,
        workdir: Path,
        command: list[str],
        app: str,
        name: str,
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> None:
        self.name = name
        self.log_path = workdir / f"{name}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()/kill()
        cmd = [sys.executable, "-m", "conveyor", "-A", app, "-b", broker_url, *command]
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, env=process_env(workdir, env), stdout=self._log, stderr=subprocess.STDOUT
        )
        STARTED.append(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 20.0) -> Self:
        wait_for(lambda: " ready: " in self.log() or self.proc.poll() is not None, timeout)
        assert self.proc.poll() is None, f"{self.name} exited early:\n{self.log()}"
        return self

    def signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log.close()

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout=10)
        self._log.close()
        return code


class WorkerProcess(ConveyorProcess):
    """``conveyor -A tests.apps.basic worker`` as a subprocess."""

    def __init__(
        self,
        broker_url: str,
        workdir: Path,
        *args: str,
        app: str = "tests.apps.basic",
        env: dict[str, str] | None = None,
        name: str = "w",
    ) -> None:
        # One process unless the test asks for more: its pid is the worker's, and a signal or a
        # kill reaches the process that runs the tasks (no flags would start one per CPU).
        one = [] if "--processes" in args else ["--processes", "1"]
        command = ["worker", "-l", "info", "-n", f"{name}@%h", *one, *args]
        super().__init__(broker_url, workdir, command, app, name, env)


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.02) -> None:
    """Wait until ``predicate()`` is truthy; fail the test with a clear message otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def assert_stopped_at(traceback: str | None, task_file: str, source: str) -> None:
    """A run the worker stopped from outside (a hard time limit): its traceback starts at the
    task's own code and ends on ``source``, the line the body was on at that moment."""
    assert_starts_at_the_task(traceback, task_file)
    lines = (traceback or "").strip().splitlines()
    assert len(lines) >= 2 and lines[-2].strip() == source, traceback


def assert_starts_at_the_task(traceback: str | None, task_file: str) -> None:
    """A stored traceback's first frame is the task's own code, not the worker's way into it."""
    frames = [line for line in (traceback or "").splitlines() if line.lstrip().startswith('File "')]
    assert frames and task_file in frames[0], traceback
    assert not any("/conveyor/worker/" in f for f in frames), traceback
