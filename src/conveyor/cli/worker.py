"""``conveyor worker``."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from typing import Any
from urllib.parse import urlsplit

import click

from ..worker.naming import expand_name
from ..worker.pools import START_METHODS
from ..worker.supervisor import RECYCLED, SHUT_DOWN, Supervisor, flush_output, ignore_stop_signals
from ..worker.worker import POOLS, Worker
from .celery_flags import (
    WORKER_NOTES,
    announce,
    announce_runbook_flags,
    check_optimization,
    check_pool,
    parse_autoscale,
    runbook_flags,
)
from .common import State, import_task_modules, log_options, setup_logging


def _queues(value: str | None) -> list[str] | None:
    if value is None:
        return None
    queues = [q.strip() for q in value.split(",") if q.strip()]
    if not queues:
        raise click.BadParameter("give at least one queue name, e.g. -Q default,polling")
    return queues


class ProcessCount(click.ParamType[int]):
    """``--processes``: a number, or ``auto`` for one per CPU this process may use."""

    name = "N|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        text = str(value).strip().lower()
        if text == "auto":
            from ..worker.cpus import usable_cpus

            return usable_cpus()
        try:
            count = int(text)
        except ValueError:
            self.fail(f"{value!r} is neither a number of processes nor 'auto'", param, ctx)
        if count < 1:
            self.fail(f"{count} is not a number of processes (at least 1, or 'auto')", param, ctx)
        return count


AUTO_POOLS = ("threads", "asyncio")  # the pools whose one process uses one core at most


def default_processes(pool: str, concurrency_set: bool, broker_url: str) -> int:
    """``--processes`` when it is not given: one per CPU this process may use (as Dramatiq and
    Celery start one process per core), for the pools whose one process is held to one core by
    the GIL, unless ``-c`` (or ``--autoscale``, or ``worker_concurrency``) says how many tasks
    run at once: a Celery user's ``-c 4`` means four tasks at once, not four per core.
    ``-P processes`` already has a child per CPU and ``-P solo`` runs one task at a time; a
    ``memory://`` broker lives inside one process. Off Linux it stays one: there a killed
    supervisor cannot take its children with it (no PDEATHSIG), and macOS discourages fork
    without exec.

    >>> default_processes("solo", False, "redis://r")
    1
    """
    if pool not in AUTO_POOLS or concurrency_set or urlsplit(broker_url).scheme.lower() == "memory":
        return 1
    if not sys.platform.startswith("linux"):
        return 1
    from ..worker.cpus import usable_cpus

    return usable_cpus()


@click.command()
@click.option("-Q", "--queues", help="Comma-separated queues to consume (default: task_default_queue).")
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    help="Tasks run at once in each worker process (default: 8 threads, 1 process per CPU, "
    "100 asyncio, 1 solo). Given alone, it also means one worker process, as in Celery.",
)
@click.option(
    "-P",
    "--pool",
    callback=check_pool,
    help=f"How sync tasks run: {', '.join(POOLS)} (prefork = processes; default: threads; "
    "gevent and eventlet are refused with what to use instead).",
)
@click.option(
    "--pool-start-method",
    type=click.Choice(START_METHODS),
    help="-P processes: how children start: fork (default: after the app is imported) or spawn "
    "(a fresh interpreter, for code that is not fork-safe). Default: worker_pool_start_method.",
)
@click.option("-n", "--hostname", help="Worker name; %h = hostname, %n = short hostname, %i = pid.")
@log_options
@click.option(
    "--prefetch-multiplier",
    type=click.IntRange(min=1),
    help="Jobs held at least per slot, more for short tasks (default: worker_prefetch_multiplier = 1).",
)
@click.option(
    "--shutdown-timeout",
    type=click.FloatRange(min=0),
    help="Seconds running tasks may finish after SIGTERM (default: 30).",
)
@click.option("--burst", is_flag=True, help="Exit once the queues are empty (for scripts and tests).")
@click.option(
    "--processes",
    type=ProcessCount(),
    help="Worker processes to run under this command (each with -c slots); auto: one per CPU "
    "this process may use (affinity and container CPU quota). Default: auto for the threads and "
    "asyncio pools on Linux when neither -c, --autoscale nor worker_concurrency is given and the "
    "broker is not memory://, else 1.",
)
@click.option(
    "--pin-cpus/--no-pin-cpus",
    default=None,
    help="Hold worker process N, with all its threads, to the N-th CPU of its affinity mask: more "
    "tiny tasks a second, but a task's subprocesses and native thread pools share that CPU "
    "(default: worker_pin_cpus, off).",
)
@click.option(
    "-B", "--beat", "with_beat", is_flag=True, help="Also run the periodic scheduler (safe on many workers)."
)
@click.option(
    "--max-tasks-per-child",
    type=click.IntRange(min=1),
    help="Replace a worker process (with -P processes: a pool child) after this many tasks "
    "(default: worker_max_tasks_per_child).",
)
@click.option(
    "--max-memory-per-child",
    type=click.IntRange(min=1),
    metavar="KIB",
    help="Replace a worker process (with -P processes: a pool child) after the task that takes "
    "its resident memory past KIB.",
)
@click.option(
    "--autoscale", callback=parse_autoscale, metavar="MAX,MIN", help="Accepted: runs with concurrency MAX."
)
@click.option(
    "-s",
    "--schedule",
    "schedule_file",
    metavar="FILE",
    help="Accepted (with -B): the schedule state lives in the broker, not in a file.",
)
@click.option("-E", "--task-events", is_flag=True, help="Accepted: task states are always recorded.")
@click.option(
    "-O", "optimization", callback=check_optimization, metavar="fair", help="Accepted: always fair."
)
@click.option(
    "--time-limit",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Hard time limit of every task this worker runs that sets none (task_time_limit).",
)
@click.option(
    "--soft-time-limit",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Soft time limit of every task this worker runs that sets none (task_soft_time_limit).",
)
@runbook_flags(WORKER_NOTES, exclude=True)
@click.pass_obj
def worker(
    state: State,
    queues: str | None,
    concurrency: int | None,
    pool: str | None,
    pool_start_method: str | None,
    hostname: str | None,
    loglevel: str,
    logfile: str | None,
    log_format: str,
    prefetch_multiplier: int | None,
    shutdown_timeout: float | None,
    burst: bool,
    processes: int | None,
    pin_cpus: bool | None,
    with_beat: bool,
    max_tasks_per_child: int | None,
    max_memory_per_child: int | None,
    autoscale: int | None,
    schedule_file: str | None,
    task_events: bool,
    optimization: str | None,
    time_limit: float | None,
    soft_time_limit: float | None,
) -> None:
    """Run a worker: fetch tasks from the queues and run them.

    \b
    Example:
      conveyor -A proj worker -Q polling,default -c 8 -P threads -n w1@%h -l info
      conveyor -A proj worker -l info --logfile /var/log/conveyor/worker.log --log-format json
    """
    # The app first: a setup_logging handler it connects replaces Conveyor's setup (Celery's rule).
    state.defer_config_warnings = True  # logged once logging is set up: to --logfile too
    app = state.app
    setup_logging(loglevel, logfile, log_format, state)
    announce(autoscale, task_events, optimization, schedule_file)
    announce_runbook_flags()
    if time_limit is not None:  # as Celery's worker flags: the app's settings for this worker
        app.conf.task_time_limit = time_limit
    if soft_time_limit is not None:
        app.conf.task_soft_time_limit = soft_time_limit
    import_task_modules(app)  # once, before --processes forks: the children inherit the modules
    if autoscale is not None:
        concurrency = autoscale

    # The command's -n name, expanded once here: a %i in it is the command's pid, the same for
    # every one of its processes (each child expands its own name with its own pid).
    group = expand_name(hostname)

    def build(index: int | None) -> Worker:
        name = hostname
        if index is not None:  # one of --processes: tell the processes apart in listings
            base, at, host = (hostname or "worker@%h").partition("@")
            name = f"{base}.{index}{at}{host}"
        w = Worker(
            app,
            queues=_queues(queues),
            concurrency=concurrency,
            pool=pool,
            name=name,
            prefetch_multiplier=prefetch_multiplier,
            burst=burst,
            shutdown_timeout=shutdown_timeout,
            max_tasks=max_tasks_per_child,
            max_memory_kib=max_memory_per_child,
            pool_start_method=pool_start_method,
            group=group if index is not None else None,
        )
        w.pinning_by_command = True  # this command holds its processes to CPUs (or says why not)
        w.freezes_heap = True  # ...and its processes are the worker's own (worker/heap.py)
        return w

    try:
        single = build(None)  # checks every option before anything starts
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if processes is None:
        given = concurrency is not None or app.conf.worker_concurrency is not None
        processes = default_processes(single.pool, given, app.conf.broker())
    beat = None
    if with_beat:  # validated and synced before the worker starts; exit 2 on a bad entry
        from .beat import prepared_scheduler

        beat = prepared_scheduler(app)
    pin = _pin(pin_cpus, app.conf.worker_pin_cpus, single.pool)
    if processes > 1 or single.recycles_itself:
        # A recycling worker runs under the supervisor even alone: it replaces a retired one
        # (with -P processes the worker replaces its own retired children instead).
        # Each child builds its own Worker: its lease-owner id must be unique per process.
        # One scheduler is enough (more would be safe, only redundant): it runs in child 1.
        app.warn_if_broker_url_overridden()  # here, once: not by each child opening its broker
        app.close()  # no broker connection may cross the fork: each child opens its own
        supervisor = Supervisor(
            lambda index: _run(
                build(index if processes > 1 else None), beat if index == 1 else None, supervised=True
            ),
            processes,
            replace_clean_exits=not burst,  # a burst worker exits 0 when the queues are empty
            pin=pin,
            early_replacement=beat is None,  # (see Supervisor.early_replacement)
        )
        sys.exit(supervisor.run())
    if pin:  # one process: held to the first CPU of its mask
        from ..worker.cpus import cpu_for, pin_process

        cpu = cpu_for(1)
        if cpu is not None:
            pin_process(cpu)
            logging.getLogger("conveyor.worker").info("worker process %d on CPU %d", os.getpid(), cpu)
    _run(single, beat)


def _pin(flag: bool | None, setting: bool, pool: str) -> bool:
    """Whether to hold each worker process to a CPU (worker/cpus.py). Asked for where it cannot
    be done: said in one line, naming the flag or the setting that asked, not ignored. Never
    under ``-P processes``: its pool children would inherit their worker's one CPU, and share it."""
    asked = setting if flag is None else flag
    if not asked:
        return False
    source = "--pin-cpus" if flag else "worker_pin_cpus = True"
    log = logging.getLogger("conveyor.worker")
    if pool == "processes":
        log.warning("%s: -P processes children would all share one CPU; not pinned", source)
        return False
    if not hasattr(os, "sched_setaffinity"):
        log.warning("%s: this platform cannot hold a process to a CPU; not pinned", source)
        return False
    return True


