"""Running ``conveyor`` as a real subprocess (exit codes, os._exit in ``health``)."""

from __future__ import annotations

import os
import subprocess
import sys

from ..procs import ROOT


def conveyor(
    *args: str, url: str, app: bool = False, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """``conveyor -b URL ARGS`` (with ``-A tests.apps.basic`` when ``app``)."""
    cmd = [sys.executable, "-m", "conveyor", *(["-A", "tests.apps.basic"] if app else []), "-b", url, *args]
    return subprocess.run(
        cmd,
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
