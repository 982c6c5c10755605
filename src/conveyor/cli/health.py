"""``conveyor health``: an exec probe for Kubernetes and Docker that exits within a second.

It reads the broker only (heartbeat records): the app's broker with ``-A`` (its own setting,
as its workers see it), else ``-b`` or $CONVEYOR_BROKER_URL without importing any task module
(the cheapest probe); ``-b`` wins over ``-A``. It gives the broker ``--timeout`` seconds to
answer: a probe that hangs on an unreachable broker would be killed by the kubelet with a less
useful message, and Docker's HEALTHCHECK would pile probes up.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time

import click

from ..admin import Admin, UnknownWorker, WorkerInfo
from ..admin.health import MAX_FETCH_AGE, check, problem
from ..worker.supervisor import flush_output
from .common import State


@click.command("health")
@click.option("--worker", "worker_name", metavar="NAME", help="Check this worker (-n name, e.g. w1@web-1).")
@click.option("--local", is_flag=True, help="Check the worker(s) running on this host (or pod).")
@click.option(
    "-Q",
    "--queue",
    "queues",
    multiple=True,
    metavar="NAME",
    help="Check that a live, fetching worker consumes this queue (repeatable).",
)
@click.option(
    "-t",
    "--timeout",
    type=click.FloatRange(min=0.05, max=10.0),
    default=0.5,
    show_default=True,
    help="Seconds the broker may take to answer.",
)
@click.option(
    "--max-fetch-age",
    type=click.FloatRange(min=1.0),
    default=MAX_FETCH_AGE,
    show_default=True,
    help="Seconds a fetching worker may go without an answer to a fetch.",
)
@click.pass_obj
def health(
    state: State,
    worker_name: str | None,
    local: bool,
    queues: tuple[str, ...],
    timeout: float,
    max_fetch_age: float,
) -> None:
    """Exit 0 if healthy, 1 (with a one-line reason) if not.

    Without options: the broker answers. With --worker NAME or --local: that worker is alive
    (heartbeat within its lease) and fetching (its fetch loop got a broker answer within
    --max-fetch-age seconds, or it is busy or paused on purpose). A worker alive but idle
    because its broker connection died fails the probe. With -Q NAME: a live, fetching worker
    consumes that queue (tasks routed there would otherwise wait for ever).

    \b
    Example (Kubernetes livenessProbe, see docs/operations.md):
      conveyor -b redis://redis:6379/0 health --local
      ok: w1@web-1 is alive and fetching
    """
    if sum((bool(worker_name), local, bool(queues))) > 1:
        raise click.UsageError("give one of --worker NAME, --local or --queue NAME")
    outcome: list[tuple[int, str]] = []
    if state.app_spec and not state.broker:
        state.app  # noqa: B018 - imported before the broker's --timeout starts counting

    def check() -> None:
        try:
            admin = state.admin(import_app=False)
            outcome.append(
                _check_queues(admin, queues, max_fetch_age)
                if queues
                else _check(admin, worker_name, local, max_fetch_age)
            )
        except click.UsageError as exc:
            outcome.append((2, f"Error: {exc.format_message()}"))
        except Exception as exc:
            outcome.append((1, f"unhealthy: broker unreachable: {exc}"))
        finally:
            with contextlib.suppress(Exception):  # a clean disconnect, if the broker lets us
                state.close()

    thread = threading.Thread(target=check, daemon=True)
    thread.start()
    thread.join(timeout)
    code, message = outcome[0] if outcome else (1, f"unhealthy: broker did not answer within {timeout}s")
    click.echo(message, err=code != 0)
    flush_output()
    os._exit(code)  # at once: a broker call still hanging in the thread must not delay the exit


def _check(admin: Admin, worker_name: str | None, local: bool, max_fetch_age: float) -> tuple[int, str]:
    if not worker_name and not local:
        admin.broker.workers()  # one round trip: the broker answers
        return 0, "ok: broker answers"
    now = time.time()
    workers = _chosen(admin, worker_name)
    if not workers:
        return 1, f"unhealthy: no worker on this host ({socket.gethostname()}) heartbeats"
    live = [w for w in workers if not w.gone]
    problems = [p for w in (live or workers) if (p := problem(w, now, max_fetch_age)) is not None]
    if problems:
        return 1, "unhealthy: " + "; ".join(problems)
    return 0, "ok: " + ", ".join(w.hostname for w in live) + (" is" if len(live) == 1 else " are") + (
        " alive and fetching"
    )


def _check_queues(admin: Admin, queues: tuple[str, ...], max_fetch_age: float) -> tuple[int, str]:
    report = check(admin, list(queues), max_fetch_age)
    failing = [p for p in report["problems"] if any(p.startswith(f"queue {q!r}:") for q in queues)]
    if failing:
        return 1, "unhealthy: " + "; ".join(failing)
    found = report["queues"]
    served = [
        f"{q} ({', '.join(found[q]['workers'])}{'; paused' if found[q]['paused'] else ''})" for q in queues
    ]
    return 0, "ok: consumed: " + ", ".join(served)


def _chosen(admin: Admin, worker_name: str | None) -> list[WorkerInfo]:
    if worker_name:
        try:
            return [admin.worker(worker_name)]
        except UnknownWorker as exc:
            # The -n name of a --processes N command (w1@host): every one of its processes,
            # each by its newest heartbeat (a replaced process heartbeats under the same name).
            newest: dict[str, WorkerInfo] = {}
            for w in admin.workers(include_gone=True):
                if w.answers_to(worker_name) and (
                    w.hostname not in newest or w.heartbeat > newest[w.hostname].heartbeat
                ):
                    newest[w.hostname] = w
            if not newest:
                raise click.UsageError(str(exc)) from exc
            return sorted(newest.values(), key=lambda w: w.hostname)
    host = socket.gethostname()
    return [w for w in admin.workers(include_gone=True) if w.host == host]