def _run(w: Worker, beat: Any, supervised: bool = False) -> None:
    try:
        if beat is not None:
            from .beat import BeatThread

            scheduler: contextlib.AbstractContextManager[Any] = BeatThread(beat)
        else:
            scheduler = contextlib.nullcontext()
        with scheduler:
            w.run()
            if supervised:
                ignore_stop_signals()
    except BaseException:
        # The worker's loop crashed (logged by Worker.run). Exit now: threads still running
        # tasks would keep the process alive but idle; the leases return its tasks.
        traceback.print_exc()
        flush_output()
        os._exit(1)
    flush_output()  # a reader gone from a piped output must not change a supervised child's exit code
    code = RECYCLED if w.recycled else 0  # the supervisor starts a fresh process in its place
    if w.pool_broken:
        code = 1  # its -P processes children cannot start: a failure, for the operator to see
    if supervised and w.shut_down:
        code = SHUT_DOWN  # a control shutdown: the supervisor must not replace this process
    if w.stuck_threads or w.unreported:
        # Threads still running abandoned tasks, or still waiting on a broker that does not
        # answer (a locked SQLite file, a Redis that drops packets), would block interpreter
        # exit; their jobs went back to the queue already, or come back when their leases expire.
        os._exit(code)
    if code:
        sys.exit(code)
