"""The ``conveyor`` command line, run as a real subprocess."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor, states
from conveyor.exceptions import ConfigurationError

from ..apps import basic
from ..procs import ROOT, ConveyorProcess, WorkerProcess, wait_for


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def app(url: str) -> Conveyor:
    basic.app.conf.broker_url = url
    yield basic.app
    basic.app.close()


def conveyor(
    *args: str, url: str | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "conveyor"]
    if url:
        cmd += ["-A", "tests.apps.basic", "-b", url]
    return subprocess.run(
        [*cmd, *args],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_version_and_help_on_every_command() -> None:
    out = conveyor("--version")
    assert out.returncode == 0 and "conveyor, version" in out.stdout
    for command in ["worker", "call", "result", "purge", "dead"]:
        help_out = conveyor(command, "--help")
        assert help_out.returncode == 0 and "Usage:" in help_out.stdout, command


def test_call_then_result_through_a_worker(app: Conveyor, url: str, tmp_path: Path) -> None:
    called = conveyor("call", "tests.apps.basic.add", "--args", "[2, 3]", url=url)
    assert called.returncode == 0, called.stderr
    task_id = called.stdout.strip()
    assert app.AsyncResult(task_id).state == states.PENDING
    worker = WorkerProcess(url, tmp_path).wait_ready()
    try:
        shown = conveyor("result", task_id, "--wait", "10", url=url)
        assert shown.returncode == 0
        assert shown.stdout.splitlines() == ["state: SUCCESS", "result: 5"]
    finally:
        worker.stop()


def test_result_names_a_failure_whose_class_it_cannot_import_as_task_does(
    app: Conveyor, url: str, tmp_path: Path
) -> None:
    """`result` imports no task module, so the exception comes back as a RemoteError; it is
    still shown as the task's own (`UpstreamError: ...`), as `task ID` shows it."""
    task_id = conveyor("call", "tests.apps.basic.upstream_down", url=url).stdout.strip()
    worker = WorkerProcess(url, tmp_path).wait_ready()
    try:
        shown = conveyor("result", task_id, "--wait", "10", url=url)
        assert shown.stdout.splitlines()[:2] == [
            "state: FAILURE",
            "error: UpstreamError: upstream answered 503",
        ]
    finally:
        worker.stop()


def serial_call(url: str, *args: str, accept: str = "json,msgpack", compression: str = "") -> str:
    """``conveyor -A tests.apps.serial_app call serial.echo ARGS``: the task id (exit 0 asserted).
    ``accept`` and ``compression`` become the app's accept_content and task_compression."""
    out = serial_run(url, "call", "serial.echo", *args, accept=accept, compression=compression)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def serial_run(url: str, *args: str, accept: str, compression: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", "-A", "tests.apps.serial_app", "-b", url, *args],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CONVEYOR_TEST_ACCEPT": accept, "CONVEYOR_TEST_COMPRESSION": compression},
    )


def stored_encodings(url: str) -> dict[str, tuple[str, str | None]]:
    """(content_type, content_encoding) of every waiting message, by task id, as the broker holds it."""
    reader = Conveyor("cli-reader", broker=url)
    try:
        bodies = {job.id: json.loads(job.body) for job in reader.broker.pending(False, 50, 0)}
    finally:
        reader.close()
    return {i: (b.get("content_type", "json"), b.get("content_encoding")) for i, b in bodies.items()}


def results(url: str, ids: list[str]) -> list[object]:
    reader = Conveyor("cli-reader", broker=url)
    try:
        return [reader.AsyncResult(i).get(timeout=30) for i in ids]
    finally:
        reader.close()


def test_call_sends_the_arguments_with_the_serializer_and_compression_given(url: str, tmp_path: Path) -> None:
    rows = [f"row {i}: {'x' * 40}" for i in range(100)]  # well above the compression threshold
    given = json.dumps([rows])
    # The app compresses with zlib (task_compression): the options override it per call.
    packed = serial_call(
        url, "--args", given, "--serializer", "msgpack", "--compression", "gzip", compression="zlib"
    )
    default = serial_call(url, "--args", given, compression="zlib")
    plain = serial_call(url, "--args", given, "--compression", "none", compression="zlib")
    assert stored_encodings(url) == {
        packed: ("msgpack", "gzip"),
        default: ("json", "zlib"),
        plain: ("json", None),
    }
    worker = WorkerProcess(url, tmp_path, app="tests.apps.serial_app", name="serial").wait_ready()
    try:
        assert results(url, [packed, default, plain]) == [rows, rows, rows]
    finally:
        worker.stop()


