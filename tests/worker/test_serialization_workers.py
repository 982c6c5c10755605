"""Serialisation options with real worker processes on SQLite and Redis: compressed and msgpack
bodies and results, pickle refused unless accepted, and producers and workers whose settings
differ still understanding each other (the encoding travels with each message)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.brokers import PendingJob
from conveyor.exceptions import ConfigurationError
from conveyor.worker.worker import Worker

from ..procs import WorkerProcess, wait_for

APP = "tests.apps.serial_app"
HOST = socket.gethostname()
LARGE = {"rows": [{"station": f"KJFK-{i % 7}", "temp": 21.5, "ok": True} for i in range(400)]}


@pytest.fixture
def producer(process_broker_url: str) -> Iterator[Conveyor]:
    """A producer app with the worker's task names declared, with default settings."""
    app = Conveyor("serial-producer", broker=process_broker_url)
    try:
        yield app
    finally:
        app.close()


def worker(url: str, tmp_path: Path, name: str, **settings: str) -> WorkerProcess:
    env = {f"CONVEYOR_TEST_{k.upper()}": v for k, v in settings.items()}
    return WorkerProcess(url, tmp_path, "-c", "2", app=APP, env=env, name=name).wait_ready()


def waiting(app: Conveyor) -> dict[str, PendingJob]:
    return {job.id: job for job in app.broker.pending(False, 100, 0)}


