"""Real ``conveyor beat`` / ``conveyor schedule`` processes, and reading what they sent."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from conveyor.beat.lease import current_leader
from conveyor.brokers import broker_from_url

from ..procs import ROOT, wait_for

APP = "tests.apps.beat_app"
SENT = re.compile(r"beat: sent (\S+) for slot (\S+) as (\S+)")


def _env(workdir: Path, extra: dict[str, str] | None) -> dict[str, str]:
    return {**os.environ, "CONVEYOR_TEST_DIR": str(workdir), "PYTHONUNBUFFERED": "1", **(extra or {})}


class BeatProcess:
    """``conveyor -A tests.apps.beat_app -b URL beat`` as a subprocess, logging to a file."""

    def __init__(
        self, broker_url: str, workdir: Path, name: str = "beat", env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.log_path = workdir / f"{name}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()/kill()
        cmd = [sys.executable, "-m", "conveyor", "-A", APP, "-b", broker_url, "beat", "-l", "info"]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=_env(workdir, env), stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 20.0) -> BeatProcess:
        wait_for(lambda: " ready: " in self.log() or self.proc.poll() is not None, timeout)
        assert self.proc.poll() is None, f"beat exited early:\n{self.log()}"
        return self

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log.close()

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout=10)
        self._log.close()
        return code


def conveyor(
    broker_url: str, *args: str, app: str = APP, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one ``conveyor`` command to completion."""
    return subprocess.run(
        [sys.executable, "-m", "conveyor", "-A", app, "-b", broker_url, *args],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def sent_slots(logs: list[str]) -> dict[str, list[float]]:
    """Entry name -> every slot a scheduler logged as sent (duplicates kept), sorted."""
    out: dict[str, list[float]] = defaultdict(list)
    for text in logs:
        for name, slot, _task_id in SENT.findall(text):
            out[name].append(float(slot))
    return {name: sorted(slots) for name, slots in out.items()}


def leader_pid(broker_url: str) -> int | None:
    broker = broker_from_url(broker_url)
    try:
        leader = current_leader(broker)
    finally:
        broker.close()
    return int(leader["pid"]) if leader else None
