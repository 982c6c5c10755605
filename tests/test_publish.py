"""Producers and a broker that goes away: retry per task_publish_retry_policy, then a clear error."""

from __future__ import annotations

import threading
import time

import pytest

from conveyor import Conveyor, states
from conveyor.exceptions import BrokerError

from .redis_server import RedisServer


@pytest.fixture
def server() -> RedisServer:
    srv = RedisServer(appendonly=True).start()
    yield srv
    srv.cleanup()


def make_app(url: str, **settings: object) -> Conveyor:
    app = Conveyor("publish", broker=url, **settings)

    @app.task(name="publish.add")
    def add(x: int, y: int) -> int:
        return x + y

    return app


def test_a_producer_gets_a_clear_error_when_redis_is_down(server: RedisServer) -> None:
    app = make_app(server.url, task_publish_retry_policy={"max_retries": 2, "interval_step": 0.05})
    assert app.tasks["publish.add"].delay(1, 2).state == states.PENDING
    server.stop()
    with pytest.raises(BrokerError, match=f"Redis at 127.0.0.1:{server.port} is unreachable"):
        app.tasks["publish.add"].delay(1, 2)
    app.close()


def test_enqueue_survives_a_restart_within_the_retry_policy(server: RedisServer) -> None:
    app = make_app(
        server.url, task_publish_retry_policy={"max_retries": 40, "interval_step": 0.1, "interval_max": 0.1}
    )
    app.tasks["publish.add"].delay(1, 1)  # connected before the outage
    server.stop()
    restart = threading.Timer(0.5, server.start)
    restart.start()
    result = app.tasks["publish.add"].delay(2, 3)  # retried until the server is back
    # start() returns once it saw PONG itself; joined here, or the fixture's teardown could kill
    # the server under it on a loaded machine (the thread then fails in a later test).
    restart.join(15)
    assert result.state == states.PENDING
    assert app.broker.queue_stats()["default"].ready == 2
    app.close()


def test_without_publish_retry_the_first_failure_raises(server: RedisServer) -> None:
    app = make_app(server.url, task_publish_retry=False)
    app.tasks["publish.add"].delay(1, 1)
    server.stop()
    started = time.monotonic()
    with pytest.raises(BrokerError):
        app.tasks["publish.add"].delay(1, 2)
    assert time.monotonic() - started < 5  # no retry loop (a generous bound, not a benchmark)
    app.close()
