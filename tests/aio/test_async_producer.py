"""Async producers (conveyor/aio.py): ``adelay``, ``aapply_async``, ``aget``, ``astate``/``ainfo``.

Against the real brokers: a throwaway redis-server, a SQLite file, the memory broker; jobs run by
a real ``Worker`` (in a thread of the test process: the FastAPI example's tests use processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor, aio
from conveyor.exceptions import BrokerError, TimeoutError
from conveyor.message import decode_envelope

from ..conftest import ThreadWorker
from ..redis_server import RedisServer, free_port


@pytest.fixture
def tasks(app: Conveyor) -> dict[str, Any]:
    @app.task(name="aio.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="aio.async_add")
    async def async_add(x: int, y: int) -> int:
        await asyncio.sleep(0)
        return x + y

    @app.task(name="aio.boom")
    def boom() -> None:
        raise ValueError("boom")

    return {"add": add, "async_add": async_add, "boom": boom}


def _ready(app: Conveyor) -> int:
    return sum(stats.ready for stats in app.broker.queue_stats().values())


def test_adelay_enqueues_a_job_a_worker_runs_and_aget_returns_its_result(
    app: Conveyor, tasks: dict[str, Any]
) -> None:
    async def main() -> int:
        result = await tasks["add"].adelay(2, 3)
        with ThreadWorker(app, concurrency=2):
            value: int = await result.aget(timeout=30)
        assert await result.astate() == "SUCCESS"
        assert await result.ainfo() == 5
        return value

    assert asyncio.run(main()) == 5


def test_concurrent_adelays_are_coalesced_into_few_round_trips_each_job_once(
    app: Conveyor, tasks: dict[str, Any]
) -> None:
    batches: list[int] = []

    async def main() -> list[str]:
        batcher = aio.batcher(app)
        real = batcher.producer.enqueue

        async def counted(jobs: Any) -> list[bool]:  # the real enqueue, counted
            batches.append(len(jobs))
            return await real(jobs)

        batcher.producer.enqueue = counted  # type: ignore[method-assign]
        results = await asyncio.gather(*(tasks["add"].adelay(i, i) for i in range(200)))
        return [r.id for r in results]

    ids = asyncio.run(main())
    assert len(set(ids)) == 200
    assert sum(batches) == 200
    assert len(batches) <= 2, f"200 adelays made in one tick took {len(batches)} broker calls"
    assert _ready(app) == 200
    with ThreadWorker(app, concurrency=4):

        async def results() -> list[int]:
            return [await app.AsyncResult(i).aget(timeout=30) for i in ids]

        assert asyncio.run(results()) == [i + i for i in range(200)]


def test_aapply_async_sends_the_message_apply_async_sends(app: Conveyor, tasks: dict[str, Any]) -> None:
    app.conf.task_routes = {"aio.*": {"queue": "math", "priority": 7}}
    options: dict[str, Any] = {"countdown": 60, "expires": 600, "headers": {"tenant": "t1"}}
    sync = tasks["add"].apply_async((1, 2), task_id="sync-1", **options)

    async def main() -> Any:
        return await tasks["add"].aapply_async((1, 2), task_id="async-1", **options)

    assert asyncio.run(main()).id == "async-1"
    jobs = {j.id: j for j in app.broker.pending(delayed=True)}
    assert set(jobs) == {"sync-1", "async-1"}
    a, b = (decode_envelope(jobs[i].body) for i in (sync.id, "async-1"))
    for field in ("task", "args", "kwargs", "queue", "priority", "headers", "time_limit", "max_retries"):
        assert getattr(a, field) == getattr(b, field), field
    assert (a.queue, a.priority, a.headers) == ("math", 7, {"tenant": "t1"})
    assert a.eta is not None and b.eta is not None and abs(a.eta - b.eta) < 30
    assert a.expires is not None and b.expires is not None and abs(a.expires - b.expires) < 30


def test_aapply_async_refuses_bad_input_and_sends_nothing(app: Conveyor, tasks: dict[str, Any]) -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="wrong arguments"):
            await tasks["add"].adelay(1)
        with pytest.raises(TypeError, match="aapply_async"):
            await tasks["add"].aapply_async((1, 2), colour="red")
        with pytest.raises(ValueError, match="priority"):
            await tasks["add"].aapply_async((1, 2), priority=12)

    asyncio.run(main())
    assert _ready(app) == 0


def test_aapply_async_unique_key_returns_the_pending_job(app: Conveyor, tasks: dict[str, Any]) -> None:
    async def main() -> tuple[str, str]:
        first = await tasks["add"].aapply_async((1, 1), unique_key="only-one")
        second = await tasks["add"].aapply_async((1, 1), unique_key="only-one")
        return first.id, second.id

    first, second = asyncio.run(main())
    assert first == second
    assert _ready(app) == 1


def test_aget_raises_the_task_failure_and_times_out(app: Conveyor, tasks: dict[str, Any]) -> None:
    async def main() -> None:
        waiting = await tasks["add"].adelay(1, 1)
        with pytest.raises(TimeoutError):
            await waiting.aget(timeout=0.2)  # no worker: stays PENDING
        assert await waiting.astate() == "PENDING"
        failing = await tasks["boom"].adelay()
        with ThreadWorker(app):
            with pytest.raises(ValueError, match="boom"):
                await failing.aget(timeout=30)
            assert isinstance(await failing.aget(timeout=30, propagate=False), ValueError)

    asyncio.run(main())


@pytest.mark.parametrize("task_name", ["add", "async_add"])
def test_adelay_runs_eagerly_with_task_always_eager(
    app: Conveyor, tasks: dict[str, Any], task_name: str
) -> None:
    app.conf.task_always_eager = True

    async def main() -> tuple[int, str]:
        result = await tasks[task_name].adelay(20, 22)
        return await result.aget(), await result.astate()

    assert asyncio.run(main()) == (42, "SUCCESS")
    assert _ready(app) == 0


def test_async_producers_on_two_event_loops_each_get_their_own_client(
    app: Conveyor, tasks: dict[str, Any]
) -> None:
    found: list[str] = []

    def thread() -> None:
        async def main() -> None:
            found.append((await tasks["add"].adelay(1, 2)).id)

        asyncio.run(main())

    threads = [threading.Thread(target=thread) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(set(found)) == 3
    assert _ready(app) == 3


# -- a broker outage --------------------------------------------------------------------------
def test_a_broker_outage_gives_each_awaiting_caller_a_broker_error(tmp_path: Path) -> None:
    port = free_port()  # nothing listens here
    app = Conveyor("down", broker=f"redis://127.0.0.1:{port}/0?socket_connect_timeout=1")
    app.conf.task_publish_retry_policy = {"max_retries": 1, "interval_start": 0.0}

    @app.task(name="aio.down")
    def down(i: int) -> int:
        return i

    async def main() -> list[BaseException]:
        out = await asyncio.gather(*(down.adelay(i) for i in range(20)), return_exceptions=True)
        return [e for e in out if isinstance(e, BaseException)]

    try:
        errors = asyncio.run(main())
    finally:
        app.close()
    assert len(errors) == 20
    assert all(isinstance(e, BrokerError) and "unreachable" in str(e) for e in errors)
    assert len({id(e) for e in errors}) == 20  # each caller its own exception


class ReplyDropper:
    """A TCP proxy to Redis that can drop the next reply: the server ran the command, the
    client loses the connection before hearing so (as when a network drops mid-call)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.drop_next = threading.Event()
        self.dropped = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
                threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
                threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, replies: bool) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if replies and self.drop_next.is_set():
                    self.drop_next.clear()
                    self.dropped.set()
                    break
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def dropper(redis_server: RedisServer) -> Iterator[ReplyDropper]:
    import redis

    redis.Redis.from_url(redis_server.url).flushall()
    proxy = ReplyDropper(redis_server.port)
    try:
        yield proxy
    finally:
        proxy.close()


