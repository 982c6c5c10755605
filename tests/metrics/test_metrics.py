"""The Prometheus endpoint: every figure compared with what the broker really holds."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from conveyor import Conveyor
from conveyor.metrics import ConveyorCollector, metrics_route

from ..apps.api_app import make_app
from ..procs import ConveyorProcess, WorkerProcess, wait_for
from ..webserver import free_port, serving

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def by_queue(samples: Samples, name: str) -> dict[str, float]:
    return {dict(labels)["queue"]: v for (n, labels), v in samples.items() if n == name}


def scrape(app: Conveyor) -> Samples:
    from starlette.applications import Starlette

    with serving(Starlette(routes=[metrics_route(app)])) as url:
        answer = httpx.get(url + "/metrics", timeout=30)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    return parse(answer.text)


def test_queue_metrics_match_what_the_queues_hold(app: Conveyor) -> None:
    add = app.tasks["api.add"]
    for _ in range(5):
        add.apply_async((1, 2), queue="emails")
    for _ in range(2):
        add.apply_async((1, 2), queue="reports", countdown=3600)
    add.apply_async((1, 2), queue="slow")
    app.admin.pause("slow")
    samples = scrape(app)
    assert samples[("conveyor_broker_up", ())] == 1
    assert by_queue(samples, "conveyor_queue_ready_tasks") == {"emails": 5, "reports": 0, "slow": 1}
    assert by_queue(samples, "conveyor_queue_delayed_tasks") == {"emails": 0, "reports": 2, "slow": 0}
    assert by_queue(samples, "conveyor_queue_paused") == {"emails": 0, "reports": 0, "slow": 1}
    assert by_queue(samples, "conveyor_queue_running_tasks") == {"emails": 0, "reports": 0, "slow": 0}
    latency = by_queue(samples, "conveyor_queue_latency_seconds")
    assert latency["emails"] >= 0 and latency["reports"] == 0
    for queue in app.admin.queues():  # the same figures the admin API reads
        assert by_queue(samples, "conveyor_queue_ready_tasks")[queue.name] == queue.ready
    assert samples[("conveyor_dead_letters", ())] == 0
    assert samples[("conveyor_workers", (("state", "alive"),))] == 0


def test_worker_and_task_metrics_follow_a_real_worker(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    worker = WorkerProcess(process_broker_url, tmp_path, "-c", "3", app="tests.apps.api_app").wait_ready()
    try:
        add, boom, sleeper = (app.tasks[n] for n in ("api.add", "api.boom", "api.sleeper"))
        results = [add.delay(i, i) for i in range(4)]
        failed = boom.delay()
        for r in results:
            assert r.get(timeout=30) is not None
        wait_for(lambda: app.admin.dead_letters().items != (), 30)
        assert failed.id == app.admin.dead_letters().items[0].id
        running = sleeper.delay(60)
        wait_for(lambda: app.admin.running() != [], 30)
        # counters count a minute once it is closed: look from two minutes ahead
        collector = ConveyorCollector(app.admin, counters_clock=lambda: time.time() + 150)
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in collector.collect()
            for s in family.samples
        }
        assert samples[("conveyor_workers", (("state", "alive"),))] == 1
        assert samples[("conveyor_workers", (("state", "healthy"),))] == 1
        assert samples[("conveyor_worker_slots", ())] == 3
        assert samples[("conveyor_worker_busy_slots", ())] == 1
        assert by_queue(samples, "conveyor_queue_running_tasks") == {"default": 1}
        assert by_queue(samples, "conveyor_queue_workers") == {"default": 1}
        assert samples[("conveyor_dead_letters", ())] == 1
        tasks = {
            dict(labels)["task"] + "/" + dict(labels)["outcome"]: v
            for (n, labels), v in samples.items()
            if n == "conveyor_tasks_total"
        }
        assert tasks["api.add/succeeded"] == 4 and tasks["api.add/failed"] == 0
        assert tasks["api.boom/failed"] == 1 and tasks["api.boom/succeeded"] == 0
        assert samples[("conveyor_task_runtime_seconds_count", (("task", "api.add"),))] == 4
        assert samples[("conveyor_task_runtime_seconds_sum", (("task", "api.add"),))] >= 0
        # each minute is counted once, and the totals never go down, even when the broker's
        # per-minute counters have long expired (four days later)
        offset = [150.0]
        collector.counters_clock = lambda: time.time() + offset[0]
        for later in (150.0, 4 * 86400.0):
            offset[0] = later
            again = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in collector.collect()
                for s in family.samples
            }
            assert again[("conveyor_task_runtime_seconds_count", (("task", "api.add"),))] == 4
        app.revoke(running.id, terminate=True)
    finally:
        worker.stop()


def test_an_unreachable_broker_is_a_zero_not_a_failed_scrape() -> None:
    unreachable = make_app(f"redis://127.0.0.1:{free_port()}/0")
    try:
        samples = scrape(unreachable)
        assert samples[("conveyor_broker_up", ())] == 0
    finally:
        unreachable.close()


def test_a_hung_broker_is_a_zero_within_prometheus_default_scrape_timeout() -> None:
    """A Redis that takes connections but never answers (a stopped server, a dead network path):
    the scrape must still answer, with conveyor_broker_up 0, well before Prometheus's default
    10 s scrape timeout, and the next scrape at once while the first read still hangs."""
    import socket

    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)  # the kernel completes connections; nothing ever reads or answers them
    from starlette.applications import Starlette

    app = make_app(f"redis://127.0.0.1:{hung.getsockname()[1]}/0?socket_timeout=30")
    try:
        with serving(Starlette(routes=[metrics_route(app)])) as url:  # one endpoint, scraped twice
            first = parse(httpx.get(url + "/metrics", timeout=30).text)
            second = parse(httpx.get(url + "/metrics", timeout=30).text)
        took = first[("conveyor_metrics_collect_seconds", ())]
        assert first[("conveyor_broker_up", ())] == 0 and took < 9
        # The first read still waits for its 30 s socket timeout: the second does not queue behind it.
        assert second[("conveyor_broker_up", ())] == 0
        assert second[("conveyor_metrics_collect_seconds", ())] < took
    finally:
        hung.close()
        app.close()


def test_the_standalone_metrics_command_serves_the_cluster(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    app.tasks["api.add"].apply_async((1, 2), queue="emails")
    port = free_port()
    proc = ConveyorProcess(
        process_broker_url, tmp_path, ["metrics", "--port", str(port)], "tests.apps.api_app", "m"
    )
    try:

        def answers() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200
            except httpx.HTTPError:
                return proc.proc.poll() is not None

        wait_for(answers, 30)
        assert proc.proc.poll() is None, proc.log()
        samples = parse(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text)
        assert by_queue(samples, "conveyor_queue_ready_tasks") == {"emails": 1}
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=30).status_code == 503  # no worker
        # SIGTERM stops it at once; uvicorn shuts down gracefully, then re-raises the signal
        # (exit by SIGTERM, which Kubernetes and systemd count as a clean stop)
        assert proc.stop(timeout=10) in (0, -signal.SIGTERM)
    finally:
        if proc.proc.poll() is None:
            proc.kill()


def test_the_metrics_command_has_help_with_an_example_and_refuses_a_bad_port() -> None:
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "conveyor", "-b", "sqlite:///unused.db", "metrics", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)

    shown = run("--help")
    assert shown.returncode == 0 and "Example:" in shown.stdout and "--port" in shown.stdout
    refused = run("--port", "70000")
    assert refused.returncode == 2 and "70000" in refused.stderr


def test_an_every_interface_bind_prints_a_metrics_url_a_scraper_can_reach(tmp_path: Path) -> None:
    """``--host 0.0.0.0`` listens everywhere; the printed URL must be one that answers."""
    port = free_port()
    proc = ConveyorProcess(
        f"sqlite:///{tmp_path / 'b.db'}",
        tmp_path,
        ["metrics", "--host", "0.0.0.0", "--port", str(port)],
        "tests.apps.api_app",
        "m",
    )
    try:
        wait_for(lambda: "serving" in proc.log() or proc.proc.poll() is not None, 30)
        [line] = [text for text in proc.log().splitlines() if text.startswith("conveyor metrics: serving ")]
        printed = line.split()[3]
        assert printed == f"http://127.0.0.1:{port}/metrics", line
        assert f"(listening on all interfaces, 0.0.0.0:{port}; from another machine: http://" in line, line

        def answers() -> bool:
            assert proc.proc.poll() is None, proc.log()
            try:
                return httpx.get(printed, timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(answers, 30, interval=0.1)
    finally:
        proc.stop(timeout=10)
