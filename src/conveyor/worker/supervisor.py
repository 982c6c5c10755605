"""``conveyor worker --processes N``: N worker processes on one host under one command.

Each child is an ordinary worker (its own event loop, its own leases). The supervisor only
starts them, forwards SIGTERM/SIGINT, and restarts a child that dies unexpectedly — its leased
tasks come back through lease expiry like any dead worker's. A child that exits cleanly (0,
e.g. ``--burst`` on empty queues) is not restarted; the supervisor exits when all have.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from typing import Any

logger = logging.getLogger("conveyor.supervisor")

RESTART_DELAY = 1.0  # pause before restarting a crashed child, so a crash loop cannot spin


def child_argv(argv: list[str]) -> list[str]:
    """``argv`` without ``--processes N`` / ``--processes=N``."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--processes":
            skip = True
            continue
        if arg.startswith("--processes="):
            continue
        out.append(arg)
    return out


class Supervisor:
    def __init__(self, argv: list[str], processes: int) -> None:
        self.cmd = [sys.executable, "-m", "conveyor", *child_argv(argv)]
        self.processes = processes
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self.stopping = 0

    def _spawn(self, index: int) -> None:
        env = {**os.environ, "CONVEYOR_PROCESS_INDEX": str(index)}
        self.children[index] = subprocess.Popen(self.cmd, env=env)
        logger.info("started worker process %d (pid %d)", index, self.children[index].pid)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.stopping += 1
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signum)

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        for index in range(1, self.processes + 1):
            self._spawn(index)
        exit_code = 0
        while self.children:
            time.sleep(0.1)
            for index, child in list(self.children.items()):
                code = child.poll()
                if code is None:
                    continue
                del self.children[index]
                if code == 0 or self.stopping:
                    exit_code = exit_code or code
                    continue
                logger.error(
                    "worker process %d (pid %d) died with exit code %d; restarting", index, child.pid, code
                )
                time.sleep(RESTART_DELAY)
                if not self.stopping:
                    self._spawn(index)
        return exit_code
