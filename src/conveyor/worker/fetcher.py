"""The fetcher: keeps the worker's inbox filled with leased deliveries, and knows what it holds.

- Room: at most ``target()`` deliveries are held at once (in the inbox or running). The target
  is Celery's ``concurrency x prefetch multiplier``, raised for short tasks so that a worker
  holds up to ``PREFETCH_HORIZON`` seconds of work per slot (never more than ``PREFETCH_MAX``
  jobs): tiny tasks then come in large batches, and jobs held that briefly could not have
  started sooner on another worker, so this costs no fairness. "Per slot" means per run going
  on at once: under the threads pool short tasks share one slot thread's streak (streaks.py),
  which runs them one after another, so there the horizon is counted for the runs going on
  when the target is worked out (one for tiny tasks, every slot for tasks that wait). Counted
  for every slot, a worker held eight times 100 ms of tiny tasks, which other worker
  processes, idle at the end of a backlog, could have run.
  The multiplier defaults to 1,
  not Celery's 4: tasks of a second or more are then held only by the slot that runs them, and
  one busy worker never holds long tasks that an idle one could start (Celery's best-known
  surprise; before the first task has finished nothing is known of its length, so that holds
  for the first fetch too).
- Leases: every delivery held, from its fetch until the broker confirmed its settle, is in
  ``leases``. After the broker failed any call, the fetcher *reconciles* before its next fetch:
  it tells the broker what it holds, and the broker gives back every other job it still leases
  to this worker (an ack lost in a broker crash would otherwise stay leased for ever, renewed
  by every heartbeat). The reconcile runs on the fetch thread between two fetches, so every job
  this worker fetched is in ``leases`` by then.
- Pauses: the keeper tells the fetcher which queues are paused (``set_paused``); they are left
  out of the next fetch. With every queue paused the fetcher waits, fetching nothing, and
  looks again every ``PAUSED_POLL`` seconds. A fetch already blocked when the pause arrived
  may still lease jobs of the paused queue: those are given back at once, not run; and so are
  the ones prefetched before the pause, when a consumer takes them (processor.py): a pause
  takes effect within one heartbeat, for every task of the queue not yet started.
- ``state`` and ``fetched_at`` tell a health probe whether the loop is alive and fetching
  (see the worker's heartbeat info).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor

from ..brokers import Broker, Delivery, Outcome
from .alarm import Alarm
from .inbox import Inbox
from .reporter import Stats
from .settler import Settler

logger = logging.getLogger("conveyor.worker")

FETCH_WAIT = 1.0  # longest a fetch blocks, so a stop request is noticed promptly
PREFETCH_HORIZON = 0.1
PREFETCH_MAX = 1000
PAUSED_POLL = 0.25  # how often a fetcher whose every queue is paused looks again
ROOM_POLL = 0.05  # how often a full fetcher counts the runs streaks finished meanwhile


class Fetcher:
    def __init__(
        self,
        broker: Broker,
        owner: str,
        hostname: str,
        queues: Sequence[str],
        lease_timeout: float,
        executor: Executor,
        settler: Settler,
        stats: Stats,
        concurrency: int,
        prefetch_limit: int,
        burst: bool,
    ) -> None:
        self.broker = broker
        self.owner = owner
        self.hostname = hostname
        self.queues = list(queues)
        self.lease_timeout = lease_timeout
        self.executor = executor
        self.settler = settler
        self.stats = stats
        self.concurrency = concurrency
        self.prefetch_limit = prefetch_limit  # the floor; see target()
        self.burst = burst
        self.inbox = Inbox()
        self.room = Alarm()  # the fetcher sleeps on it while full; done() rings it
        self.held = 0
        # Tasks released unstarted at shutdown, for the log line. Ids, not a count: a fetch
        # already under way when the worker stopped may lease again the ones a consumer had
        # just released, and they are released twice.
        self.given_back: set[str] = set()
        self.leases: dict[str, int] = {}  # id -> delivery, see the module doc
        self.trouble = False  # the broker failed a call: reconcile once it answers again
        self.stopping = False
        self.paused: frozenset[str] = frozenset()  # of this worker's queues; set by the keeper
        self.state = "fetching"  # fetching | full | paused | failing | stopping
        self.fetched_at: float | None = None  # epoch seconds of the broker's last fetch answer
        # Runs the slot threads' streaks finished since the last call (set by streaks.py).
        self.collect_done: Callable[[], int] | None = None
        # How many runs go on at once, when not ``concurrency`` (set by streaks.py).
        self.runs_at_once: Callable[[], int] | None = None

    def target(self) -> int:
        """How many deliveries to hold: concurrency x multiplier, more for short tasks."""
        ewma = self.stats.runtime_ewma
        if ewma is None:
            return self.prefetch_limit
        at_once = self.concurrency if self.runs_at_once is None else self.runs_at_once()
        adaptive = int(at_once * PREFETCH_HORIZON / max(ewma, 1e-6))
        return max(self.prefetch_limit, min(PREFETCH_MAX, adaptive))

    async def run(self) -> None:
        """Fetch until stopping (or, in burst mode, until the queues are empty)."""
        loop = asyncio.get_running_loop()
        backoff = 0.05
        failing = False
        while not self.stopping:
            if self.collect_done is not None:
                self.held -= self.collect_done()
            target = self.target()
            room = target - self.held
            if not self._wants(room, target):
                self.state = "full"
                # A slot thread on a streak counts its runs done in a batch, and may miss the
                # moment this fetcher starts waiting (streaks.py): look again now and then.
                await self.room.sleep(None if self.collect_done is None else ROOM_POLL)
                continue
            queues = [q for q in self.queues if q not in self.paused]
            if not queues:
                self.state = "paused"
                await asyncio.sleep(PAUSED_POLL)
                continue
            try:
                if self.trouble:
                    await self.reconcile()
                batch = await loop.run_in_executor(
                    self.executor,
                    self.broker.fetch,
                    queues,
                    self.owner,
                    room,
                    self.lease_timeout,
                    FETCH_WAIT,
                )
            except Exception as exc:
                self.trouble = True
                self.state = "failing"
                if not failing:
                    logger.error("%s: fetch failed (broker unreachable?), retrying: %s", self.hostname, exc)
                    failing = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self.state, self.fetched_at = "fetching", time.time()
            if failing:
                logger.warning("%s: fetching again", self.hostname)
                failing, backoff = False, 0.05
            if self.paused and batch:
                batch = self.give_back_paused(batch)
            if not batch:
                if self.burst and self.held == 0:
                    return
                continue
            self.held += len(batch)
            leases, inbox = self.leases, self.inbox
            for d in batch:
                leases[d.id] = d.delivery
                inbox.put_nowait(d)
            if self.stopping:
                self.release_inbox()
        self.state = "stopping"

    async def reconcile(self) -> None:
        self.trouble = False
        held = list(self.leases)
        try:
            given_back = await asyncio.get_running_loop().run_in_executor(
                self.executor, self.broker.reconcile, self.owner, held
            )
        except BaseException:
            self.trouble = True
            raise
        if given_back:
            logger.warning(
                "%s: the broker still leased %d task(s) to this worker that it no longer holds (an "
                "acknowledgement lost in a broker crash?); gave them back: %s",
                self.hostname,
                len(given_back),
                ", ".join(given_back[:10]),
            )

    def set_paused(self, paused: frozenset[str]) -> None:
        """(Keeper thread) The cluster's paused queues; logs a change to this worker's queues once."""
        mine = frozenset(q for q in self.queues if q in paused)
        for queue in sorted(mine - self.paused):
            logger.warning("%s: queue %s is paused: not fetching from it", self.hostname, queue)
        for queue in sorted(self.paused - mine):
            logger.warning("%s: queue %s is resumed", self.hostname, queue)
        self.paused = mine

    def give_back_paused(self, batch: list[Delivery]) -> list[Delivery]:
        """Release the deliveries of queues paused while their fetch was under way."""
        paused = self.paused
        keep = [d for d in batch if d.queue not in paused]
        for d in batch:
            if d.queue in paused:
                self.settler.add(Outcome("release", d.id, d.delivery))
        return keep

    def on_trouble(self) -> None:
        """The broker failed a call (from any thread): reconcile before the next fetch."""
        self.trouble = True

    def on_settled(self, batch: list[Outcome]) -> None:
        """On the loop, once the broker has a batch: those deliveries are no longer held."""
        leases = self.leases
        for o in batch:
            if o.kind not in ("start", "running") and leases.get(o.id) == o.delivery:
                del leases[o.id]

    def _wants(self, room: int, target: int) -> bool:
        """Fetch now? When there is room for half the target, or for anything once the inbox is
        empty (so no slot ever waits for a fetch). Not at every freed slot: a worker whose
        deliveries finish one by one (threads) would fetch a few jobs per round trip, and the
        round trips, not the tasks, would take the time."""
        return room > 0 and (2 * room >= target or self.inbox.empty())

    def wants_room(self, finished: int) -> bool:
        """(Any thread) Would ``finished`` more deliveries done make this fetcher fetch?"""
        target = self.target()
        return self._wants(target - self.held + finished, target)

    def done(self, count: int = 1) -> None:
        """A delivery left the worker's hands (run and reported, or given back)."""
        self.held -= count
        if self.room.sleeping and self._wants((target := self.target()) - self.held, target):
            self.room.ring()

    def stop(self) -> None:
        """(Loop) Stop fetching. A fetcher asleep for room, which only a finished delivery
        would wake, wakes now: the shutdown must not wait for a running task to end."""
        self.stopping = True
        self.room.ring()

    def give_back(self, d: Delivery, shutting_down: bool = True) -> None:
        """Release a delivery that was not started (shutting down, or its queue was paused): it
        leaves the worker's hands like a finished one, so a fetcher asleep for room wakes (a
        pause that gives back a full inbox must not leave the fetch loop asleep for good)."""
        self.settler.add(Outcome("release", d.id, d.delivery))
        self.done()
        if shutting_down:
            self.given_back.add(d.id)

    def release_inbox(self) -> int:
        """Give every not-yet-started delivery back. Stop sentinels (None) are kept: a fetch that
        returns late during shutdown must not swallow the consumers' signal to stop."""
        released = sentinels = 0
        inbox = self.inbox
        while True:
            try:  # not empty() then get: a slot thread on a streak may take the last one between
                d = inbox.get_nowait()
            except asyncio.QueueEmpty:
                break
            if d is None:
                sentinels += 1
                continue
            self.give_back(d)
            released += 1
        for _ in range(sentinels):
            inbox.put_nowait(None)
        return released
