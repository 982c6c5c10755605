"""``conveyor`` imports only the command it runs (cli/main.py ``LazyGroup``), and a worker only
what it needs to start: ``conveyor --help`` still lists every command with its own one-line help."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from conveyor import Conveyor
from conveyor.cli.main import COMMANDS, cli

from ..apps import basic
from ..procs import ROOT

# Modules a worker on SQLite with the default (threads) pool must not import: the other commands
# (rich, the dashboard, the monitor), the process pool and psutil, the memory broker, the
# periodic schedules, the admin API, pickle and gzip, logging.handlers (it logs to stderr).
NOT_FOR_A_WORKER = [
    "rich",
    "psutil",
    "conveyor.dashboard",
    "conveyor.httpapi",
    "conveyor.metrics",
    "conveyor.admin",
    "conveyor.cli.monitor",
    "conveyor.cli.dashboard",
    "conveyor.cli.control",
    "conveyor.cli.beat",
    "conveyor.cli.schedule",
    "conveyor.cli.history",
    "conveyor.worker.procpool",
    "conveyor.worker.children",
    "conveyor.brokers.memory",
    "conveyor.beat.schedules",
    "gzip",
    "pickle",
    "logging.handlers",
]

# Run in a fresh interpreter: the command line in-process, then the names of the modules above
# that got imported, as JSON on the last line.
PROBE = """
import json, sys
from conveyor.cli.main import cli
try:
    cli(sys.argv[2:], prog_name="conveyor")
except SystemExit as exc:
    assert not exc.code, exc.code
print(json.dumps(sorted(m for m in json.loads(sys.argv[1]) if m in sys.modules)))
"""


def imported_after(*args: str) -> list[str]:
    """Which of NOT_FOR_A_WORKER ``conveyor ARGS`` imported, in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(NOT_FOR_A_WORKER), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    names: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return names


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Conveyor]:
    basic.app.conf.broker_url = f"sqlite:///{tmp_path / 'lazy.db'}"
    yield basic.app
    basic.app.close()


def test_a_worker_that_ran_a_task_imported_nothing_it_does_not_need(app: Conveyor) -> None:
    result = basic.add.delay(2, 3)
    url = app.conf.broker_url
    assert (
        imported_after(
            "-A", "tests.apps.basic", "-b", url, "worker", "--burst", "--processes", "1", "-l", "warning"
        )
        == []
    )
    assert result.get(timeout=30) == 5  # the worker did run it


def test_a_command_help_imports_that_command_only() -> None:
    assert imported_after("worker", "--help") == []
    assert imported_after("--help") == []
    monitor = imported_after("monitor", "--help")  # the command it runs is imported, only that one
    assert {"conveyor.cli.monitor", "rich"} <= set(monitor)
    assert not {"conveyor.cli.dashboard", "conveyor.dashboard", "conveyor.cli.control"} & set(monitor)


def test_every_command_resolves_to_itself_with_the_one_line_help_listed() -> None:
    with click.Context(cli) as ctx:
        assert cli.list_commands(ctx) == sorted(COMMANDS)
        for name, (module, attr, summary) in COMMANDS.items():
            command = getattr(importlib.import_module(f"conveyor.cli.{module}"), attr)
            assert cli.get_command(ctx, name) is command
            assert command.name == name
            # What click makes the line from: the first sentence of the command's own help.
            assert command.get_short_help_str(limit=10**6) == summary, name


@pytest.mark.parametrize("columns", ["80", "60", "200"])
def test_help_lists_every_command_as_an_eager_group_would(
    columns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``conveyor --help`` (no command imported) against the same group with every command added."""
    out = subprocess.run(
        [sys.executable, "-m", "conveyor", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": columns},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    eager = click.Group("conveyor", params=cli.params, help=cli.help, context_settings=cli.context_settings)
    for name, (module, attr, _summary) in COMMANDS.items():
        eager.add_command(getattr(importlib.import_module(f"conveyor.cli.{module}"), attr), name)
    monkeypatch.setenv("COLUMNS", columns)  # the width click reads, as in the subprocess
    with click.Context(eager, info_name="conveyor", **cli.context_settings) as ctx:
        expected = eager.get_help(ctx)
    assert out.stdout == expected + "\n"
    for name in COMMANDS:
        assert f"\n  {name} " in out.stdout


def test_an_unknown_command_is_a_usage_error_naming_the_close_one() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "conveyor", "wrker"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert "No such command 'wrker'." in out.stderr
    if hasattr(click, "NoSuchCommand"):  # click 8.4+ suggests close names
        assert "Did you mean 'worker'?" in out.stderr
