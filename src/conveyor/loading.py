"""Which modules hold an app's tasks, and when they are imported: ``app.loader``.

A task exists for the worker only once the module that declares it has been imported. Three
ways to name those modules, as in Celery:

- ``Conveyor("proj", include=["proj.tasks"])`` (or the ``imports`` / ``include`` settings,
  ``CELERY_IMPORTS`` in Django settings): imported by the worker and beat when they start.
- ``app.autodiscover_tasks(["proj.orders", "proj.billing"])``: each package's ``tasks`` module
  (``related_name=``), where it has one.
- ``app.autodiscover_tasks()`` in a Django project: the ``tasks`` module of every installed app
  (``conveyor.contrib.django`` supplies the list).

Discovery is lazy, as Celery's: ``autodiscover_tasks()`` only records the request, because it
is usually called in the module that creates the app, which Django imports while it is still
loading its settings -- long before the installed apps can be listed. The modules are imported
by ``import_default_modules()``, which the worker and beat call before they start (after the
Django fix-up's ``django.setup()``), or the first time the app's task registry is read
(``app.tasks``, ``get_task``) once the packages can be known: "finalising" the app, in Celery's
word. ``force=True`` imports at once.

A package without a ``tasks`` module is skipped; a ``tasks`` module that fails to import
raises (a worker must not start without half of its tasks).
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from .exceptions import ConfigurationError

if TYPE_CHECKING:
    from .config import Settings

logger = logging.getLogger("conveyor.loader")

#: What ``autodiscover_tasks`` takes: package names, or a function giving them (Celery's
#: ``lambda: settings.INSTALLED_APPS``), or None for the framework's default (Django's apps).
Packages = Sequence[str] | Callable[[], Iterable[str]] | None


class Loader:
    """Imports the modules that declare an app's tasks (see the module docstring)."""

    def __init__(self, conf: Callable[[], Settings]) -> None:
        self._conf = conf
        #: Run before anything is imported at worker/beat start (the Django fix-up's setup).
        self.before_import: list[Callable[[], None]] = []
        #: The packages ``autodiscover_tasks()`` uses with no list: set by a framework fix-up.
        #: Returns None while they cannot be known yet (Django still loading).
        self.default_packages: Callable[[], list[str] | None] | None = None
        self._discoveries: list[tuple[Packages, str | None]] = []
        #: Whether a discovery still waits: read on every ``app.tasks`` access, so a plain bool.
        self.pending = False
        self._lock = threading.RLock()
        self._busy = False  # importing now: a registration it causes must not re-enter

    def autodiscover(self, packages: Packages, related_name: str | None, force: bool) -> None:
        """Record (or with ``force``, run now) a discovery; see ``Conveyor.autodiscover_tasks``."""
        if isinstance(packages, str):  # a lone name would be read letter by letter
            packages = [packages]
        with self._lock:
            self._discoveries.append((packages, related_name))
            self.pending = True
        if force:
            self.finalize(strict=True)

    def setup(self) -> None:
        """Run the fix-ups' setup (``django.setup()``): done by every ``conveyor -A`` command
        that loads the app, so that reading the task registry can discover tasks there too."""
        for hook in list(self.before_import):
            hook()

    def import_default_modules(self) -> list[str]:
        """What a worker or beat does before it starts: the fix-ups' setup, then the
        ``imports``/``include`` modules, then every recorded discovery. Returns the module names
        imported (for the banner and tests)."""
        self.setup()
        conf = self._conf()
        names = [*_names("imports", conf.imports), *_names("include", conf.include)]
        for name in names:
            _import(name, "include")
        imported = names + self.finalize(strict=True)
        warn_celery_tasks(imported)
        return imported

    def finalize(self, strict: bool = False) -> list[str]:
        """Run the discoveries whose packages can be known now; returns the modules imported.

        ``strict``: a discovery whose packages cannot be known (Django not set up) is an
        error, not something to retry later.
        """
        imported: list[str] = []
        with self._lock:
            if self._busy or not self.pending:
                return imported
            self._busy = True
            try:
                waiting = []
                for packages, related_name in self._discoveries:
                    names = self._resolve(packages)
                    if names is None:
                        if strict:
                            raise ConfigurationError(
                                "autodiscover_tasks() with no package list needs a Django project "
                                "(DJANGO_SETTINGS_MODULE) that is set up; pass the packages instead"
                            )
                        waiting.append((packages, related_name))
                        continue
                    imported += [m for p in names if (m := _related(p, related_name)) is not None]
                self._discoveries = waiting
                self.pending = bool(waiting)
            finally:
                self._busy = False
        if imported:
            logger.debug("task modules imported: %s", ", ".join(imported))
        return imported

    def _resolve(self, packages: Packages) -> list[str] | None:
        if packages is None:
            return self.default_packages() if self.default_packages is not None else None
        if callable(packages):
            return list(packages())
        return list(packages)


_CELERY_TASK_TYPES = ("celery.local", "celery.app.task")


def warn_celery_tasks(modules: list[str]) -> None:
    """Warn of Celery task objects left in the task modules (and the modules they import
    below them): a module still on ``from celery import shared_task`` registers nothing here,
    so the worker never runs its tasks, and their ``.delay()`` quietly sends through Celery."""
    if "celery" not in sys.modules or not modules:  # no Celery object can exist
        return
    found = []
    for name, module in list(sys.modules.items()):
        if module is None or not any(name == m or name.startswith(m + ".") for m in modules):
            continue
        for attr, obj in list(vars(module).items()):
            # By type only: touching a Celery proxy's attributes would evaluate it. A task is
            # a proxy (shared_task, @app.task before the app is finalized) or a Task.
            if any(c.__module__ in _CELERY_TASK_TYPES for c in type(obj).__mro__):
                found.append(f"{name}.{attr}")
    if found:
        logger.warning(
            "Celery task(s) %s: defined with Celery (`from celery import shared_task`?), so this "
            "worker does not run them and their .delay() sends through Celery; use "
            "`from conveyor import shared_task` (docs/migrating-from-celery.md)",
            ", ".join(sorted(found)),
        )


def _names(setting: str, value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, Sequence) or not all(isinstance(v, str) and v for v in value):
        raise ConfigurationError(f"setting {setting!r} must be a list of module names, got {value!r}")
    return list(value)


def _import(name: str, what: str) -> None:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # The module itself (or a package above it) is missing, not something it imports:
        # "billing_tasks" importing a missing "billing" must say "billing".
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise ConfigurationError(f"{what}: no module named {name!r}") from exc
        raise


def _related(package: str, related_name: str | None) -> str | None:
    """Import ``package.related_name`` if the package has it; the module name, or None."""
    if not related_name:
        _import(package, "autodiscover_tasks")
        return package
    try:
        importlib.import_module(package)
    except ModuleNotFoundError as exc:
        # "proj.orders.OrdersConfig" (an INSTALLED_APPS entry): the package is the part before.
        head = package.rpartition(".")[0]
        if exc.name != package or not head:
            raise
        return _related(head, related_name)
    name = f"{package}.{related_name}"
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None  # this package has no tasks module: nothing to register
        raise  # the tasks module exists but imports something missing: a real error
    return name
