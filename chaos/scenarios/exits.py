"""Tasks that end their process's Python: ``sys.exit(3)`` and ``raise KeyboardInterrupt`` on the
default thread pool, alone and while a long innocent task runs on the same worker; and a
``--processes 2`` child that exits with code 0 unasked.

A task raising SystemExit or KeyboardInterrupt is a *failed task*: it must be reported FAILURE
and the worker must keep processing the tasks that come after it (one worker, no spare to hide
a dead one). A supervisor child that exits by itself — even with code 0 — must be replaced.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..context import FAST_LEASE, Ctx
from ..ledger import Allowances, Figures, count_innocents
from ..procs import wait_until
from ..tasks import app, exit_now, exit_task, interrupt_task, work

LATER = 5
LONG_TASK = 4.0  # seconds the innocent "busy" task runs


def _exit_run(ctx: Ctx, fig: Figures, trigger: str, busy: bool) -> None:
    worker = ctx.worker("w1", "-c", "4")
    innocents: dict[str, float] = {}
    if busy:
        innocents[work.delay(LONG_TASK).id] = time.time()
        time.sleep(0.5)  # the long task is running when the poison arrives
    poison = exit_task.delay(3) if trigger == "sys-exit" else interrupt_task.delay()
    time.sleep(0.5)
    later = ctx.enqueue_many(LATER)
    innocents.update(later)
    # The window ends early if the worker died: nothing else would run the later tasks.
    window = (LONG_TASK if busy else 0.0) + (5.0 if ctx.quick else 8.0)
    states = ctx.wait_final(list(innocents), window, hopeless=lambda: not worker.alive())
    runs = ctx.runs()
    count_innocents(fig, innocents, states, runs, ctx.dead_ids())
    fig.poison = len(runs.get(poison.id, []))
    fig.check(worker.alive(), f"worker exited with code {worker.proc.poll()}")
    poison_state = app.AsyncResult(poison.id).state
    fig.check(poison_state == "FAILURE", f"poison state {poison_state}, not FAILURE")
    done_later = sum(1 for task_id in later if states.get(task_id) == "SUCCESS")
    fig.check(done_later == LATER, f"worker processed {done_later}/{LATER} later tasks")


def sys_exit_alone(ctx: Ctx, fig: Figures) -> None:
    _exit_run(ctx, fig, "sys-exit", busy=False)


def sys_exit_busy(ctx: Ctx, fig: Figures) -> None:
    _exit_run(ctx, fig, "sys-exit", busy=True)


def keyboard_interrupt_alone(ctx: Ctx, fig: Figures) -> None:
    _exit_run(ctx, fig, "keyboard-interrupt", busy=False)


def keyboard_interrupt_busy(ctx: Ctx, fig: Figures) -> None:
    _exit_run(ctx, fig, "keyboard-interrupt", busy=True)


def children_of(pid: int) -> list[int]:
    """Live (non-zombie) child processes of ``pid``, from /proc."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def supervisor_exit_zero(ctx: Ctx, fig: Figures) -> None:
    """``--processes 2``; a task calls ``os._exit(0)``: its child must be replaced each time, and
    the task dead-lettered after task_max_worker_deaths deaths (short leases, to be quick)."""
    sup = ctx.worker("sup", "--processes", "2", "-c", "2", env=FAST_LEASE, ready=False)
    wait_until(lambda: sup.log().count(" ready: ") >= 2, 30.0)
    poison = exit_now.delay(0)
    time.sleep(1.0)
    innocents = ctx.enqueue_many(LATER)
    # Each death costs a lease expiry (1 s) plus the supervisor's restart delay (1 s).
    wait_until(
        lambda: app.AsyncResult(poison.id).state == "FAILURE" or not sup.alive(),
        12.0 if ctx.quick else 20.0,
        0.25,
    )
    states = ctx.wait_final(list(innocents), 10.0, hopeless=lambda: not sup.alive())
    runs = ctx.runs()
    # An innocent task running in a child that the poison ended may run again.
    allow = Allowances(kills={r.pid: r.start for r in runs.get(poison.id, [])})
    count_innocents(fig, innocents, states, runs, ctx.dead_ids(), allow)
    fig.poison = len(runs.get(poison.id, []))
    # A replacement comes RESTART_DELAY (1 s) after a death: give it a few seconds to appear.
    wait_until(lambda: len(children_of(sup.pid)) == 2 or not sup.alive(), 5.0, 0.1)
    children = children_of(sup.pid) if sup.alive() else []
    fig.check(sup.alive(), f"supervisor exited with code {sup.proc.poll()}")
    fig.check(len(children) == 2, f"{len(children)}/2 worker children alive at the end")
    fig.check(app.AsyncResult(poison.id).state == "FAILURE", "os._exit(0) task never reported FAILURE")
    fig.notes.append(f"supervisor log: {sup.log().count('restarting')} restart(s)")
