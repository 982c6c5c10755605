"""``conveyor.log``: get_task_logger, the formatters, and the setup_logging signal's rule."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from conveyor.log import (
    JsonFormatter,
    TaskFormatter,
    WorkerFormatter,
    configure,
    get_task_logger,
    install_task_context,
)
from conveyor.request import Request, current_request
from conveyor.signals import setup_logging


def record(msg: str = "hello %s", args: tuple[Any, ...] = ("world",)) -> logging.LogRecord:
    install_task_context()
    return logging.getLogger("proj").makeRecord("proj", logging.INFO, __file__, 1, msg, args, None)


@pytest.fixture
def in_task() -> Iterator[Request]:
    request = Request(id="t-1", task="proj.add", hostname="w1@host")
    token = current_request.set(request)
    yield request
    current_request.reset(token)


def test_records_made_inside_a_task_carry_its_id_name_and_worker(in_task: Request) -> None:
    rec = record()
    assert (rec.task_id, rec.task_name, rec.worker) == ("t-1", "proj.add", "w1@host")  # type: ignore[attr-defined]


def test_records_made_outside_a_task_have_none_there() -> None:
    rec = record()
    assert rec.task_id is None and rec.task_name is None  # type: ignore[attr-defined]


def test_task_formatter_fills_the_task_fields_or_question_marks_as_celerys_does(in_task: Request) -> None:
    fmt = TaskFormatter("%(task_name)s[%(task_id)s]: %(message)s")
    assert fmt.format(record()) == "proj.add[t-1]: hello world"
    current_request.set(None)
    outside = record()
    assert fmt.format(outside) == "???[???]: hello world"
    assert outside.task_id is None  # type: ignore[attr-defined] # the record itself is not changed


def test_the_json_format_is_one_object_per_line_with_the_task_fields(in_task: Request) -> None:
    try:
        raise ValueError("multi\nline")
    except ValueError:
        rec = logging.getLogger("proj").makeRecord(
            "proj", logging.ERROR, __file__, 1, "failed:\n%s", ("x",), exc_info=sys.exc_info()
        )
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "failed:\nx" and entry["level"] == "ERROR" and entry["logger"] == "proj"
    assert (entry["task_id"], entry["task_name"], entry["worker"]) == ("t-1", "proj.add", "w1@host")
    assert "ValueError: multi" in entry["exc_info"]


def test_get_task_logger_is_a_child_of_conveyor_task_and_refuses_conveyors_own_names() -> None:
    assert get_task_logger("proj.tasks").parent is logging.getLogger("conveyor.task")
    with pytest.raises(ValueError, match="Conveyor's own"):
        get_task_logger("conveyor.task")


def test_a_connected_setup_logging_handler_replaces_conveyors_logging_setup() -> None:
    heard: list[dict[str, Any]] = []

    def mine(**kw: Any) -> None:
        heard.append(kw)

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    setup_logging.connect(mine)
    try:
        configure("warning", "/nonexistent/never-opened.log", "json")
    finally:
        setup_logging.disconnect(mine)
        root.setLevel(level)
    assert root.handlers == handlers  # Conveyor configured nothing (and opened no file)
    assert heard[0]["loglevel"] == logging.WARNING and heard[0]["format"] == "json"
    assert heard[0]["logfile"] == "/nonexistent/never-opened.log"


def test_the_worker_text_format_prints_an_outcome_line_plainly_though_it_carries_its_task(
    in_task: Request,
) -> None:
    """An outcome line says its task in its message; the in-task prefix would say it twice."""
    outcome = logging.getLogger("conveyor.worker.outcome").makeRecord(
        "conveyor.worker.outcome", logging.INFO, __file__, 1, "task t[id] succeeded", (), None
    )
    inside = logging.getLogger("proj.tasks").makeRecord(
        "proj.tasks", logging.INFO, __file__, 1, "refreshing", (), None
    )
    formatter = WorkerFormatter()
    assert outcome.task_id == inside.task_id == in_task.id
    assert formatter.format(outcome).endswith("] task t[id] succeeded")
    assert formatter.format(inside).endswith(f"] {in_task.task}[{in_task.id}]: refreshing")
