"""Intake decides, without a broker or an event loop, whether a delivery runs or is settled."""

from __future__ import annotations

import time

import pytest

from conveyor import Conveyor
from conveyor.brokers import Delivery
from conveyor.exceptions import NotRegistered
from conveyor.worker.intake import Accepted, Refused, intake

app = Conveyor("intake", broker="memory://intake")


@app.task(name="intake.add")
def add(x: int, y: int) -> int:
    return x + y


JSON = frozenset({"json"})


def deliver(body: bytes, job_id: str = "t1", delivery: int = 3) -> Delivery:
    return Delivery(job_id, "q", body, delivery, 0)


def check(body: bytes, revoked: set[str] | None = None, accept: frozenset[str] = JSON) -> Accepted | Refused:
    return intake(deliver(body), app.tasks, revoked or set(), accept, "w1@host")


def test_a_valid_delivery_is_accepted_with_its_request() -> None:
    got = check(b'{"id":"t1","task":"intake.add","args":[1,2],"kwargs":{},"retries":2,"priority":7}')
    assert isinstance(got, Accepted)
    assert got.task is add
    request = got.request
    assert (request.id, request.args, request.retries, request.priority) == ("t1", [1, 2], 2, 7)
    assert (request.queue, request.delivery, request.hostname) == ("q", 3, "w1@host")


@pytest.mark.parametrize(
    "body",
    [b"\x00not json", b'{"id":"t1","task":"intake.add","args":"x"}', b'{"task":"intake.add"}'],
)
def test_a_malformed_body_is_dead_lettered(body: bytes) -> None:
    got = check(body)
    assert isinstance(got, Refused) and got.kind == "dead"
    assert got.reason.startswith("malformed message")


def test_a_body_nested_deeper_than_the_decoder_goes_is_malformed_not_a_crash() -> None:
    got = check(b'{"id":"t1","task":"intake.add","args":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert isinstance(got, Refused) and got.kind == "dead" and "malformed message" in got.reason


def test_an_unknown_task_is_dead_lettered_with_a_hint() -> None:
    got = check(b'{"id":"t1","task":"nobody.registered"}')
    assert isinstance(got, Refused) and isinstance(got.error, NotRegistered)
    assert "unknown task 'nobody.registered'" in got.reason and "-A" in got.reason


def test_a_revoked_delivery_is_refused_as_revoked() -> None:
    got = check(b'{"id":"t1","task":"intake.add","retries":1}', revoked={"t1"})
    assert isinstance(got, Refused) and (got.kind, got.reason, got.retries) == ("revoked", "revoked", 1)
    # what the task_revoked signal is sent with
    assert got.task is not None and got.task.name == "intake.add" and not got.expired
    assert got.request is not None and got.request.id == "t1"


@pytest.mark.parametrize(
    "body", [b'{"id":"t1","task":"nobody.registered"}', b"not json"], ids=["unknown-task", "malformed"]
)
def test_a_delivery_flagged_revoked_is_revoked_even_when_this_worker_could_not_run_it(body: bytes) -> None:
    """The broker hands revoked jobs out flagged (never to run): REVOKED, not a dead letter, even
    of a task this worker does not know or a body it cannot read."""
    flagged = Delivery("t1", "q", body, 3, 0, revoked=True)
    got = intake(flagged, app.tasks, set(), JSON, "w1@host")
    assert isinstance(got, Refused) and got.kind == "revoked"
    plain = check(body)  # not revoked: dead-lettered as before
    assert isinstance(plain, Refused) and plain.kind == "dead"


@pytest.mark.parametrize(
    ("expires", "shown"), [(time.time() - 5, "UTC"), (-1e300, "-1e+300")], ids=["recent", "far-past"]
)
def test_an_expired_delivery_is_refused_as_revoked(expires: float, shown: str) -> None:
    got = check(b'{"id":"t1","task":"intake.add","expires":%r}' % expires)
    assert isinstance(got, Refused) and got.kind == "revoked"
    assert got.reason.startswith("expired at") and shown in got.reason


def test_a_content_type_this_worker_does_not_accept_is_dead_lettered() -> None:
    got = check(b'{"id":"t1","task":"intake.add","content_type":"pickle","payload":"AA=="}')
    assert isinstance(got, Refused) and got.kind == "dead" and "not accepted" in got.reason
