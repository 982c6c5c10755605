"""Serialisation options in one process (memory broker and in-process workers): names checked in
one line, what is compressed and what is not, and every reader of a message (worker, eager run,
retry, admin API, signal handlers) seeing the same arguments whatever the encoding."""

from __future__ import annotations

import dataclasses
import gzip
import uuid
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from conveyor import Conveyor, chain
from conveyor.brokers import Delivery
from conveyor.codecs import COMPRESS_THRESHOLD
from conveyor.exceptions import ConfigurationError, DecodeError, EncodeError
from conveyor.message import Envelope, ResultPayload, decode_result, encode_envelope, encode_result
from conveyor.signals import before_task_publish
from conveyor.worker.intake import Accepted, Refused, intake

from .conftest import ThreadWorker
from .procs import wait_for

BIG = [f"row {i}: {'x' * 40}" for i in range(100)]


@pytest.fixture
def app() -> Iterator[Conveyor]:
    application = Conveyor("serial-unit", broker="memory://serial-unit")
    try:
        yield application
    finally:
        application.close()


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("task_serializer", "yaml", "task_serializer: unknown serializer 'yaml'"),
        ("result_serializer", "json5", "result_serializer: unknown serializer 'json5'"),
        ("task_compression", "brotli", "task_compression: unknown compression 'brotli'"),
        ("result_compression", "lz4", "result_compression: unknown compression 'lz4'"),
        ("accept_content", ["json", "yaml"], "accept_content: unknown serializer 'yaml'"),
    ],
)
def test_an_unknown_serializer_or_compression_setting_is_refused_in_one_line(
    app: Conveyor, setting: str, value: Any, message: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        app.conf[setting] = value
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_an_unknown_serializer_or_compression_option_is_refused_in_one_line(app: Conveyor) -> None:
    with pytest.raises(ConfigurationError, match="unknown serializer 'yaml'"):
        app.task(serializer="yaml")(lambda: None)
    with pytest.raises(ConfigurationError, match="unknown compression 'bz'"):
        app.task(compression="bz")(lambda: None)

    @app.task
    def echo(value: Any) -> Any:
        return value

    with pytest.raises(ConfigurationError, match="unknown compression 'snappy'"):
        echo.apply_async((1,), compression="snappy")
    with pytest.raises(ConfigurationError, match="unknown serializer 'xml'"):
        echo.apply_async((1,), serializer="xml")


def test_accept_content_reads_celerys_mime_names(app: Conveyor) -> None:
    app.conf.accept_content = ["application/json", "application/x-msgpack"]
    assert app.conf.accept_content == ["json", "msgpack"]


def test_only_bodies_of_at_least_the_threshold_are_compressed(app: Conveyor) -> None:
    @app.task(compression="gzip")
    def echo(value: Any) -> Any:
        return value

    small = echo.delay("x" * (COMPRESS_THRESHOLD // 2))
    large = echo.delay("x" * COMPRESS_THRESHOLD)
    bodies = {job.id: msgspec.json.decode(job.body) for job in app.broker.pending(False, 10, 0)}
    assert "content_encoding" not in bodies[small.id] and bodies[small.id]["args"]
    assert bodies[large.id]["content_encoding"] == "gzip" and "args" not in bodies[large.id]


def test_a_retried_task_keeps_its_messages_serializer_and_compression(app: Conveyor) -> None:
    seen: list[Any] = []

    @app.task(bind=True, serializer="msgpack", compression="zlib", max_retries=2)
    def flaky(self: Any, rows: list[str], blob: bytes) -> int:
        seen.append((rows == BIG, blob))
        if self.request.retries < 1:
            raise self.retry(countdown=0)
        return len(rows)

    result = flaky.delay(BIG, b"\x00\x01")
    with ThreadWorker(app):
        assert result.get(timeout=20) == len(BIG)
    assert seen == [(True, b"\x00\x01"), (True, b"\x00\x01")]


def test_an_eager_bulk_enqueue_runs_msgpack_arguments(app: Conveyor) -> None:
    app.conf.task_always_eager = True

    @app.task(serializer="msgpack", compression="gzip")
    def echo(value: Any) -> Any:
        return value

    assert [r.get() for r in echo.delay_many([(BIG,), (b"raw",)])] == [BIG, b"raw"]


def test_a_publish_signal_handler_sees_the_arguments_of_a_packed_message(app: Conveyor) -> None:
    seen: list[Any] = []

    @app.task(serializer="msgpack", compression="gzip")
    def echo(value: Any) -> Any:
        return value

    def handler(sender: Any, body: Any, **kwargs: Any) -> None:
        seen.append(body[0])

    before_task_publish.connect(handler)
    try:
        echo.delay(BIG)
    finally:
        before_task_publish.disconnect(handler)
    assert seen == [[BIG]]


def test_the_admin_api_shows_the_arguments_of_compressed_and_msgpack_messages(app: Conveyor) -> None:
    @app.task(serializer="msgpack", compression="gzip")
    def echo(value: Any) -> Any:
        return value

    waiting = echo.delay(BIG)
    assert app.admin.tasks(state="waiting").items[0].args.startswith("['row 0: xxx")
    assert app.admin.task(waiting.id).args.startswith("['row 0: xxx")
    # A message the worker cannot run ends in the dead letters, its arguments still shown.
    lost = app.send_task("serial.nobody", (BIG,), serializer="msgpack", compression="zlib")
    with ThreadWorker(app):
        assert waiting.get(timeout=20) == BIG
        app_dead = lambda: app.admin.dead_letters().items  # noqa: E731
        from .procs import wait_for

        wait_for(app_dead, 20)
    letter = app.admin.dead_letters().items[0]
    assert letter.id == lost.id and letter.args.startswith("['row 0: xxx")


def test_a_corrupt_compressed_body_is_dead_lettered_with_the_reason(app: Conveyor) -> None:
    env = Envelope(
        id="c1", task="serial-unit.x", content_type="json", content_encoding="gzip", payload=b"nope"
    )
    tasks = {"serial-unit.x": app.task(name="serial-unit.x")(lambda: None)}
    got = intake(Delivery("c1", "q", encode_envelope(env), 1, 0), tasks, set(), frozenset({"json"}), "w")
    assert isinstance(got, Refused) and got.kind == "dead"
    assert "cannot decode a json body (gzip)" in got.reason
    good = Envelope(
        id="c2", task="serial-unit.x", content_encoding="gzip", payload=gzip.compress(b"[[1],{}]")
    )
    ok = intake(Delivery("c2", "q", encode_envelope(good), 1, 0), tasks, set(), frozenset({"json"}), "w")
    assert isinstance(ok, Accepted) and ok.request.args == [1]


def test_a_pickled_result_is_read_only_where_accept_content_names_pickle() -> None:
    raw = encode_result(ResultPayload(result={1, 2}), "pickle")
    with pytest.raises(DecodeError, match="'pickle' is not accepted"):
        decode_result(raw)
    assert decode_result(raw, frozenset({"json", "pickle"})).result == {1, 2}


def test_a_worker_that_would_store_pickled_results_it_does_not_accept_refuses_to_start(
    app: Conveyor,
) -> None:
    app.conf.result_serializer = "pickle"
    from conveyor.worker import Worker

    with pytest.raises(ConfigurationError, match="accept_content"):
        Worker(app, install_signal_handlers=False).run()


class MedicalTransportSettings:
    """The "Optimization" block of the medical transport backend's Django settings (seed 003)."""

    CELERY_TASK_COMPRESSION = "gzip"
    CELERY_RESULT_COMPRESSION = "gzip"
    CELERY_TASK_SERIALIZER = "json"
    CELERY_RESULT_SERIALIZER = "json"
    CELERY_ACCEPT_CONTENT = ["json"]
    CELERY_TIMEZONE = "UTC"
    CELERY_ENABLE_UTC = True


def test_a_ported_django_compression_block_is_honoured_without_warnings(app: Conveyor) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        app.config_from_object(MedicalTransportSettings, namespace="CELERY")
        conf = app.conf
        got = (conf.task_compression, conf.result_compression, conf.result_serializer, conf.accept_content)
    assert got == ("gzip", "gzip", "json", ["json"])

    @app.task
    def echo(value: Any) -> Any:
        return value

    sent = echo.delay(BIG)
    assert b'"content_encoding":"gzip"' in app.broker.pending(False, 10, 0)[0].body
    with pytest.raises(ConfigurationError, match="add 'msgpack' to accept_content"):
        echo.apply_async((BIG,), serializer="msgpack")  # its own workers would refuse it
    with ThreadWorker(app):
        assert sent.get(timeout=20) == BIG
    stored = app.broker.status(sent.id)
    assert (
        stored is not None and stored.payload is not None and b'"content_encoding":"gzip"' in stored.payload
    )


@pytest.fixture
def fresh() -> Iterator[Conveyor]:
    """An app on a memory broker of its own (the ``app`` fixture's is shared by name)."""
    application = Conveyor("serial-fresh", broker=f"memory://serial-{uuid.uuid4().hex}")
    try:
        yield application
    finally:
        application.close()


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), [1.0, {"mean": float("-inf")}]], ids=["nan", "inf", "nested"]
)
def test_a_nan_or_infinity_in_json_arguments_is_refused_not_turned_into_none(
    fresh: Conveyor, value: Any
) -> None:
    """JSON has no NaN: the message would carry null, and the task get None. Refused, naming
    what to do; nothing is enqueued. msgpack carries it; None and plain floats are untouched."""

    @fresh.task
    def store(obj: object, other: object = None) -> object:
        return obj

    inline, packed = (
        (lambda: store.delay(value)),
        (lambda: store.apply_async((1,), {"other": value}, compression="gzip")),
    )
    for call in (inline, packed):
        with pytest.raises(EncodeError, match="a float NaN or infinity, which JSON cannot carry"):
            call()
    assert fresh.broker.queue_stats() == {}
    store.delay(None, 1.5)
    store.apply_async((value,), serializer="msgpack")
    assert sum(s.ready for s in fresh.broker.queue_stats().values()) == 2


