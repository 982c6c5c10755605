"""The current app, and the shared tasks every app registers (``@shared_task``).

Its own small module so that ``task.py`` can find the current app without importing
``app.py`` (which imports ``task.py``): see docs/architecture.md.

>>> from conveyor import current_app     # doctest: +SKIP
>>> current_app().main                    # doctest: +SKIP
'proj'
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from .exceptions import ConfigurationError

if TYPE_CHECKING:  # the types users see; nothing from app.py runs here
    from .app import Conveyor
    from .task import Task

_current: weakref.ref[Conveyor] | None = None
_shared_tasks: list[Task[Any, Any]] = []


def current_app() -> Conveyor:
    """The most recently created app (what ``@shared_task`` tasks use)."""
    app = _current() if _current is not None else None
    if app is None:
        raise ConfigurationError("no Conveyor app has been created yet (shared_task needs one)")
    return app


def activate(app: Conveyor) -> None:
    """Make ``app`` the current app and register every shared task with it (a new app)."""
    global _current
    _current = weakref.ref(app)
    for task in _shared_tasks:
        app.tasks.setdefault(task.name, task)


def share(task: Task[Any, Any]) -> None:
    """Register ``task`` with every app: the current one now, and each one created later."""
    _shared_tasks.append(task)
    app = _current() if _current is not None else None
    if app is not None:
        app.tasks.setdefault(task.name, task)
