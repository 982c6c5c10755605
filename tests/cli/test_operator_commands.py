"""``status``, ``queues``, ``pause``/``resume``, ``inspect`` and ``health``: help, errors, exit codes,
and what they show with real worker processes."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from conveyor import Conveyor, states
from conveyor.brokers import JobSpec, Outcome, broker_from_url
from conveyor.message import Envelope, encode_envelope

from ..apps import basic
from ..procs import WorkerProcess, wait_for
from ..redis_server import RedisServer, free_port
from ..tcp_proxy import TcpProxy
from .helpers import conveyor

NEW_COMMANDS = [
    ["status"],
    ["queues"],
    ["pause"],
    ["resume"],
    ["health"],
    ["inspect"],
    *[["dead", sub] for sub in ("list", "retry", "delete", "purge")],
    *[["inspect", sub] for sub in ("active", "stats", "ping", "registered", "active_queues")],
]


@pytest.fixture
def app(process_broker_url: str) -> Iterator[Conveyor]:
    basic.app.conf.broker_url = process_broker_url
    yield basic.app
    basic.app.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_every_operator_command_has_help_with_an_example(sqlite_url: str) -> None:
    for command in NEW_COMMANDS:
        out = conveyor(*command, "--help", url=sqlite_url)
        assert out.returncode == 0 and "Example" in out.stdout, command


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["queues", "--bogus"], "No such option"),
        (["inspect", "active", "-t", "soon"], "'soon' is not a valid float"),
        (["inspect", "ping", "-d", "nobody@nowhere"], "unknown worker 'nobody@nowhere'"),
        (["pause", "nope"], "unknown queue 'nope'"),
        (["resume", "nope"], "unknown queue 'nope'"),
        (["health", "--worker", "nobody@nowhere"], "unknown worker 'nobody@nowhere'"),
        (["health", "--worker", "a", "--local"], "give one of --worker NAME, --local or --queue NAME"),
        # Celery subcommands Conveyor lacks: what to use instead, not only "No such command".
        (["inspect", "failed"], "failed tasks are `conveyor tasks --state failed`"),
        (["inspect", "memdump"], "shows each worker's memory_rss"),
        (["control", "time_limit", "proj.add", "10"], "control time_limit: not provided at run time"),
        (["control", "autoscale", "10", "3"], "the pool size is -c at start"),
    ],
)
def test_a_bad_flag_or_unknown_name_is_a_one_line_error_with_exit_2(
    sqlite_url: str, args: list[str], message: str
) -> None:
    out = conveyor(*args, url=sqlite_url)
    assert out.returncode == 2, out
    assert message in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    "args", [["status"], ["queues"], ["inspect", "active"], ["pause", "q"], ["health"], ["health", "--local"]]
)
def test_an_unreachable_broker_exits_1(args: list[str]) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    started = time.monotonic()
    out = conveyor(*args, url=url)
    assert out.returncode == 1, out
    assert "unreachable" in out.stderr and "Traceback" not in out.stderr
    if args[0] == "health":
        assert time.monotonic() - started < 5  # a probe fails fast (its own budget: under a second)


def test_queues_pause_and_resume_from_the_command_line(app: Conveyor) -> None:
    url = str(app.conf.broker())
    basic.add.delay(1, 2)
    assert conveyor("pause", "default", url=url).stdout.startswith("paused queue default (workers stop")
    [queue] = json.loads(conveyor("queues", "--json", url=url).stdout)
    assert (queue["name"], queue["ready"], queue["paused"]) == ("default", 1, True)
    assert "default  1      0        0" in conveyor("queues", url=url).stdout
    assert conveyor("resume", "default", url=url).stdout.strip() == "resumed queue default"
    assert conveyor("resume", "default", url=url).stdout.strip() == "queue default was not paused"


def test_inspect_active_shows_a_running_task_with_its_worker_and_status_drops_a_sigkilled_worker(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    worker = WorkerProcess(process_broker_url, tmp_path, name="busy").wait_ready()
    try:
        result = basic.sleeper.delay(30.0)
        wait_for(lambda: result.id in conveyor("inspect", "active", url=process_broker_url).stdout, 15)
        active = json.loads(conveyor("inspect", "active", "--json", url=process_broker_url).stdout)
        [(name, [task])] = active.items()
        assert name.startswith("busy@") and task["id"] == result.id and task["worker"] == name
        assert task["name"] == basic.sleeper.name and task["args"] == "30.0" and task["attempt"] == 1
        assert task["pid"] == worker.pid  # a thread of the worker runs it (-P processes: the child)
        status = conveyor("status", url=process_broker_url)
        assert status.returncode == 0 and f"{name}: OK" in status.stdout and "1 node online." in status.stdout
        for sub in ("ping", "stats", "registered", "active_queues"):
            out = conveyor("inspect", sub, "-d", name, url=process_broker_url)
            assert out.returncode == 0 and f"-> {name}: OK" in out.stdout, (sub, out)
            # What was counted: a control-channel reply for ping, the heartbeat record for the rest.
            counted = "1 node replied." if sub == "ping" else "1 node reported by heartbeat."
            assert out.stdout.splitlines()[-1] == counted, (sub, out)
        # Draining after SIGTERM (the sleeper still runs): not OK any more, and says why.
        os.kill(worker.pid, signal.SIGTERM)
        wait_for(lambda: f"{name}: shutting down" in conveyor("status", url=process_broker_url).stdout, 15)
    finally:
        worker.kill()
    killed = time.monotonic()
    wait_for(lambda: conveyor("status", url=process_broker_url).returncode == 1, 15)
    lease = float(app.conf.worker_lease_timeout)
    # Dropped once its heartbeat is a lease old; the slack covers two `conveyor status`
    # start-ups (the poll just before the drop and the one that sees it) on a busy machine.
    assert time.monotonic() - killed < lease + 5.0
    # --all still lists it, as gone, with its last heartbeat: where did my worker go?
    every = conveyor("status", "--all", url=process_broker_url)
    assert every.returncode == 1 and f"{name}: gone (last heartbeat " in every.stdout, every
    assert "0 nodes online, 1 gone." in every.stdout, every
    [listed] = json.loads(conveyor("status", "--all", "--json", url=process_broker_url).stdout)
    assert (listed["hostname"], listed["gone"]) == (name, True)


def test_status_and_health_queue_name_a_queue_whose_ready_tasks_no_worker_consumes(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """A task routed to a queue the worker was not started with (-Q) waits for ever: status
    says so, and ``health -Q NAME`` fails for that queue and passes for a consumed one."""
    url = process_broker_url
    basic.add.apply_async((1, 2), queue="reports")
    worker = WorkerProcess(url, tmp_path, "-Q", "default", name="only-default").wait_ready()
    try:
        status = conveyor("status", url=url)
        assert status.returncode == 0, status
        said = "queue 'reports': 1 task(s) ready and no live worker consumes it"
        assert f"problem: {said}" in status.stdout.splitlines()
        orphan = conveyor("health", "-Q", "reports", "-t", "5", url=url)  # -t: a loaded machine
        assert (orphan.returncode, orphan.stderr.strip()) == (
            1,
            "unhealthy: queue 'reports': no live worker consumes it",
        )
        served = conveyor("health", "--queue", "default", "-t", "5", url=url)
        assert served.returncode == 0 and served.stdout.startswith("ok: consumed: default (only-default@")
        assert conveyor("health", "-Q", "default", "--local", url=url).returncode == 2
        conveyor("pause", "default", url=url)  # still consumed, and the line says it waits on purpose
        paused = conveyor("health", "-Q", "default", "-t", "5", url=url)
        assert paused.returncode == 0 and paused.stdout.rstrip().endswith("; paused)"), paused
        conveyor("resume", "default", url=url)
    finally:
        worker.stop()
    conveyor("pause", "reports", url=url)  # paused on purpose: no problem to report
    assert "problem:" not in conveyor("status", url=url).stdout


def test_inspect_stats_counts_a_body_abandoned_at_its_hard_limit(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """Blocked in C (time.sleep(5)) past a 0.5 s hard limit: the threads pool stops waiting and
    leaves the thread to finish; ``inspect stats`` shows it in ``abandoned_threads``."""
    worker = WorkerProcess(process_broker_url, tmp_path, name="abandons").wait_ready()
    try:
        result = basic.sleeper.apply_async((5.0,), time_limit=0.5)
        wait_for(lambda: result.state == states.FAILURE, 20)

        def abandoned() -> list[int]:
            out = conveyor("inspect", "stats", "--json", url=process_broker_url)
            return [r["abandoned_threads"] for r in json.loads(out.stdout).values()]

        wait_for(lambda: abandoned() == [1], 20)
    finally:
        worker.stop()


def test_inspect_without_a_live_worker_says_no_node_reported(sqlite_url: str) -> None:
    for args, said in [
        (["inspect", "stats"], "no live worker: no node reported by heartbeat\n"),
        (
            ["inspect", "registered", "-t", "2.5"],
            "no live worker: no node reported by heartbeat within 2.5s\n",
        ),
    ]:
        out = conveyor(*args, url=sqlite_url)
        assert out.returncode == 1 and out.stdout == "" and out.stderr.endswith(said), (args, out)


def test_health_local_fails_while_the_broker_is_down_and_passes_once_it_is_back(tmp_path: Path) -> None:
    server = RedisServer().start()
    worker = WorkerProcess(server.url, tmp_path, name="probed").wait_ready()
    try:
        wait_for(lambda: conveyor("health", "--local", url=server.url).returncode == 0, 15)
        server.stop()
        down = conveyor("health", "--local", url=server.url)
        assert down.returncode == 1 and down.stdout == "" and "unhealthy" in down.stderr
        server.start()
        wait_for(lambda: conveyor("health", "--local", url=server.url).returncode == 0, 30)
        assert "alive and fetching" in conveyor("health", "--local", url=server.url).stdout
    finally:
        worker.stop()
        server.cleanup()


def _dead_letters(url: str, *tasks: str) -> None:
    broker = broker_from_url(url)
    specs = [
        JobSpec(f"t{i}", "default", encode_envelope(Envelope(id=f"t{i}", task=task, args=[i])))
        for i, task in enumerate(tasks)
    ]
    broker.enqueue(specs)
    for d in broker.fetch(["default"], "w", len(specs), 30, 0):
        broker.settle([Outcome("dead", d.id, d.delivery, states.FAILURE, None, reason="x")], 60)
    broker.close()


def test_dead_letters_listed_retried_and_deleted_by_filter(sqlite_url: str) -> None:
    _dead_letters(sqlite_url, "proj.mail", "proj.mail", "proj.sms", "proj.fax")
    page = json.loads(conveyor("dead", "list", "--json", "--task", "proj.m*", url=sqlite_url).stdout)
    assert sorted(d["id"] for d in page["items"]) == ["t0", "t1"] and page["items"][0]["args"] in ("0", "1")
    listed = conveyor("dead", "list", "--limit", "1", url=sqlite_url).stdout
    assert "queue=default" in listed and "more: --offset 1" in listed
    retried = conveyor("dead", "retry", "--all", "--task", "proj.mail", url=sqlite_url)
    assert retried.stdout.strip() == "requeued 2 task(s)", retried
    deleted = conveyor("dead", "delete", "--all", "--search", "SMS", url=sqlite_url)
    assert deleted.stdout.strip() == "deleted 1 dead letter(s)", deleted
    assert conveyor("dead", "retry", "--all", url=sqlite_url).stdout.strip() == "requeued 1 task(s)"
    assert conveyor("dead", "retry", "--task", "x", url=sqlite_url).returncode == 2  # filters need --all
    assert conveyor("dead", "delete", url=sqlite_url).returncode == 2


def test_health_local_fails_for_a_worker_whose_broker_connection_is_cut_and_passes_once_restored(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """The probe reaches Redis; only the worker's connection (through a proxy) is cut."""
    proxy = TcpProxy(redis_server.port).start()
    worker_url = redis_server.url.replace(f":{redis_server.port}", f":{proxy.port}")
    redis.Redis.from_url(redis_server.url).flushall()
    worker = WorkerProcess(worker_url, tmp_path, name="cut").wait_ready()
    try:
        wait_for(lambda: conveyor("health", "--local", url=redis_server.url).returncode == 0, 15)
        proxy.cut()
        wait_for(lambda: conveyor("health", "--local", url=redis_server.url).returncode == 1, 15)
        assert "unhealthy" in conveyor("health", "--local", url=redis_server.url).stderr
        proxy.restore()
        wait_for(lambda: conveyor("health", "--local", url=redis_server.url).returncode == 0, 30)
    finally:
        worker.stop()
        proxy.cut()
