"""The test Django project (tests/django_project) driven as a user drives one: from its directory.

Everything Django runs in a subprocess: ``DJANGO_SETTINGS_MODULE`` switches on Conveyor's Django
fix-up for every app created in a process, which must not leak into the other tests of a pytest
worker. Each test gets its own copies of the migrated databases and its own SQLite broker.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from tests.procs import ROOT, ConveyorProcess

PROJECT = ROOT / "tests" / "django_project"
DATABASES = ("db.sqlite3", "archive.sqlite3")


def project_env(workdir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "proj.settings",
        "PROJ_DB": str(workdir / "db.sqlite3"),
        "PROJ_ARCHIVE_DB": str(workdir / "archive.sqlite3"),
        "PROJ_BROKER_URL": f"sqlite:///{workdir / 'broker.db'}",
        "PYTHONUNBUFFERED": "1",
    }


def migrate(workdir: Path) -> None:
    """Create both databases of the project in ``workdir`` (``manage.py migrate``)."""
    for alias in ("default", "archive"):
        done = manage(workdir, "migrate", "--database", alias, "-v", "0")
        assert done.returncode == 0, done.stderr


def manage(workdir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return python_in_project(["manage.py", *args], env or project_env(workdir))


def python_in_project(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python ARGV...`` run to completion in the project's directory, output captured."""
    return subprocess.run(
        [sys.executable, *argv],
        check=False,
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


class DjangoProject:
    """One test's copy of the project's state: databases and broker under ``workdir``."""

    def __init__(self, workdir: Path, template: Path) -> None:
        self.workdir = workdir
        for name in DATABASES:
            shutil.copy(template / name, workdir / name)
        self.env = project_env(workdir)
        self.broker_url = self.env["PROJ_BROKER_URL"]

    def run(self, code: str, setup: bool = True) -> Any:
        """Run ``code`` in a fresh Python process of the project (after ``django.setup()`` and
        importing ``app`` from proj/conveyor.py); it reports by calling ``report(value)``."""
        prelude = "import json, os, sys\n"
        if setup:
            prelude += "import django\ndjango.setup()\n"
        prelude += (
            "from proj.conveyor import app\n"
            "def report(value):\n"
            "    print('REPORT ' + json.dumps(value), flush=True)\n"
        )
        done = python_in_project(["-c", prelude + textwrap.dedent(code)], self.env)
        assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        reports = [line[7:] for line in done.stdout.splitlines() if line.startswith("REPORT ")]
        assert reports, f"no report\n{done.stdout}\n{done.stderr}"
        return json.loads(reports[-1])

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        return manage(self.workdir, *args, env=self.env)

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``conveyor -A proj ARGS...`` run to completion from the project's directory."""
        return python_in_project(["-m", "conveyor", "-A", "proj", *args], self.env)

    def conveyor(self, *command: str, name: str = "w", app: str = "proj") -> ConveyorProcess:
        """``conveyor -A proj COMMAND`` run from the project's directory."""
        return ConveyorProcess(
            self.broker_url, self.workdir, list(command), app, name, env=self.env, cwd=PROJECT
        )

    def worker(self, *args: str, name: str = "w") -> ConveyorProcess:
        one = () if "--processes" in args else ("--processes", "1")  # as WorkerProcess
        return self.conveyor("worker", "-l", "info", "-n", f"{name}@%h", *one, *args, name=name)
