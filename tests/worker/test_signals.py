"""Signals, Task hooks, ``self.request`` and log context in a real worker (in a test thread).

One broker is enough here (the memory broker): signals are sent by the worker and the
producer, never by a broker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import pytest

from conveyor import Conveyor, Task, signals, states
from conveyor.brokers import JobSpec
from conveyor.log import get_task_logger

from ..procs import wait_for

app = Conveyor("signals")
task_log = get_task_logger(__name__)
events: list[tuple[str, int, Any]] = []  # (what, thread ident, detail)


def seen(what: str, detail: Any = None) -> None:
    events.append((what, threading.get_ident(), detail))


class Recorded(Task):  # type: ignore[type-arg]
    """Every hook records itself; ``explode`` in the kwargs makes every hook raise too."""

    max_retries = 1  # a class attribute is a task option, as in Celery
    default_retry_delay = 0.01

    def before_start(self, task_id: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        self._seen("before_start", task_id, kwargs)

    def on_success(self, retval: Any, task_id: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        self._seen("on_success", retval, kwargs)

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        self._seen("on_failure", (type(exc).__name__, task_id, "Traceback" in str(einfo)), kwargs)

    def on_retry(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        self._seen("on_retry", type(exc).__name__, kwargs)

    def after_return(
        self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        self._seen(f"after_return:{status}", einfo is not None, kwargs)

    @staticmethod
    def _seen(what: str, detail: Any, kwargs: dict[str, Any]) -> None:
        seen(what, detail)
        if kwargs.get("explode"):
            raise RuntimeError(f"{what} hook exploded")


@app.task(base=Recorded, bind=True)
def work(self: Task, x: int, fail: bool = False, retry: bool = False, explode: bool = False) -> int:  # type: ignore[type-arg]
    seen("body", dict(self.request.headers))
    task_log.info("working on %s", x)
    if retry and self.request.retries == 0:
        self.retry(countdown=0.01)
    if fail:
        raise ValueError(f"bad {x}")
    return x * 2


@app.task(base=Recorded)
async def awork(x: int) -> int:
    seen("body")
    await asyncio.sleep(0)
    task_log.info("async work on %s", x)
    return x * 2


@app.task
def spin(seconds: float) -> None:
    """Busy in Python code, so a terminating revoke interrupts it promptly."""
    seen("body")
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@app.task(bind=True)
def describe(self: Task) -> dict[str, Any]:  # type: ignore[type-arg]
    r = self.request
    return {
        "id": r.id,
        "retries": r.retries,
        "args": r.args,
        "kwargs": r.kwargs,
        "delivery_info": r.delivery_info,
        "hostname": r.hostname,
        "eta": r.eta,
        "expires": r.expires,
        "is_eager": r.is_eager,
    }


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    app.conf.broker_url = f"memory://signals-{uuid.uuid4().hex}"
    events.clear()
    yield
    app.close()


@pytest.fixture
def listen() -> Iterator[Callable[..., None]]:
    """``listen(signal, **connect_options)``: record the signal's sends until the test ends."""
    connected: list[tuple[signals.Signal, Callable[..., Any], Any]] = []

    def connect(sig: signals.Signal, sender: Any = None, raises: bool = False) -> None:
        def handler(**kw: Any) -> None:
            seen(sig.name, kw)
            if raises:
                raise RuntimeError(f"{sig.name} handler exploded")

        sig.connect(handler, sender=sender)
        connected.append((sig, handler, sender))

    yield connect
    for sig, handler, sender in connected:
        sig.disconnect(handler, sender=sender)


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in list(caplog.records)]


RUN_SIGNALS = (signals.task_prerun, signals.task_postrun, signals.task_success, signals.task_failure)


def names() -> list[str]:
    return [what for what, _, _ in events]


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_hooks_and_run_signals_run_in_celerys_order_in_the_tasks_own_thread(
    run_worker: Any, listen: Callable[..., None], pool: str
) -> None:
    for sig in RUN_SIGNALS:
        listen(sig)
    with run_worker(app, pool=pool):
        assert work.delay(21).get(timeout=10) == 42
        wait_for(lambda: "task_postrun" in names(), 10)
    assert names() == [
        "task_prerun",
        "before_start",
        "body",
        "on_success",
        "task_success",
        "after_return:SUCCESS",
        "task_postrun",
    ]
    assert len({thread for _, thread, _ in events}) == 1  # all where the body ran
    postrun = events[-1][2]
    assert (postrun["state"], postrun["retval"], postrun["args"]) == (states.SUCCESS, 42, [21])
    assert events[4][2]["result"] == 42 and events[4][2]["runtime"] >= 0


