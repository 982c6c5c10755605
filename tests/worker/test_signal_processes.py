"""Signals, hooks and logging in real worker processes (``--processes 2``, a JSON log file).

One worker command serves every test here: starting processes is the slow part.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import states

from ..apps import signal_app
from ..cli.helpers import conveyor
from ..procs import ROOT, ConveyorProcess, lines, process_env, wait_for


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ConveyorProcess, Path]]:
    workdir = tmp_path_factory.mktemp("signal-processes")
    url = f"sqlite:///{workdir / 'broker.db'}"
    signal_app.app.conf.broker_url = url
    logfile = workdir / "worker.log"
    command = ["worker", "-n", "sig@%h", "--processes", "2", "-c", "2", "--logfile", str(logfile)]
    proc = ConveyorProcess(url, workdir, [*command, "--log-format", "json"], "tests.apps.signal_app", "sig")
    try:
        wait_for(lambda: sum(" ready: " in line for line in lines(logfile)) == 2, 30)
        yield proc, workdir
    finally:
        proc.stop()
        signal_app.app.close()


def log_entries(workdir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines(workdir / "worker.log")]


def test_outcome_lines_carry_their_task_for_a_task_formatter_or_the_json_format(
    worker: tuple[ConveyorProcess, Path],
) -> None:
    """Logged by the worker's loop, outside the task's context, yet named by it: Celery's
    TaskFormatter users get ``fails[<id>] task ... failed``, not ``???[???]``."""
    _proc, workdir = worker
    ok, failed = signal_app.double.delay(17), signal_app.fails.delay()
    assert ok.get(timeout=20) == 34
    with pytest.raises(ValueError):
        failed.get(timeout=20)

    def outcome(task_id: str) -> list[dict[str, Any]]:
        return [
            e
            for e in log_entries(workdir)
            if e["logger"] == "conveyor.worker.outcome" and task_id in e["message"]
        ]

    wait_for(lambda: outcome(ok.id) and outcome(failed.id), 20)
    assert {(e["task_id"], e["task_name"]) for e in outcome(failed.id)} == {
        (failed.id, signal_app.fails.name)
    }
    assert next(e["worker"] for e in outcome(failed.id)).startswith("sig")
    assert {(e["task_id"], e["task_name"]) for e in outcome(ok.id)} <= {(ok.id, signal_app.double.name)}


def test_handlers_and_hooks_that_raise_lose_no_task_in_a_worker_process(
    worker: tuple[ConveyorProcess, Path],
) -> None:
    proc, workdir = worker
    results = [signal_app.double.delay(i) for i in range(10)]
    failed = signal_app.fails.delay()
    assert [r.get(timeout=20) for r in results] == [2 * i for i in range(10)]
    with pytest.raises(ValueError, match="expected failure"):
        failed.get(timeout=20)
    assert failed.status == states.FAILURE
    messages = [e["message"] for e in log_entries(workdir)]
    assert any(f"on_failure hook of task {signal_app.fails.name}[{failed.id}] raised" in m for m in messages)
    assert any(f"for task_success raised (task {results[0].id})" in m for m in messages)
    assert proc.proc.poll() is None  # the worker goes on


def test_worker_process_init_runs_once_in_every_child_of_processes(
    worker: tuple[ConveyorProcess, Path],
) -> None:
    _, workdir = worker
    children = {json.loads(w.info)["pid"] for w in signal_app.app.broker.workers()}
    assert len(children) == 2
    assert sorted(int(pid) for pid in lines(workdir / "process_init")) == sorted(children)


def test_the_json_log_has_one_object_per_line_with_the_task_id_name_and_worker(
    worker: tuple[ConveyorProcess, Path],
) -> None:
    _, workdir = worker
    result = signal_app.double.delay(21)
    assert result.get(timeout=20) == 42
    wait_for(lambda: any(e["message"] == "doubling 21" for e in log_entries(workdir)), 10)
    entry = next(e for e in log_entries(workdir) if e["message"] == "doubling 21")
    assert entry["task_id"] == result.id and entry["task_name"] == signal_app.double.name
    assert entry["worker"].startswith("sig.") and entry["logger"] == signal_app.__name__
    assert entry["level"] == "INFO" and entry["time"].endswith("+00:00")
    ready = next(e for e in log_entries(workdir) if " ready: " in e["message"])
    assert ready["task_id"] is None and ready["logger"] == "conveyor.worker"


def test_a_log_file_that_cannot_be_opened_is_a_usage_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    done = conveyor("worker", "--logfile", str(tmp_path / "no" / "such" / "dir.log"), url=url, app=True)
    assert done.returncode == 2
    assert "cannot write to" in done.stderr and "--logfile" in done.stderr


def test_a_setup_logging_handler_in_the_app_replaces_the_workers_logging_setup(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    cmd = [sys.executable, "-m", "conveyor", "-A", "tests.apps.logging_app", "-b", url]
    done = subprocess.run(
        [*cmd, "worker", "--burst", "-l", "debug", "--log-format", "json"],
        cwd=ROOT,
        env=process_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads((tmp_path / "setup_logging.json").read_text())
    assert seen == {"loglevel": logging.DEBUG, "logfile": None, "format": "json"}
    assert " ready: " not in done.stderr  # Conveyor set up no handler of its own