def test_a_batch_whose_reply_was_lost_is_sent_again_and_nothing_is_enqueued_twice(
    dropper: ReplyDropper,
) -> None:
    app = Conveyor("dropped", broker=f"redis://127.0.0.1:{dropper.port}/0")

    @app.task(name="aio.once")
    def once(i: int) -> int:
        return i

    async def main() -> list[str]:
        first = await once.adelay(-1)  # the connection is made and its handshake answered
        dropper.drop_next.set()
        results = await asyncio.gather(*(once.adelay(i) for i in range(50)))
        return [first.id, *(r.id for r in results)]

    try:
        ids = asyncio.run(main())
        assert dropper.dropped.is_set()
        assert len(set(ids)) == 51
        assert _ready(app) == 51
        assert sorted(j.id for j in app.broker.pending(delayed=False, limit=100)) == sorted(ids)
    finally:
        app.close()


def test_adelay_sends_the_publish_signals_and_keeps_headers_a_handler_adds(
    app: Conveyor, tasks: dict[str, Any]
) -> None:
    from conveyor.signals import after_task_publish, before_task_publish

    seen: list[str] = []

    def stamp(sender: str, headers: dict[str, Any], **_: Any) -> None:
        headers["tenant"] = "acme"
        seen.append(f"before {sender}")

    def sent(sender: str, **_: Any) -> None:
        seen.append(f"after {sender}")

    before_task_publish.connect(stamp)
    after_task_publish.connect(sent)
    try:

        async def main() -> str:
            return (await tasks["add"].adelay(1, 2)).id

        task_id = asyncio.run(main())
    finally:
        before_task_publish.disconnect(stamp)
        after_task_publish.disconnect(sent)
    assert seen == ["before aio.add", "after aio.add"]
    job = app.broker.pending_job(task_id)
    assert job is not None and decode_envelope(job.body).headers == {"tenant": "acme"}


