"""The public API without a worker: options, validation, routing, eager runs, settings."""

from __future__ import annotations

import io
import random
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conveyor import Conveyor, EncodeError, Task, shared_task, states
from conveyor.beat.entry import ENTRY_OPTIONS
from conveyor.exceptions import ConfigurationError, MaxRetriesExceededError
from conveyor.message import decode_envelope
from conveyor.options import ENQUEUE_OPTIONS
from conveyor.retry import backoff_delay
from conveyor.routing import resolve_route

from .conftest import ThreadWorker


@pytest.fixture
def app(tmp_path: Path) -> Conveyor:
    application = Conveyor("api", broker=f"sqlite:///{tmp_path / 'api.db'}")
    yield application
    application.close()


def queued_envelopes(app: Conveyor, queue: str = "default") -> list:
    deliveries = app.broker.fetch([queue], "inspector", 100, 30, 0)
    return [decode_envelope(d.body) for d in deliveries]


def test_delay_enqueues_a_json_message_with_the_arguments(app: Conveyor) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(2, y=3)
    assert result.state == states.PENDING
    [env] = queued_envelopes(app)
    assert (env.id, env.task, env.args, env.kwargs) == (result.id, add.name, [2], {"y": 3})


def test_arguments_that_do_not_serialise_raise_and_enqueue_nothing(app: Conveyor) -> None:
    @app.task
    def store(obj: object) -> None: ...

    with pytest.raises(EncodeError, match="not JSON-serialisable"):
        store.delay(object())
    assert app.broker.queue_stats() == {}


def test_arguments_that_do_not_fit_the_function_raise_at_call_time(app: Conveyor) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(TypeError, match="missing a required argument: 'y'"):
        add.delay(1)  # type: ignore[call-arg]
    assert app.broker.queue_stats() == {}


@pytest.mark.parametrize("bad", [-1, 10, 2.5, "high", True])
def test_priority_must_be_0_to_9(app: Conveyor, bad: object) -> None:
    @app.task
    def noop() -> None: ...

    with pytest.raises(ValueError, match="priority must be an integer from 0 to 9"):
        noop.apply_async(priority=bad)  # type: ignore[arg-type]


def test_unknown_task_option_is_rejected_at_declaration(app: Conveyor) -> None:
    with pytest.raises(TypeError, match="unknown task option"):
        app.task(max_retry=3)(lambda: None)  # type: ignore[call-overload]


@pytest.mark.parametrize("option", ["time_limit", "soft_time_limit"])
def test_time_limits_must_be_positive(app: Conveyor, option: str) -> None:
    with pytest.raises(ValueError, match=f"{option} must be a positive number"):
        app.task(**{option: -1})(lambda: None)


def test_apply_async_options_are_in_the_message(app: Conveyor) -> None:
    @app.task
    def noop() -> None: ...

    before = datetime.now(UTC)
    noop.apply_async(
        countdown=0, expires=60, priority=9, task_id="fixed-id", soft_time_limit=5, time_limit=10
    )
    [env] = queued_envelopes(app)
    assert env.id == "fixed-id" and env.priority == 9
    assert env.expires is not None and env.expires >= before.timestamp() + 59
    assert (env.soft_time_limit, env.time_limit) == (5.0, 10.0)


def test_an_unknown_enqueue_option_is_refused_naming_the_closest(app: Conveyor) -> None:
    @app.task
    def noop() -> None: ...

    with pytest.raises(TypeError, match="'countdwn' \\(did you mean 'countdown'\\?\\)"):
        noop.apply_async(countdwn=5)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="link"):
        app.send_task(noop.name, link="other")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unique_for"):
        noop.delay_many([()], unique_for=60)  # type: ignore[call-arg]  # bulk enqueue is not unique
    assert app.broker.queue_stats() == {}


def test_periodic_entries_take_the_enqueue_options_but_id_and_eta() -> None:
    assert ENQUEUE_OPTIONS - {"task_id", "eta"} == ENTRY_OPTIONS
    assert {"countdown", "expires", "queue", "priority", "headers", "unique_for"} <= ENTRY_OPTIONS


def test_eta_and_countdown_delay_the_job(app: Conveyor) -> None:
    @app.task
    def noop() -> None: ...

    noop.apply_async(countdown=60)
    noop.apply_async(eta=datetime.now(UTC) + timedelta(hours=1))
    assert app.broker.queue_stats()["default"].delayed == 2
    with pytest.raises(ValueError, match="countdown or eta"):
        noop.apply_async(countdown=1, eta=datetime.now(UTC))


def test_routing_precedence(app: Conveyor) -> None:
    app.conf.task_routes = {"api.poll_*": {"queue": "polling"}, "api.exact": "exactq"}

    @app.task(name="api.poll_aircraft")
    def poll() -> None: ...

    @app.task(name="api.exact", queue="own")
    def exact() -> None: ...

    @app.task(name="api.other", queue="own")
    def other() -> None: ...

    poll.delay()
    exact.delay()
    other.delay()
    poll.apply_async(queue="explicit")
    assert {q: s.ready for q, s in app.broker.queue_stats().items()} == {
        "polling": 1,
        "exactq": 1,
        "own": 1,
        "explicit": 1,
    }


