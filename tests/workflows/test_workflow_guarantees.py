"""The workflow guarantees with real worker processes on SQLite and Redis: a chord's body runs
exactly once, with every result in order, however workers die; callbacks and chains hold
across processes (docs/workflows.md, "Guarantees")."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conveyor import ChordError, Conveyor, GroupResult, chain, chord, group

from ..apps.canvas_app import (
    broken_step,
    collect,
    errback,
    failing,
    flaky_step,
    gated,
    member,
    slow_step,
    step,
)
from ..procs import ROOT, lines, process_env, wait_for
from .conftest import worker


def _joined(app: Conveyor, group_id: str) -> int:
    state = app.broker.group_state(group_id)
    return state.joined if state is not None else 0


def test_chord_of_200_with_workers_sigkilled_twice_runs_its_body_exactly_once_with_all_results_in_order(
    process_canvas: Conveyor, tmp_path: Path
) -> None:
    app = process_canvas
    workers = [worker(app, tmp_path, f"w{i}", "-c", "2").wait_ready() for i in range(2)]
    try:
        result = chord(member.s(i, 0.03) for i in range(200))(collect.s("body"))
        header = result.parent
        assert isinstance(header, GroupResult)
        for kill_at, victim in ((50, 0), (120, 1)):
            wait_for(lambda at=kill_at: _joined(app, header.id) >= at, 60)
            workers[victim].kill()  # SIGKILL, mid-way: its leased header tasks run again elsewhere
            workers.append(worker(app, tmp_path, f"w{victim}-again", "-c", "2").wait_ready())
        assert result.get(timeout=90) == 200
        time.sleep(1.0)  # a second body run, if there were one, would have had time to start
    finally:
        for w in workers:
            w.kill()
    assert [json.loads(line) for line in lines(tmp_path / "body")] == [list(range(200))]
    assert _joined(app, header.id) == 200


def test_chain_of_20_with_workers_sigkilled_twice_completes_and_reruns_only_the_killed_steps(
    process_canvas: Conveyor, tmp_path: Path
) -> None:
    app = process_canvas
    workers = [worker(app, tmp_path, f"w{i}", "-c", "1").wait_ready() for i in range(2)]
    log = tmp_path / "chain"
    try:
        result = chain(
            slow_step.s(0, "chain", 0.15), *[slow_step.s("chain", 0.15) for _ in range(19)]
        ).delay()
        for kill_at in (5, 12):
            # Kill the worker running step kill_at, mid-run.
            wait_for(lambda at=kill_at: any(ln.startswith(f"start {at} ") for ln in lines(log)), 60)
            running = next(ln.split()[2] for ln in lines(log) if ln.startswith(f"start {kill_at} "))
            victim = next(i for i, w in enumerate(workers) if str(w.pid) == running)
            workers[victim].kill()
            workers.append(worker(app, tmp_path, f"w{kill_at}-again", "-c", "1").wait_ready())
        assert result.get(timeout=90) == 20
    finally:
        for w in workers:
            w.kill()
    done = [int(ln.split()[1]) for ln in lines(log) if ln.startswith("done ")]
    starts = [int(ln.split()[1]) for ln in lines(log) if ln.startswith("start ")]
    assert sorted(set(done)) == list(range(20))  # every step ran to its end
    # Each step's successor was enqueued once: only a step whose worker was killed ran twice.
    assert len(starts) <= 20 + 2 and len(done) <= 20 + 2


def test_two_workers_racing_the_last_header_tasks_enqueue_the_body_once(
    process_canvas: Conveyor, tmp_path: Path
) -> None:
    app = process_canvas
    # One header task per worker (each worker has its own queue), both held until the gate opens.
    workers = [worker(app, tmp_path, f"w{i}", "-Q", f"q{i},default").wait_ready() for i in range(2)]
    try:
        for round_ in range(3):
            gate = f"gate{round_}"
            header = [gated.s(0, gate).set(queue="q0"), gated.s(1, gate).set(queue="q1")]
            result = chord(header)(collect.s(f"body{round_}"))
            # Both header tasks are running, one per worker; open the gate: they end together.
            wait_for(lambda g=gate: len({ln.split()[1] for ln in lines(tmp_path / f"{g}.started")}) == 2, 30)
            (tmp_path / gate).touch()
            assert result.get(timeout=30) == 2
        time.sleep(0.5)
    finally:
        for w in workers:
            w.stop()
    for round_ in range(3):
        assert lines(tmp_path / f"body{round_}") == ["[0, 1]"]


def test_failing_header_task_stops_the_body_and_runs_the_errback_once_across_processes(
    process_canvas: Conveyor, tmp_path: Path
) -> None:
    app = process_canvas
    w = worker(app, tmp_path, "w", "-c", "4").wait_ready()
    try:
        body = collect.s("body")
        body.link_error(errback.s("errbacks"))
        result = chord([member.s(0), failing.s(1), member.s(2), failing.s(3)])(body)
        with pytest.raises(ChordError, match=r"failing, member [13]\)"):
            result.get(timeout=30)
        wait_for(lambda: lines(tmp_path / "errbacks"), 15)
        assert isinstance(result.parent, GroupResult)
        result.parent.get(timeout=15, propagate=False)
        time.sleep(0.5)
    finally:
        w.stop()
    assert len(lines(tmp_path / "errbacks")) == 1
    assert not (tmp_path / "body").exists()


def test_chain_whose_middle_step_retries_twice_then_succeeds_runs_each_earlier_step_once(
    process_canvas: Conveyor, tmp_path: Path
) -> None:
    w = worker(process_canvas, tmp_path, "w").wait_ready()
    try:
        result = chain(step.s(1, "log", "first"), flaky_step.s("log", 2), step.s("log", "last")).delay()
        assert result.get(timeout=30) == 21
    finally:
        w.stop()
    attempts = ["flaky attempt 0", "flaky attempt 1", "flaky attempt 2"]
    assert lines(tmp_path / "log") == ["first", *attempts, "last"]


def test_chain_whose_middle_step_fails_for_good_never_runs_later_steps_and_shows_the_failure(
    process_canvas: Conveyor, tmp_path: Path
) -> None:
    app = process_canvas
    w = worker(app, tmp_path, "w").wait_ready()
    try:
        result = chain(step.s(1, "log", "first"), broken_step.s("log"), step.s("log", "never")).delay()
        with pytest.raises(ValueError, match="step got 2 and broke"):
            result.get(timeout=30)
        assert result.parent is not None
        assert [d.id for d in app.broker.dead_letters()] == [result.parent.id]
        time.sleep(0.5)
    finally:
        w.stop()
    assert lines(tmp_path / "log") == ["first", "broken"]


def test_group_results_polled_from_a_new_process_after_save(process_canvas: Conveyor, tmp_path: Path) -> None:
    app = process_canvas
    w = worker(app, tmp_path, "w", "-c", "4").wait_ready()
    try:
        result = group(member.s(i, 0.01) for i in range(8)).delay()
        result.save()
        poll = (
            "import json, sys\n"
            "from conveyor import GroupResult\n"
            "from tests.apps.canvas_app import app\n"
            "app.conf.broker_url = sys.argv[1]\n"
            "res = GroupResult.restore(sys.argv[2], app)\n"
            "print(json.dumps([res.get(timeout=30), res.ready(), res.completed_count()]))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", poll, app.conf.broker_url, result.id],
            cwd=ROOT,
            env=process_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    finally:
        w.stop()
    assert json.loads(out) == [list(range(8)), True, 8]