def test_call_refuses_pickle_unless_accept_content_names_it(url: str, tmp_path: Path) -> None:
    api = Conveyor("cli-pickle", broker="memory://cli-pickle")
    try:
        echo = api.task(name="serial.echo")(lambda value: value)
        with pytest.raises(ConfigurationError) as refused_by_the_api:
            echo.apply_async(([1, 2],), serializer="pickle")
    finally:
        api.close()
    refused = serial_run(
        url, "call", "serial.echo", "--args", "[[1, 2]]", "--serializer", "pickle", accept="json,msgpack"
    )
    assert refused.returncode == 2 and refused.stdout == ""
    assert f"Error: {refused_by_the_api.value}" in refused.stderr and "Traceback" not in refused.stderr
    assert stored_encodings(url) == {}  # nothing enqueued
    accept = "json,msgpack,pickle"
    pickled = serial_call(url, "--args", "[[1, 2]]", "--serializer", "pickle", accept=accept)
    assert stored_encodings(url) == {pickled: ("pickle", None)}
    worker = WorkerProcess(
        url, tmp_path, app="tests.apps.serial_app", env={"CONVEYOR_TEST_ACCEPT": accept}, name="serial"
    ).wait_ready()
    try:
        assert results(url, [pickled]) == [[1, 2]]
    finally:
        worker.stop()


def test_result_of_an_unknown_id_says_unknown(url: str) -> None:
    shown = conveyor("result", "not-a-real-id", url=url)
    assert shown.returncode == 2 and "state: UNKNOWN" in shown.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["call", "no.such.task"], "unknown task 'no.such.task'"),
        (["call", "tests.apps.basic.add", "--args", "[1,"], "not valid JSON"),
        (["call", "tests.apps.basic.add", "--args", "{}"], "must be a JSON array"),
        (["call", "tests.apps.basic.add", "--args", "[1]"], "missing a required argument"),
        (["call", "tests.apps.basic.add", "--priority", "12"], "12 is not in the range 0<=x<=9"),
        (["call", "tests.apps.basic.add", "--serializer", "yaml"], "'yaml' is not one of 'json', 'msgpack'"),
        (
            ["call", "tests.apps.basic.add", "--compression", "lz4"],
            "'lz4' is not one of 'gzip', 'zlib', 'none'",
        ),
        (["worker", "--concurrency", "0"], "0 is not in the range x>=1"),
        (
            ["worker", "--pool", "gevent"],
            "-P gevent is not available: for 100-way I/O concurrency use -P threads -c 100, "
            "or async def tasks on -P asyncio",
        ),
        (["worker", "-P", "eventlet"], "use -P threads -c 100, or async def tasks on -P asyncio"),
        (
            ["worker", "-P", "fibers"],
            "-P fibers: unknown pool; choose one of threads, processes, asyncio, solo",
        ),
        (["worker", "-P", "prefork", "--pool-start-method", "forkserver"], "'forkserver' is not one of"),
        (["worker", "--autoscale", "ten,3"], "--autoscale ten,3: give MAX,MIN"),
        (["worker", "--autoscale", "3,10"], "--autoscale 3,10: give MAX,MIN"),
        (["worker", "-O", "default"], "-O default: only -O fair is accepted"),
        (["worker", "--max-tasks-per-child", "0"], "0 is not in the range x>=1"),
        (["worker", "--max-memory-per-child", "abc"], "'abc' is not a valid integer"),
        (["call", "tests.apps.basic.add", "--countdown", "abc"], "'abc' is not a valid float"),
        (["worker", "--no-such-flag"], "No such option"),
        (["worker", "--detach"], "--detach: not supported: run it under systemd"),
        (["beat", "--detach"], "--detach: not supported: run it under systemd"),
        (["worker", "-X", "celery"], "-X/--exclude-queues: not supported: list the queues"),
        (["worker", "--time-limit", "0"], "0 is not in the range x>0"),
        (["multi", "start", "w1", "-c", "4"], "multi: not provided: `conveyor worker --processes N`"),
        (["flower", "--port=5556"], "the dashboard is built in: `conveyor -A APP dashboard --port 5556`"),
        (["flower"], "`conveyor -A APP dashboard --port 5555`"),
        (["events"], "events: not provided: `conveyor -A APP monitor`"),
    ],
)
def test_bad_input_gets_a_one_line_error(url: str, args: list[str], message: str) -> None:
    out = conveyor(*args, url=url)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    # One line: no usage lines, no blank line (a warning line before it may say something else).
    errors = [line for line in out.stderr.splitlines() if not line.lower().startswith("warning")]
    assert len(errors) == 1 and errors[0].startswith("Error: "), out.stderr


