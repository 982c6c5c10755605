"""The worker process: its lifecycle, and the wiring of the parts that do the work.

    fetcher ──(leased deliveries)──> inbox ──> processor x concurrency ──> reporter ──> settler ──> broker
       ▲                                          │ runners: inline | thread | async
       └── room (held < prefetch target) <────────┘         keeper thread: heartbeats, reclaims

Each part has its own file: fetcher.py (fetch loop, prefetch, what this worker holds),
processor.py (one delivery from intake to outcome), intake.py (decode and check), plan.py (a
task's settings and runner, resolved once), runners.py (one runner per pool), slots.py (the
threads pool's slot threads), reporter.py (outcome, stats, log line), settler.py (batched
settles), keeper.py (heartbeats, reclaims).

Graceful shutdown (SIGTERM/SIGINT): stop fetching, give prefetched jobs back at once, let
running tasks finish for ``worker_shutdown_timeout`` seconds, give back what is still running.
Outcomes the broker has not taken yet are retried until that grace period ends (and for at
least ``FINAL_FLUSH`` seconds after the last task), then given up: with the broker gone the
worker still exits, and the broker takes those jobs back when their leases expire.
A second signal (a second or more after the first) exits at once; the leases expire and other
workers take over. The same drain
retires a worker that reached ``worker_max_tasks_per_child`` or ``worker_max_memory_per_child``
(recycle.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any

from ..brokers import Outcome
from ..canvas.continuations import chord_results_into, continuation
from ..canvas.lost import lost_continuation
from ..codecs import check_sendable
from ..coordination.pauses import paused_queues
from ..log import install_task_context, set_worker_name
from ..signals import worker_init, worker_process_init, worker_ready, worker_shutdown
from .banner import ready_banner
from .control import ControlThread
from .fetcher import FETCH_WAIT, Fetcher
from .heap import freeze_heap
from .history import HistoryWriter, record_lost, trimmer
from .info import InfoBuilder
from .keeper import Keeper
from .limits import Watchdog
from .naming import expand_name, lease_owner
from .pools import START_METHODS, pool_error
from .processor import Processor
from .recycle import Recycler
from .reporter import Reporter, Stats
from .runners import AsyncRunner, InlineRunner, ThreadRunner
from .settler import Settler
from .slots import SlotThreads
from .streaks import Streaks
from .supervisor import STOP_SIGNALS, announce_retiring, supervisor_gone

if TYPE_CHECKING:
    from ..appproto import AppLike
    from .procpool import ProcessPool, ProcessRunner

logger = logging.getLogger("conveyor.worker")

POOLS = ("threads", "processes", "asyncio", "solo")
POOL_ALIASES = {"prefork": "processes"}  # Celery's name for its process pool
DEFAULT_CONCURRENCY = {"threads": 8, "asyncio": 100, "solo": 1}  # processes: usable_cpus()


def default_concurrency(pool: str) -> int:
    """``-c`` when neither the flag nor ``worker_concurrency`` sets it: a process pool gets one
    child per CPU this process may use (affinity and cgroup quota, not the host's count)."""
    if pool == "processes":
        from .cpus import usable_cpus

        return usable_cpus()
    return DEFAULT_CONCURRENCY[pool]


SPARE_THREADS = 8  # replacements for threads left running by a hard time limit
# A repeat of the first stop signal within this many seconds is the same request delivered twice
# (process group and supervisor), not an operator asking to stop at once.
SAME_SIGNAL = 1.0
# Shutdown: how long the last outcomes are retried at least once no task runs any more (the
# grace period may be over), and how long unregistering may take. Both bound the exit when the
# broker is unreachable.
FINAL_FLUSH = 3.0
UNREGISTER_WAIT = 2.0
# Past the grace period: how long the runs being given back may take to end (a -P processes
# child to be killed and reaped) before their tasks go back to the queue regardless.
CANCEL_WAIT = 2.0


class Worker:
    """Runs tasks of ``app`` from ``queues``.

    >>> Worker(app, queues=["default"], concurrency=4).run()    # doctest: +SKIP
    """

    def __init__(
        self,
        app: AppLike,
        queues: list[str] | None = None,
        concurrency: int | None = None,
        pool: str | None = None,
        name: str | None = None,
        prefetch_multiplier: int | None = None,
        burst: bool = False,
        shutdown_timeout: float | None = None,
        install_signal_handlers: bool = True,
        max_tasks: int | None = None,
        max_memory_kib: int | None = None,
        pool_start_method: str | None = None,
        group: str | None = None,
    ) -> None:
        conf = app.conf
        self.app = app
        self.pool = pool or conf.worker_pool
        self.pool = POOL_ALIASES.get(self.pool, self.pool)
        self.pool_start_method = pool_start_method or conf.worker_pool_start_method
        if self.pool_start_method not in START_METHODS:
            raise ValueError(
                f"pool start method {self.pool_start_method!r}: choose one of {', '.join(START_METHODS)}"
            )
        if self.pool not in POOLS:
            raise ValueError(pool_error(self.pool, POOLS))
        if self.pool == "processes" and conf.result_serializer == "pickle":
            # A child sends its return value to the worker as msgpack (nothing of the user's is
            # pickled across): a set would be stored as a list, a datetime as text.
            raise ValueError(
                "result_serializer = 'pickle' cannot be used with -P processes: return values "
                "cross from the pool processes as msgpack, and would be stored changed; use json "
                "or msgpack, or -P threads"
            )
        if self.pool == "processes":
            # Only this pool's workers import it (multiprocessing, ctypes, the children's code):
            # here, so that ``conveyor worker --processes N`` imports it once, before it forks.
            from . import procpool  # noqa: F401
        self.queues = list(queues or [conf.task_default_queue])
        if not self.queues or not all(isinstance(q, str) and q for q in self.queues):
            raise ValueError(f"queues must be non-empty names, got {self.queues!r}")
        concurrency = concurrency or conf.worker_concurrency or default_concurrency(self.pool)
        self.concurrency = 1 if self.pool == "solo" else int(concurrency)
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        multiplier = int(prefetch_multiplier or conf.worker_prefetch_multiplier)
        if multiplier < 1:
            raise ValueError(f"prefetch multiplier must be at least 1, got {multiplier}")
        self.prefetch_limit = self.concurrency * multiplier
        self.hostname = expand_name(name)
        # The -n name of the ``--processes N`` command this process is one of (``w1@host`` for
        # ``w1.2@host``): ``-d w1@host`` addresses the whole command, and only it.
        self.group = expand_name(group) if group else None
        self.owner = lease_owner(self.hostname)
        self.burst = burst
        self.shutdown_timeout = float(
            conf.worker_shutdown_timeout if shutdown_timeout is None else shutdown_timeout
        )
        self.lease_timeout = conf.worker_lease_timeout
        self.install_signal_handlers = install_signal_handlers
        # worker_max_tasks_per_child / worker_max_memory_per_child: retire after the task that
        # reaches the limit (recycle.py); ``recycled`` says why it did.
        self.recycler = Recycler(
            conf.worker_max_tasks_per_child if max_tasks is None else max_tasks,
            conf.worker_max_memory_per_child if max_memory_kib is None else max_memory_kib,
        )
        self.recycled: str | None = None
        self._pool: ProcessPool | None = None  # -P processes: the children
        self.pool_broken: str | None = None  # why its children cannot start, if they cannot
        self._keep_fds: list[tuple[int, int, int]] = []  # ... and what they may inherit
        self.shut_down = False  # stopped by a ``shutdown`` control command (control.py)
        # Set by ``conveyor worker``, which holds its processes to CPUs (worker_pin_cpus): an
        # embedded worker cannot (it would hold the embedding process), and says so.
        self.pinning_by_command = False
        # Set by ``conveyor worker`` too: this process is the worker's own, so it freezes its
        # start-up heap before taking tasks (worker/heap.py); an embedded worker does not.
        self.freezes_heap = False
        self.stats = Stats()
        self.started = time.time()
        self.stuck_threads = False
        # Outcomes given up at shutdown because the broker did not take them; nonzero also means
        # broker calls may still hang in their threads (the CLI does not wait for them).
        self.unreported = 0
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        # Set when an operator asks the worker to stop (a signal, stop(), a control shutdown),
        # as opposed to its retiring by itself (recycling): see _shutdown.
        self._stop_asked: asyncio.Event | None = None
        self._signals = 0
        self._first_signal: tuple[int, float] = (0, 0.0)
        self._keeper: Keeper | None = None
        self._fetcher: Fetcher | None = None
        self._processor: Processor | None = None
        self._info_builder: InfoBuilder | None = None
        self._control: ControlThread | None = None

    @property
    def recycles_itself(self) -> bool:
        """A recycling limit retires this whole process (it must run under the supervisor);
        with ``-P processes`` the limits retire the pool's children instead."""
        return self.recycler.enabled and self.pool != "processes"

    # -- lifecycle ---------------------------------------------------------------------------
    def run(self) -> None:
        """Run until stopped (SIGTERM/SIGINT, ``stop()``, or an empty queue with ``burst``)."""
        if self.app.conf.worker_pin_cpus and not self.pinning_by_command:
            logger.warning(
                "%s: worker_pin_cpus applies to `conveyor worker`; this worker, run in your own "
                "process, is not held to a CPU",
                self.hostname,
            )
        if self.pool == "processes":
            # Before the worker opens anything of its own (event loop, broker connection): the
            # files forked pool children may keep open (log files, the app's own).
            from .children import file_identities  # -P processes only, like procpool

            self._keep_fds = file_identities()
        previous: dict[signal.Signals, Any] = {}
        if self.install_signal_handlers and threading.current_thread() is threading.main_thread():
            # signal.signal, not loop.add_signal_handler: the handler must run even while a
            # solo-pool task occupies the loop thread.
            for signum in STOP_SIGNALS:
                previous[signum] = signal.signal(signum, self._on_signal)
        try:
            asyncio.run(self.run_async())
        except BaseException:
            # The loop itself died (a bug; task code cannot get here). Stop renewing the leases
            # at once, so other workers take the tasks over instead of a worker that heartbeats
            # but runs nothing.
            if self._keeper is not None:
                self._keeper.stop()
            logger.critical("%s: worker loop crashed; its tasks go back to the queue", self.hostname)
            raise
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def stop(self) -> None:
        """Ask the worker to shut down gracefully (thread-safe)."""
        self._begin_stop()
        loop, asked = self._loop, self._stop_asked
        if loop is not None and asked is not None and not loop.is_closed():
            loop.call_soon_threadsafe(asked.set)

    def _begin_stop(self) -> None:
        """Stop fetching and starting tasks; the loop drains (stop() and recycling)."""
        self._stopping = True
        # Seen at once, not only when the loop gets to the stop event: a solo-pool consumer
        # drains its inbox without yielding, and must stop starting prefetched tasks now.
        for part in (self._fetcher, self._processor):
            if part is not None:
                part.stopping = True
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    def shutdown_by_control(self) -> None:
        """(Control thread) A ``shutdown`` command: drain as on SIGTERM, and say so at exit."""
        self.shut_down = True
        self.stop()

    def set_queues(self, queues: list[str]) -> None:
        """(Control thread) Fetch from these queues from the next fetch on (add/cancel_consumer)."""
        self.queues = queues
        fetcher = self._fetcher
        if fetcher is not None:
            fetcher.queues = queues  # one assignment: the fetch loop sees the old list or the new
            fetcher.set_paused(frozenset(paused_queues(self.app.broker)))  # a newly added queue may be
        self._info_builder = None  # the heartbeat encodes the queues once: build it again

    def _on_signal(self, signum: int, _frame: Any) -> None:
        now = time.monotonic()
        if self._signals and signum == self._first_signal[0] and now - self._first_signal[1] < SAME_SIGNAL:
            # The same stop request delivered twice: a --processes child gets SIGTERM from its
            # process group or cgroup (Ctrl-C, supervisord stopasgroup, systemd) *and* from its
            # supervisor forwarding it. Taken as "stop at once", it would abandon running tasks.
            return
        self._signals += 1
        if self._signals == 1:
            self._first_signal = (signum, now)
            gone = supervisor_gone()
            if gone is not None:  # told by the kernel (PR_SET_PDEATHSIG), not by an operator
                logger.warning(
                    "%s: its supervisor (pid %d) is gone (killed?), shutting down gracefully "
                    "(again to stop at once)",
                    self.hostname,
                    gone,
                )
            else:
                logger.warning(
                    "%s: %s received, shutting down gracefully (again to stop at once)",
                    self.hostname,
                    signal.Signals(signum).name,
                )
            self.stop()
        else:
            logger.warning(
                "%s: second signal, stopping at once; leases will return unfinished tasks", self.hostname
            )
            os._exit(1)

    async def run_async(self) -> None:
        if self.pool == "processes" and not self._keep_fds:  # called directly, not through run()
            from .children import file_identities

            self._keep_fds = file_identities()
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stop_event = asyncio.Event()
        self._stop_asked = asyncio.Event()
        if self._stopping:
            self._stop_event.set()
        # Each worker process sends worker_init and worker_process_init (a --processes child is
        # a whole worker): per-process setup a prefork Celery app does there runs here too.
        set_worker_name(self.hostname)
        install_task_context()
        worker_init.send(self)
        worker_process_init.send(self)
        if self.freezes_heap:  # after the app's own set-up above, before -P processes forks
            freeze_heap()
        app, conf = self.app, self.app.conf
        broker = app.broker
        self._fetch_exec = ThreadPoolExecutor(1, thread_name_prefix="conveyor-fetch")
        self._settle_exec = ThreadPoolExecutor(1, thread_name_prefix="conveyor-settle")
        # Guards (locks, limits) make broker round trips of their own: not behind the settler.
        self._guard_exec = ThreadPoolExecutor(4, thread_name_prefix="conveyor-guard")
        self._threads = SlotThreads(loop, self.concurrency, SPARE_THREADS, "conveyor-task")
        self._watchdog = Watchdog()
        self.settler = Settler(
            broker,
            self._settle_exec,
            lambda: conf.result_expires,
            self._on_settled,
            self._on_trouble,
            self.hostname,
        )
        self.settler.start()
        fetcher = self._fetcher = Fetcher(
            broker,
            self.owner,
            self.hostname,
            self.queues,
            self.lease_timeout,
            self._fetch_exec,
            self.settler,
            self.stats,
            self.concurrency,
            self.prefetch_limit,
            self.burst,
        )
        history = HistoryWriter(self.hostname) if conf.task_history else None
        dead_letters = conf.task_dead_letter_on_failure
        result_codec = (conf.result_serializer, conf.result_compression)
        check_sendable(conf.result_serializer, conf.accept_content)
        reporter = Reporter(
            self.settler,
            self.stats,
            self.hostname,
            dead_letters,
            history,
            continuation=partial(continuation, app),
            result_codec=result_codec,
        )
        sync_runner: InlineRunner | ThreadRunner | ProcessRunner
        if self.pool == "processes":
            from .procpool import ProcessPool, ProcessRunner  # see __init__

            self._pool = ProcessPool(
                app,
                self.concurrency,
                self.hostname,
                self.pool_start_method,
                self.recycler.max_tasks,
                self.recycler.max_memory_kib,
                self._keep_fds,
                self._on_pool_broken,
            )
            self._pool.start()
            sync_runner = ProcessRunner(self._pool, conf.task_max_worker_deaths)
        elif self.pool == "solo":
            sync_runner = InlineRunner(self._watchdog, loop)
        else:
            sync_runner = ThreadRunner(self._watchdog, loop, self._threads, self._on_abandoned)
        processor = self._processor = Processor(
            app.tasks,
            app.run_guards,
            fetcher,
            self.settler,
            reporter,
            sync_runner,
            AsyncRunner(loop),
            self._guard_exec,
            frozenset(conf.accept_content),
            self.hostname,
            prepare=partial(chord_results_into, broker),
        )
        fetcher.stopping = processor.stopping = self._stopping
        if self.recycler.max_tasks is not None and self.recycles_itself:
            processor.after_each = lambda: self._recycle(memory=False)
        elif isinstance(sync_runner, ThreadRunner):
            # Not with a task-count limit: a streak would start tasks past it before the loop
            # counted the last one, and the limit is exact.
            processor.streaks = Streaks(processor, self._threads, sync_runner, loop, self._on_abandoned)
        keeper = self._keeper = Keeper(
            broker,
            self.owner,
            conf.worker_heartbeat_interval,
            self.lease_timeout,
            conf.task_max_worker_deaths,
            conf.result_expires,
            conf.dead_letter_expires,
            self._info,
            processor.running,
            lambda revoked: processor.on_revoked(revoked, self._loop),
            self._on_trouble,
            fetcher.set_paused,
            trimmer(broker, conf),
            (lambda dead: record_lost(broker, dead)) if conf.task_history else (lambda _dead: None),
            partial(lost_continuation, app),
        )
        await loop.run_in_executor(self._settle_exec, keeper.start)
        self._control = ControlThread(self)
        await loop.run_in_executor(self._settle_exec, self._control.start)
        # broker.url, not the setting: the URL actually opened (relative SQLite paths resolved).
        banner = ready_banner(
            self.hostname, self.queues, self.pool, self.concurrency, broker.url, self.app.tasks
        )
        logger.info("%s", banner)
        worker_ready.send(self)
        warning = self.recycler.start_warning() if self.recycles_itself else None
        if warning is not None:
            logger.warning("%s: %s", self.hostname, warning)
        consumers = [
            asyncio.create_task(processor.consume(), name=f"conveyor-consumer-{i}")
            for i in range(self.concurrency)
        ]
        fetching = asyncio.create_task(fetcher.run(), name="conveyor-fetch")
        stopper = asyncio.create_task(self._stop_event.wait())
        try:
            await asyncio.wait({fetching, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._stopping = processor.stopping = True
            fetcher.stop()
            stopper.cancel()
            await self._shutdown(fetching, consumers, keeper)

    async def _shutdown(
        self, fetching: asyncio.Task[None], consumers: list[asyncio.Task[None]], keeper: Keeper
    ) -> None:
        loop = asyncio.get_running_loop()
        fetcher, processor = self._fetcher, self._processor
        assert fetcher is not None and processor is not None
        fetcher.release_inbox()
        # The fetch loop ends by itself once stopping is set (its fetch blocks at most FETCH_WAIT);
        # whatever it still brings back is released by the loop itself, and counted too.
        await asyncio.wait({fetching}, timeout=FETCH_WAIT + 1)
        fetcher.release_inbox()
        released = len(fetcher.given_back)
        if released:
            logger.info("%s: gave %d prefetched task(s) back to the queue", self.hostname, released)
        for _ in consumers:
            fetcher.inbox.put_nowait(None)
        if self.recycled is not None and self._stop_asked is not None:
            # Retiring by itself, nobody asked it to stop: its running tasks finish however long
            # they take (their own time limits apply), as a Celery prefork child's do; given back
            # after a grace period they would run again from the start (or fail, at-most-once).
            # An operator's stop meanwhile starts the usual grace period from then.
            asked = asyncio.create_task(self._stop_asked.wait())
            running = {c for c in consumers if not c.done()}
            while running and not asked.done():
                await asyncio.wait({*running, asked}, return_when=asyncio.FIRST_COMPLETED)
                running = {c for c in running if not c.done()}
            asked.cancel()
        grace_ends = loop.time() + self.shutdown_timeout
        _, pending = (
            await asyncio.wait(consumers, timeout=self.shutdown_timeout) if consumers else (set(), set())
        )
        if pending:
            logger.warning(
                "%s: %d task(s) still running after %.0fs; giving them back to the queue",
                self.hostname,
                len(processor.active),
                self.shutdown_timeout,
            )
            if processor.streaks is not None:
                processor.streaks.given_up = True  # what they still finish was given back here
            given_back = list(processor.active.values())
            busy: list[int] = []
            if self._pool is not None:
                self._pool.stopping = True  # the children killed below are not replaced
                busy = self._pool.busy_pids()
            for consumer in pending:
                consumer.cancel()
            # The runs end first, the tasks go back after: cancelled, a -P processes run kills
            # its child, and no other worker may take a task while a child here still runs it.
            # (A thread cannot be stopped: the process exits soon, and its threads with it.)
            cancel_ends = loop.time() + CANCEL_WAIT
            await asyncio.wait(pending, timeout=CANCEL_WAIT)
            if self._pool is not None:
                alive = await self._pool.wait_gone(busy, timeout=max(0.0, cancel_ends - loop.time()))
                if alive:
                    logger.warning(
                        "%s: pool process(es) %s still alive %.0fs after their kill; giving their "
                        "tasks back anyway",
                        self.hostname,
                        ", ".join(map(str, alive)),
                        CANCEL_WAIT,
                    )
            for active in given_back:
                task = self.app.tasks.get(active.task)
                if task is None or task.acks_late:
                    self.settler.add(Outcome("release", active.id, active.delivery))
            self.stuck_threads = True
        if self._pool is not None:  # its running tasks are done or given back: no child is needed
            await self._pool.close(timeout=5.0)
        # Report what can be reported; a broker that is gone must not keep the worker from
        # stopping (it would ignore SIGTERM for as long as the outage lasts).
        self.unreported = await self.settler.close(max(grace_ends, loop.time() + FINAL_FLUSH))
        if self.unreported:
            logger.warning(
                "%s: could not report %d outcome(s) to the broker before stopping; gave them up: "
                "the broker takes those tasks back when their leases expire",
                self.hostname,
                self.unreported,
            )
        # The control and keeper threads, stuck in a call to a broker that does not answer, are
        # not waited for long: they are daemon threads, and what they would still send (a
        # heartbeat, a reply) changes nothing the expiring leases do not.
        join_for = 1.0 if self.unreported else 5.0
        if self._control is not None:
            self._control.stop(timeout=join_for)
        keeper.stop(timeout=join_for)
        try:
            await asyncio.wait_for(
                loop.run_in_executor(self._settle_exec, self.app.broker.unregister_worker, self.owner),
                UNREGISTER_WAIT,
            )
        except TimeoutError:
            logger.warning("could not unregister worker: no answer within %.0fs", UNREGISTER_WAIT)
        except Exception as exc:
            logger.warning("could not unregister worker: %s", exc)
        self._watchdog.stop()
        self._threads.close()
        self._fetch_exec.shutdown(wait=False)
        self._settle_exec.shutdown(wait=False)
        self._guard_exec.shutdown(wait=False)
        worker_shutdown.send(self)
        logger.info("%s stopped: %d task(s) processed", self.hostname, self.stats.processed)

    # -- callbacks from the parts ------------------------------------------------------------
    def _on_settled(self, batch: list[Outcome]) -> None:
        if self._fetcher is not None:
            self._fetcher.on_settled(batch)
        if self.recycles_itself:
            self._recycle(memory=True)

    def _recycle(self, memory: bool) -> None:
        """Retire if a recycling limit is reached: the task count after every task (free), the
        memory after every settled batch (a read of /proc; see recycle.py)."""
        if self.recycled is not None or self._stopping:  # (a stop under way: it ends the process)
            return
        reason = self.recycler.reason(self.stats.processed, memory)
        if reason is not None:
            self.recycled = reason
            logger.info("%s: %s; draining so that a fresh process takes over", self.hostname, reason)
            self._begin_stop()  # not an operator's stop: its running tasks are waited for (_shutdown)
            max_tasks = self.recycler.max_tasks
            if max_tasks is not None and self.stats.processed >= max_tasks:
                # Under the supervisor the replacement starts now, beside it. Not when it retires
                # on memory: it still holds what it grew to until its tasks end.
                announce_retiring()

    def _on_trouble(self) -> None:
        if self._fetcher is not None:
            self._fetcher.on_trouble()

    def _on_abandoned(self) -> None:
        self.stats.abandoned_threads += 1

    def _on_pool_broken(self, why: str) -> None:
        self.pool_broken = why
        self.stop()

    def _pool_pids(self) -> list[int]:
        pool = self._pool
        return pool.pids() if pool is not None else []

    def _info(self) -> bytes:
        """(Keeper thread) What the heartbeat records about this worker: see info.py."""
        builder = self._info_builder
        if builder is None:
            static = {
                "hostname": self.hostname,
                "queues": self.queues,
                "pool": self.pool,
                "concurrency": self.concurrency,
                "started": self.started,
                **({"group": self.group} if self.group else {}),
            }
            builder = self._info_builder = InfoBuilder(
                static,
                list(self.app.tasks),
                self.stats,
                lambda: self._processor.active if self._processor is not None else {},
                lambda: self._fetcher,
                self._pool_pids if self.pool == "processes" else None,
            )
        return builder()
