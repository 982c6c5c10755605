"""Beat and the admin API across a Sentinel failover, with real processes: a primary, two
replicas and three sentinels (tests/redis_ha.py), a ``conveyor beat`` process sending a slot a
second, a worker running them, SIGKILL of the primary. The scheduler goes on sending on the
promoted replica without sending any slot twice, and ``conveyor status`` / ``conveyor queues``
answer on the new primary."""

from __future__ import annotations

import time
from pathlib import Path

from ..beat.helpers import duplicates
from ..beat.procs import APP, BeatProcess, conveyor, sent_slots
from ..procs import WorkerProcess, wait_for
from ..redis_ha import SentinelTopology

ANSWER_BOUND = 10.0  # seconds after the promotion within which the admin commands answer


def _answers(url: str, *command: str) -> bool:
    """The command exits 0 (``status``: the worker answered the ping through the broker)."""
    out = conveyor(url, *command)
    return out.returncode == 0 and bool(out.stdout.strip())


def test_beat_and_the_admin_api_carry_on_across_a_sentinel_failover_without_sending_a_slot_twice(
    tmp_path: Path,
) -> None:
    topology = SentinelTopology(replicas=2)
    url = topology.url("wait_replicas=1&wait_timeout_ms=2000")
    beat = BeatProcess(url, tmp_path)
    worker = WorkerProcess(url, tmp_path, "-Q", "default,polling", app=APP, name="w")
    try:
        beat.wait_ready(60)
        worker.wait_ready(60)
        wait_for(lambda: len(sent_slots([beat.log()]).get("tick", [])) >= 3, 30)
        assert _answers(url, "status") and _answers(url, "queues")
        old = topology.kill_primary().port
        topology.wait_for_failover(old)
        promoted_at = time.monotonic()
        sent_before = len(sent_slots([beat.log()]).get("tick", []))
        # The admin API (what `conveyor status` and `conveyor queues` stand on) answers on the
        # new primary: each command connects afresh through the sentinels.
        wait_for(lambda: _answers(url, "status") and _answers(url, "queues"), ANSWER_BOUND, interval=0.5)
        answered_in = time.monotonic() - promoted_at
        # Beat keeps sending, on the new primary.
        wait_for(lambda: len(sent_slots([beat.log()]).get("tick", [])) >= sent_before + 5, 30)
        status = conveyor(url, "status")
        assert status.returncode == 0, status.stderr
        assert beat.proc.poll() is None, beat.log()
        assert worker.proc.poll() is None, worker.log()
    finally:
        beat.stop()
        worker.stop()
        topology.cleanup()
    ticks = sent_slots([beat.log()])["tick"]
    assert not duplicates(ticks), f"slots sent twice across the failover: {duplicates(ticks)}"
    # catch_up="all": every slot between the first and the last was sent, none skipped.
    grid = round(ticks[-1] - ticks[0]) + 1
    assert len(ticks) == grid, f"{grid - len(ticks)} slots never sent"
    print(f"\nadmin answered {answered_in:.1f}s after the promotion; {len(ticks)} slots, each once")