def test_an_async_tasks_hooks_run_in_its_own_asyncio_task(
    run_worker: Any, listen: Callable[..., None]
) -> None:
    listen(signals.task_postrun)
    with run_worker(app, pool="asyncio"):
        assert awork.delay(5).get(timeout=10) == 10
        wait_for(lambda: "task_postrun" in names(), 10)
    assert names() == ["before_start", "body", "on_success", "after_return:SUCCESS", "task_postrun"]


def test_a_failure_calls_on_failure_and_task_failure_with_the_exception_and_einfo(
    run_worker: Any, listen: Callable[..., None]
) -> None:
    listen(signals.task_failure)
    listen(signals.task_postrun)
    with run_worker(app):
        result = work.delay(3, fail=True)
        with pytest.raises(ValueError, match="bad 3"):
            result.get(timeout=10)
        wait_for(lambda: "task_postrun" in names(), 10)
    assert names() == [
        "before_start",
        "body",
        "on_failure",
        "task_failure",
        "after_return:FAILURE",
        "task_postrun",
    ]
    assert events[2][2] == ("ValueError", result.id, True)
    failure = events[3][2]
    assert failure["sender"] is work and failure["task_id"] == result.id
    assert isinstance(failure["exception"], ValueError) and failure["args"] == [3]
    assert isinstance(failure["traceback"], TracebackType)
    assert "ValueError: bad 3" in str(failure["einfo"])
    assert events[5][2]["state"] == states.FAILURE


def test_a_retry_calls_on_retry_and_task_retry_then_the_next_attempt_runs(
    run_worker: Any, listen: Callable[..., None]
) -> None:
    listen(signals.task_retry)
    with run_worker(app):
        assert work.delay(4, retry=True).get(timeout=10) == 8
    assert names()[:4] == ["before_start", "body", "on_retry", "task_retry"]
    assert events[3][2]["request"].retries == 0 and events[3][2]["einfo"] is not None
    assert names()[4:] == ["before_start", "body", "on_success", "after_return:SUCCESS"]


