"""Every process of one app opens the same broker, whatever its working directory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conveyor import Conveyor
from conveyor.worker.banner import ready_banner

from .procs import wait_for

HERE = os.path.dirname(os.path.abspath(__file__))


def test_a_relative_sqlite_path_resolves_against_the_module_that_created_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONVEYOR_BROKER_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    app = Conveyor("loc")  # created by this module: relative paths start from its directory
    assert app.root == HERE
    assert app.resolved_broker_url() == f"sqlite:///{HERE}/conveyor.db"
    app.conf.broker_url = "sqlite:///data/q.db?synchronous=full"
    assert app.resolved_broker_url() == f"sqlite:///{HERE}/data/q.db?synchronous=full"
    monkeypatch.chdir("/")  # taken once, at creation: a later chdir does not move the broker
    assert app.resolved_broker_url() == f"sqlite:///{HERE}/data/q.db?synchronous=full"
    monkeypatch.setenv("CONVEYOR_BROKER_URL", "sqlite:///env.db")
    assert Conveyor("env").resolved_broker_url() == f"sqlite:///{HERE}/env.db"


def test_an_absolute_url_and_other_brokers_are_unchanged_and_root_can_be_given(tmp_path: Path) -> None:
    absolute = f"sqlite:///{tmp_path}/abs.db"
    assert Conveyor("a", broker=absolute).resolved_broker_url() == absolute
    assert Conveyor("r", broker="redis://localhost:1/0").resolved_broker_url() == "redis://localhost:1/0"
    rooted = Conveyor("r", broker="sqlite:///q.db", root=tmp_path)
    assert rooted.resolved_broker_url() == f"sqlite:///{tmp_path}/q.db"


def test_the_banner_and_repr_never_show_a_password() -> None:
    url = "redis://user:s3cret@cache:1/0"
    assert "s3cret" not in repr(Conveyor("p", broker=url))
    banner = ready_banner("w@h", ["default", "polling"], "threads", 8, url, ["b.task", "a.task"])
    assert banner.splitlines() == [
        "w@h ready: queues=default,polling pool=threads concurrency=8 broker=redis://user:***@cache:1/0",
        "  [queues]",
        "    . default",
        "    . polling",
        "  [tasks]",
        "    . a.task",
        "    . b.task",
    ]


def test_a_producer_and_a_worker_started_in_other_directories_share_one_sqlite_broker(tmp_path: Path) -> None:
    project, worker_cwd, producer_cwd = tmp_path / "proj", tmp_path / "ops", tmp_path / "web"
    for d in (project, worker_cwd, producer_cwd):
        d.mkdir()
    (project / "portapp.py").write_text(
        textwrap.dedent(
            """
            from conveyor import Conveyor

            app = Conveyor("portapp")  # the default broker: sqlite:///conveyor.db


            @app.task
            def add(x: int, y: int) -> int:
                return x + y
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "CONVEYOR_BROKER_URL"}
    env.update(PYTHONPATH=str(project), PYTHONUNBUFFERED="1")
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "conveyor",
                "-A",
                "portapp",
                "worker",
                "-l",
                "info",
                "--processes",
                "1",
                "-n",
                "w@%h",
            ],
            cwd=worker_cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: " ready: " in log_path.read_text() or worker.poll() is not None, 30)
            producer = subprocess.run(
                [sys.executable, "-c", "from portapp import add; print(add.delay(2, 3).get(timeout=30))"],
                check=False,  # the assertions below show stderr and the worker log
                cwd=producer_cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    banner = log_path.read_text()
    assert producer.returncode == 0, producer.stderr + banner
    assert producer.stdout.strip() == "5"
    assert (project / "conveyor.db").exists()
    assert not (worker_cwd / "conveyor.db").exists() and not (producer_cwd / "conveyor.db").exists()
    ready = next(line for line in banner.splitlines() if " ready: " in line)
    assert "queues=default" in ready and ready.endswith(f" broker=sqlite:///{project}/conveyor.db")
    assert "  [queues]\n    . default\n  [tasks]\n    . portapp.add\n" in banner


def test_an_app_setting_that_overrides_conveyor_broker_url_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The app's own broker setting comes before the variable; a deploy that sets the variable
    for every process must hear that a process whose code names a broker does not follow it."""
    env_url, own = f"sqlite:///{tmp_path}/env.db", f"sqlite:///{tmp_path}/own.db"
    monkeypatch.setenv("CONVEYOR_BROKER_URL", env_url)
    with caplog.at_level("WARNING", logger="conveyor"):
        same = Conveyor("same", broker=env_url)
        _ = same.broker
        assert caplog.records == []  # the same broker either way: nothing to say
        app = Conveyor("own", broker=own)
        _ = app.broker
        app.close()
        _ = app.broker  # reopened (as each process of worker --processes N does): said once
    [record] = caplog.records
    assert f"$CONVEYOR_BROKER_URL is {env_url}, but app 'own' sets broker_url {own}" in record.getMessage()
    same.close()
    app.close()
    # A command: the app's broker is used and the line says so; with -b nothing is overridden.
    env = {**os.environ, "CONVEYOR_BROKER_URL": env_url, "HEALTH_APP_BROKER": own}
    cmd = [sys.executable, "-m", "conveyor", "-A", "tests.apps.health_app"]
    root = os.path.dirname(HERE)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*cmd, *args], cwd=root, env=env, capture_output=True, text=True, timeout=60, check=False
        )

    out = run("queues")
    assert out.returncode == 0, out.stderr
    assert "which comes first and is the one used" in out.stderr
    given = run("-b", env_url, "queues")
    assert given.returncode == 0 and "CONVEYOR_BROKER_URL" not in given.stderr, given.stderr
    # Two worker processes: one line, said by the command before it starts them (not by each).
    workers = run("worker", "--burst", "--processes", "2")
    assert workers.returncode == 0, workers.stderr
    assert workers.stderr.count("which comes first and is the one used") == 1, workers.stderr


def test_b_sets_conveyor_broker_url_only_while_its_command_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from conveyor.cli.main import cli

    monkeypatch.delenv("CONVEYOR_BROKER_URL", raising=False)
    url = f"sqlite:///{tmp_path}/b.db"
    result = CliRunner().invoke(cli, ["-A", "tests.apps.basic", "-b", url, "queues"])
    assert result.exit_code == 0, result.output
    assert "CONVEYOR_BROKER_URL" not in os.environ  # run in-process (a test, a script): no trace left
    monkeypatch.setenv("CONVEYOR_BROKER_URL", "sqlite:///before.db")
    CliRunner().invoke(cli, ["-A", "tests.apps.basic", "-b", url, "queues"])
    assert os.environ["CONVEYOR_BROKER_URL"] == "sqlite:///before.db"


def test_an_operator_command_on_a_sqlite_file_that_does_not_exist_says_so(tmp_path: Path) -> None:
    """`conveyor -b sqlite:///rel.db queues` from the wrong directory: an empty broker and
    "no queues" without a word would send the operator looking in the wrong place."""
    env = {k: v for k, v in os.environ.items() if k != "CONVEYOR_BROKER_URL"}
    cmd = [sys.executable, "-m", "conveyor", "-b", "sqlite:///rel.db", "queues"]
    first = subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert first.returncode == 0
    assert f"warning: no SQLite broker at {tmp_path}/rel.db yet" in first.stderr
    again = subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert "warning" not in again.stderr  # it exists now: nothing to say
