"""``conveyor tasks`` and ``conveyor task ID``: the persistent task history, read after every
process restarted, with real worker processes on SQLite and Redis; help and bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor

from ..apps import basic
from ..procs import WorkerProcess, wait_for
from ..redis_server import free_port
from .helpers import conveyor


@pytest.fixture
def app(process_broker_url: str) -> Iterator[Conveyor]:
    basic.app.conf.broker_url = process_broker_url
    yield basic.app
    basic.app.close()


def test_a_failure_is_found_by_tasks_state_failed_search_after_every_process_restarted(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    url = process_broker_url
    workers = [WorkerProcess(url, tmp_path, "-c", "2", name=f"h{i}") for i in range(2)]
    try:
        for w in workers:
            w.wait_ready()
        failed = basic.flaky.delay("order-4711", 99)  # fails every attempt: 3 retries, then for good
        done = basic.add.delay(2, 3)
        wait_for(lambda: failed.ready() and done.ready(), 30)
    finally:
        for w in workers:
            w.stop()
    app.close()  # every process that wrote the history is gone; a new worker starts
    restarted = WorkerProcess(url, tmp_path, name="h-new").wait_ready()
    try:
        out = conveyor(
            "tasks", "--state", "failed", "--since", "2h", "--search", "ORDER-4711", "--json", url=url
        )
        assert out.returncode == 0, out
        [item] = json.loads(out.stdout)["items"]
        assert (item["id"], item["name"], item["state"], item["dead"]) == (
            failed.id,
            basic.flaky.name,
            "failed",
            True,
        )
        assert item["args"] == "'order-4711', 99" and item["attempts_made"] == 4
        assert item["error"] == "OSError: attempt 3 failed" and "Traceback" in item["traceback"]
        assert [a["error"] for a in item["attempts"]] == [f"OSError: attempt {n} failed" for n in range(4)]
        assert [a["state"] for a in item["attempts"]] == ["retrying"] * 3 + ["failed"]
        table = conveyor("tasks", "--state", "failed", "--search", "order-4711", url=url).stdout
        assert failed.id in table and "failed (dead)" in table and "OSError: attempt 3 failed" in table
        shown = conveyor("task", failed.id, url=url).stdout
        assert "state:     failed (dead letter)" in shown and "order-4711" in shown
        assert any(f"worker:    h{i}@" in shown for i in range(2)), shown
        succeeded = json.loads(conveyor("task", done.id, "--json", url=url).stdout)
        assert (succeeded["state"], succeeded["result"], succeeded["args"]) == ("succeeded", 5, "2, 3")
        assert (
            conveyor("tasks", "--state", "succeeded", "--name", basic.add.name, url=url).stdout.count(done.id)
            == 1
        )
    finally:
        restarted.stop()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'history.db'}"


def test_tasks_and_task_have_help_with_an_example(sqlite_url: str) -> None:
    for command in (["tasks"], ["task"]):
        out = conveyor(*command, "--help", url=sqlite_url)
        assert out.returncode == 0 and "Example" in out.stdout, command


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tasks", "--state", "lost"], "'lost' is not one of"),
        (["tasks", "--since", "soon"], "is not an age such as 30m"),
        (["tasks", "--limit", "0"], "0 is not in the range"),
        (["task", "no-such-id"], "unknown task id 'no-such-id'"),
    ],
)
def test_a_bad_flag_or_unknown_task_id_is_a_one_line_error_with_exit_2(
    sqlite_url: str, args: list[str], message: str
) -> None:
    out = conveyor(*args, url=sqlite_url)
    assert out.returncode == 2, out
    assert message in out.stderr and "Traceback" not in out.stderr
    if args[0] == "task":  # a name not found is no misuse of the command: no usage lines
        assert "Usage:" not in out.stderr
        assert (
            out.stderr.strip().splitlines()[-1] == f"Error: {message} (never enqueued, or its record expired)"
        )


@pytest.mark.parametrize("args", [["tasks"], ["task", "some-id"]])
def test_tasks_with_an_unreachable_broker_exits_1(args: list[str]) -> None:
    out = conveyor(*args, url=f"redis://127.0.0.1:{free_port()}/0")
    assert out.returncode == 1, out
    assert "unreachable" in out.stderr and "Traceback" not in out.stderr


def test_tasks_name_given_as_the_short_function_name_says_the_full_name(sqlite_url: str) -> None:
    out = conveyor("tasks", "--name", "add", url=sqlite_url, app=True)
    assert out.returncode == 0, out
    assert out.stdout.strip() == (
        f"no tasks: no task is named 'add'; --name takes the full name: {basic.add.name}"
    ), out.stdout
    unknown = conveyor("tasks", "--name", "nope.nothing", url=sqlite_url, app=True)
    assert unknown.stdout.strip() == "no tasks: no task of this app is named 'nope.nothing'"
    # A registered name with no history, or no -A: just "no tasks".
    assert conveyor("tasks", "--name", basic.add.name, url=sqlite_url, app=True).stdout.strip() == "no tasks"
    assert conveyor("tasks", "--name", "add", url=sqlite_url).stdout.strip() == "no tasks"