def test_callable_router() -> None:
    def router(name: str, args: tuple, kwargs: dict) -> dict | None:
        return {"queue": "big"} if args and args[0] > 100 else None

    assert resolve_route([router], "t", (500,), {}) == {"queue": "big"}
    assert resolve_route([router], "t", (5,), {}) is None


def test_eager_apply_runs_retries_and_propagates(app: Conveyor) -> None:
    calls: list[int] = []

    @app.task(bind=True, autoretry_for=(KeyError,), max_retries=2, retry_backoff=True)
    def flaky(self) -> int:
        calls.append(self.request.retries)
        if self.request.retries < 2:
            raise KeyError("again")
        return self.request.retries

    assert flaky.apply().get() == 2
    assert calls == [0, 1, 2]

    @app.task
    def fails() -> None:
        raise ValueError("nope")

    result = fails.apply()
    assert result.state == states.FAILURE and isinstance(result.result, ValueError)
    with pytest.raises(ValueError):
        fails.apply(throw=True)


def test_task_always_eager_runs_delay_in_process(app: Conveyor) -> None:
    app.conf.task_always_eager = True

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    assert add.delay(1, 2).get() == 3
    assert app.broker.queue_stats() == {}


def test_retry_past_max_retries_raises_max_retries_exceeded(app: Conveyor) -> None:
    @app.task(bind=True, max_retries=1)
    def again(self) -> None:
        self.retry(countdown=0)

    with pytest.raises(MaxRetriesExceededError):
        again.apply(throw=True)


def test_retry_with_new_arguments_runs_again_with_them(app: Conveyor) -> None:
    seen: list[int] = []

    @app.task(bind=True, max_retries=3)
    def count(self: Task[[int], int], n: int) -> int:
        seen.append(n)
        if n < 3:
            self.retry(args=(n + 1,), countdown=0)
        return n

    assert count.apply(args=(1,)).get() == 3
    assert seen == [1, 2, 3]


def test_calling_a_task_runs_the_function_here(app: Conveyor) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    assert add(2, 2) == 4


def test_shared_task_uses_the_current_app(app: Conveyor) -> None:
    @shared_task(name="api.shared")
    def shared(x: int) -> int:
        return x

    assert app.tasks["api.shared"] is shared
    assert shared.delay(1).id in {e.id for e in queued_envelopes(app)}


def test_current_app_is_a_proxy_as_in_celery_so_ported_test_setups_work(tmp_path: Path) -> None:
    # Exactly what the ported Django tests do in setUp (Celery's current_app is a proxy object).
    import unittest

    from conveyor import current_app

    app = Conveyor("ported", broker=f"sqlite:///{tmp_path / 'ported.db'}")

    @shared_task(name="api.ported")
    def double(x: int) -> int:
        return 2 * x

    class PortedTest(unittest.TestCase):
        def setUp(self) -> None:
            current_app.conf.task_always_eager = True

        def test_runs_eagerly(self) -> None:
            self.assertEqual(double.delay(21).get(), 42)

    outcome = unittest.TextTestRunner(stream=io.StringIO()).run(PortedTest("test_runs_eagerly"))
    assert outcome.wasSuccessful(), outcome.errors + outcome.failures
    assert app.conf.task_always_eager is True
    # Attribute access, registration through the proxy, and the older call style all reach the app.
    assert current_app.main == "ported" and "api.ported" in current_app.tasks
    assert current_app() is app and isinstance(current_app, Conveyor)
    assert current_app.task(name="api.via_proxy")(lambda: 1) is app.tasks["api.via_proxy"]
    newer = Conveyor("newer", broker=f"sqlite:///{tmp_path / 'newer.db'}")
    assert current_app.main == "newer" and current_app() is newer  # looked up at each use
    newer.close()
    app.close()


