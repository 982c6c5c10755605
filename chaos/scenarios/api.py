"""Faults that reach the *caller's* process, not a worker.

- forged-result: a FAILURE result naming ``builtins.SystemExit`` (and the other
  BaseExceptions that are not Exceptions) is stored for a task, as a buggy or hostile
  writer of the broker could. ``AsyncResult.get()`` must raise an ordinary Exception, never
  SystemExit/KeyboardInterrupt/GeneratorExit, which would end or wedge the caller. The result
  is stored through the broker contract itself: lease the job, settle it "ack" with the payload.
- sqlite-disk-full: a producer enqueues onto a SQLite broker whose disk fills up (a 1 MB tmpfs
  when we may mount one, else ``PRAGMA max_page_count`` on the producer's connection). Every
  error it sees must be Conveyor's ``BrokerError``, not a raw ``sqlite3.OperationalError``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from conveyor.brokers import Outcome
from conveyor.exceptions import BrokerError
from conveyor.message import ResultPayload, encode_result

from ..context import Ctx
from ..ledger import Figures
from ..tasks import app, work

FORGED = ["builtins.SystemExit", "builtins.KeyboardInterrupt", "builtins.GeneratorExit"]


def forged_result(ctx: Ctx, fig: Figures) -> None:
    escaped = []
    for name in FORGED:
        result = work.apply_async(queue="forged")
        deliveries = app.broker.fetch(["forged"], "chaos-forger", 1, 30.0, 2.0)
        payload = encode_result(ResultPayload(exc_type=name, exc_message="3"))
        app.broker.settle([Outcome("ack", d.id, d.delivery, "FAILURE", payload) for d in deliveries], 600.0)
        fig.tasks += 1
        try:
            result.get(timeout=5)
        except Exception:
            pass  # the expected outcome: an ordinary exception describing the failure
        except BaseException as exc:  # the fault: the caller is told to exit or was interrupted
            escaped.append(type(exc).__name__)
    fig.poison = len(escaped)
    fig.check(not escaped, "AsyncResult.get() raised " + ", ".join(escaped) + " in the caller")


def _small_disk() -> tuple[Path, bool]:
    """A directory on a 1 MB tmpfs if we may mount one (root), else a plain temp dir."""
    where = Path(tempfile.mkdtemp(prefix="conveyor-chaos-full-"))
    if os.geteuid() == 0 and shutil.which("mount"):
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], capture_output=True, check=False
        )
        if done.returncode == 0:
            return where, True
    return where, False


def sqlite_disk_full(ctx: Ctx, fig: Figures) -> None:
    where, mounted = _small_disk()
    errors: dict[str, int] = {}
    try:
        app.conf.broker_url = f"sqlite:///{where / 'full.db'}"
        if not mounted:  # the same SQLITE_FULL, from a page limit instead of the file system
            db = app.broker._db()  # type: ignore[attr-defined]
            db.execute("PRAGMA max_page_count = 64")
        fig.notes.append("full disk: 1 MB tmpfs" if mounted else "full disk: PRAGMA max_page_count")
        padding = {"pad": "x" * 2000}
        for _ in range(300):  # bounded: a 1 MB disk takes a few hundred of these
            try:
                work.apply_async(args=(0.0,), headers=padding)
                fig.tasks += 1
            except BrokerError:
                errors["BrokerError"] = errors.get("BrokerError", 0) + 1
            except Exception as exc:
                key = f"{type(exc).__module__}.{type(exc).__name__}"
                errors[key] = errors.get(key, 0) + 1
            if sum(errors.values()) >= 3:
                break
    finally:
        app.close()
        if mounted:
            subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)
        with contextlib.suppress(OSError):
            shutil.rmtree(where, ignore_errors=True)
        app.conf.broker_url = ctx.url
    foreign = {k: v for k, v in errors.items() if k != "BrokerError"}
    fig.poison = sum(foreign.values())
    fig.check(bool(errors), "the disk never filled up")
    fig.check(not foreign, "producer saw " + ", ".join(f"{k} x{v}" for k, v in foreign.items()))
    fig.notes.append(f"{fig.tasks} enqueued before the disk filled; errors: {errors}")
