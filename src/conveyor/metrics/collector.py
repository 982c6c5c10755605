"""The Prometheus collector: every metric computed from the broker at scrape time, through the
admin API, so one scrape target describes the whole cluster (no per-worker exporter, no
multiprocess directory). docs/metrics.md lists each metric and what it means.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from ..admin import Admin, QueueInfo
from ..admin.health import problem
from .totals import Totals

log = logging.getLogger("conveyor.metrics")
# Seconds a scrape waits for the broker: under Prometheus's default scrape_timeout (10 s), so a
# hung broker is scraped as conveyor_broker_up 0 rather than as a failed scrape.
READ_TIMEOUT = 5.0

#: The per-queue gauges read from ``QueueInfo``: name, help, value.
QUEUE_GAUGES: tuple[tuple[str, str, Callable[[QueueInfo], float]], ...] = (
    ("conveyor_queue_ready_tasks", "Tasks ready to run, waiting for a worker", lambda q: q.ready),
    (
        "conveyor_queue_delayed_tasks",
        "Tasks waiting for their eta, countdown or retry backoff",
        lambda q: q.delayed,
    ),
    (
        "conveyor_queue_running_tasks",
        "Tasks live workers run now (from their heartbeats)",
        lambda q: q.running,
    ),
    (
        "conveyor_queue_leased_tasks",
        "Tasks workers hold under a lease: running or prefetched",
        lambda q: q.leased,
    ),
    (
        "conveyor_queue_latency_seconds",
        "How long the oldest ready task has waited (0: none ready)",
        lambda q: q.latency,
    ),
    ("conveyor_queue_paused", "1 if the queue is paused cluster-wide", lambda q: 1.0 if q.paused else 0.0),
)


class ConveyorCollector(Collector):
    """Collects the cluster's metrics; give it the app's admin API.

    >>> registry = CollectorRegistry(); registry.register(ConveyorCollector(app.admin))  # doctest: +SKIP
    """

    def __init__(
        self, admin: Admin, counters_clock: Callable[[], float] = time.time, timeout: float = READ_TIMEOUT
    ) -> None:
        self.admin = admin
        self.counters_clock = counters_clock  # a test looks from the future to count this minute
        self.totals = Totals()
        self.timeout = timeout
        self._reader = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="conveyor-metrics-read")
        self._reading: concurrent.futures.Future[list[Metric]] | None = None
        self._reading_since = 0.0  # monotonic time that read started

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        up = GaugeMetricFamily("conveyor_broker_up", "1 if the broker answered this scrape, else 0")
        try:
            metrics = self._read()
        except Exception as exc:  # an unreachable broker is a value (0), not a failed scrape
            log.warning("metrics: broker unreachable: %s", exc)
            up.add_metric([], 0)
            metrics = []
        else:
            up.add_metric([], 1)
        yield up
        yield from metrics
        took = GaugeMetricFamily(
            "conveyor_metrics_collect_seconds", "How long reading the broker took for this scrape"
        )
        took.add_metric([], time.perf_counter() - started)
        yield took

    def _read(self) -> list[Metric]:
        """Every cluster metric, read on the collector's own thread (one thread, so the SQLite
        broker keeps one connection for it) within ``timeout`` seconds: a broker that hangs (a
        stopped Redis, a dead network path) makes this scrape say ``conveyor_broker_up 0``
        within Prometheus's scrape timeout instead of the scrape failing. A scrape that comes
        while another's read is under way (two Prometheus servers) shares that read for what is
        left of its time; one that outlived its time (a hung broker still waiting for its socket
        timeout) makes later scrapes say 0 at once rather than queue behind it."""
        now = time.monotonic()
        reading = self._reading
        if reading is None or reading.done():
            reading = self._reading = self._reader.submit(lambda: list(self._cluster(time.time())))
            self._reading_since = now
        left = self.timeout - (now - self._reading_since)
        if left <= 0:
            raise TimeoutError("the previous scrape's broker read has not returned yet")
        try:
            return reading.result(left)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"the broker did not answer within {self.timeout:g}s") from None

    def _cluster(self, now: float) -> Iterator[Metric]:
        admin = self.admin
        workers = admin.workers()
        queues = admin.queues()
        totals = self.totals.update(admin, self.counters_clock())
        dead = admin.dead_letters(limit=1).total

        healthy = [w for w in workers if problem(w, now) is None]
        serving: Counter[str] = Counter()
        for w in healthy:
            serving.update(w.queues)
        for name, text, value in QUEUE_GAUGES:
            family = GaugeMetricFamily(name, text, labels=["queue"])
            for info in queues:
                family.add_metric([info.name], value(info))
            yield family
        consumers = GaugeMetricFamily(
            "conveyor_queue_workers", "Live, fetching workers that consume the queue", labels=["queue"]
        )
        for info in queues:
            consumers.add_metric([info.name], serving[info.name])
        yield consumers

        alive = GaugeMetricFamily(
            "conveyor_workers", "Workers heartbeating within their lease", labels=["state"]
        )
        alive.add_metric(["alive"], len(workers))
        alive.add_metric(["healthy"], len(healthy))
        yield alive
        yield GaugeMetricFamily(
            "conveyor_worker_slots",
            "Concurrency slots of the live workers",
            value=sum(w.concurrency for w in workers),
        )
        yield GaugeMetricFamily(
            "conveyor_worker_busy_slots",
            "Slots of the live workers running a task now",
            value=sum(len(w.running) for w in workers),
        )
        yield GaugeMetricFamily(
            "conveyor_dead_letters", "Dead letters kept (failed for good, retryable by hand)", value=dead or 0
        )

        tasks = CounterMetricFamily(
            "conveyor_tasks",
            "Runs ended, by task name and outcome (succeeded, failed, retried); lags one to two minutes",
            labels=["task", "outcome"],
        )
        runtime = SummaryMetricFamily(
            "conveyor_task_runtime_seconds",
            "Run time of the runs ended, by task name (sum and count: no quantiles)",
            labels=["task"],
        )
        for name, t in sorted(totals.items()):
            tasks.add_metric([name, "succeeded"], t.succeeded)
            tasks.add_metric([name, "failed"], t.failed)
            tasks.add_metric([name, "retried"], t.retried)
            runtime.add_metric([name], count_value=t.processed, sum_value=t.runtime)
        yield tasks
        yield runtime