def test_current_app_before_any_app_answers_protocol_probes_and_names_the_problem() -> None:
    # A fresh interpreter, so no app exists: inspect.unwrap, doctest and copy probe dunder
    # names with hasattr, which must say "no", while a real attribute names what is missing.
    code = textwrap.dedent(
        """
        import copy, inspect
        from conveyor import current_app
        from conveyor.exceptions import ConfigurationError
        assert not hasattr(current_app, "__wrapped__")
        assert inspect.unwrap(current_app) is current_app
        try:
            current_app.conf
        except ConfigurationError as exc:
            print("conf:", exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "conf: no Conveyor app has been created yet" in done.stdout


def test_a_user_exception_with_a_stopped_at_attribute_keeps_its_own_traceback() -> None:
    # Only the worker's own stack (a StackSummary) replaces a traceback; a task's exception
    # that happens to carry an attribute of that name is formatted as any other.
    from conveyor.einfo import task_traceback

    class Late(Exception):
        stopped_at = datetime(2026, 1, 1, tzinfo=UTC)

    try:
        raise Late("late")
    except Late as exc:
        text = task_traceback(exc)
    assert text.splitlines()[-1].endswith("Late: late") and "in test_a_user_exception" in text


def test_backoff_is_exponential_capped_and_jittered() -> None:
    assert [backoff_delay(n, 1.0, 600, jitter=False) for n in range(4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff_delay(20, 1.0, 600, jitter=False) == 600
    rng = random.Random(7)
    draws = [backoff_delay(3, 1.0, 600, jitter=True, rng=rng) for _ in range(200)]
    assert all(0 <= d <= 8 for d in draws) and len(set(draws)) > 100


def test_config_from_object_with_namespace(app: Conveyor) -> None:
    class Settings:
        CONVEYOR_TASK_DEFAULT_QUEUE = "web"
        CONVEYOR_RESULT_EXPIRES = 60
        UNRELATED = 1

    app.config_from_object(Settings, namespace="CONVEYOR")
    assert app.conf.task_default_queue == "web" and app.conf.result_expires == 60


@pytest.mark.parametrize("url", ["postgres://x", "sqlite://host/x.db", "nonsense", "sqlite:///"])
def test_bad_broker_url_gets_a_clear_error(url: str) -> None:
    application = Conveyor("bad", broker=url)
    with pytest.raises(ConfigurationError):
        _ = application.broker


def test_default_broker_is_sqlite_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVEYOR_BROKER_URL", raising=False)
    assert Conveyor("x").conf.broker() == "sqlite:///conveyor.db"
    monkeypatch.setenv("CONVEYOR_BROKER_URL", "memory://env")
    assert Conveyor("x").conf.broker() == "memory://env"


def test_pickle_is_refused_unless_enabled(app: Conveyor) -> None:
    @app.task(serializer="pickle")
    def noop(x: object) -> None: ...

    with pytest.raises(ConfigurationError, match="accept_content"):
        noop.delay(1)


def test_a_type_checker_sees_delay_parameters(tmp_path: Path) -> None:
    """``.delay`` keeps the function's signature: mypy flags a wrong argument type."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        textwrap.dedent("""
        from conveyor import Conveyor
        app = Conveyor("t", broker="memory://")

        @app.task
        def add(x: int, y: int) -> int:
            return x + y

        @app.task(bind=True, queue="q")
        def bound(self: object, city: int) -> str:
            return str(city)

        @app.task
        async def fetch(url: str) -> bytes:
            return b""

        add.delay(1, 2)
        add.delay("one", 2)
        bound.delay("x")
        fetch.delay(3)
        r = add.delay(1, 2)
        reveal_type(r.get())
        reveal_type(fetch.delay("u").get())
    """)
    )
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", str(sample)], check=False, capture_output=True, text=True
    )
    errors = [line for line in out.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 3, out.stdout
    assert 'Argument 1 to "delay" of "Task" has incompatible type "str"; expected "int"' in errors[0]
    assert 'Revealed type is "int"' in out.stdout or 'Revealed type is "builtins.int"' in out.stdout
    assert 'Revealed type is "bytes"' in out.stdout or 'Revealed type is "builtins.bytes"' in out.stdout


def test_bulk_enqueue_sends_nothing_if_any_item_is_bad(app: Conveyor) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(TypeError):
        add.delay_many([(1, 2), (3, 4), (5,)])
    with pytest.raises(EncodeError):
        add.delay_many([(1, 2), (object(), 4)])
    assert app.broker.queue_stats() == {}


def test_bulk_enqueue_gives_every_job_its_own_id_and_arguments(app: Conveyor) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    results = add.delay_many([(i, i) for i in range(2500)] + [{"x": 1, "y": 1}], priority=7, countdown=60)
    assert len({r.id for r in results}) == 2501
    deliveries = app.broker.fetch(["default"], "inspector", 3000, 30, 0)
    assert deliveries == []  # all delayed by the shared countdown
    assert app.broker.queue_stats()["default"].delayed == 2501


def test_bulk_enqueue_honours_a_callable_router_per_call(app: Conveyor) -> None:
    app.conf.task_routes = [lambda name, args, kwargs: {"queue": "big"} if args and args[0] > 5 else None]

    @app.task
    def size(n: int) -> None: ...

    size.delay_many([(n,) for n in range(10)])
    assert {q: s.ready for q, s in app.broker.queue_stats().items()} == {"default": 6, "big": 4}


def test_async_result_and_group_result_without_an_app_use_the_current_one(
    app: Conveyor, run_worker: type[ThreadWorker]
) -> None:
    """Celery code reads a task by id with ``AsyncResult(task_id)`` (a Django view polling a
    task): the app is the one created last, as Celery's current_app."""
    from conveyor import AsyncResult, GroupResult

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    sent = add.delay(2, 3)
    assert AsyncResult(sent.id).app is app and AsyncResult(sent.id).state == states.PENDING
    with run_worker(app):
        assert AsyncResult(sent.id).get(timeout=20) == 5
        assert GroupResult("g-1", [AsyncResult(sent.id)]).get(timeout=20) == [5]
