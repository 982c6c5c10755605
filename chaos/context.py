"""One scenario's world: a temp dir, a fresh broker, the workers it started, and the producer.

``with scenario_context(name, broker) as ctx:`` gives a fresh SQLite file or a fresh
redis-server (never port 6379) and points the chaos app at it; on the way out, whatever
happened, every process the scenario started is killed and the temp dir removed.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import redis

from conveyor.exceptions import BrokerError

from .ledger import FINAL, Run, read_runs
from .procs import RedisServer, Worker, kill_all, wait_until
from .tasks import app, runs_path, work

# Short leases for scenarios that need many lease expiries (deaths) and would take minutes
# with the default 3 s. Timing-sensitive scenarios keep the defaults.
FAST_LEASE = {"CHAOS_LEASE": "1.0", "CHAOS_HEARTBEAT": "0.25"}
REDIS_PREFIX = "{conveyor}"  # the default ?prefix=, for the few raw reads below


@dataclass
class Ctx:
    name: str
    broker: str  # "redis" or "sqlite"
    workdir: Path
    quick: bool
    redis: RedisServer | None = None
    workers: list[Worker] = field(default_factory=list)

    @property
    def url(self) -> str:
        if self.redis is not None:
            return self.redis.url
        return f"sqlite:///{self.workdir / 'broker.db'}"

    @property
    def db_path(self) -> Path:
        return self.workdir / "broker.db"

    def worker(self, name: str, *args: str, env: dict[str, str] | None = None, ready: bool = True) -> Worker:
        w = Worker(self.url, self.workdir, name, list(args), env or {})
        self.workers.append(w)
        return w.wait_ready() if ready else w

    def runs(self) -> dict[str, list[Run]]:
        return read_runs(runs_path_in(self.workdir))

    # -- the broker, as a client sees it -------------------------------------------------------
    def states(self, ids: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for task_id in ids:
            try:
                out[task_id] = app.AsyncResult(task_id).state
            except BrokerError:
                out[task_id] = "UNREACHABLE"
        return out

    def wait_final(
        self, ids: list[str], timeout: float, hopeless: Callable[[], bool] | None = None
    ) -> dict[str, str]:
        """Poll until every id is final or ``timeout`` passes, or sooner once ``hopeless()`` says
        nothing can finish them any more (say, the only worker died); returns the last states."""
        states = {task_id: "" for task_id in ids}
        deadline = time.monotonic() + timeout
        while True:
            pending = [i for i, s in states.items() if s not in FINAL]
            states.update(self.states(pending))
            if all(s in FINAL for s in states.values()) or time.monotonic() >= deadline:
                return states
            if hopeless is not None and hopeless():
                return self.states(ids)  # one last look, in case it finished just now
            time.sleep(0.25)

    def dead_ids(self) -> set[str]:
        """Ids in the dead-letter set (raw read if the broker's own listing fails)."""
        try:
            return {d.id for d in app.broker.dead_letters(limit=100_000)}
        except Exception:
            if self.redis is not None:
                with redis.Redis(port=self.redis.port) as client:
                    raw = cast(list[bytes], client.zrange(f"{REDIS_PREFIX}:deadletters", 0, -1))
                return {r.decode(errors="backslashreplace") for r in raw}
            with contextlib.closing(sqlite3.connect(self.db_path)) as db:
                db.text_factory = bytes
                return {
                    r[0].decode(errors="backslashreplace") for r in db.execute("SELECT id FROM dead_letters")
                }

    def enqueue_many(self, count: int, seconds: float = 0.0) -> dict[str, float]:
        """Enqueue ``count`` innocent tasks at once; id -> enqueue time."""
        results = work.delay_many([(seconds,)] * count)
        now = time.time()
        return {r.id: now for r in results}


def runs_path_in(workdir: Path) -> Path:
    return workdir / runs_path().name


class Producer(threading.Thread):
    """Enqueues ``work(seconds)`` at ``rate`` per second until stopped or ``total`` is reached.

    A failed enqueue (broker down) is retried with the *same* task id until it is acknowledged:
    enqueue is idempotent by id, so a retry cannot duplicate, and the acknowledgement time is
    what the counting rules compare with a crash's cut-off.
    """

    def __init__(self, rate: float, total: int, seconds: float, give_up_after: float = 60.0) -> None:
        super().__init__(name="chaos-producer", daemon=True)
        self.rate, self.total, self.seconds = rate, total, seconds
        self.acked: dict[str, float] = {}
        self.failures = 0
        self._halt = threading.Event()
        self._give_up = time.monotonic() + give_up_after

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)

    def run(self) -> None:
        from conveyor.message import new_task_id

        for _ in range(self.total):
            if self._halt.is_set():
                return
            task_id = new_task_id()
            while time.monotonic() < self._give_up:
                try:
                    work.apply_async(args=(self.seconds,), task_id=task_id)
                    self.acked[task_id] = time.time()
                    break
                except BrokerError:
                    self.failures += 1
                    time.sleep(0.2)
            self._halt.wait(1.0 / self.rate)


@contextlib.contextmanager
def scenario_context(name: str, broker: str, quick: bool, keep: bool = False) -> Iterator[Ctx]:
    workdir = Path(tempfile.mkdtemp(prefix=f"conveyor-chaos-{name}-{broker}-"))
    ctx = Ctx(name, broker, workdir, quick)
    try:
        if broker == "redis":
            ctx.redis = RedisServer(workdir).start()
        app.conf.broker_url = ctx.url
        yield ctx
    finally:
        kill_all()
        app.close()
        if ctx.redis is not None:
            ctx.redis.kill()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def wait_all_ready(workers: list[Worker], timeout: float = 30.0) -> bool:
    return wait_until(lambda: all(" ready: " in w.log() for w in workers), timeout)
