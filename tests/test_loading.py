"""Where an app's tasks come from: ``include=``, ``autodiscover_tasks`` (lazy, forced, related_name)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor
from conveyor.exceptions import ConfigurationError
from tests.procs import WorkerProcess

TASKS_MODULE = """
from conveyor import current_app

app = current_app()


@app.task
def {name}() -> str:
    return "{name}"
"""


@pytest.fixture
def packages(tmp_path: Path) -> Iterator[list[str]]:
    """Three fresh packages on sys.path: the first has ``tasks.py``, the second ``jobs.py``, the
    third neither (unique names: imported modules stay in sys.modules)."""
    names = [f"pkg_{uuid.uuid4().hex[:8]}_{i}" for i in range(3)]
    for name, module in zip(names, ["tasks", "jobs", None], strict=True):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
        if module:
            (tmp_path / name / f"{module}.py").write_text(TASKS_MODULE.format(name=f"{module}_task"))
    sys.path.insert(0, str(tmp_path))
    yield names
    sys.path.remove(str(tmp_path))


@pytest.fixture
def app() -> Iterator[Conveyor]:
    app = Conveyor("loading", broker="memory://loading")
    yield app
    app.close()


def test_autodiscover_imports_each_packages_tasks_module_when_the_registry_is_first_read(
    app: Conveyor, packages: list[str]
) -> None:
    app.autodiscover_tasks(packages)
    assert f"{packages[0]}.tasks" not in sys.modules  # lazy: nothing imported yet
    assert f"{packages[0]}.tasks.tasks_task" in app.tasks
    assert app.get_task(f"{packages[0]}.tasks.tasks_task")() == "tasks_task"


def test_autodiscover_with_related_name_and_force_imports_at_once(app: Conveyor, packages: list[str]) -> None:
    app.autodiscover_tasks(lambda: packages, related_name="jobs", force=True)
    assert f"{packages[1]}.jobs" in sys.modules
    assert f"{packages[1]}.jobs.jobs_task" in app.tasks
    assert f"{packages[0]}.tasks" not in sys.modules  # only the related name asked for


def test_a_package_without_a_tasks_module_is_skipped_but_a_missing_package_is_an_error(
    app: Conveyor, packages: list[str]
) -> None:
    assert app.loader.import_default_modules() == []
    app.autodiscover_tasks([packages[2]], force=True)  # no tasks module: nothing to register
    with pytest.raises(ModuleNotFoundError):
        app.autodiscover_tasks(["no_such_package_anywhere"], force=True)


def test_autodiscover_without_packages_outside_django_is_refused_at_worker_start(app: Conveyor) -> None:
    app.autodiscover_tasks()
    with pytest.raises(ConfigurationError, match="needs a Django project"):
        app.loader.import_default_modules()


def test_include_names_modules_the_worker_imports(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'broker.db'}"
    worker = WorkerProcess(url, tmp_path, app="tests.apps.include_app").wait_ready()
    producer = Conveyor("producer", broker=url)
    try:
        assert producer.send_task("tests.apps.include_tasks.double", (21,)).get(timeout=30) == 42
        assert "tests.apps.include_tasks.double" in worker.log()  # listed in the banner
    finally:
        producer.close()
        worker.stop()


def test_an_include_module_that_does_not_exist_stops_the_worker_with_a_clear_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'broker.db'}"
    app_file = tmp_path / "bad_include_app.py"
    app_file.write_text('from conveyor import Conveyor\napp = Conveyor("bad", include=["no_such_tasks"])\n')
    worker = WorkerProcess(url, tmp_path, app="bad_include_app", env={"PYTHONPATH": str(tmp_path)})
    assert worker.proc.wait(timeout=60) == 2
    assert "include: no module named 'no_such_tasks'" in worker.log()


@pytest.mark.parametrize("module", ["conveyor", "celery"])
def test_dash_a_package_finds_the_app_in_its_conveyor_or_celery_module(tmp_path: Path, module: str) -> None:
    # A Django project's "-A proj": proj/__init__.py need not import the app (Celery's rule).
    from conveyor.cli.loader import load_app

    package = f"proj_{uuid.uuid4().hex[:8]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / f"{module}.py").write_text(
        "from conveyor import Conveyor\napp = Conveyor('found', broker='memory://found')\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        app = load_app(package)
        assert app.main == "found"
        app.close()
    finally:
        sys.path.remove(str(tmp_path))


def test_django_settings_without_django_installed_warn_and_leave_the_fix_up_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from conveyor.exceptions import ConfigurationWarning

    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "proj.settings")
    monkeypatch.setitem(sys.modules, "django", None)  # `import django` fails, as if not installed
    with pytest.warns(ConfigurationWarning, match="Django is not installed"):
        app = Conveyor("no-django", broker="memory://no-django")
    assert app.loader.before_import == [] and app.loader.default_packages is None
    app.close()


def test_an_include_module_whose_own_import_is_missing_reports_that_import(tmp_path: Path) -> None:
    # "billing_tasks" imports "billing", which is not installed: the error must name "billing"
    # (what to install), not claim "billing_tasks" itself does not exist.
    dependency = f"dep_{uuid.uuid4().hex[:8]}"
    module = f"{dependency}_tasks"
    (tmp_path / f"{module}.py").write_text(f"import {dependency}\n")
    sys.path.insert(0, str(tmp_path))
    app = Conveyor("loading-include", broker="memory://loading-include", include=[module])
    try:
        with pytest.raises(ModuleNotFoundError) as missing:
            app.loader.import_default_modules()
        assert missing.value.name == dependency
    finally:
        sys.path.remove(str(tmp_path))
        app.close()


def test_a_task_module_still_defining_celery_tasks_is_warned_of(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Half a port: a module below the task package still on ``from celery import
    shared_task`` registers nothing here (the worker would never run it, and its ``.delay()``
    sends through Celery). The worker says which."""
    package = f"pkg_{uuid.uuid4().hex[:8]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "tasks").mkdir()
    (tmp_path / package / "tasks" / "__init__.py").write_text("from . import ported, transcription\n")
    (tmp_path / package / "tasks" / "ported.py").write_text(TASKS_MODULE.format(name="poll"))
    (tmp_path / package / "tasks" / "transcription.py").write_text(
        "from celery import shared_task\n\n\n@shared_task\ndef transcribe(x):\n    return x\n"
    )
    sys.path.insert(0, str(tmp_path))
    app = Conveyor("half", broker="memory://half", include=[f"{package}.tasks"])
    try:
        with caplog.at_level("WARNING", logger="conveyor.loader"):
            app.loader.import_default_modules()
        [record] = caplog.records
        assert f"Celery task(s) {package}.tasks.transcription.transcribe:" in record.getMessage()
        assert "ported" not in record.getMessage()  # Conveyor's own tasks are not named
        assert f"{package}.tasks.ported.poll" in app.tasks
    finally:
        sys.path.remove(str(tmp_path))
        app.close()
