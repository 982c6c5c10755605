"""``conveyor schedule …`` and ``conveyor beat`` from the command line, as real processes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ..procs import wait_for
from .procs import BeatProcess, conveyor, sent_slots

RECORD = "tests.apps.beat_app.record_slot"
VACUUM = "tests.apps.beat_app.vacuum"


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'beat.db'}"


def stored(url: str) -> list[dict[str, object]]:
    out = conveyor(url, "schedule", "list", "--json")
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_help_of_every_command() -> None:
    for args in (["beat"], ["schedule"], *(["schedule", c] for c in ("list", "add", "remove", "run"))):
        out = conveyor("sqlite:///unused.db", *args, "--help")
        assert out.returncode == 0 and "Usage:" in out.stdout, args


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["x", VACUUM, "61 * * * *"], "'61 * * * *': minute '61': 61 is out of range 0-59"),
        (["x", VACUUM, "0 4 * * *", "--tz", "Mars/Olympus_Mons"], "unknown timezone 'Mars/Olympus_Mons'"),
        (["x", VACUUM, "0"], "interval must be at least 1 ms"),
        (["x", VACUUM, "--", "-5"], "interval must be at least 1 ms"),
        (["x", VACUUM, "0s"], "interval must be at least 1 ms"),
        (["x", "tests.apps.beat_app.nope", "60"], "unknown task 'tests.apps.beat_app.nope'"),
        (["x", VACUUM, "60", "--args", "[1]"], "wrong arguments"),
        (["x", VACUUM, "60", "--tz", "UTC"], "--tz applies to cron schedules only"),
        (["x", VACUUM, "every day"], "invalid cron expression 'every day'"),
        (["x", VACUUM, "60", "--expires", "-1"], "'expires' must be > 0"),
    ],
)
def test_bad_input_to_schedule_add_is_one_line_exit_2_and_nothing_saved(
    url: str, args: list[str], message: str
) -> None:
    out = conveyor(url, "schedule", "add", *args)
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], out.stderr
    assert stored(url) == []


@pytest.mark.parametrize("command", ["remove", "enable", "disable", "run"])
def test_an_unknown_entry_name_is_exit_2(url: str, command: str) -> None:
    out = conveyor(url, "schedule", command, "nope")
    assert out.returncode == 2
    assert out.stderr.strip() == "Error: no periodic entry named 'nope'"


@pytest.mark.parametrize("bad", ["cron", "tz", "interval", "task"])
def test_beat_refuses_a_bad_declaration_and_writes_nothing(url: str, bad: str) -> None:
    out = conveyor(url, "beat", env={"CONVEYOR_TEST_BAD_ENTRY": bad})
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    # (with a bad zone every crontab of the app is bad; the first one is named)
    assert len(lines) == 1 and lines[0].startswith("Error: periodic entry '"), lines
    assert stored(url) == []
    worker = conveyor(url, "worker", "--beat", "--burst", env={"CONVEYOR_TEST_BAD_ENTRY": bad})
    assert worker.returncode == 2 and lines[0] in worker.stderr


def test_list_shows_the_next_run_human_readably(url: str) -> None:
    assert conveyor(url, "schedule", "add", "vacuum", VACUUM, "0 4 * * sun", "-Q", "database").returncode == 0
    assert (
        conveyor(url, "schedule", "add", "poll", RECORD, "2", "-a", '["poll"]', "--expires", "2").returncode
        == 0
    )
    out = conveyor(url, "schedule", "list")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["NAME", "SCHEDULE", "TASK", "NEXT", "RUN", "LAST", "RUN", "RUNS"]
    vacuum = next(line for line in lines if line.startswith("vacuum"))
    assert "cron '0 4 * * sun' (UTC)" in vacuum and " in " in vacuum and " 04:00:00 UTC)" in vacuum
    poll = next(line for line in lines if line.startswith("poll"))
    assert "every 2s" in poll and "due now" in poll and "never" in poll
    assert lines[-1] == "leader: none (no scheduler running)"
    assert conveyor(url, "schedule", "disable", "poll").returncode == 0
    assert "disabled" in next(x for x in conveyor(url, "schedule", "list").stdout.splitlines() if "poll" in x)


def test_runtime_edits_from_the_cli_reach_a_running_scheduler(
    process_broker_url: str, tmp_path: Path
) -> None:
    url = process_broker_url
    beat = BeatProcess(url, tmp_path).wait_ready()
    try:
        added = conveyor(url, "schedule", "add", "fast", RECORD, "1", "-a", '["fast"]', "--catch-up", "all")
        assert added.returncode == 0, added.stderr
        wait_for(lambda: "sent fast" in beat.log(), 20)

        assert conveyor(url, "schedule", "disable", "fast").returncode == 0
        disabled_at = time.time()
        time.sleep(3)
        assert conveyor(url, "schedule", "enable", "fast").returncode == 0
        enabled_at = time.time()
        wait_for(lambda: any(s > enabled_at for s in sent_slots([beat.log()])["fast"]), 20)

        task_id = conveyor(url, "schedule", "run", "fast").stdout.strip()
        assert task_id.startswith("beat:fast:run:")

        assert (
            conveyor(url, "schedule", "add", "fast", RECORD, "2", "-a", '["fast"]', "--replace").returncode
            == 0
        )
        replaced_at = time.time()
        time.sleep(4.5)
        assert conveyor(url, "schedule", "remove", "fast").returncode == 0
        removed_at = time.time()
        time.sleep(2.5)
    finally:
        beat.stop()
    fast = sent_slots([beat.log()])["fast"]
    assert len(fast) == len(set(fast))
    # Edits are seen within a second (the scheduler polls beat:version at least every second).
    assert not [s for s in fast if disabled_at + 1.5 < s < enabled_at - 0.5], "sent while disabled"
    assert not [s for s in fast if s > removed_at + 1.5], "sent after removal"
    after_replace = [s for s in fast if s > replaced_at + 1.5]
    assert after_replace and all(s % 2 == 0 for s in after_replace), after_replace
    entries = {e["name"]: e for e in stored(url)}
    assert "fast" not in entries and "poll" in entries  # declared ones were synced by the beat