def test_bad_app_module_and_bad_broker_url(tmp_path: Path) -> None:
    missing = conveyor("-A", "no_such_module_anywhere", "purge", "-f")
    assert missing.returncode == 2 and "cannot import app module 'no_such_module_anywhere'" in missing.stderr
    no_attr = conveyor("-A", "tests.apps.basic:nope", "status")
    assert no_attr.returncode == 2
    hint = "module 'tests.apps.basic' has no attribute 'nope'; its apps: tests.apps.basic:app"
    assert hint in no_attr.stderr
    not_app = conveyor("-A", "tests.apps.basic:add", "status")
    assert not_app.returncode == 2
    assert "tests.apps.basic:add is not a Conveyor app (it is a Task)" in not_app.stderr
    bad_url = conveyor("-A", "tests.apps.basic", "-b", "bogus://x", "purge", "-f")
    assert bad_url.returncode == 1 and "unsupported broker URL 'bogus://x'" in bad_url.stderr
    assert "Traceback" not in bad_url.stderr


def test_purge_asks_unless_forced(app: Conveyor, url: str) -> None:
    basic.add.delay(1, 1)
    basic.add.delay(1, 2)
    declined = conveyor("purge", url=url, stdin="n\n")
    assert declined.returncode == 1 and app.broker.queue_stats()["default"].ready == 2
    forced = conveyor("purge", "-Q", "default", "-f", url=url)
    assert forced.returncode == 0 and "purged 2 task(s)" in forced.stdout
    assert app.broker.queue_stats().get("default") is None
    empty = conveyor("purge", "-Q", "default", url=url, stdin="")  # nothing to ask about
    assert (empty.returncode, empty.stdout.strip()) == (0, "no waiting tasks in default")


def test_dead_list_and_retry(app: Conveyor, url: str, tmp_path: Path) -> None:
    worker = WorkerProcess(url, tmp_path).wait_ready()
    try:
        result = basic.boom.delay()
        with pytest.raises(ValueError):
            result.get(timeout=10)
    finally:
        worker.stop()
    listed = conveyor("dead", "list", url=url)
    assert result.id in listed.stdout and "failed: builtins.ValueError: boom" in listed.stdout
    alone = conveyor("dead", url=url)  # no subcommand: the list, not a usage message
    assert (alone.returncode, alone.stdout) == (0, listed.stdout), alone
    retried = conveyor("dead", "retry", result.id, url=url)
    assert "requeued 1 task(s)" in retried.stdout
    assert app.AsyncResult(result.id).state == states.PENDING
    assert "no dead letters" in conveyor("dead", "list", url=url).stdout
    # Retried already (or a typo): said so, exit 2, rather than "requeued 0 task(s)".
    for action in ("retry", "delete"):
        again = conveyor("dead", action, result.id, url=url)
        assert again.returncode == 2 and "no dead letter with the id given" in again.stderr, again


def test_celery_runbook_worker_flags_each_say_one_line_and_run(app: Conveyor, url: str) -> None:
    out = conveyor("worker", "--burst", "--autoscale", "10,3", "-E", "-Ofair", "-s", "beat.db", url=url)
    assert out.returncode == 0, out.stderr
    notes = [line for line in out.stderr.splitlines() if "WARNING" in line]
    assert len(notes) == 4, out.stderr
    assert "-s beat.db not used: the schedule state lives in the broker" in notes.pop(0)
    assert "--autoscale: the pool does not grow and shrink yet; running with concurrency 10" in notes[0]
    assert "-E: not needed: task states and results are always recorded in the broker" in notes[1]
    assert "-O fair: already how Conveyor works" in notes[2]
    assert "concurrency=10" in out.stderr


