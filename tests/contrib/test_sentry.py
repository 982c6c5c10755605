"""``conveyor.contrib.sentry`` with the real sentry-sdk and a transport that keeps events in memory
(no network): a failed task in a real worker becomes one event with its name, id and arguments."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from conveyor import Conveyor, signals
from conveyor.contrib.sentry import DISPATCH_UID, init_sentry

from ..procs import wait_for

app = Conveyor("sentry")


@app.task(max_retries=0)
def charge(order_id: int, currency: str = "EUR") -> None:
    raise LookupError(f"order {order_id} not found")


@app.task
def fine() -> int:
    return 1


class MemoryTransport(Transport):
    """Keeps every envelope sentry-sdk would send."""

    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def events(self) -> list[dict[str, Any]]:
        return [e for envelope in list(self.envelopes) if (e := envelope.get_event()) is not None]


@pytest.fixture
def sentry() -> Iterator[MemoryTransport]:
    transport = MemoryTransport()
    app.conf.broker_url = f"memory://sentry-{uuid.uuid4().hex}"
    init_sentry(dsn="http://public@sentry.invalid/1", transport=transport)
    try:
        yield transport
    finally:
        signals.task_failure.disconnect(dispatch_uid=DISPATCH_UID)
        signals.worker_shutdown.disconnect(dispatch_uid=DISPATCH_UID)
        sentry_sdk.init()  # no DSN: reporting off again
        app.close()


def test_a_failed_task_is_reported_once_with_its_name_id_and_arguments(
    sentry: MemoryTransport, run_worker: Any
) -> None:
    with run_worker(app, name="billing@host"):
        assert fine.delay().get(timeout=10) == 1
        failed = charge.delay(42, currency="USD")
        with pytest.raises(LookupError):
            failed.get(timeout=10)
        wait_for(sentry.events, 10)
    events = sentry.events()
    assert len(events) == 1  # not a second, contextless one from the worker's log line
    event = events[0]
    exception = event["exception"]["values"][-1]
    assert exception["type"] == "LookupError" and exception["value"] == "order 42 not found"
    assert event["tags"]["conveyor.task"] == charge.name
    assert event["tags"]["conveyor.task_id"] == failed.id
    context = event["contexts"]["conveyor task"]
    assert context["args"] == [42] and context["kwargs"] == {"currency": "USD"}
    assert context["attempt"] == 1 and context["worker"] == "billing@host" and context["queue"] == "default"
