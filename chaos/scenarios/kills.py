"""Workers SIGKILLed from outside.

- sigkill-storm: three workers under a steady producer; every 2.5 s a random one is SIGKILLed
  and a replacement started. Reruns are allowed only for runs whose worker was killed while
  they ran; nothing may be lost, stuck or dead-lettered (an innocent task that sat in the
  prefetch of several killed workers did not kill anyone).
- redelivery: the time from SIGKILLing a worker mid-task to the task's second start on the
  surviving worker, with the default 3 s lease and 1 s heartbeat (README promises < 5 s).
"""

from __future__ import annotations

import random
import time
from functools import partial

from ..context import Ctx, Producer, wait_all_ready
from ..ledger import Allowances, Figures, count_innocents, spread
from ..procs import Worker, wait_until
from ..tasks import work

KILL_EVERY = 2.5
REDELIVERY_PROMISE = 5.0


def sigkill_storm(ctx: Ctx, fig: Figures) -> None:
    rng = random.Random(8)  # the same storm every run
    duration = 12.0 if ctx.quick else 20.0
    live: list[Worker] = [ctx.worker(f"w{i}", "-c", "4") for i in range(3)]
    producer = Producer(rate=20.0, total=int(20.0 * duration), seconds=0.2)
    producer.start()
    allow = Allowances()
    started = time.monotonic()
    kills = 0
    while time.monotonic() - started < duration:
        time.sleep(KILL_EVERY)
        victim = live.pop(rng.randrange(len(live)))
        allow.kills[victim.pid] = victim.kill()
        kills += 1
        live.append(ctx.worker(f"w{kills + 2}", "-c", "4", ready=False))
    producer.join(timeout=60)
    producer.stop()
    states = ctx.wait_final(list(producer.acked), 20.0 if ctx.quick else 30.0)
    count_innocents(fig, producer.acked, states, ctx.runs(), ctx.dead_ids(), allow)
    fig.notes.append(f"{kills} SIGKILLs, one every {KILL_EVERY} s")


def _runs(ctx: Ctx, task_id: str, times: int) -> bool:
    return len(ctx.runs().get(task_id, [])) >= times


def redelivery(ctx: Ctx, fig: Figures) -> None:
    """Two idle workers; a 3 s task starts on one, which is SIGKILLed mid-task, at a random
    moment 0.2-2 s into the run (so the last lease renewal, by the fetch or a heartbeat, is at a
    random distance before the kill, as in production). The sample is the time from the kill
    to the task's second start. A replacement starts right after the kill, so each sample
    begins with two workers again (a later kill may interrupt an earlier rerun: allowed)."""
    rng = random.Random(4)
    samples: list[float] = []
    into: list[float] = []  # how far into its run each task was killed
    allow = Allowances()
    enqueued: dict[str, float] = {}
    live = [ctx.worker("a"), ctx.worker("b")]
    for i in range(3 if ctx.quick else 10):
        result = work.delay(3.0)
        enqueued[result.id] = time.time()
        if not wait_until(partial(_runs, ctx, result.id, 1), 15.0, 0.02):
            fig.failed_checks.append(f"sample {i}: the task never started")
            break
        first = ctx.runs()[result.id][0]
        time.sleep(max(0.0, first.start + rng.uniform(0.2, 2.0) - time.time()))
        victim = next(w for w in live if w.pid == first.pid)
        killed = victim.kill()
        allow.kills[first.pid] = killed
        live.remove(victim)
        live.append(ctx.worker(f"r{i}", ready=False))
        into.append(round(killed - first.start, 3))
        if wait_until(partial(_runs, ctx, result.id, 2), 15.0, 0.02):
            samples.append(ctx.runs()[result.id][1].start - killed)
        else:
            fig.failed_checks.append(f"sample {i}: not redelivered within 15 s")
        wait_all_ready(live)
    states = ctx.wait_final(list(enqueued), 20.0)
    count_innocents(fig, enqueued, states, ctx.runs(), ctx.dead_ids(), allow)
    fig.notes.append("redelivery after SIGKILL: " + spread(samples))
    fig.data["redelivery_seconds"] = [round(s, 3) for s in samples]
    fig.data["killed_seconds_into_run"] = into
    fig.check(
        bool(samples) and max(samples) < REDELIVERY_PROMISE,
        f"a redelivery took {max(samples, default=0):.2f} s (promise: < {REDELIVERY_PROMISE:.0f} s)",
    )
