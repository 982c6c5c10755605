"""The current app, and the shared tasks every app registers (``@shared_task``).

Its own small module so that ``task.py`` can find the current app without importing
``app.py`` (which imports ``task.py``): see docs/architecture.md.

>>> from conveyor import current_app     # doctest: +SKIP
>>> current_app.conf.task_always_eager = True   # doctest: +SKIP
>>> current_app.main, current_app() is app      # doctest: +SKIP
('proj', True)
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, cast

from .exceptions import ConfigurationError

if TYPE_CHECKING:  # the types users see; nothing from app.py runs here
    from .app import Conveyor
    from .task import Task

_current: weakref.ref[Conveyor] | None = None
_shared_tasks: list[Task[Any, Any]] = []


def _current_app() -> Conveyor:
    """The most recently created app (what ``@shared_task`` tasks use)."""
    app = _current() if _current is not None else None
    if app is None:
        raise ConfigurationError(
            "no Conveyor app has been created yet (shared_task, current_app and AsyncResult(id) "
            "without app= use the one created last)"
        )
    return app


class CurrentApp:
    """Celery's ``current_app`` proxy: every attribute is looked up on the current app at use.

    Ported code does ``current_app.conf.task_always_eager = True`` (Celery's ``current_app`` is a
    proxy object, not a function), and Conveyor's own code calls ``current_app()``: both work.
    The lookup happens on every access, so a test that creates a fresh app in ``setUp`` sees
    that app, never one captured at import time.
    """

    __slots__ = ()

    def __call__(self) -> Conveyor:
        return _current_app()

    # Celery's proxy also passes isinstance(current_app, Celery): ported code checks that.
    @property  # type: ignore[misc]
    def __class__(self) -> type:
        app = _current() if _current is not None else None
        return type(app) if app is not None else CurrentApp  # no app yet: isinstance must not raise

    def __getattr__(self, name: str) -> Any:
        app = _current() if _current is not None else None
        if app is None and name.startswith("__") and name.endswith("__"):
            # A protocol probe (``hasattr(x, "__wrapped__")`` from inspect, doctest, copy,
            # pickle) must see "no such attribute", not an error, before any app exists.
            raise AttributeError(name)
        return getattr(_current_app(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(_current_app(), name, value)

    def __delattr__(self, name: str) -> None:
        delattr(_current_app(), name)

    def __dir__(self) -> list[str]:
        return dir(_current_app())

    def __repr__(self) -> str:
        app = _current() if _current is not None else None
        return f"<current_app: {app!r}>" if app is not None else "<current_app: no app yet>"


if TYPE_CHECKING:
    # What type checkers see: the app itself (so ``current_app.conf.x`` and ``current_app.task``
    # are checked), plus the call existing code makes.
    class _TypedCurrentApp(Conveyor):
        def __call__(self) -> Conveyor: ...


current_app: _TypedCurrentApp = cast("_TypedCurrentApp", CurrentApp())


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
