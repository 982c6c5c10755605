"""A child process told by the kernel when its parent dies (Linux ``PR_SET_PDEATHSIG``).

Both kinds of child the worker forks use it: a ``-P processes`` pool child (SIGKILL: its task
goes back as a worker death) and a ``--processes N`` worker process (SIGTERM: it drains). Each
checks its parent's pid right after, for a parent that died before the call took effect.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys

PR_SET_PDEATHSIG = 1  # prctl(2)


def signal_on_parent_death(signum: int) -> None:
    """Have the kernel send ``signum`` to this process when the thread that forked it exits
    (Linux only; elsewhere, and if the call fails, nothing happens)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            # The process's own symbols include libc's: no find_library (it runs ldconfig in a
            # subprocess, in every fresh child).
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
