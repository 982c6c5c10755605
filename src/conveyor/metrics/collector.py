"""The Prometheus collector: every metric computed from the broker at scrape time, through the
admin API, so one scrape target describes the whole cluster (no per-worker exporter, no
multiprocess directory). docs/metrics.md lists each metric and what it means.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from ..admin import Admin
from ..admin.health import problem
from .totals import Totals

log = logging.getLogger("conveyor.metrics")


class ConveyorCollector(Collector):
    """Collects the cluster's metrics; give it the app's admin API.

    >>> registry = CollectorRegistry(); registry.register(ConveyorCollector(app.admin))  # doctest: +SKIP
    """

    def __init__(self, admin: Admin) -> None:
        self.admin = admin
        self.totals = Totals()

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        up = GaugeMetricFamily("conveyor_broker_up", "1 if the broker answered this scrape, else 0")
        try:
            metrics = list(self._cluster(time.time()))
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

    def _cluster(self, now: float) -> Iterator[Metric]:
        admin = self.admin
        workers = admin.workers()
        queues = admin.queues()
        totals = self.totals.update(admin, now)
        dead = admin.dead_letters(limit=1).total

        q = "queue"
        ready = GaugeMetricFamily(
            "conveyor_queue_ready_tasks", "Tasks ready to run, waiting for a worker", labels=[q]
        )
        delayed = GaugeMetricFamily(
            "conveyor_queue_delayed_tasks",
            "Tasks waiting for their eta, countdown or retry backoff",
            labels=[q],
        )
        running = GaugeMetricFamily(
            "conveyor_queue_running_tasks", "Tasks live workers run now (from their heartbeats)", labels=[q]
        )
        leased = GaugeMetricFamily(
            "conveyor_queue_leased_tasks",
            "Tasks workers hold under a lease: running or prefetched",
            labels=[q],
        )
        latency = GaugeMetricFamily(
            "conveyor_queue_latency_seconds",
            "How long the oldest ready task has waited (0: none ready)",
            labels=[q],
        )
        paused = GaugeMetricFamily(
            "conveyor_queue_paused", "1 if the queue is paused cluster-wide", labels=[q]
        )
        consumers = GaugeMetricFamily(
            "conveyor_queue_workers", "Live, fetching workers that consume the queue", labels=[q]
        )
        serving: Counter[str] = Counter()
        healthy = [w for w in workers if problem(w, now) is None]
        for w in healthy:
            serving.update(w.queues)
        for info in queues:
            ready.add_metric([info.name], info.ready)
            delayed.add_metric([info.name], info.delayed)
            running.add_metric([info.name], info.running)
            leased.add_metric([info.name], info.leased)
            latency.add_metric([info.name], info.latency)
            paused.add_metric([info.name], 1 if info.paused else 0)
            consumers.add_metric([info.name], serving[info.name])
        yield from (ready, delayed, running, leased, latency, paused, consumers)

        alive = GaugeMetricFamily(
            "conveyor_workers", "Workers heartbeating within their lease", labels=["state"]
        )
        alive.add_metric(["alive"], len(workers))
        alive.add_metric(["healthy"], len(healthy))
        yield alive
        slots = GaugeMetricFamily("conveyor_worker_slots", "Concurrency slots of the live workers")
        slots.add_metric([], sum(w.concurrency for w in workers))
        busy = GaugeMetricFamily("conveyor_worker_busy_slots", "Slots of the live workers running a task now")
        busy.add_metric([], sum(len(w.running) for w in workers))
        yield slots
        yield busy

        letters = GaugeMetricFamily(
            "conveyor_dead_letters", "Dead letters kept (failed for good, retryable by hand)"
        )
        letters.add_metric([], dead or 0)
        yield letters

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
