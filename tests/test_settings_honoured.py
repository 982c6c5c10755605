"""No setting is silently ignored: every setting and task option name Conveyor accepts is read
by the code that does what it says, or warns in one line naming what to do instead."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conveyor import ConfigurationWarning, Conveyor
from conveyor.config import FIELDS, INSTEAD
from conveyor.task import CELERY_OPTIONS_INSTEAD, OPTION_NAMES

SRC = Path(__file__).resolve().parent.parent / "src" / "conveyor"

# A value of each INSTEAD name that must warn (its default, where it has one, must not).
WARNING_VALUES = {
    "result_backend": "redis://localhost:6380/1",
    "enable_utc": False,
    "task_reject_on_worker_lost": True,
    "task_track_started": True,
    "worker_send_task_events": True,
    "task_send_sent_event": True,
    "broker_transport_options": {"visibility_timeout": 3600},
    "beat_scheduler": "django_celery_beat.schedulers:DatabaseScheduler",
}


def names_read(skip: str) -> set[str]:
    """Attribute names read (``conf.x``, ``self._x``) anywhere in the package, and string
    literals (``conf["x"]``, ``options.pop("x")``) outside the file ``skip`` that declares them.
    Comments and docstrings do not count: mentioning a name is not honouring it."""
    found: set[str] = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                found.add(node.attr.lstrip("_"))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and path.name != skip:
                found.add(node.value)
    return found


def test_every_setting_is_honoured_or_warns_what_to_do_instead() -> None:
    read = names_read(skip="config.py")
    silent = sorted(name for name in FIELDS if name not in read and name not in INSTEAD)
    assert silent == [], f"settings accepted but never read, and not in config.INSTEAD: {silent}"


def test_every_task_option_is_honoured() -> None:
    read = names_read(skip="task.py")
    silent = sorted(name for name in OPTION_NAMES if name not in read)
    assert silent == [], f"@app.task options accepted but never read: {silent}"


@pytest.mark.parametrize("name", sorted(CELERY_OPTIONS_INSTEAD))
def test_a_celery_task_option_conveyor_has_no_use_for_registers_the_task_and_warns_in_one_line(
    name: str,
) -> None:
    """A ported module with ``@app.task(track_started=True)`` still imports; the warning names
    the option, the task, and what Conveyor does instead, at the decorator's line."""
    app = Conveyor("instead", broker="memory://instead")
    try:
        with pytest.warns(ConfigurationWarning) as caught:

            @app.task(name="ported.fetch", **{name: True})
            def fetch() -> None: ...

        message = str(caught[0].message)
        assert message.startswith(f"task option {name}=True (") and "fetch" in message
        assert message.endswith(CELERY_OPTIONS_INSTEAD[name]) and "\n" not in message
        assert caught[0].filename == __file__
        assert "ported.fetch" in app.tasks
    finally:
        app.close()


def test_a_misspelt_task_option_is_refused_with_the_name_it_resembles() -> None:
    app = Conveyor("instead", broker="memory://instead")
    try:
        with pytest.raises(TypeError, match=r"\['max_retry'\] \(did you mean 'max_retries'\?\)"):
            app.task(max_retry=3)(lambda: None)
        assert app.task(autoretry_for=OSError)(lambda: None).autoretry_for == (OSError,)  # as except takes it
    finally:
        app.close()


@pytest.mark.parametrize("name", sorted(INSTEAD))
def test_a_setting_conveyor_does_not_honour_warns_in_one_line(name: str) -> None:
    app = Conveyor("instead", broker="memory://instead")
    try:
        with pytest.warns(ConfigurationWarning) as caught:
            app.conf[name] = WARNING_VALUES[name]
        message = str(caught[0].message)
        assert message.startswith("setting ") and name in message and "\n" not in message
        assert message.endswith(INSTEAD[name][1])
        assert caught[0].filename == __file__  # points at the line that set it
    finally:
        app.close()


def test_defaults_and_harmless_values_do_not_warn() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        app = Conveyor("instead", broker="memory://instead", enable_utc=True, result_backend=None)
        app.close()


def test_a_setting_conveyor_reads_is_not_listed_as_without_effect() -> None:
    """A Celery setting that became honoured (``task_compression``, ``result_serializer``) must
    leave ``celerynames.CELERY_ONLY``, or loading it would still warn "has no effect"."""
    from conveyor.celerynames import CELERY_ONLY

    assert sorted(set(CELERY_ONLY) & set(FIELDS)) == []
