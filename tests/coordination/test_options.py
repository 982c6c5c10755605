"""Bad coordination options fail clearly, naming the option — at declaration when possible."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.coordination import parse_rate


@pytest.fixture
def app() -> Conveyor:
    return Conveyor("options", broker="memory://options")


@pytest.mark.parametrize(
    ("text", "interval"),
    [("10/m", 6.0), ("10/s", 0.1), ("60/h", 60.0), ("2", 0.5), (4, 0.25), (0.5, 2.0), ("100 / minute", 0.6)],
)
def test_rate_strings_use_celerys_syntax(text: Any, interval: float) -> None:
    assert parse_rate(text).interval == pytest.approx(interval)


@pytest.mark.parametrize("text", ["10/x", "ten/m", "10/", "/m", "", "10/m/s", "-1/s", "1e3/s", True, [1]])
def test_invalid_rate_strings_are_rejected_at_declaration(app: Conveyor, text: Any) -> None:
    with pytest.raises(ValueError, match="rate_limit"):

        @app.task(rate_limit=text)
        def task() -> None: ...


@pytest.mark.parametrize("text", ["0/s", 0, "0"])
def test_a_zero_rate_is_rejected(app: Conveyor, text: Any) -> None:
    with pytest.raises(ValueError, match="leave it unset for no limit"):

        @app.task(rate_limit=text)
        def task() -> None: ...


def test_lock_key_naming_a_missing_parameter_fails_at_declaration(app: Conveyor) -> None:
    with pytest.raises(ValueError, match=r"references 'sourse', which is not a parameter.*source, full"):

        @app.task(lock="scrape:{sourse}")
        def scrape(source: str, full: bool = False) -> None: ...


def test_positional_fields_in_key_templates_are_rejected(app: Conveyor) -> None:
    with pytest.raises(ValueError, match="name the parameter"):

        @app.task(lock="scrape:{0}")
        def scrape(source: str) -> None: ...


def test_malformed_key_template_is_rejected(app: Conveyor) -> None:
    with pytest.raises(ValueError, match="not a valid template"):

        @app.task(concurrency_key="user:{user_id", concurrency_limit=1)
        def sync(user_id: int) -> None: ...


def test_bound_tasks_template_by_their_own_parameters(app: Conveyor) -> None:
    @app.task(bind=True, lock="scrape:{source}")
    def scrape(self: Any, source: str) -> None: ...

    with pytest.raises(ValueError, match="'self', which is not a parameter"):

        @app.task(bind=True, lock="scrape:{self}")
        def other(self: Any, source: str) -> None: ...


def test_a_key_missing_from_one_call_fails_at_call_time(app: Conveyor) -> None:
    @app.task(lock="user:{user_id}")
    def sync(**fields: Any) -> None: ...

    with pytest.raises(ValueError, match=r"lock='user:\{user_id\}' of task .*has no value for 'user_id'"):
        sync.delay(name="x")


def test_callable_keys_get_the_arguments_by_name(app: Conveyor) -> None:
    @app.task(lock=lambda a: f"scrape:{a['source'].lower()}")
    def scrape(source: str, full: bool = False) -> None: ...

    assert scrape.coordination is not None and scrape.coordination.lock is not None
    assert scrape.coordination.lock.for_call(["NASA"], {}) == "scrape:nasa"


def test_a_callable_key_must_return_a_string(app: Conveyor) -> None:
    @app.task(lock=lambda a: None)  # type: ignore[arg-type,return-value]  # the mistake under test
    def scrape(source: str) -> None: ...

    with pytest.raises(ValueError, match="must produce a non-empty string, got None"):
        scrape.delay("x")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lock": "x", "lock_timeout": 0}, "lock_timeout must be a positive number of seconds, got 0"),
        ({"lock": "x", "lock_timeout": -1}, "lock_timeout must be a positive number"),
        (
            {"lock": "x", "on_locked": "block"},
            "on_locked of task .* must be one of skip, retry, wait, got 'block'",
        ),
        ({"on_locked": "skip"}, "on_locked of task .* has no effect without lock="),
        ({"lock_timeout": 5}, "lock_timeout of task .* has no effect without lock= or concurrency_limit="),
        ({"unique_for": -3}, "unique_for must be a positive number of seconds"),
        ({"unique_for": 0}, "unique_for must be a positive number of seconds"),
        ({"concurrency_key": "{x}"}, "concurrency_key of task .* needs concurrency_limit"),
        ({"concurrency_limit": 0}, "concurrency_limit of task .* must be an integer >= 1, got 0"),
        ({"concurrency_limit": 1.5}, "concurrency_limit of task .* must be an integer >= 1"),
        ({"lock": 42}, "lock of task .* must be a template string"),
        ({"lock": ""}, "lock of task .* must not be empty"),
    ],
)
def test_bad_options_name_the_option(app: Conveyor, options: dict[str, Any], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        app.task(**options)(lambda x=None: None)


def test_per_call_unique_options_are_checked(app: Conveyor) -> None:
    @app.task
    def plain(x: int) -> None: ...

    with pytest.raises(ValueError, match="unique_for must be a positive number"):
        plain.apply_async((1,), unique_for=-1)
    with pytest.raises(ValueError, match="unique_key must be a non-empty string"):
        plain.apply_async((1,), unique_key="")


def test_options_are_typed_on_the_decorator(app: Conveyor) -> None:
    @app.task(lock="a:{x}", lock_timeout=10, on_locked="retry", rate_limit="5/m", unique_for=30)
    def typed(x: int) -> int:
        return x

    spec = typed.coordination
    assert spec is not None and spec.on_locked == "retry" and spec.lock_timeout == 10
    assert spec.rate is not None and spec.rate.interval == 12.0 and spec.unique_for == 30
