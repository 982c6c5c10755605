"""A holder killed with SIGKILL never blocks anyone for longer than its lock's timeout (+ slack),
with real worker processes and real signals, on the brokers processes can share."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from conveyor import Conveyor

from ..apps import coord_tasks as t
from ..procs import ROOT, WorkerProcess, lines, wait_for

SLACK = 5.0  # the guarantee: freed within the lock's timeout + 5 s


def worker(url: str, tmp_path: Path, name: str) -> WorkerProcess:
    return WorkerProcess(url, tmp_path, "--shutdown-timeout", "1", app="tests.apps.coord_tasks", name=name)


def test_sigkilled_task_lock_holder_frees_the_lock_within_lock_timeout(
    coord_shared: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """hold_forever: lock "holder", lock_timeout=2 s, at-most-once (the killed run is not re-run,
    so only the lock's expiry can free it for the next job)."""
    doomed = worker(process_broker_url, tmp_path, "doomed").wait_ready()
    t.hold_forever.delay("first")
    wait_for(lambda: lines(tmp_path / "holding"), 15)
    survivor = worker(process_broker_url, tmp_path, "survivor").wait_ready()
    try:
        t.hold_forever.delay("second")  # waits for the lock (on_locked="wait")
        time.sleep(3.0)  # longer than lock_timeout: renewal keeps the live holder's lock
        assert [line.split()[0] for line in lines(tmp_path / "holding")] == ["first"]
        [held] = coord_shared.locks()
        doomed.kill()
        killed_at = time.monotonic()
        wait_for(lambda: len(lines(tmp_path / "holding")) == 2, 2.0 + SLACK + 5)
        recovered_after = time.monotonic() - killed_at
        assert recovered_after <= 2.0 + SLACK, f"lock freed {recovered_after:.1f}s after SIGKILL"
        assert lines(tmp_path / "holding")[1].split() == ["second", str(survivor.pid)]
        [now_held] = coord_shared.locks()
        assert now_held.fence > held.fence
    finally:
        survivor.kill()
        doomed.kill()


def test_a_redelivered_task_takes_over_its_own_lock_without_waiting_out_the_timeout(
    coord_shared: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """hold_then_finish: lock_timeout=60 s. Its worker is killed; the job is redelivered (lease:
    3 s) and must take over the lock its dead run still holds, not wait 60 s for it."""
    doomed = worker(process_broker_url, tmp_path, "doomed").wait_ready()
    result = t.hold_then_finish.delay("x")
    wait_for(lambda: lines(tmp_path / "takeover"), 15)
    [before] = coord_shared.locks()
    survivor = worker(process_broker_url, tmp_path, "survivor").wait_ready()
    try:
        doomed.kill()
        killed_at = time.monotonic()
        assert result.get(timeout=20) == "x"
        assert time.monotonic() - killed_at < 15, "the redelivery waited for the dead run's lock to expire"
        assert len(lines(tmp_path / "takeover")) == 2
        wait_for(lambda: coord_shared.locks() == [], 5)
        with coord_shared.lock("takeover", timeout=5) as lock:
            assert lock.fence > before.fence + 1  # the takeover took a fence of its own
    finally:
        survivor.stop()


def test_sigkilled_concurrency_slot_holder_frees_its_slot_within_lock_timeout(
    coord_shared: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """hold_slot: concurrency_limit=1, lock_timeout=2 s, at-most-once."""
    doomed = worker(process_broker_url, tmp_path, "doomed").wait_ready()
    t.hold_slot.delay("first")
    wait_for(lambda: lines(tmp_path / "slot"), 15)
    survivor = worker(process_broker_url, tmp_path, "survivor").wait_ready()
    try:
        t.hold_slot.delay("second")
        time.sleep(1.0)
        assert len(lines(tmp_path / "slot")) == 1
        doomed.kill()
        killed_at = time.monotonic()
        wait_for(lambda: len(lines(tmp_path / "slot")) == 2, 2.0 + SLACK + 5)
        assert time.monotonic() - killed_at <= 2.0 + SLACK
        assert lines(tmp_path / "slot")[1].split() == ["second", str(survivor.pid)]
    finally:
        survivor.kill()
        doomed.kill()


HOLDER = textwrap.dedent(
    """
    import sys, time
    from conveyor import Conveyor
    app = Conveyor("holder", broker=sys.argv[1])
    lock = app.lock("plain", timeout=2, auto_renew=True)
    assert lock.acquire(blocking=False)
    print("held", lock.fence, flush=True)
    time.sleep(600)
    """
)


def test_sigkilled_plain_lock_holder_with_auto_renew_frees_the_lock_within_its_timeout(
    coord_shared: Conveyor, process_broker_url: str
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, process_broker_url], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().startswith("held")
        time.sleep(3.0)  # past its 2 s timeout: auto_renew keeps it
        assert coord_shared.lock("plain").locked()
        holder.kill()
        holder.wait(10)
        killed_at = time.monotonic()
        with coord_shared.lock("plain", timeout=5, blocking_timeout=2.0 + SLACK):
            assert time.monotonic() - killed_at <= 2.0 + SLACK
    finally:
        holder.kill()
        holder.wait(10)