def test_systemd_unit_worker_flags_run_the_worker_with_one_line_each(
    app: Conveyor, url: str, tmp_path: Path
) -> None:
    """The flags of Celery's documented systemd unit and common runbooks: --pidfile works (the
    file holds the command's pid while it runs and is gone after), --time-limit and
    --soft-time-limit set the limits of tasks that have none, the gossip/mingle/heartbeat and
    --statedb flags each log one line."""
    pidfile = tmp_path / "w1.pid"
    slow = basic.sleeper.delay(5.0)
    flags = ["--without-gossip", "--without-mingle", "--without-heartbeat", "--statedb", "w1.state"]
    out = conveyor("worker", "--burst", "--pidfile", str(pidfile), "--time-limit", "0.5", *flags, url=url)
    assert out.returncode == 0, out.stderr
    notes = [line for line in out.stderr.splitlines() if "WARNING" in line and "--" in line]
    assert len(notes) == 4, out.stderr
    assert any("--without-gossip: not needed" in n for n in notes)
    assert any("--without-heartbeat: the heartbeat stays on" in n for n in notes)
    assert any("--statedb w1.state: not needed: revokes are stored in the broker" in n for n in notes)
    assert slow.state == states.FAILURE and "hard time limit (0.5s)" in str(slow.result)
    assert not pidfile.exists()  # removed at exit


def test_a_pidfile_of_a_live_process_refuses_a_second_start(url: str, tmp_path: Path) -> None:
    pidfile = tmp_path / "w1.pid"
    worker = ConveyorProcess(
        url, tmp_path, ["worker", "--pidfile", str(pidfile)], "tests.apps.basic", "pidfile"
    )
    try:
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() == str(worker.proc.pid), 30)
        second = conveyor("worker", "--burst", "--pidfile", str(pidfile), url=url)
        assert second.returncode == 2
        assert f"pid {worker.proc.pid} in it is still running; stop it first" in second.stderr
        assert pidfile.read_text().strip() == str(worker.proc.pid)  # the running one keeps it
    finally:
        worker.kill()
    pidfile.write_text("999999\n")  # stale: that process is gone
    third = conveyor("worker", "--burst", "--pidfile", str(pidfile), url=url)
    assert third.returncode == 0, third.stderr
    assert f"--pidfile {pidfile}: replacing a stale file (pid 999999 is not running)" in third.stderr
    link = tmp_path / "link.pid"
    link.symlink_to(pidfile)
    fourth = conveyor("worker", "--burst", "--pidfile", str(link), url=url)
    assert fourth.returncode == 2 and "is a symbolic link, not followed" in fourth.stderr


def _take_pidfile_at_once(path: str, ready: Any, done: Any, outcomes: Any) -> None:
    """(A child process) Take ``path`` at the barrier; say whether it did; stay alive until told."""
    from conveyor.cli.celery_flags import PidfileTaken, write_pidfile

    ready.wait()
    try:
        write_pidfile(path)
        outcomes.put(("took", os.getpid()))
    except PidfileTaken:
        outcomes.put(("refused", os.getpid()))
    done.wait()


def test_commands_started_at_once_with_one_pidfile_let_exactly_one_take_it(tmp_path: Path) -> None:
    """Eight processes (as eight ``worker --pidfile`` commands) take the same pid file at the
    same moment, each staying alive: one takes it, seven are refused, and the file names the
    one — whether the file was missing or named a process that is gone (checking for the file
    and then writing it let several take it)."""
    ctx = multiprocessing.get_context("fork")
    path = str(tmp_path / "w.pid")
    for i in range(6):  # a few rounds: each is a fresh race, on a missing or a stale file
        if i % 2:
            Path(path).write_text("999999\n")  # stale: no such process
        ready, done, outcomes = ctx.Barrier(8), ctx.Event(), ctx.Queue()
        procs = [
            ctx.Process(target=_take_pidfile_at_once, args=(path, ready, done, outcomes)) for _ in range(8)
        ]
        for p in procs:
            p.start()
        try:
            said = [outcomes.get(timeout=60) for _ in procs]
        finally:
            done.set()
            for p in procs:
                p.join(30)
        took = [pid for what, pid in said if what == "took"]
        assert len(took) == 1, said
        assert Path(path).read_text().strip() == str(took[0])
        os.unlink(path)  # its taker exited without atexit (a forked child): gone for the next round


