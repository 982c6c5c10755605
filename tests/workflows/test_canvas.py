"""Signatures, chain, group and chord on every broker (memory, SQLite, Redis) with a real
worker in a thread of the test process, and in eager mode. The guarantees under worker
SIGKILLs, with worker processes, are in test_workflow_guarantees.py."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from conveyor import ChordError, Conveyor, GroupResult, chain, chord, group, signature, states
from conveyor.canvas import Signature
from conveyor.canvas.run import fixed_steps

from ..apps.canvas_app import broken_step, collect, errback, failing, flaky_step, member, step, unstored_nan
from ..procs import lines, wait_for


def test_a_signature_is_json_and_reads_back_as_the_same_call() -> None:
    sig = step.s(1, "f").set(queue="steps", countdown=2)
    sig.link_error(errback.s("errs"))
    data = json.loads(json.dumps(sig))
    assert data["task"] == step.name and data["args"] == [1, "f"]
    assert data["options"]["queue"] == "steps" and data["options"]["link_error"][0]["args"] == ["errs"]
    again = signature(data)
    assert isinstance(again, Signature) and again == sig
    workflow = chord([member.s(1), member.s(2)], collect.s("body")) | step.si(0, "f", "t")
    assert signature(json.loads(json.dumps(workflow))) == workflow


def test_partial_arguments_come_first_unless_the_signature_is_immutable() -> None:
    assert step.s("f", "t").clone([1]).args == [1, "f", "t"]
    assert step.si(1, "f", "t").clone([99]).args == [1, "f", "t"]
    assert member.s(0.0)(5) == 5  # called here: member(5, 0.0)


def test_a_bad_signature_or_nesting_is_refused_clearly(canvas: Conveyor) -> None:
    with pytest.raises(TypeError, match="unexpected option 'queu'"):
        step.s(1).set(queu="x")
    with pytest.raises(TypeError, match="not a signature"):
        signature({"args": []})
    with pytest.raises(TypeError, match="a group cannot be a member of a group"):
        group([group([member.s(1)])]).apply_async()
    with pytest.raises(TypeError, match="wrong arguments"):
        chain(member.s(1), member.s(1, 2, 3)).apply_async()


def test_chain_passes_each_result_on_and_returns_the_last_step(
    canvas: Conveyor, run_worker: Any, tmp_path: Path
) -> None:
    with run_worker(canvas):
        result = (step.s(1, "steps", "a") | step.s("steps", "b") | step.s("steps", "c")).delay()
        assert result.get(timeout=20) == 4
        assert result.parent is not None and result.parent.get(timeout=5) == 3
    assert lines(tmp_path / "steps") == ["a", "b", "c"]


def test_group_results_come_in_order_and_are_restored_after_save(canvas: Conveyor, run_worker: Any) -> None:
    with run_worker(canvas):
        result = group(member.s(i, 0.01 * (5 - i)) for i in range(6)).delay()
        assert isinstance(result, GroupResult)
        result.save()
        restored = GroupResult.restore(result.id, canvas)
        assert restored is not None and restored.get(timeout=20) == list(range(6))
        assert restored.ready() and restored.successful() and restored.completed_count() == 6
    assert GroupResult.restore("never-saved", canvas) is None


def test_chord_body_runs_once_with_the_header_results_in_order(
    canvas: Conveyor, run_worker: Any, tmp_path: Path
) -> None:
    with run_worker(canvas):
        result = chord(member.s(i, 0.002 * (i % 3)) for i in range(20))(collect.s("body"))
        assert result.get(timeout=30) == 20
        assert isinstance(result.parent, GroupResult) and result.parent.get(timeout=5) == list(range(20))
    assert [json.loads(line) for line in lines(tmp_path / "body")] == [list(range(20))]


def test_chord_with_a_chain_as_body_and_group_then_body_in_a_chain(
    canvas: Conveyor, run_worker: Any, tmp_path: Path
) -> None:
    with run_worker(canvas):
        body = collect.s("body") | step.s("after", "x")
        assert chord([member.s(1), member.s(2)])(body).get(timeout=20) == 3
        assert (group(member.s(i) for i in range(3)) | collect.s("body2")).delay().get(timeout=20) == 3
    assert lines(tmp_path / "after") == ["x"]
    assert lines(tmp_path / "body2") == ["[0, 1, 2]"]


def test_failing_header_task_the_body_does_not_run_its_errback_runs_once_and_the_chord_names_the_member(
    canvas: Conveyor, run_worker: Any, tmp_path: Path
) -> None:
    with run_worker(canvas):
        body = collect.s("body")
        body.link_error(errback.s("errbacks"))
        header = [member.s(0), failing.s(1), failing.s(2), member.s(3)]
        result = chord(header)(body)
        with pytest.raises(ChordError, match=r"member [12]\) ended in FAILURE: builtins.ValueError"):
            result.get(timeout=20)
        wait_for(lambda: lines(tmp_path / "errbacks"), 10)
        header_results = result.parent
        assert isinstance(header_results, GroupResult)
        header_results.get(timeout=10, propagate=False)
    failed_ids = {header_results[1].id, header_results[2].id}
    assert len(lines(tmp_path / "errbacks")) == 1 and lines(tmp_path / "errbacks")[0] in failed_ids
    assert not (tmp_path / "body").exists()


def test_a_header_value_that_cannot_join_its_chord_fails_the_chord_instead_of_the_worker(
    canvas: Conveyor, run_worker: Any, tmp_path: Path
) -> None:
    """``ignore_result``: the value is encoded only for the chord, where a NaN cannot go."""
    with run_worker(canvas):
        result = chord([member.s(0), unstored_nan.s(1)])(collect.s("body"))
        with pytest.raises(ChordError, match=r"member 1\) ended in FAILURE: .*EncodeError"):
            result.get(timeout=20)
    assert not (tmp_path / "body").exists()
    assert canvas.broker.dead_letters() == []  # no internal error of the worker's


def test_chain_step_that_retries_twice_then_succeeds_does_not_rerun_earlier_steps(
    canvas: Conveyor, run_worker: Any, tmp_path: Path
) -> None:
    with run_worker(canvas):
        result = chain(step.s(1, "log", "first"), flaky_step.s("log", 2), step.s("log", "last")).delay()
        assert result.get(timeout=30) == 21
    assert lines(tmp_path / "log") == [
        "first",
        "flaky attempt 0",
        "flaky attempt 1",
        "flaky attempt 2",
        "last",
    ]


def test_chain_step_that_fails_for_good_stops_the_chain_and_the_chain_result_shows_it(
    canvas: Conveyor, run_worker: Any, tmp_path: Path
) -> None:
    with run_worker(canvas):
        first = step.s(1, "log", "first")
        broken = broken_step.s("log")
        broken.link_error(errback.s("errbacks"))
        result = chain(first, broken, step.s("log", "never")).delay()
        with pytest.raises(ValueError, match="step got 2 and broke"):
            result.get(timeout=20)
        assert result.parent is not None and result.parent.state == states.FAILURE
        wait_for(lambda: lines(tmp_path / "errbacks"), 10)
        assert canvas.broker.dead_letter_count() == 1  # the failed step is visible as a dead letter
    assert lines(tmp_path / "log") == ["first", "broken"]
    assert lines(tmp_path / "errbacks") == [result.parent.id]


def test_link_runs_with_the_result(canvas: Conveyor, run_worker: Any, tmp_path: Path) -> None:
    with run_worker(canvas):
        sig = member.s(41)
        sig.link(step.s("linked", "cb"))
        sig.delay().get(timeout=20)
        wait_for(lambda: lines(tmp_path / "linked"), 10)
    assert lines(tmp_path / "linked") == ["cb"]


def test_eager_mode_runs_workflows_in_process_with_the_same_semantics(
    canvas: Conveyor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(canvas.conf, "task_always_eager", True)
    assert (step.s(1, "log", "a") | flaky_step.s("log", 2)).delay().get() == 20
    assert group(member.s(i) for i in range(3)).delay().get() == [0, 1, 2]
    assert chord(member.s(i) for i in range(3))(collect.s("body")).get() == 3
    body = collect.s("never")
    body.on_error(errback.s("errs"))
    with pytest.raises(ChordError, match="member 1"):
        chord([member.s(0), failing.s(1)], body)().get()
    assert len(lines(tmp_path / "errs")) == 1 and not (tmp_path / "never").exists()
    stopped = chain(broken_step.s(1, "log"), step.s("log", "never")).apply()
    assert stopped.state == states.FAILURE and "never" not in lines(tmp_path / "log")


def test_a_workflow_tasks_record_names_its_group_chord_and_parent(canvas: Conveyor, run_worker: Any) -> None:
    with run_worker(canvas):
        chained = (step.s(1, "log", "a") | step.s("log", "b")).delay()
        chained.get(timeout=20)
        result = chord([member.s(0), member.s(1)])(collect.s("body"))
        result.get(timeout=20)
    header = result.parent
    assert isinstance(header, GroupResult) and chained.parent is not None
    member_info = canvas.admin.task(header[0].id)
    assert member_info.group == header.id and member_info.chord == header.id
    body_info = canvas.admin.task(result.id)
    assert body_info.group == header.id
    second = canvas.admin.task(chained.id)
    assert second.parent == chained.parent.id and second.root == chained.parent.id


def test_an_expired_header_task_fails_the_chord_instead_of_leaving_it_waiting(
    canvas: Conveyor, run_worker: Any, tmp_path: Path
) -> None:
    result = chord([member.s(0), member.s(1).set(expires=0.05)])(collect.s("body"))
    time.sleep(0.2)  # the second header task expires before any worker sees it
    with run_worker(canvas), pytest.raises(ChordError, match=r"member 1\) ended in REVOKED"):
        result.get(timeout=20)
    assert not (tmp_path / "body").exists()


def test_a_signature_can_be_a_periodic_entry_and_a_workflow_is_refused_clearly(canvas: Conveyor) -> None:
    sig = step.s(1, "log").set(queue="steps")
    name = canvas.add_periodic_task(60.0, sig, args=("tok",), name="sig-entry")
    try:
        entry = canvas.conf.beat_schedule[name]
        assert entry["task"] == step.name and list(entry["args"]) == [1, "log", "tok"]
        assert entry["options"]["queue"] == "steps"
        with pytest.raises(TypeError, match="a periodic entry sends one task"):
            canvas.add_periodic_task(60.0, step.s(1, "log", "a") | step.s("log", "b"), name="chain-entry")
    finally:
        canvas.conf.beat_schedule.pop(name, None)


def test_chains_as_members_of_a_group_and_of_a_chord_header(
    canvas: Conveyor, run_worker: Any, tmp_path: Path
) -> None:
    with run_worker(canvas):
        members = [chain(member.s(i), step.s("steps", f"s{i}")) for i in range(3)]
        assert group(members).delay().get(timeout=20) == [1, 2, 3]
        result = chord([chain(member.s(10), step.s("steps", "c")), member.s(5)])(collect.s("body"))
        assert result.get(timeout=20) == 2
        failing_member = chain(member.s(1), broken_step.s("steps"), step.s("steps", "never"))
        failed = chord([failing_member, member.s(2)])(collect.s("never-body"))
        with pytest.raises(ChordError, match=r"broken_step, member 0\)"):
            failed.get(timeout=20)
    assert lines(tmp_path / "body") == ["[11, 5]"]
    assert "never" not in lines(tmp_path / "steps") and not (tmp_path / "never-body").exists()


def test_chains_as_group_members_in_eager_mode(canvas: Conveyor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(canvas.conf, "task_always_eager", True)
    members = [chain(member.s(i), step.s("steps", "e")) for i in range(3)]
    assert chord(members)(collect.s("body")).get() == 3
    assert group(members).delay().get() == [1, 2, 3]


def test_a_workflow_is_sent_through_its_tasks_app_not_the_current_app(
    canvas: Conveyor, run_worker: Any
) -> None:
    other = Conveyor("other", broker=f"memory://other-{id(canvas)}")  # now the current app
    try:
        with run_worker(canvas):
            assert chain(member.s(1), step.s("log", "x")).delay().get(timeout=20) == 2
            assert group([member.s(1)]).delay().get(timeout=20) == [1]
            assert chord([member.s(1)])(collect.s("body")).get(timeout=20) == 1
        assert other.broker.queue_stats() == {}
    finally:
        other.close()


def test_an_immutable_chord_body_runs_with_its_own_arguments_and_countdown_delays_only_a_chains_start(
    canvas: Conveyor, run_worker: Any, tmp_path: Path
) -> None:
    with run_worker(canvas):
        assert chord([member.s(1), member.s(2)])(step.si(7, "log", "body")).get(timeout=20) == 8
        result = chain(step.s(1, "log", "a"), step.s("log", "b")).apply_async(countdown=0.2)
        assert result.get(timeout=20) == 3
        assert result.parent is not None and result.parent.get(timeout=5) == 2
    assert lines(tmp_path / "log") == ["body", "a", "b"]
    steps = fixed_steps(chain(step.s(1, "l", "a"), step.s("l", "b")).tasks, {"countdown": 5, "queue": "q"})
    assert steps[0].options["countdown"] == 5 and "countdown" not in steps[1].options
    assert steps[1].options["queue"] == "q"


@pytest.mark.parametrize("eager", [False, True], ids=["worker", "eager"])
def test_a_chains_link_error_runs_once_with_the_failed_steps_id(
    canvas: Conveyor, run_worker: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, eager: bool
) -> None:
    monkeypatch.setattr(canvas.conf, "task_always_eager", eager)
    pipeline = chain(step.s(1, "log", "a"), broken_step.s("log"), step.s("log", "never"))
    pipeline.link_error(errback.s("errbacks"))
    with run_worker(canvas):
        result = pipeline.apply_async()
        with pytest.raises(ValueError, match="broke"):
            result.get(timeout=20)
        wait_for(lambda: lines(tmp_path / "errbacks"), 10)
        time.sleep(0.3)
    assert result.parent is not None
    assert lines(tmp_path / "errbacks") == [result.parent.id]