def test_a_nan_result_fails_the_task_instead_of_reading_back_as_none(fresh: Conveyor) -> None:
    @fresh.task
    def mean() -> float:
        return float("nan")

    @fresh.task(ignore_result=True)
    def unstored() -> float:
        return float("nan")

    result = mean.delay()
    unstored.delay()  # its result is not stored: nothing changes on the way, it succeeds
    with ThreadWorker(fresh) as worker:
        with pytest.raises(EncodeError, match="it holds a float NaN or infinity"):
            result.get(timeout=30)
        wait_for(lambda: (worker.stats.processed, worker.stats.succeeded) == (2, 1), 30)
    assert [d.id for d in fresh.broker.dead_letters()] == [result.id]
    payload = encode_result(ResultPayload(result=float("nan")), "msgpack")  # msgpack carries it
    assert decode_result(payload).result != decode_result(payload).result


def test_a_nan_anywhere_in_the_message_is_refused_and_none_deep_down_is_not(fresh: Conveyor) -> None:
    """A chain's later step, a callback, a header or a dataclass's field carry arguments too."""

    @dataclasses.dataclass
    class Reading:
        value: float

    @fresh.task
    def store(obj: object = None, other: object = None) -> object:
        return obj

    refused = [
        lambda: chain(store.s(1), store.s(float("nan"))).apply_async(),
        lambda: store.s(1).link(store.s(float("inf"))).apply_async(),
        lambda: store.apply_async((1,), headers={"threshold": float("nan")}),
        lambda: store.delay(Reading(float("nan"))),
    ]
    for call in refused:
        with pytest.raises(EncodeError, match="a float NaN or infinity, which JSON cannot carry"):
            call()
    assert fresh.broker.queue_stats() == {}
    deep: object = None  # 600 levels down, with a None: encodes as before, nothing to refuse
    for _ in range(600):
        deep = [deep, 1.5]
    store.delay(deep)
    store.delay(Reading(2.5))
    assert sum(s.ready for s in fresh.broker.queue_stats().values()) == 2