def test_beat_schedule_file_is_accepted_with_one_line(app: Conveyor, url: str, tmp_path: Path) -> None:
    beat = ConveyorProcess(url, tmp_path, ["beat", "-s", "celerybeat-schedule"], "tests.apps.basic", "beat")
    try:
        wait_for(lambda: "celerybeat-schedule" in beat.log() or beat.proc.poll() is not None, 30)
    finally:
        beat.kill()  # the line is written before the signal handlers are (an early SIGTERM kills it)
    assert "-s celerybeat-schedule not used: the schedule state lives in the broker" in beat.log()


def test_commands_that_read_the_registry_import_the_apps_include_modules(tmp_path: Path) -> None:
    """Celery's usual layout: ``proj/celery.py`` builds the app with ``include=["proj.tasks"]``
    and nothing imports ``proj.tasks`` but the worker. ``call``, ``schedule add``/``sync`` and
    ``tasks --name`` must find its tasks too, as the worker does."""
    package = tmp_path / "shopapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    db = tmp_path / "shop.db"
    (package / "celery.py").write_text(
        "from conveyor import Conveyor\n"
        f"app = Conveyor('shop', broker='sqlite:///{db}', include=['shopapp.tasks'])\n"
        "app.conf.beat_schedule = {'poll': {'task': 'shopapp.tasks.poll', 'schedule': 60.0}}\n"
    )
    (package / "tasks.py").write_text(
        "from shopapp.celery import app\n\n"
        "@app.task\ndef add(x, y):\n    return x + y\n\n"
        "@app.task\ndef poll():\n    return 'polled'\n"
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "conveyor", "-A", "shopapp.celery", *args],
            check=False,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT / 'src'}"},
        )

    called = run("call", "shopapp.tasks.add", "--args", "[1, 2]")
    assert called.returncode == 0 and called.stdout.strip(), called.stderr
    added = run("schedule", "add", "hourly", "shopapp.tasks.add", "3600", "--args", "[1, 2]")
    assert added.returncode == 0, added.stderr
    synced = run("schedule", "sync")
    assert synced.returncode == 0, synced.stderr
    listed = run("tasks", "--name", "shopapp.tasks.add")
    assert listed.returncode == 0 and "no task of this app" not in listed.stdout + listed.stderr, listed
    unknown = run("call", "shopapp.tasks.nope")
    assert unknown.returncode == 2 and "shopapp.tasks.add" in unknown.stderr, unknown.stderr


@pytest.mark.parametrize("command", ["worker", "beat"])
def test_a_settings_warning_is_one_log_line_in_the_log_file(tmp_path: Path, command: str) -> None:
    """Warned while the app is imported, before logging is set up: logged once it is, as any
    other warning of the worker's (``--logfile``), not printed by Python (two lines, stderr)."""
    (tmp_path / "warnapp.py").write_text(
        "from conveyor import Conveyor\n"
        f"app = Conveyor('warnapp', broker='sqlite:///{tmp_path / 'w.db'}')\n"
        "app.conf.update(result_backend='redis://localhost:6379/1')\n"
    )
    logfile = tmp_path / f"{command}.log"
    args = ["--burst"] if command == "worker" else []
    cmd = [sys.executable, "-m", "conveyor", "-A", "warnapp", command, *args, "--logfile", str(logfile)]
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        said = "not used: results live in the broker"
        wait_for(lambda: logfile.exists() and said in logfile.read_text(), 30)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    [line] = [line for line in logfile.read_text().splitlines() if "result_backend" in line]
    assert "WARNING" in line and "ConfigurationWarning" not in line
    assert "result_backend" not in stderr
