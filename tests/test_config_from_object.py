"""``app.config_from_object``: Celery's forms (namespace, old upper-case names, dotted paths, lazy)."""

from __future__ import annotations

import sys
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor
from conveyor.exceptions import ConfigurationWarning


@pytest.fixture
def app() -> Iterator[Conveyor]:
    app = Conveyor("config", broker="memory://config")
    yield app
    app.close()


class DjangoStyleSettings:
    DEBUG = True  # not under the namespace: not a setting
    DATABASES: dict[str, object] = {}
    CONVEYOR_TASK_ROUTES = {"proj.poll_*": {"queue": "polling"}}
    CONVEYOR_TASK_TIME_LIMIT = 30
    CELERY_TASK_TIME_LIMIT = 99  # another namespace: not read


def test_a_namespace_reads_only_its_prefixed_names_as_settings(app: Conveyor) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        app.config_from_object(DjangoStyleSettings, namespace="CONVEYOR")
    assert app.conf.task_routes == {"proj.poll_*": {"queue": "polling"}}
    assert app.conf.task_time_limit == 30.0


def test_celerys_pre_4_names_are_read(app: Conveyor) -> None:
    class Old:
        CELERY_ALWAYS_EAGER = True
        CELERYD_CONCURRENCY = 3
        CELERY_ROUTES = {"a": {"queue": "b"}}
        CELERYBEAT_SCHEDULE = {"x": {"task": "t", "schedule": 5.0}}
        BROKER_URL = "memory://old"

    namespaced = Conveyor("old", broker="memory://old")
    try:
        namespaced.config_from_object(Old, namespace="CELERY")
        app.config_from_object(Old)
        for conf in (namespaced.conf, app.conf):
            assert conf.task_always_eager is True and conf.worker_concurrency == 3
            assert conf.task_routes == {"a": {"queue": "b"}} and list(conf.beat_schedule) == ["x"]
        assert app.conf.broker_url == "memory://old"  # BROKER_URL has no CELERY_ prefix
    finally:
        namespaced.close()


def test_a_misspelt_or_celery_only_namespaced_setting_warns(app: Conveyor) -> None:
    class Settings:
        CELERY_TASK_TIMELIMIT = 5
        CELERY_RESULT_EXTENDED = True

    with pytest.warns(ConfigurationWarning) as caught:
        app.config_from_object(Settings, namespace="CELERY")
    messages = sorted(str(w.message) for w in caught)
    assert "has no effect in Conveyor" in messages[0] and "result_extended" in messages[0]
    assert "did you mean 'task_time_limit'" in messages[1]


@pytest.fixture
def settings_module(tmp_path: Path) -> Iterator[str]:
    name = f"celeryconfig_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        "import os\n"
        "task_default_queue = 'web'\n"
        "result_extended = True\n"
        "helper = os.path.join('a', 'b')\n"
        "CELERY_ALWAYS_EAGER = True\n"
    )
    sys.path.insert(0, str(tmp_path))
    yield name
    sys.path.remove(str(tmp_path))


def test_a_dotted_path_is_read_at_the_first_use_of_conf(app: Conveyor, settings_module: str) -> None:
    app.config_from_object(settings_module)
    assert settings_module not in sys.modules  # lazy, as Celery's: read when conf is first used
    with pytest.warns(ConfigurationWarning, match="result_extended"):  # Celery's, without effect
        assert app.conf.task_default_queue == "web"
    assert app.conf.task_always_eager is True
    assert "helper" not in app.conf and "os" not in app.conf  # a module's other names are not settings


def test_force_reads_a_dotted_path_now(app: Conveyor, settings_module: str) -> None:
    with pytest.warns(ConfigurationWarning, match="result_extended"):
        app.config_from_object(settings_module, force=True)
    assert settings_module in sys.modules


def test_a_later_source_is_applied_after_an_earlier_one(app: Conveyor, settings_module: str) -> None:
    class Later:
        task_default_queue = "later"

    with pytest.warns(ConfigurationWarning):
        app.config_from_object(settings_module)
        app.config_from_object(Later)
    assert app.conf.task_default_queue == "later"


def test_a_warning_about_a_setting_read_lazily_points_at_the_settings_file_line(
    app: Conveyor, tmp_path: Path
) -> None:
    # The Django layout: celery.py reads "django.conf:settings" lazily, so the first line to use
    # app.conf (anywhere) triggers the read; the warning must still show settings.py's line.
    name = f"settings_{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{name}.py"
    path.write_text(
        "DEBUG = True\n"
        "CELERY_BROKER_URL = 'memory://x'\n"
        "CELERY_RESULT_BACKEND = 'redis://localhost:6379/1'\n"
        "CELERY_TASK_TIMELIMIT: int = 30\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        app.config_from_object(name, namespace="CELERY")
        with pytest.warns(ConfigurationWarning) as caught:
            app.conf.get("task_routes")
    finally:
        sys.path.remove(str(tmp_path))
    [backend] = [w for w in caught if "result_backend" in str(w.message)]
    assert (backend.filename, backend.lineno) == (str(path), 3)
    assert str(backend.message).endswith("(set as CELERY_RESULT_BACKEND)")
    [misspelt] = [w for w in caught if "task_timelimit" in str(w.message)]
    assert (misspelt.filename, misspelt.lineno) == (str(path), 4)


def test_a_warning_about_a_settings_class_points_at_its_line(app: Conveyor) -> None:
    class Settings:
        CELERY_TASK_TRACK_STARTED = True

    with pytest.warns(ConfigurationWarning, match="task_track_started") as caught:
        app.config_from_object(Settings, namespace="CELERY")
    [warning] = caught
    assert warning.filename == __file__
    assert "CELERY_TASK_TRACK_STARTED = True" in Path(__file__).read_text().splitlines()[warning.lineno - 1]
