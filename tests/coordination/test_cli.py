"""``conveyor locks`` and ``conveyor release-lock NAME``."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from click.testing import CliRunner

from conveyor import Conveyor
from conveyor.cli.main import cli
from conveyor.exceptions import LockNotOwnedError

from ..apps import coord_tasks as t
from ..procs import ROOT


def run(url: str, *args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["-A", "tests.apps.coord_tasks", "-b", url, *args], input=input)
    return result.exit_code, result.output


def test_locks_lists_name_holder_token_fence_age_and_expiry(coord: Conveyor, broker_url: str) -> None:
    assert run(broker_url, "locks") == (0, "no locks held\n")
    lock = coord.lock("scraping_task_lock", timeout=3600)
    lock.acquire()
    code, out = run(broker_url, "locks")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["NAME", "HOLDER", "TOKEN", "FENCE", "AGE", "EXPIRES", "IN"]
    assert row.startswith("scraping_task_lock ") and (lock.token or "")[:8] in row
    assert f" {lock.fence} " in row and row.rstrip().endswith(("60.0m", "59.9m"))
    code, out = run(broker_url, "locks", "--json")
    [entry] = [json.loads(line) for line in out.splitlines()]
    assert entry["name"] == "scraping_task_lock" and entry["fence"] == lock.fence
    lock.release()


def test_release_lock_asks_for_confirmation(coord: Conveyor, broker_url: str) -> None:
    lock = coord.lock("scraping_task_lock", timeout=3600)
    lock.acquire()
    code, out = run(broker_url, "release-lock", "scraping_task_lock", input="n\n")
    assert code == 1 and "Release lock 'scraping_task_lock' held by" in out and "Aborted" in out
    assert lock.owned()
    code, out = run(broker_url, "release-lock", "scraping_task_lock", input="y\n")
    assert code == 0 and "released lock 'scraping_task_lock'" in out
    assert not lock.locked()
    with pytest.raises(LockNotOwnedError):
        lock.release()


def test_release_lock_of_a_free_lock_is_an_error(coord: Conveyor, broker_url: str) -> None:
    code, out = run(broker_url, "release-lock", "nothing", "--force")
    assert code == 1 and "lock 'nothing' is not held" in out


def test_release_lock_force_from_another_process(coord_shared: Conveyor, process_broker_url: str) -> None:
    lock = coord_shared.lock("stuck", timeout=3600)
    lock.acquire()
    base = [sys.executable, "-m", "conveyor", "-A", "tests.apps.coord_tasks", "-b", process_broker_url]
    listed = subprocess.run(
        [*base, "locks"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert listed.returncode == 0 and "stuck" in listed.stdout, listed.stderr
    done = subprocess.run(
        [*base, "release-lock", "stuck", "--force"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and "released lock 'stuck'" in done.stdout, done.stderr
    assert not lock.locked()


def test_locks_says_when_the_process_holding_a_lock_no_longer_runs(
    coord_shared: Conveyor, process_broker_url: str
) -> None:
    """A `with app.lock(...)` in a process killed outright (SIGKILL, a pool child stopped by
    `revoke --terminate`) stays until its expiry; `locks` shows that its holder is gone."""
    code = (
        "import os; from tests.apps.coord_tasks import app; "
        f"app.conf.broker_url = {process_broker_url!r}; "
        "app.lock('orphaned', timeout=3600).acquire(); os._exit(0)"  # never released
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60, check=True)
    alive = coord_shared.lock("alive", timeout=3600)
    alive.acquire()
    _, out = run(process_broker_url, "locks")
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "(no such process here)" in rows["orphaned"] and "(no such process here)" not in rows["alive"], out
    _, out = run(process_broker_url, "locks", "--json")
    running = {e["name"]: e["holder_running"] for e in map(json.loads, out.splitlines())}
    assert running == {"orphaned": False, "alive": True}
    alive.release()


def test_a_lock_taken_inside_a_task_names_the_task_as_its_holder(coord: Conveyor, run_worker: Any) -> None:
    with run_worker(coord):
        holder = t.holder_of_inner_lock.delay("inner").get(timeout=10)
    assert f" in task {t.holder_of_inner_lock.name}[" in holder and holder.endswith("]")