def test_adelay_after_app_close_uses_the_new_broker_on_the_same_loop(
    app: Conveyor, tasks: dict[str, Any]
) -> None:
    async def main() -> None:
        await tasks["add"].adelay(1, 1)
        app.close()  # the broker (and the loop's client of it) is replaced on next use
        second = await tasks["add"].adelay(2, 2)
        assert await second.astate() == "PENDING"
        await aio.close_producers()

    asyncio.run(main())
    assert _ready(app) == 2


def test_adelay_honours_wait_replicas_like_delay(redis_server: RedisServer) -> None:
    """No replica answers this server: the write is on the primary, unconfirmed, so the
    producer hears so (as from ``delay``), and the job is there once."""
    import redis

    redis.Redis.from_url(redis_server.url).flushall()
    app = Conveyor("replicas", broker=f"{redis_server.url}?wait_replicas=1&wait_timeout_ms=50")
    app.conf.task_publish_retry_policy = {"max_retries": 1, "interval_start": 0.0}

    @app.task(name="aio.replicated")
    def replicated(i: int) -> int:
        return i

    async def main() -> None:
        with pytest.raises(BrokerError, match="only 0 of 1 replica"):
            await replicated.aapply_async((1,), task_id="replicated-1")

    try:
        asyncio.run(main())
        with pytest.raises(BrokerError, match="only 0 of 1 replica"):
            replicated.apply_async((2,), task_id="replicated-2")
        assert sorted(j.id for j in app.broker.pending(delayed=False)) == ["replicated-1", "replicated-2"]
    finally:
        app.close()


def test_sqlite_async_producer_works_again_after_its_broker_was_closed(tmp_path: Path) -> None:
    app = Conveyor("reopened", broker=f"sqlite:///{tmp_path / 'broker.db'}")

    @app.task(name="aio.reopened")
    def reopened(i: int) -> int:
        return i

    async def main() -> None:
        await reopened.adelay(1)
        app.broker.close()  # its writer and reader threads stop; the same broker is used again
        await reopened.adelay(2)
        assert await app.AsyncResult("nobody-enqueued-this").astate() == "UNKNOWN"

    try:
        asyncio.run(main())
        assert _ready(app) == 2
    finally:
        app.close()
