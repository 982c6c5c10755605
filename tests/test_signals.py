"""``conveyor.signals``: connecting, sender filtering, and handlers that raise."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.signals import Signal


@pytest.fixture
def ping() -> Signal:
    return Signal("ping")


def test_connect_works_as_call_bare_decorator_and_decorator_with_options(ping: Signal) -> None:
    heard: list[str] = []

    def plain(**kw: Any) -> None:
        heard.append("plain")

    ping.connect(plain)

    @ping.connect
    def bare(**kw: Any) -> None:
        heard.append("bare")

    @ping.connect(sender="a")
    def filtered(**kw: Any) -> None:
        heard.append("filtered")

    ping.send(sender="b")
    assert heard == ["plain", "bare"]
    ping.send(sender="a")
    assert heard[2:] == ["plain", "bare", "filtered"]


def test_handlers_get_the_signal_the_sender_and_the_named_arguments(ping: Signal) -> None:
    got: dict[str, Any] = {}
    ping.connect(lambda **kw: got.update(kw))
    ping.send(sender="s", task_id="t1", args=[1])
    assert got == {"signal": ping, "sender": "s", "task_id": "t1", "args": [1]}


def test_a_sender_filter_matches_a_task_by_object_or_by_name(ping: Signal) -> None:
    app = Conveyor("filters", broker="memory://filters")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    heard: list[str] = []
    ping.connect(lambda **kw: heard.append("by object"), sender=add)
    ping.connect(lambda **kw: heard.append("by name"), sender=add.name)
    ping.send(sender=add)  # a task signal's sender: the task
    ping.send(sender=add.name)  # a publish signal's sender: its name
    ping.send(sender="other.task")
    assert sorted(heard) == ["by name", "by name", "by object", "by object"]


def test_connecting_twice_or_by_dispatch_uid_keeps_one_handler_and_disconnect_removes_it(
    ping: Signal,
) -> None:
    heard: list[int] = []

    def handler(**kw: Any) -> None:
        heard.append(1)

    ping.connect(handler)
    ping.connect(handler)
    ping.connect(lambda **kw: heard.append(2), dispatch_uid="u")
    ping.connect(lambda **kw: heard.append(3), dispatch_uid="u")  # replaces the one before
    ping.send(sender=None)
    assert sorted(heard) == [1, 3]
    assert ping.disconnect(handler) and ping.disconnect(dispatch_uid="u")
    assert not ping.disconnect(handler)
    heard.clear()
    ping.send(sender=None)
    assert heard == []


def test_a_handler_that_raises_is_logged_and_the_next_handler_still_runs(
    ping: Signal, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(**kw: Any) -> None:
        raise RuntimeError("handler bug")

    ping.connect(broken)
    ping.connect(lambda **kw: "still here")
    with caplog.at_level(logging.ERROR, logger="conveyor.signals"):
        answers = ping.send(sender=None, task_id="t-42")
    assert isinstance(answers[0][1], RuntimeError) and answers[1][1] == "still here"
    assert "signal handler" in caplog.text and "for ping raised (task t-42); ignored" in caplog.text
    assert "RuntimeError: handler bug" in caplog.text  # with its traceback


def test_connect_refuses_what_is_not_callable(ping: Signal) -> None:
    with pytest.raises(TypeError, match=r"ping.connect\(\) takes a callable"):
        ping.connect("not a function")  # type: ignore[call-overload]
