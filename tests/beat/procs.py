"""Real ``conveyor beat`` / ``conveyor schedule`` processes, and reading what they sent."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from conveyor.beat.lease import current_leader
from conveyor.brokers import broker_from_url

from ..procs import ROOT, ConveyorProcess

APP = "tests.apps.beat_app"
SENT = re.compile(r"beat: sent (\S+) for slot (\S+) as (\S+)")


class BeatProcess(ConveyorProcess):
    """``conveyor -A tests.apps.beat_app -b URL beat`` as a subprocess."""

    def __init__(
        self, broker_url: str, workdir: Path, name: str = "beat", env: dict[str, str] | None = None
    ) -> None:
        super().__init__(broker_url, workdir, ["beat", "-l", "info"], APP, name, env)

    def stop(self, timeout: float = 15.0) -> int:
        return super().stop(timeout)


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
