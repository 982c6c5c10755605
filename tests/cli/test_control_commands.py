"""``control``, ``revoke`` and the inspect commands answered through the control channel: help,
errors and exit codes, and what they do to real worker processes on SQLite and Redis."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from conveyor import Conveyor, states
from conveyor.cli.main import cli

from ..apps import basic
from ..procs import ConveyorProcess, WorkerProcess, wait_for
from ..redis_server import free_port
from .helpers import conveyor

COMMANDS = [
    ["control"],
    ["revoke"],
    *[["control", sub] for sub in ("shutdown", "revoke", "terminate", "rate_limit")],
    *[["control", sub] for sub in ("add_consumer", "cancel_consumer")],
    *[["inspect", sub] for sub in ("ping", "reserved", "scheduled", "revoked", "query_task")],
]


@pytest.fixture
def app(process_broker_url: str) -> Iterator[Conveyor]:
    basic.app.conf.broker_url = process_broker_url
    yield basic.app
    basic.app.close()


def run(url: str, *args: str) -> tuple[int, str]:
    """``conveyor -b URL ARGS`` in this process; (exit code, stdout and stderr)."""
    result = CliRunner().invoke(cli, ["-b", url, *args])
    return result.exit_code, result.output


def test_every_control_command_has_help_with_an_example(tmp_path: Path) -> None:
    for command in COMMANDS:
        code, out = run(f"sqlite:///{tmp_path / 'h.db'}", *command, "--help")
        assert code == 0 and "Example" in out, command


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["control", "shutdown", "-d", "nobody@nowhere"], "unknown worker 'nobody@nowhere'"),
        (["inspect", "reserved", "-d", "nobody@nowhere"], "unknown worker 'nobody@nowhere'"),
        (["control", "rate_limit", "proj.add", "10/fortnight"], "use 'N/s', 'N/m' or 'N/h'"),
        (["control", "rate_limit", "proj.nope", "10/m"], "unknown task 'proj.nope'"),
        (["control", "cancel_consumer", "nope"], "unknown queue 'nope'"),
        (["revoke", "no-such-id"], "unknown task id 'no-such-id'"),
        (["inspect", "query_task", "no-such-id"], "unknown task id 'no-such-id'"),
        (["revoke", "some-id", "--terminate", "--signal", "SIGHUPPY"], "unknown signal 'SIGHUPPY'"),
        (["control", "terminate", "KILL"], "Missing argument 'ID...'"),
        (["control", "shutdown", "-t", "0"], "-t"),
        (["revoke", "x", "--bogus"], "No such option"),
    ],
)
def test_a_bad_flag_or_unknown_name_is_a_one_line_error_with_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    code, out = run(f"sqlite:///{tmp_path / 'e.db'}", *args)
    assert code == 2, out
    assert message in out and "Traceback" not in out


@pytest.mark.parametrize(
    "args", [["control", "shutdown"], ["revoke", "x", "--terminate"], ["inspect", "ping"]]
)
def test_an_unreachable_broker_exits_1(args: list[str]) -> None:
    out = conveyor(*args, url=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    assert out.returncode == 1 and "Traceback" not in out.stderr, out


def _replies(url: str, *args: str) -> dict[str, object]:
    """The JSON replies; a generous timeout (a loaded machine), which costs nothing when all
    the workers reply: the command returns as soon as they have."""
    code, out = run(url, *args, "--json", "-t", "15")
    assert code == 0, out
    replies: dict[str, object] = json.loads(out)
    return replies


def test_control_commands_reach_the_named_worker_and_a_gone_one_is_reported_not_waited_for(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """Two worker processes share one broker: every command reaches the one it names."""
    url = process_broker_url
    one = WorkerProcess(url, tmp_path, name="one")
    two = WorkerProcess(url, tmp_path, name="two")
    try:
        one.wait_ready(), two.wait_ready()
        names = sorted(_replies(url, "inspect", "ping"))
        assert [n.split("@")[0] for n in names] == ["one", "two"]
        first, second = names

        # add_consumer / cancel_consumer: fetching from the queue, and in the heartbeat.
        assert _replies(url, "control", "add_consumer", "extra", "-d", first) == {
            first: "add consumer 'extra'"
        }
        extra = basic.add.apply_async((2, 3), queue="extra")
        assert extra.get(timeout=20) == 5

        def queues() -> dict[str, list[str]]:
            found = _replies(url, "inspect", "active_queues")
            return {name: [q["name"] for q in qs] for name, qs in found.items()}  # type: ignore[attr-defined]

        wait_for(lambda: queues() == {first: ["default", "extra"], second: ["default"]}, 15)
        code, out = run(url, "control", "cancel_consumer", "extra", "-d", second)
        assert code == 2 and "unknown queue 'extra': no such worker consumes it" in out, out
        _replies(url, "control", "cancel_consumer", "extra", "-d", first)
        wait_for(lambda: queues() == {first: ["default"], second: ["default"]}, 15)

        # revoke --terminate stops a task running Python code; recorded REVOKED, not retried.
        # `control revoke --terminate` (the Celery habit) does the same.
        for command in (["revoke"], ["control", "revoke"]):
            running = basic.busy_loop.delay(120.0)
            wait_for(
                lambda task=running: any(
                    task.id in str(r) for r in _replies(url, "inspect", "query_task", task.id).values()
                ),
                20,
            )
            held = _replies(url, "inspect", "query_task", running.id)
            [holder] = [name for name, found in held.items() if found]
            if command == ["revoke"]:  # without --terminate: it runs on, and the reply says so
                code, out = run(url, "revoke", running.id, "-t", "15")
                assert code == 0 and f"still running (it finishes; --terminate stops it): {running.id}" in out
            code, out = run(url, *command, running.id, "--terminate", "--signal", "KILL", "-t", "15")
            assert code == 0 and f"-> {holder}: OK" in out and f"terminated: {running.id}" in out, out
            wait_for(lambda task=running: task.status == states.REVOKED, 20)
            assert "terminated" in str(running.result)
            # Where it was stopped: read before the exception was raised in its thread.
            assert "stopped at basic.py:" in str(running.result) and "in busy_loop" in str(running.result)
            assert running.id in _replies(url, "inspect", "revoked", "-d", holder)[holder]  # type: ignore[operator]

        # rate_limit: cluster-wide and stored; "1/h" lets one run start and defers the rest.
        assert set(_replies(url, "control", "rate_limit", basic.add.name, "1/h").values()) == {
            "new rate limit set successfully: 1/h"
        }
        assert app.admin.control.rate_limits() == {basic.add.name: "1/h"}
        limited = [basic.add.delay(i, i) for i in range(3)]
        wait_for(lambda: sum(r.status == states.SUCCESS for r in limited) == 1, 20)
        wait_for(lambda: app.admin.queue("default").delayed == 2, 20)  # deferred, not run
        assert sum(r.status == states.SUCCESS for r in limited) == 1
        # Removing the limit frees the runs it held back (due in one and two hours): now.
        assert set(_replies(url, "control", "rate_limit", basic.add.name, "0").values()) == {
            "new rate limit set successfully: none"
        }
        assert [r.get(timeout=20) for r in limited] == [0, 2, 4]

        # shutdown -d drains that worker only; the other keeps working.
        assert _replies(url, "control", "shutdown", "-d", first) == {first: "shutting down"}
        assert one.proc.wait(timeout=30) == 0
        assert "shutdown requested by control command" in one.log()
        assert list(_replies(url, "inspect", "ping")) == [second]
        assert basic.sleeper.delay(0.0).get(timeout=20) == 0.0

        # A worker that died: named as not replying (exit 1) after the timeout, not waited for.
        two.signal(signal.SIGKILL)
        two.proc.wait(timeout=10)
        started = time.monotonic()
        silent = conveyor("inspect", "ping", "-d", second, "-t", "0.5", url=url)
        assert silent.returncode == 1 and f"worker {second}" in silent.stderr, silent
        assert "did not reply within 0.5 s" in silent.stderr or "gone" in silent.stderr
        assert time.monotonic() - started < 15  # no hang; the slack is the CLI's start-up
    finally:
        one.kill()
        two.kill()


def test_control_shutdown_of_one_process_of_a_supervised_worker_does_not_replace_it(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'sup.db'}"
    supervisor = ConveyorProcess(
        url, tmp_path, ["worker", "-l", "info", "-n", "p@h", "--processes", "2"], "tests.apps.basic", "sup"
    )
    try:
        wait_for(lambda: supervisor.log().count(" ready: ") == 2, 30)
        wait_for(lambda: sorted(_replies(url, "inspect", "ping")) == ["p.1@h", "p.2@h"], 15)
        assert _replies(url, "control", "shutdown", "-d", "p.1@h") == {"p.1@h": "shutting down"}
        wait_for(lambda: "shut down by control; not replaced" in supervisor.log(), 30)
        assert list(_replies(url, "inspect", "ping")) == ["p.2@h"]
        assert supervisor.proc.poll() is None
        assert supervisor.log().count(" ready: ") == 2  # no third process started
    finally:
        assert supervisor.stop() == 0


def test_a_worker_started_after_a_rate_limit_change_honours_it(tmp_path: Path, run_worker: type) -> None:
    app = Conveyor("ratecheck", broker=f"sqlite:///{tmp_path / 'rate.db'}")

    @app.task
    def scrape() -> None: ...

    try:
        app.admin.control.rate_limit(scrape.name, "10/m", known=[scrape.name])
        assert scrape.coordination is None
        with run_worker(app, queues=["default"]):
            wait_for(lambda: scrape.coordination is not None, 10)
        assert scrape.coordination is not None and scrape.coordination.rate is not None
        assert scrape.coordination.rate.interval == 6.0
    finally:
        app.close()
