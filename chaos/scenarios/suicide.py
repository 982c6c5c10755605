"""A task that SIGKILLs its own worker, enqueued ahead of many innocent tasks so that every
fetch batch holding it also holds innocents.

The poison must reach the dead-letter set after task_max_worker_deaths (5) deaths — about 5
deliveries — and no innocent task may end there with it: an innocent that was merely
prefetched did not kill anyone. A ``--processes 2`` supervisor (``-c 1``, prefetch 16)
replaces the killed children; leases are short (1 s) so the five deaths take seconds.
"""

from __future__ import annotations

from ..context import FAST_LEASE, Ctx
from ..ledger import Allowances, Figures, count_innocents
from ..procs import wait_until
from ..tasks import app, suicide

MAX_DEATHS = 5


def suicide_batch(ctx: Ctx, fig: Figures) -> None:
    poison = suicide.delay()
    # Instant innocents: those outside the poison's batch are all done within the first lease,
    # so every redelivery of the poison goes to an idle child, which takes a full batch.
    innocents = ctx.enqueue_many(48)
    # One task at a time per child (-c 1) but 16 held (prefetch): the innocents that share the
    # poison's batch are only prefetched, never running, when it kills their worker.
    args = ["--processes", "2", "-c", "1", "--prefetch-multiplier", "16"]
    sup = ctx.worker("sup", *args, env=FAST_LEASE, ready=False)
    wait_until(lambda: app.AsyncResult(poison.id).state == "FAILURE", 25.0 if ctx.quick else 40.0, 0.25)
    states = ctx.wait_final(list(innocents), 15.0)
    runs = ctx.runs()
    # Innocents running in a child when the poison killed it may run again: that child was
    # SIGKILLed (by the poison) while they ran.
    allow = Allowances(kills={r.pid: r.start for r in runs.get(poison.id, [])})
    count_innocents(fig, innocents, states, runs, ctx.dead_ids(), allow)
    fig.poison = len(runs.get(poison.id, []))
    fig.check(poison.id in ctx.dead_ids(), "the poison was never dead-lettered")
    fig.check(
        MAX_DEATHS - 1 <= fig.poison <= MAX_DEATHS + 1,
        f"poison ran {fig.poison} times, expected about {MAX_DEATHS}",
    )
    fig.check(sup.alive(), f"supervisor exited with code {sup.proc.poll()}")
    reasons = {d.reason.split(" (")[0] for d in app.broker.dead_letters(limit=1000) if d.id in innocents}
    if reasons:
        fig.notes.append("innocents' dead-letter reason: " + "; ".join(sorted(reasons)))
