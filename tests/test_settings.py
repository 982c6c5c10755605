"""Settings: typed fields with Celery's names, read as attributes or items, misspellings warned about."""

from __future__ import annotations

import doctest
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import conveyor.config
import conveyor.exceptions
import conveyor.options
from conveyor import ConfigurationWarning, Conveyor
from conveyor.config import DEFAULTS, Settings
from conveyor.exceptions import ConfigurationError


@pytest.fixture
def app() -> Conveyor:
    application = Conveyor("settings", broker="memory://settings")
    yield application
    application.close()


def test_a_setting_reads_the_same_as_attribute_item_and_get(app: Conveyor) -> None:
    app.conf.update(task_time_limit=30, task_default_queue="web")
    conf = app.conf
    assert conf.task_time_limit == conf["task_time_limit"] == conf.get("task_time_limit") == 30.0
    assert conf.task_default_queue == conf["task_default_queue"] == "web"
    assert conf.get("no_such_setting", "fallback") == "fallback"
    assert "task_acks_late" in conf and dict(conf)["task_acks_late"] is True


def test_every_setting_has_its_default_until_set() -> None:
    conf = Settings()
    assert {name: conf[name] for name in DEFAULTS} == DEFAULTS
    assert conf.task_acks_late is True and conf.worker_lease_timeout == 3.0
    other = Settings()
    conf.beat_schedule["poll"] = {"task": "t", "schedule": 1.0}
    assert other.beat_schedule == {}  # mutable defaults are not shared between apps


def test_a_value_becomes_the_type_of_its_setting(app: Conveyor) -> None:
    app.conf.update(worker_lease_timeout=2, result_expires="60", worker_prefetch_multiplier=8.0)
    assert app.conf.worker_lease_timeout == 2.0 and isinstance(app.conf.worker_lease_timeout, float)
    assert app.conf.result_expires == 60.0
    assert app.conf.worker_prefetch_multiplier == 8 and isinstance(app.conf.worker_prefetch_multiplier, int)
    app.conf.task_time_limit = None  # optional settings take None
    assert app.conf.task_time_limit is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("worker_lease_timeout", "soon"),
        ("worker_lease_timeout", True),
        ("worker_prefetch_multiplier", 2.5),
        ("task_acks_late", "yes"),
        ("task_default_queue", None),
        ("result_expires", None),
        ("task_default_priority", 12),  # refused when set, not at every later .delay()
        ("task_default_priority", -1),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_the_setting(
    app: Conveyor, name: str, value: object
) -> None:
    with pytest.raises(ConfigurationError, match=name):
        app.conf[name] = value


@pytest.mark.parametrize(
    "set_it",
    [
        lambda app: setattr(app.conf, "task_acks_lat", True),
        lambda app: app.conf.__setitem__("task_acks_lat", True),
        lambda app: app.conf.update(task_acks_lat=True),
        lambda app: app.config_from_object(type("S", (), {"CONVEYOR_TASK_ACKS_LAT": True}), "CONVEYOR"),
    ],
    ids=["attribute", "item", "update", "config_from_object"],
)
def test_an_unknown_setting_warns_naming_the_closest_known_one(
    app: Conveyor, set_it: Callable[[Conveyor], object]
) -> None:
    hint = "'task_acks_lat' \\(did you mean 'task_acks_late'\\?\\)"
    with pytest.warns(ConfigurationWarning, match=hint) as w:
        set_it(app)
    assert w[0].filename == __file__  # the warning points at the line that set it
    assert app.conf["task_acks_lat"] is True  # kept: apps keep their own settings here too


def test_an_unknown_setting_given_to_the_app_warns_at_the_call() -> None:
    with pytest.warns(ConfigurationWarning, match="did you mean 'task_default_queue'") as w:
        Conveyor("settings", broker="memory://settings", task_default_queu="web")
    assert w[0].filename == __file__


def test_an_app_setting_in_capitals_is_kept_without_a_warning(app: Conveyor) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        app.conf.PARTNER_API_URL = "https://example.com"
        app.conf.PARTNER_API_URL = "https://example.org"
    assert app.conf.PARTNER_API_URL == app.conf["PARTNER_API_URL"] == "https://example.org"


def test_reading_a_misspelt_setting_names_the_closest_known_one(app: Conveyor) -> None:
    with pytest.raises(AttributeError, match="did you mean 'task_time_limit'"):
        _ = app.conf.task_time_limt


def test_celery_names_load_from_objects_with_and_without_a_namespace(app: Conveyor) -> None:
    class CelerySettings:
        CELERY_TASK_ACKS_LATE = False
        CELERY_BROKER_URL = "memory://celery"

    class PlainSettings:
        TASK_DEFAULT_QUEUE = "web"
        task_time_limit = 30
        UNRELATED = 1

    app.config_from_object(CelerySettings, namespace="CELERY")
    app.config_from_object(PlainSettings)
    assert app.conf.task_acks_late is False and app.conf.broker() == "memory://celery"
    assert app.conf.task_default_queue == "web" and app.conf.task_time_limit == 30.0
    assert "UNRELATED" not in app.conf


def test_deleting_a_setting_puts_its_default_back(app: Conveyor) -> None:
    app.conf.update(task_default_queue="web", MY_OWN=1)
    del app.conf["task_default_queue"]
    assert app.conf.task_default_queue == "default"
    app.conf.clear()
    assert "MY_OWN" not in app.conf and len(app.conf) == len(DEFAULTS)


def test_changing_the_broker_url_reconnects(app: Conveyor) -> None:
    first = app.broker
    app.conf.broker_url = "memory://settings-other"
    assert app.broker is not first


def test_a_type_checker_sees_settings_and_enqueue_options_typed(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        textwrap.dedent("""
        from conveyor import Conveyor
        app = Conveyor("t", broker="memory://")

        @app.task
        def add(x: int, y: int) -> int:
            return x + y

        reveal_type(app.conf.task_time_limit)
        reveal_type(app.conf.worker_concurrency)
        app.conf.task_time_limt
        add.apply_async((1, 2), countdown=5, queue="q", unique_for=60)
        add.apply_async((1, 2), countdwn=5)
        add.apply_async((1, 2), priority="high")
        add.delay_many([(1, 2)], unique_for=60)
    """)
    )
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", str(sample)], check=False, capture_output=True, text=True
    )
    errors = [line.split(": error: ")[1] for line in out.stdout.splitlines() if ": error: " in line]
    revealed = out.stdout.replace("builtins.", "")
    assert 'Revealed type is "float | None"' in revealed, out.stdout
    assert 'Revealed type is "int | None"' in revealed, out.stdout
    assert len(errors) == 4, out.stdout
    assert '"Settings" has no attribute "task_time_limt"' in errors[0]
    assert '"countdwn"' in errors[1]
    assert '"priority"' in errors[2]
    assert '"unique_for"' in errors[3]


@pytest.mark.parametrize("module", [conveyor.config, conveyor.options, conveyor.exceptions])
def test_docstring_examples(module: Any) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