def test_hooks_and_handlers_that_raise_are_logged_with_the_task_id_and_change_no_outcome(
    run_worker: Any, listen: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    for sig in RUN_SIGNALS:
        listen(sig, raises=True)
    with caplog.at_level(logging.ERROR), run_worker(app):
        ok = work.delay(1, explode=True)
        bad = work.delay(2, fail=True, explode=True)
        assert ok.get(timeout=10) == 2
        with pytest.raises(ValueError, match="bad 2"):
            bad.get(timeout=10)
        wait_for(lambda: names().count("task_postrun") == 2, 10)
    assert ok.status == states.SUCCESS and bad.status == states.FAILURE
    assert f"on_success hook of task {work.name}[{ok.id}] raised; ignored" in caplog.text
    assert f"on_failure hook of task {work.name}[{bad.id}] raised; ignored" in caplog.text
    assert f"for task_success raised (task {ok.id}); ignored" in caplog.text
    assert f"for task_failure raised (task {bad.id}); ignored" in caplog.text


def test_expired_unknown_and_unreadable_messages_send_their_signals(
    run_worker: Any, listen: Callable[..., None]
) -> None:
    for sig in (signals.task_revoked, signals.task_unknown, signals.task_rejected):
        listen(sig)
    expired = work.apply_async((2,), expires=datetime.now(UTC) - timedelta(seconds=5))
    unknown = app.send_task("nobody.registers.this")
    app.broker.enqueue([JobSpec("garbage-1", "default", b"not a message")])
    with run_worker(app):
        wait_for(lambda: len(events) == 3, 10)
    by_name = {what: detail for what, _, detail in events}
    assert set(by_name) == {"task_revoked", "task_unknown", "task_rejected"}
    revoked = by_name["task_revoked"]
    assert revoked["sender"] is work and revoked["request"].id == expired.id
    assert (revoked["expired"], revoked["terminated"]) == (True, False)
    assert by_name["task_unknown"]["name"] == "nobody.registers.this"
    assert by_name["task_unknown"]["id"] == unknown.id
    assert by_name["task_rejected"]["message"].id == "garbage-1"
    assert "body" not in names()


def test_a_terminated_task_sends_task_revoked_and_no_failure(
    run_worker: Any, listen: Callable[..., None]
) -> None:
    listen(signals.task_revoked)
    listen(signals.task_failure)
    with run_worker(app):
        running = spin.delay(30)
        wait_for(lambda: "body" in names(), 10)
        app.revoke(running.id, terminate=True)
        wait_for(lambda: "task_revoked" in names(), 15)
        assert running.get(timeout=10, propagate=False) is not None
    revoked = next(d for w, _, d in events if w == "task_revoked")
    assert revoked["request"].id == running.id and revoked["terminated"] is True
    assert "task_failure" not in names() and running.status == states.REVOKED


def test_worker_lifecycle_signals_are_sent_in_order_with_the_worker_as_sender(
    run_worker: Any, listen: Callable[..., None]
) -> None:
    for sig in (
        signals.worker_init,
        signals.worker_process_init,
        signals.worker_ready,
        signals.worker_shutdown,
    ):
        listen(sig)
    with run_worker(app) as worker:
        wait_for(lambda: "worker_ready" in names(), 10)
    assert names() == ["worker_init", "worker_process_init", "worker_ready", "worker_shutdown"]
    assert all(detail["sender"] is worker for _, _, detail in events)


def test_publish_signals_carry_the_message_and_headers_added_before_publish_reach_the_task(
    run_worker: Any, listen: Callable[..., None]
) -> None:
    def add_header(headers: dict[str, Any], **_: Any) -> None:
        headers["correlation"] = "abc-123"

    signals.before_task_publish.connect(add_header, sender=work)  # the task object or its name
    listen(signals.after_task_publish, sender=work.name)
    listen(signals.after_task_publish, sender="some.other.task")
    try:
        result = work.apply_async((6,), queue="default")
    finally:
        signals.before_task_publish.disconnect(add_header, sender=work)
    assert names() == ["after_task_publish"]  # not the handler for another task
    published = events[0][2]
    assert published["sender"] == work.name and published["routing_key"] == "default"
    assert published["headers"]["id"] == result.id and published["headers"]["task"] == work.name
    assert published["body"][0] == [6]
    events.clear()
    with run_worker(app):
        assert result.get(timeout=10) == 12
    assert ("body", {"correlation": "abc-123"}) in [(w, d) for w, _, d in events]


def test_self_request_has_the_fields_a_celery_task_reads(run_worker: Any) -> None:
    eta = datetime.now(UTC) + timedelta(seconds=0.2)
    expires = eta + timedelta(hours=1)
    with run_worker(app, name="req@host") as worker:
        r = describe.apply_async(eta=eta, expires=expires, priority=7)
        seen_request = r.get(timeout=10)
    assert seen_request["id"] == r.id and seen_request["retries"] == 0
    assert seen_request["args"] == [] and seen_request["kwargs"] == {}
    assert seen_request["hostname"] == worker.hostname and seen_request["is_eager"] is False
    assert datetime.fromisoformat(seen_request["eta"]) == eta
    assert datetime.fromisoformat(seen_request["expires"]) == expires
    assert seen_request["delivery_info"] == {
        "exchange": "",
        "routing_key": "default",
        "priority": 7,
        "redelivered": False,
    }


@pytest.mark.parametrize("pool", ["threads", "asyncio"])
def test_every_log_record_inside_a_task_carries_its_id_and_name(
    run_worker: Any, caplog: pytest.LogCaptureFixture, pool: str
) -> None:
    with caplog.at_level(logging.INFO), run_worker(app, pool=pool) as worker:
        sync_id, async_id = work.delay(7).id, awork.delay(8).id
        wait_for(
            lambda: sum(m.startswith(("working on", "async work on")) for m in messages(caplog)) == 2, 10
        )
    sync_rec, async_rec = (
        next(r for r in caplog.records if text in r.getMessage())
        for text in ("working on 7", "async work on 8")
    )
    assert (sync_rec.task_id, sync_rec.task_name, sync_rec.worker) == (sync_id, work.name, worker.hostname)  # type: ignore[attr-defined]
    assert (async_rec.task_id, async_rec.task_name) == (async_id, awork.name)  # type: ignore[attr-defined]
    assert sync_rec.name == __name__ and task_log.parent is logging.getLogger("conveyor.task")
    outside = next(r for r in caplog.records if " ready: " in r.getMessage())
    assert outside.task_id is None  # type: ignore[attr-defined]