def test_a_gzip_task_round_trips_through_a_worker(
    producer: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    @producer.task(name="serial.echo", compression="gzip")
    def echo(value: Any) -> Any: ...

    result = echo.delay(LARGE)
    assert b'"content_encoding":"gzip"' in waiting(producer)[result.id].body
    w = worker(process_broker_url, tmp_path, "gz", result_compression="gzip")
    try:
        assert result.get(timeout=30) == LARGE
        stored = producer.broker.status(result.id)
        assert stored is not None and stored.payload is not None
        assert b'"content_encoding":"gzip"' in stored.payload  # the result was compressed too
    finally:
        w.stop()


def test_a_large_compressed_payload_is_smaller_in_the_broker(producer: Conveyor) -> None:
    @producer.task(name="serial.echo")
    def echo(value: Any) -> Any: ...

    plain = echo.delay(LARGE)
    gzipped = echo.apply_async((LARGE,), compression="gzip")
    zlibbed = echo.apply_async((LARGE,), compression="zlib")
    small = echo.apply_async(({"a": 1},), compression="gzip")
    jobs = waiting(producer)
    assert len(jobs[gzipped.id].body) * 5 < len(jobs[plain.id].body)
    assert len(jobs[zlibbed.id].body) * 5 < len(jobs[plain.id].body)
    assert b"content_encoding" not in jobs[small.id].body  # below 1 KiB: sent as it is


def test_a_msgpack_task_runs_and_its_msgpack_result_reads_back(
    producer: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    @producer.task(name="serial.echo", serializer="msgpack")
    def echo(value: Any) -> Any: ...

    value = {"blob": b"\x00\xff raw bytes", "n": 2**40, "nested": [1.5, None, "é"]}
    result = echo.delay(value)
    assert b'"content_type":"msgpack"' in waiting(producer)[result.id].body
    w = worker(process_broker_url, tmp_path, "mp", result_serializer="msgpack")
    try:
        assert result.get(timeout=30) == value  # bytes survive: msgpack carries them, JSON cannot
    finally:
        w.stop()


@pytest.mark.parametrize("result_serializer", ["msgpack", "json"])
def test_a_msgpack_task_with_bytes_arguments_gets_bytes_in_a_process_pool_child(
    producer: Conveyor, process_broker_url: str, tmp_path: Path, result_serializer: str
) -> None:
    @producer.task(name="serial.describe", serializer="msgpack")
    def describe(value: Any) -> str: ...

    @producer.task(name="serial.echo", serializer="msgpack")
    def echo(value: Any) -> Any: ...

    blob = b"\x00\xff raw bytes"
    env = {"CONVEYOR_TEST_RESULT_SERIALIZER": result_serializer}
    w = WorkerProcess(process_broker_url, tmp_path, "-P", "processes", "-c", "1", app=APP, env=env, name="pp")
    try:
        w.wait_ready(60)
        # The child was given bytes (the pipe to it is msgpack, not JSON).
        assert describe.delay(blob).get(timeout=30) == f"bytes:{blob!r}"
        # An integer only JSON carries (a JSON task's) still reaches the child.
        big = describe.apply_async(({"n": 2**70},), serializer="json")
        assert big.get(timeout=30) == f"dict:{ {'n': 2**70}!r}"
        value = {"blob": blob, "n": 2**40, "nested": [1.5, None, "é"]}
        if result_serializer == "msgpack":  # and what it returns reaches the result as it is
            assert echo.delay(value).get(timeout=30) == value
        else:
            assert echo.delay({"nested": [1.5, None, "é"]}).get(timeout=30) == {"nested": [1.5, None, "é"]}
    finally:
        w.stop()


def test_pickle_is_refused_on_send_without_accept_content(producer: Conveyor) -> None:
    @producer.task(name="serial.echo", serializer="pickle")
    def echo(value: Any) -> Any: ...

    with pytest.raises(ConfigurationError, match="accept_content") as caught:
        echo.delay({1, 2})
    assert "\n" not in str(caught.value)
    assert waiting(producer) == {}  # nothing was enqueued


class Trap:
    """Unpickling this creates a file: a worker that unpickles leaves the proof behind."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return open, (str(self.marker), "w")


def test_a_worker_that_does_not_accept_pickle_dead_letters_it_without_unpickling(
    producer: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    producer.conf.accept_content = ["json", "pickle"]

    @producer.task(name="serial.echo", serializer="pickle")
    def echo(value: Any) -> Any: ...

    marker = tmp_path / "unpickled"
    result = echo.delay(Trap(marker))
    w = worker(process_broker_url, tmp_path, "nopickle")
    try:
        wait_for(lambda: producer.admin.dead_letters().items, 30)
        letter = producer.admin.dead_letters().items[0]
        assert letter.id == result.id
        assert "'pickle' is not accepted" in letter.reason
        assert letter.args == "<pickle arguments>"  # never unpickled for display either
        assert result.state == "FAILURE"
        assert not marker.exists()
    finally:
        w.stop()


def test_a_worker_that_accepts_pickle_runs_it(
    producer: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    producer.conf.accept_content = ["json", "pickle"]

    @producer.task(name="serial.describe", serializer="pickle")
    def describe(value: Any) -> Any: ...

    result = describe.delay({3, 1, 2})
    w = worker(process_broker_url, tmp_path, "pickle", accept="json,pickle")
    try:
        assert result.get(timeout=30) == "set:[1, 2, 3]"
    finally:
        w.stop()


def test_pickled_arguments_fail_on_the_process_pool_instead_of_arriving_changed(
    producer: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """Sent on to a child as msgpack, a set would arrive as a list: the task fails with an
    EncodeError saying why, its message kept in the dead letters; a JSON task still runs."""
    producer.conf.accept_content = ["json", "pickle"]

    @producer.task(name="serial.describe", serializer="pickle")
    def describe(value: Any) -> Any: ...

    @producer.task(name="serial.describe_retrying", serializer="pickle")
    def describe_retrying(value: Any) -> Any: ...

    @producer.task(name="serial.echo")
    def echo(value: Any) -> Any: ...

    pickled = describe.delay({3, 1, 2})
    retrying = describe_retrying.delay({3, 1, 2})  # no retry policy makes the same message fit
    env = {"CONVEYOR_TEST_ACCEPT": "json,pickle"}
    w = WorkerProcess(process_broker_url, tmp_path, "-P", "processes", "-c", "1", app=APP, env=env, name="pp")
    try:
        w.wait_ready(60)
        with pytest.raises(Exception, match="pickled, and cannot be sent to a -P processes child") as caught:
            pickled.get(timeout=30)
        assert type(caught.value).__name__ == "EncodeError"
        with pytest.raises(Exception, match="pickled, and cannot be sent"):
            retrying.get(timeout=30)
        letters = {letter.id: letter for letter in producer.admin.dead_letters().items}
        assert sorted(letters) == sorted([pickled.id, retrying.id])
        assert all("EncodeError" in letter.reason for letter in letters.values())
        assert producer.admin.task(retrying.id).attempts_made == 1
        assert echo.delay([1, 2]).get(timeout=30) == [1, 2]
    finally:
        w.stop()
    assert "will retry" not in w.log()


def test_a_process_pool_worker_set_to_store_pickled_results_does_not_start() -> None:
    """A pool process sends its return value as msgpack: a set would be stored as a list."""
    app = Conveyor("serial-pp", broker="memory://serial-pp", result_serializer="pickle")
    app.conf.accept_content = ["json", "pickle"]
    try:
        with pytest.raises(ValueError, match="result_serializer = 'pickle' cannot be used with -P processes"):
            Worker(app, pool="processes")
        Worker(app, pool="threads")  # the other pools store what the task returned, pickled
    finally:
        app.close()


def test_producers_and_workers_with_different_settings_interoperate(
    producer: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    packed = Conveyor("serial-packed", broker=process_broker_url)
    packed.conf.update(task_serializer="msgpack", task_compression="gzip")

    @producer.task(name="serial.echo")
    def plain_echo(value: Any) -> Any: ...

    @packed.task(name="serial.echo")
    def packed_echo(value: Any) -> Any: ...

    values = [{"i": i, "pad": "x" * (3000 if i % 2 else 10)} for i in range(8)]
    settings = [
        {},  # a worker with the defaults
        {  # and one that packs everything it writes differently from both producers
            "serializer": "msgpack",
            "compression": "zlib",
            "result_serializer": "msgpack",
            "result_compression": "gzip",
        },
    ]
    try:
        for n, worker_settings in enumerate(settings):
            results = [(plain_echo if i % 2 else packed_echo).delay(v) for i, v in enumerate(values)]
            w = worker(process_broker_url, tmp_path, f"w{n}", **worker_settings)
            try:
                # Each result is read by both producers (default result settings): whoever
                # sent it and whatever worker ran it, the value reads back.
                assert [packed.AsyncResult(r.id).get(timeout=30) for r in results] == values
                assert [producer.AsyncResult(r.id).get(timeout=30) for r in results] == values
                assert {producer.admin.task(r.id).worker for r in results} == {w.name + "@" + HOST}
            finally:
                w.stop()
    finally:
        packed.close()
