"""The task history's cost: Conveyor's drain rate with history off and on, and the size of
history records on Redis and SQLite.

Usage (with the project's virtualenv)::

    .venv/bin/python bench/history.py cost [--tasks 20000] [--rounds 5] [--broker redis,sqlite]
    .venv/bin/python bench/history.py size [--records 100000]

``cost`` drains N ``incr`` tasks (bench/conveyor_tasks.py, ``ignore_result`` like most
fire-and-forget tasks: history records their state, not their result) with the benchmark's
worker command (``conveyor worker -P solo --processes 2``), once with ``CONVEYOR_TASK_HISTORY=0``
and once with it on, alternating the order each round, on a throwaway ``redis-server`` (and a
fresh SQLite file per run). It prints the best and the median drain rate of each, and the
CPU time per task of the workers and redis-server together (what bounds the drain rate on a
machine whose cores they fill, and far less disturbed by other load than a rate), with the
differences.

``size`` writes N history records (one in 50 a failure) through the broker's real settle path
(enqueue, fetch, settle with the worker's history entries) and reports the memory (Redis
``used_memory``) or file growth (SQLite, after a WAL checkpoint) per record, that times
1,000,000, and how long the operator's reads take at that size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path[:0] = [str(REPO_ROOT)]

from bench.run import PROCESSES, RedisServer  # noqa: E402  (the harness's own process helpers)

COUNTER_KEY = "bench:counter"
WORKER = ["-A", "bench.conveyor_tasks", "worker", "-P", "solo", "--processes", "2"]
WARMUP = 1000  # tasks before the steady-rate clock starts


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its descendants (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(stat[11]) + int(stat[12])) / tick
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += cpu_seconds(int(child))
    except (FileNotFoundError, ProcessLookupError):
        pass
    return total


def drain(
    server: RedisServer,
    broker_url: str,
    n: int,
    worker: list[str],
    history: bool,
    log: Path,
    src: str = "",
) -> tuple[float, float, float]:
    """(tasks/s including start-up, steady tasks/s after WARMUP, CPU microseconds per task of
    the workers and redis-server together after WARMUP) for one drain of n tasks by
    ``conveyor WORKER...`` (also bench/pools.py's); ``src``: another checkout's Conveyor
    source, imported by the workers instead of this one."""
    os.environ["BENCH_REDIS_URL"] = server.url  # read by bench/conveyor_tasks.py at import
    from bench import conveyor_tasks

    counter = redis.Redis.from_url(server.url)
    counter.flushall()
    app = conveyor_tasks.app
    app.conf.broker_url = broker_url
    app.close()  # reopen on the new broker
    conveyor_tasks.incr.delay_many([() for _ in range(n)])
    app.close()
    env = {
        **os.environ,
        "CONVEYOR_BROKER_URL": broker_url,
        "BENCH_REDIS_URL": server.url,
        "CONVEYOR_TASK_HISTORY": "1" if history else "0",
        "PYTHONPATH": os.pathsep.join(filter(None, (src, str(REPO_ROOT)))),
    }
    assert server.proc is not None
    start = time.perf_counter()
    proc = PROCESSES.start([sys.executable, "-m", "conveyor", *worker, "-l", "warning"], env, log)
    warm, warm_cpu = None, 0.0
    try:
        deadline = start + 300
        while (done := int(counter.get(COUNTER_KEY) or 0)) < n:
            if warm is None and done >= WARMUP:
                warm = time.perf_counter()
                warm_cpu = cpu_seconds(proc.pid) + cpu_seconds(server.proc.pid)
            if proc.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError(PROCESSES.exit_reason(proc))
            time.sleep(0.002)
        end = time.perf_counter()
        # From WARMUP on, like the steady rate: start-up (imports) would only dilute the difference.
        cpu = cpu_seconds(proc.pid) + cpu_seconds(server.proc.pid) - warm_cpu
    finally:
        PROCESSES.stop(proc)
        counter.close()
    return n / (end - start), (n - WARMUP) / (end - (warm or start)), cpu / (n - WARMUP) * 1e6


def cost(args: argparse.Namespace) -> None:
    server = RedisServer(args.redis_server)
    server.start()
    tmp = Path(tempfile.mkdtemp(prefix="conveyor-history-bench-"))
    try:
        for broker in args.broker.split(","):
            rates: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
            for r in range(args.rounds):
                for history in (False, True) if r % 2 == 0 else (True, False):
                    url = (
                        server.url.replace("/0", "/1")
                        if broker == "redis"
                        else f"sqlite:///{tmp}/b{r}{history}.db"
                    )
                    log = tmp / f"history-{history}.log"
                    rates[history].append(drain(server, url, args.tasks, WORKER, history, log))
            # Best of the rounds as well as the median: on a shared machine another process
            # only ever slows a round down, so the best round is the least disturbed one.
            for label, i in (("drain (with start-up)", 0), ("steady drain", 1)):
                for how, pick in (("best", max), ("median", statistics.median)):
                    off = pick(r[i] for r in rates[False])
                    on = pick(r[i] for r in rates[True])
                    print(
                        f"{broker:6}  {label:22} {how:6}  history off {off:9,.0f}/s   on {on:9,.0f}/s"
                        f"   {(on - off) / off * 100:+.1f} %   ({args.rounds} rounds of {args.tasks:,} tasks)"
                    )
            # CPU per task barely moves with other load on the machine: the steadier figure.
            off = statistics.median(r[2] for r in rates[False])
            on = statistics.median(r[2] for r in rates[True])
            print(
                f"{broker:6}  {'CPU per task':22} median  history off {off:8.1f} us   on {on:8.1f} us"
                f"   {(on - off) / off * 100:+.1f} %   (workers + redis-server, after warm-up)"
            )
    finally:
        PROCESSES.stop_all()
        server.cleanup()


def _write(broker_url: str, n: int) -> None:
    """n history records through the real path: enqueue, fetch, settle with history entries."""
    from conveyor.brokers import JobSpec, Outcome, broker_from_url
    from conveyor.message import Envelope, encode_envelope
    from conveyor.request import Request
    from conveyor.worker.history import HistoryWriter

    broker = broker_from_url(broker_url)
    writer = HistoryWriter("w1@bench-host")
    batch = 1000
    for first in range(0, n, batch):
        specs = []
        for i in range(first, min(n, first + batch)):
            task_id = f"{i:08d}-5b1e-4c1e-9f00-{i:012d}"
            env = Envelope(id=task_id, task="proj.tasks.refresh_city", args=[i], created=time.time())
            specs.append(JobSpec(task_id, "default", encode_envelope(env)))
        broker.enqueue(specs)
        outcomes = []
        for d in broker.fetch(["default"], "w1", batch, 60, 0):
            request = Request(
                d.id, "proj.tasks.refresh_city", [int(d.id[:8])], {}, queue="default", priority=5
            )
            if int(d.id[:8]) % 50 == 49:  # one in 50 fails, as a listing of failures would find
                error = b'{"exc_type":"builtins.OSError","exc_message":"timeout","worker":"w1@bench-host"}'
                failed = Outcome("ack", d.id, d.delivery, "FAILURE", error)
                outcomes.append(writer.attach(failed, d, request, 0.5, time.time(), OSError("timeout")))
                continue
            result = b'{"result":{"city":42,"ok":true},"worker":"w1@bench-host","date_done":1796000000.0}'
            ack = Outcome("ack", d.id, d.delivery, "SUCCESS", result)
            outcomes.append(writer.attach(ack, d, request, 0.0123, time.time()))
        broker.settle(outcomes, 86400)
    broker.close()


def size(args: argparse.Namespace) -> None:
    n = args.records
    server = RedisServer(args.redis_server)
    server.start()
    tmp = Path(tempfile.mkdtemp(prefix="conveyor-history-size-"))
    try:
        url = server.url.replace("/0", "/1")
        client = redis.Redis.from_url(url)
        before = int(client.info("memory")["used_memory"])
        _write(url + "?prefix=size", n)
        for key in client.scan_iter("{size}:result:*", count=10000):  # results expire; not history
            client.delete(key)
        grown = int(client.info("memory")["used_memory"]) - before
        _report("redis (used_memory)", grown, n)
        _reads(url + "?prefix=size")
        path = tmp / "size.db"
        import sqlite3

        _write(f"sqlite:///{path}", 0)  # the schema only
        db = sqlite3.connect(path)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        empty = path.stat().st_size
        db.close()
        _write(f"sqlite:///{path}", n)
        db = sqlite3.connect(path)
        db.execute("DELETE FROM results")  # results expire; only history stays
        db.commit()
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        _report("sqlite (file size)", path.stat().st_size - empty, n)
        _reads(f"sqlite:///{path}")
    finally:
        server.cleanup()


def _reads(url: str) -> None:
    """How long the operator's reads take at this size: a page, a page of one state, a success
    by id (on SQLite a scan: successes are not indexed by id) and a failure by id."""
    from conveyor.brokers import HistoryQuery, broker_from_url

    broker = broker_from_url(url)
    oldest = f"{0:08d}-5b1e-4c1e-9f00-{0:012d}"
    reads = {
        "newest 50": lambda: broker.history(HistoryQuery(), 50),
        "50 failed": lambda: broker.history(HistoryQuery(state="FAILURE"), 50),
        "oldest success by id": lambda: broker.history_row(oldest),
        "unknown id": lambda: broker.history_row("no-such-id"),
    }
    timings = []
    for label, read in reads.items():
        start = time.perf_counter()
        read()
        timings.append(f"{label} {(time.perf_counter() - start) * 1000:.1f} ms")
    print("    reads: " + ", ".join(timings))
    broker.close()


def _report(label: str, grown: int, n: int) -> None:
    per = grown / n
    print(
        f"{label:22}  {n:,} records: {grown / 2**20:8.1f} MiB  = {per:6.0f} B/record"
        f"  -> 1,000,000 records: {per * 1e6 / 2**20:8.1f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("cost", help="drain rate with history off and on")
    c.add_argument("--tasks", type=int, default=20000)
    c.add_argument("--rounds", type=int, default=5)
    c.add_argument("--broker", default="redis,sqlite")
    s = sub.add_parser("size", help="memory/disk of history records")
    s.add_argument("--records", type=int, default=100000)
    for p in (c, s):
        p.add_argument("--redis-server", default="redis-server")
    args = parser.parse_args()
    cost(args) if args.command == "cost" else size(args)


if __name__ == "__main__":
    main()
