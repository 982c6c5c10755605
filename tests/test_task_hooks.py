"""Task classes: ``base=``, the hooks with Celery's signatures, and ``self.request`` in eager runs."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor import Conveyor, Task, registry, shared_task, states
from conveyor.einfo import ExceptionInfo

calls: list[tuple[Any, ...]] = []


class Hooked(Task):  # type: ignore[type-arg]
    autoretry_for = (ConnectionError,)  # class attributes are task options, as in Celery
    max_retries = 2
    default_retry_delay = 0
    queue = "hooked"

    def before_start(self, task_id: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        calls.append(("before_start", args, kwargs))

    def on_success(self, retval: Any, task_id: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        calls.append(("on_success", retval))

    def on_retry(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        calls.append(("on_retry", type(exc).__name__, self.request.retries))

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        assert isinstance(einfo, ExceptionInfo) and einfo.exception is exc
        calls.append(("on_failure", type(exc).__name__, task_id))

    def after_return(
        self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        calls.append(("after_return", status))


@pytest.fixture
def app() -> Conveyor:
    calls.clear()
    return Conveyor("hooks", broker="memory://hooks")


def test_base_gives_the_task_its_class_hooks_and_class_attribute_options(app: Conveyor) -> None:
    @app.task(base=Hooked, queue="own")
    def double(x: int) -> int:
        return x * 2

    assert isinstance(double, Hooked) and double.hooked
    assert double.max_retries == 2 and double.autoretry_for == (ConnectionError,)
    assert double.queue == "own"  # an option given to the decorator wins over the class's
    assert double.apply(args=(4,)).get() == 8
    assert calls == [("before_start", [4], {}), ("on_success", 8), ("after_return", states.SUCCESS)]


def test_retries_call_on_retry_and_a_final_failure_calls_on_failure_in_eager_runs(app: Conveyor) -> None:
    @app.task(base=Hooked)
    def flaky() -> None:
        raise ConnectionError("down")

    result = flaky.apply(task_id="t1", throw=False)
    assert result.status == states.FAILURE
    assert calls == [
        ("before_start", [], {}),
        ("on_retry", "ConnectionError", 0),
        ("before_start", [], {}),
        ("on_retry", "ConnectionError", 1),
        ("before_start", [], {}),
        ("on_failure", "ConnectionError", "t1"),
        ("after_return", states.FAILURE),
    ]


def test_a_hook_that_raises_does_not_change_an_eager_runs_outcome(app: Conveyor) -> None:
    class Broken(Task):  # type: ignore[type-arg]
        def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            raise RuntimeError("hook bug")

    @app.task(base=Broken)
    def one() -> int:
        return 1

    assert one.apply().get() == 1


def test_base_must_be_a_task_subclass(app: Conveyor) -> None:
    with pytest.raises(TypeError, match=r"base= takes a subclass of conveyor\.Task"):
        app.task(base=dict)(lambda: None)  # type: ignore[call-overload]


def test_shared_task_takes_base_too(app: Conveyor) -> None:
    @shared_task(base=Hooked)
    def shared(x: int) -> int:
        return x

    try:
        assert isinstance(shared, Hooked) and shared.apply(args=(3,)).get() == 3
    finally:
        registry._shared_tasks.remove(shared)  # keep it out of apps other tests create


def test_a_plain_task_has_no_hooks_to_run(app: Conveyor) -> None:
    @app.task
    def plain() -> None: ...

    assert not plain.hooked


def test_self_request_in_an_eager_run_and_in_a_direct_call(app: Conveyor) -> None:
    @app.task(bind=True)
    def where(self: Task) -> tuple[Any, ...]:  # type: ignore[type-arg]
        r = self.request
        return r.id, r.is_eager, r.called_directly, r.args, r.delivery_info["routing_key"]

    assert where.apply(task_id="e1").get() == ("e1", True, False, [], None)
    assert where() == ("", True, True, [], None)
